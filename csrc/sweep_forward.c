/* sweep_forward.c -- replay: one forward loop recomputing every value of the
 * tape at new leaf values, from the value rules of ops.def, and re-checking
 * the comparisons (guards) recorded while tracing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "array.h"
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
 * v[ra[i]], v[rb[i]] and writes v[rr[i]].  With `plan` it runs the nplan
 * instructions listed there instead of every one (a replay of an array tape:
 * `arrays` is then the tape itself, whose array instructions recompute their
 * values into their buffers; NULL for tapes without them).  Each caller
 * below passes the flags as constants, so the compiler makes one specialised
 * loop for each.  -1, the slot of a guard that came out otherwise, or a
 * status below -1 (PT_E_CALLBACK; PT_SWEEP_NOMEM for PT_E_NOMEM). */
PT_INLINE int64_t forward_loop(const pt_tape *t, pt_tape *arrays, double *v, int registers, const int64_t *plan,
                               int64_t nplan)
{
    const uint16_t *op = t->op;
    const int32_t *A = registers ? t->ra : t->a, *B = registers ? t->rb : t->b, *R = t->rr;
    const double *K = t->consts;
    const int64_t n = plan ? nplan : t->n;
    for (int64_t p = 0; p < n; ++p) {
        const int64_t i = plan ? plan[p] : p;
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
        case PT_ARRAY:
            if (arrays) {
                const int st = pt_array_value(arrays, i);
                if (st)
                    return st == PT_E_NOMEM ? PT_SWEEP_NOMEM : st;
            }
            break;
        default: /* LEAF: its value is set */
            break;
        }
    }
    return -1;
}

PT_SWEEP_ALIGNED int64_t pt_sweep_forward(const pt_tape *t, double *v)
{
    return forward_loop(t, NULL, v, 0, NULL, 0);
}

