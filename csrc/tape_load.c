/* tape_load.c -- a tape from arrays (pytape's serialised compiled functions).
 *
 * The arrays may come from a file that was truncated, corrupted or crafted,
 * so every instruction is checked against the invariants of tape.h before
 * anything is built: a known opcode, operands that are earlier slots (never
 * a guard) or constant indices in range, leaves numbered in order, guard
 * codes that name a comparison.  A tape that passes can be swept without
 * reading outside its arrays. */
#include "tape.h"

static int slot_ok(const uint16_t *op, int64_t s, int64_t i)
{
    return s >= 0 && s < i && op[s] != PT_GUARD;
}

static int check(int64_t n, const uint16_t *op, const int32_t *a, const int32_t *b,
                 const double *val, int64_t nconst)
{
    int64_t nleaf = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t A = a[i], B = b[i];
        int ok;
        switch (pt_op_kind(op[i])) {
        case PT_KIND_LEAF:  ok = A == nleaf++ && B == 0; break;
        case PT_KIND_UNARY: ok = slot_ok(op, A, i) && B == 0; break;
        case PT_KIND_VV:    ok = slot_ok(op, A, i) && slot_ok(op, B, i); break;
        case PT_KIND_VC:    ok = slot_ok(op, A, i) && B >= 0 && B < nconst; break;
        case PT_KIND_CV:    ok = A >= 0 && A < nconst && slot_ok(op, B, i); break;
        case PT_KIND_GUARD: {
            const double code = val[i];
            ok = slot_ok(op, A, i) && (B >= 0 ? slot_ok(op, B, i) : -1 - B < nconst)
                 && code >= 0.0 && code <= 2.0 * PT_NE + 1.0 && code == (double)(int)code;
        } break;
        default:            ok = 0; break;  /* NOP or an unknown opcode */
        }
        if (!ok)
            return PT_E_OP;
    }
    return PT_OK;
}

int pt_tape_load(int64_t n, const uint16_t *op, const int32_t *a, const int32_t *b, const double *val,
                 int64_t nconst, const double *consts, pt_tape **out)
{
    *out = NULL;
    if (n < 0 || nconst < 0 || n > INT32_MAX || nconst > INT32_MAX)
        return PT_E_OP;
    int st = check(n, op, a, b, val, nconst);
    if (st)
        return st;
    pt_tape *t = pt_tape_new();
    if (!t)
        return PT_E_NOMEM;
    for (int64_t k = 0; k < nconst && !st; ++k)
        if (pt_append_const_at(t, consts[k]) < 0)  /* indices as given */
            st = PT_E_NOMEM;
    for (int64_t i = 0; i < n && !st; ++i) {
        const int64_t j = op[i] == PT_LEAF ? pt_append_leaf(t, val[i]) : pt_append(t, op[i], a[i], b[i], val[i]);
        if (j < 0)
            st = (int)j;
    }
    if (st) {
        pt_tape_free(t);
        return st;
    }
    *out = t;
    return PT_OK;
}
