/* sweep_forward.c -- replay: one forward loop recomputing every value of the
 * tape at new leaf values, from the value rules of ops.def, and re-checking
 * the comparisons (guards) recorded while tracing. */
#include <math.h>
#include "tape.h"
#include "rules.h"

static int compare(int cmp, double x, double y)
{
    switch (cmp) {
    case PT_LT: return x < y;
    case PT_LE: return x <= y;
    case PT_GT: return x > y;
    case PT_GE: return x >= y;
    case PT_EQ: return x == y;
    default: return x != y;
    }
}

/* The loop: instruction i reads v[a[i]], v[b[i]] (or constants) and writes
 * v[i]; with `registers` it runs the register plan instead (tape.h): it reads
 * v[ra[i]], v[rb[i]] and writes v[rr[i]].  Each caller below passes the flag
 * as a constant, so the compiler makes one specialised loop for each. */
PT_INLINE int64_t forward_loop(const pt_tape *t, double *v, int registers)
{
    const uint16_t *op = t->op;
    const int32_t *A = registers ? t->ra : t->a, *B = registers ? t->rb : t->b, *R = t->rr;
    const double *K = t->consts;
    const int64_t n = t->n;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t r = registers ? R[i] : i;
        switch (op[i]) {
#define PT_FORMS_Y NAN  /* unread: y is what this loop computes */
#define PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB) v[r] = (V);
#include "forms.h"
        case PT_GUARD: {
            const int code = (int)t->val[i];
            const double rhs = B[i] >= 0 ? v[B[i]] : K[-1 - B[i]];
            if (compare(code / 2, v[A[i]], rhs) != (code & 1))
                return i;
        } break;
        case PT_CUSTOM:  /* a call back into Python (custom.c) */
            if (pt_custom_value(t, i, v, registers, &v[r]))
                return PT_E_CALLBACK;
            break;
        default: /* LEAF: its value is set */
            break;
        }
    }
    return -1;
}

PT_SWEEP_ALIGNED int64_t pt_sweep_forward(const pt_tape *t, double *v)
{
    return forward_loop(t, v, 0);
}

PT_SWEEP_ALIGNED int64_t pt_sweep_forward_registers(const pt_tape *t, double *v)
{
    return forward_loop(t, v, 1);
}

int pt_replay(pt_tape *t, int64_t nin, const int64_t *slots, const double *values, int64_t *where)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (t->busy)
        return PT_E_BUSY;
    for (int64_t k = 0; k < nin; ++k)
        if (slots[k] < 0 || slots[k] >= t->n || t->op[slots[k]] != PT_LEAF)
            return PT_E_SLOT;
    for (int64_t k = 0; k < nin; ++k)
        t->val[slots[k]] = values[k];
    pt_sweep_begin(t);
    const int64_t bad = pt_sweep_forward(t, t->val);
    pt_sweep_end(t);
    if (bad == PT_E_CALLBACK)
        return PT_E_CALLBACK;
    if (bad >= 0) {
        *where = bad;
        return PT_E_GUARD;
    }
    return PT_OK;
}