PT_SWEEP_ALIGNED int64_t pt_sweep_forward_registers(const pt_tape *t, double *v)
{
    return forward_loop(t, NULL, v, 1, NULL, 0);
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

/* ---- array tapes: replays in place (pytape.trace of Tensor programs) ------
 * A traced tape with array instructions is not copied: its inputs (LEAF
 * slots, array LEAF or CONST slots) get new values and the instructions of
 * its plan are recomputed where they are, each array instruction by its
 * kind's value kernel into its own buffer (array.c: pt_array_value).  The
 * plan is what the compile pass of scalar tapes keeps: the instructions
 * that depend on an input (the others are constants: their values stay) and
 * reach an output or a guard (dead code is skipped).  The reverse, tangent
 * and Hessian sweeps then run on the tape as on a fresh recording. */

int pt_replay_inputs(pt_tape *t, int64_t nin, const int64_t *ins)
{
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (!t->keep_values)
        return PT_E_OP;  /* recorded with recycling: values may have been given back */
    for (int64_t k = 0; k < nin; ++k) {
        const int64_t s = ins[k];
        if (s < 0 || s >= t->n)
            return PT_E_SLOT;
        if (t->op[s] == PT_LEAF) {
            t->leaf_grad[t->a[s]] = NULL;  /* a replay's adjoints are read from the tape, not added to cells */
            continue;
        }
        if (t->op[s] != PT_ARRAY || (t->b[s] != PT_A_LEAF && t->b[s] != PT_A_CONST))
            return PT_E_SLOT;
        const int st = pt_array_own_value(t, s);
        if (st)
            return st;
    }
    return PT_OK;
}

/* the checks of a replay's call: the tape's own thread, not in a sweep,
 * recorded for replays, inputs that are LEAF or owned array LEAF / CONST
 * slots, a plan of slots */
static int replay_ok(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nplan, const int64_t *plan)
{
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (t->busy)
        return PT_E_BUSY;
    if (!t->keep_values)
        return PT_E_OP;  /* not recorded for replays (pt_tape_keep_values) */
    for (int64_t k = 0; k < nin; ++k) {
        const int64_t s = ins[k];
        if (s < 0 || s >= t->n || (t->op[s] != PT_LEAF && !(t->op[s] == PT_ARRAY && t->ar[t->a[s]].borrowed == 0 &&
                                                              (t->b[s] == PT_A_LEAF || t->b[s] == PT_A_CONST))))
            return PT_E_SLOT;
    }
    for (int64_t p = 0; p < nplan; ++p)
        if (plan[p] < 0 || plan[p] >= t->n)
            return PT_E_SLOT;
    return PT_OK;
}

/* the plan's instructions recomputed from the inputs' values */
static int replay_plan(pt_tape *t, int64_t nplan, const int64_t *plan, int64_t *where)
{
    t->consumed = 0;
    pt_sweep_begin(t);
    const int64_t bad = forward_loop(t, t, t->val, 0, plan, nplan);
    pt_sweep_end(t);
    if (bad >= 0) {
        *where = bad;
        return PT_E_GUARD;
    }
    return bad == -1 ? PT_OK : bad == PT_SWEEP_NOMEM ? PT_E_NOMEM : (int)bad;
}

int pt_replay_arrays(pt_tape *t, int64_t nin, const int64_t *ins, const double *data, const int64_t *offs,
                     int64_t nplan, const int64_t *plan, int64_t *where)
{
    int st = replay_ok(t, nin, ins, nplan, plan);
    if (st)
        return st;
    for (int64_t k = 0; k < nin; ++k) {
        const int64_t s = ins[k];
        if (t->op[s] == PT_LEAF) {
            t->val[s] = data[offs[k]];
        } else {
            struct pt_arr *e = &t->ar[t->a[s]];
            if (e->size)
                memcpy(e->val, data + offs[k], (size_t)e->size * sizeof(double));
            t->val[s] = e->size ? e->val[0] : NAN;
        }
    }
    return replay_plan(t, nplan, plan, where);
}

int pt_replay_gradient(pt_tape *t, int64_t nin, const int64_t *ins, const double *const *data, int64_t nplan,
                       const int64_t *plan, int64_t out, double *value, double *const *grads, int64_t *where)
{
    int st = replay_ok(t, nin, ins, nplan, plan);
    if (st)
        return st;
    if (out < 0 || out >= t->n || t->op[out] == PT_GUARD || (t->op[out] == PT_ARRAY && t->ar[t->a[out]].size != 1))
        return PT_E_SLOT;
    double *own[64], **saved = nin <= 64 ? own : malloc((size_t)nin * sizeof *saved);
    if (!saved)
        return PT_E_NOMEM;
    for (int64_t k = 0; k < nin; ++k) {  /* the caller's arrays lent for this call: no copies */
        const int64_t s = ins[k];
        if (t->op[s] == PT_LEAF) {
            t->val[s] = data[k][0];
            continue;
        }
        struct pt_arr *e = &t->ar[t->a[s]];
        saved[k] = e->val;
        if (e->size)
            e->val = (double *)data[k];
        t->val[s] = e->size ? e->val[0] : NAN;
    }
    st = replay_plan(t, nplan, plan, where);
    if (!st) {
        *value = t->op[out] == PT_ARRAY ? t->ar[t->a[out]].val[0] : t->val[out];
        static const double one = 1.0;
        st = t->op[out] == PT_ARRAY ? pt_backward_array(t, out, &one, 1) : pt_backward(t, out, 1.0, 1);
    }
    for (int64_t k = 0; k < nin && !st; ++k) {
        const int64_t s = ins[k];
        if (t->op[s] == PT_LEAF) {
            grads[k][0] = s < t->adj_n ? t->adj[s] : 0.0;
            continue;
        }
        const struct pt_arr *e = &t->ar[t->a[s]];
        const double *g = pt_arr_adjoint(t, s);
        if (g)
            memcpy(grads[k], g, (size_t)e->size * sizeof *g);
        else if (e->size)
            memset(grads[k], 0, (size_t)e->size * sizeof *grads[k]);
    }
    for (int64_t k = 0; k < nin; ++k)  /* the tape's own buffers again: it holds no pointer of the caller's */
        if (t->op[ins[k]] == PT_ARRAY)
            t->ar[t->a[ins[k]]].val = saved[k];
    if (saved != own)
        free(saved);
    return st;
}

int pt_replay_gradient_rows(pt_tape *t, int64_t nin, const int64_t *ins, const int64_t *offs, int64_t nrows,
                            int64_t width, const double *X, double *Y, double *G, int64_t *fail, int64_t nplan,
                            const int64_t *plan, int64_t out)
{
    if (nin < 0 || nrows < 0 || width < 0)
        return PT_E_SLOT;
    const double **data = malloc((size_t)(nin ? nin : 1) * sizeof *data);
    double **grads = malloc((size_t)(nin ? nin : 1) * sizeof *grads);
    int st = data && grads ? PT_OK : PT_E_NOMEM;
    for (int64_t r = 0; r < nrows && !st; ++r) {
        for (int64_t k = 0; k < nin; ++k) {
            data[k] = X + r * width + offs[k];
            grads[k] = G + r * width + offs[k];
        }
        int64_t where = -1;
        st = pt_replay_gradient(t, nin, ins, data, nplan, plan, out, &Y[r], grads, &where);
        fail[r] = st == PT_E_GUARD ? where : -1;
        if (st == PT_E_GUARD) {
            Y[r] = NAN;
            st = PT_OK;
        }
    }
    free(data);
    free(grads);
    return st;
}

void pt_tape_keep_values(pt_tape *t) { t->keep_values = 1; }
