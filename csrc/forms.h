/* forms.h -- the operand forms of every row of ops.def, written once, for
 * the sweeps to include inside their `switch (op[i])` (as Lua's op_arith /
 * op_arithK spell the register and constant forms of an operator once).
 *
 * Each row expands to the case labels of its forms (unary: NAME; binary:
 * NAME, NAME_VC, NAME_CV), each a block that binds
 *   ia, ib   the operand indices (int64_t): slots, or constant indices on the
 *            constant side of _VC / _CV; ib = 0 in unary rows
 *   a, b     the operand values: slot values, or constants from the pool;
 *            b = 0.0 in unary rows
 *   y        the instruction's value
 * then runs PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB) and breaks.  HA / HB
 * are the constant 1 when operand a / b is a slot, else 0, so a rule guarded
 * by `if (HA)` vanishes from the forms without one; unary rows pass 0.0 for
 * DB, DAB and DBB.  The includer defines PT_CASE and has in scope i, and the
 * arrays A, B (operand indices), v (slot values) and K (constants), or names
 * others in PT_FORMS_A, PT_FORMS_B, PT_FORMS_V, PT_FORMS_K; PT_FORMS_Y is the
 * initializer of y (default v[i]; a loop computing y must not read it), and
 * PT_FORMS_FIRST(HA, HB) statements run once ia and ib are bound, before
 * any value is read (they may break: an instruction with nothing to do).
 * This file undefines PT_CASE and all of these at its end. */
#ifndef PT_FORMS_A
#define PT_FORMS_A A
#endif
#ifndef PT_FORMS_B
#define PT_FORMS_B B
#endif
#ifndef PT_FORMS_V
#define PT_FORMS_V v
#endif
#ifndef PT_FORMS_K
#define PT_FORMS_K K
#endif
#ifndef PT_FORMS_Y
#define PT_FORMS_Y PT_FORMS_V[i]
#endif
#ifndef PT_FORMS_FIRST
#define PT_FORMS_FIRST(HA, HB)
#endif

/* one form: its opcode, which operands are slots, where a and b come from */
#define PT_FORM(CODE, HA, HB, IB, AVAL, BVAL, V, DA, DB, DAA, DAB, DBB)      \
    case CODE: {                                                              \
        const int64_t ia = PT_FORMS_A[i], ib = (IB);                          \
        PT_FORMS_FIRST(HA, HB)                                                \
        const double a = (AVAL), b = (BVAL), y = (PT_FORMS_Y);                \
        (void)ia; (void)ib; (void)a; (void)b; (void)y;                        \
        PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB)                             \
    } break;

#define PT_OP1(N, S, V, DA, DAA)                                              \
    PT_FORM(PT_##N, 1, 0, 0, PT_FORMS_V[ia], 0.0, V, DA, 0.0, DAA, 0.0, 0.0)
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    PT_FORM(PT_##N, 1, 1, PT_FORMS_B[i], PT_FORMS_V[ia], PT_FORMS_V[ib],      \
            V, DA, DB, DAA, DAB, DBB)                                         \
    PT_FORM(PT_##N##_VC, 1, 0, PT_FORMS_B[i], PT_FORMS_V[ia], PT_FORMS_K[ib], \
            V, DA, DB, DAA, DAB, DBB)                                         \
    PT_FORM(PT_##N##_CV, 0, 1, PT_FORMS_B[i], PT_FORMS_K[ia], PT_FORMS_V[ib], \
            V, DA, DB, DAA, DAB, DBB)
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
#undef PT_FORM

#undef PT_CASE
#undef PT_FORMS_A
#undef PT_FORMS_B
#undef PT_FORMS_V
#undef PT_FORMS_K
#undef PT_FORMS_Y
#undef PT_FORMS_FIRST
