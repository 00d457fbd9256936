/* sweep_block.c -- several sweeps in one pass over the tape: q adjoint seeds
 * (q rows of a Jacobian) in one backward loop, p tangent seeds (p columns) in
 * one forward loop.  Each instruction's derivative rules (ops.def) are
 * evaluated once and applied to the q (or p) lanes of its slot.
 *
 * Lane arrays are slot-major: lane k of slot i is at [i * q + k].  A zero in a
 * lane contributes nothing to it, even through an infinite derivative, as in
 * the one-seed sweeps.  These sweeps read the tape only: they touch no grad
 * cell and do not consume the tape. */
#include <math.h>
#include "tape.h"
#include "rules.h"

/* the lanes of src into the lanes of dst, times d; a zero factor or lane
 * passes nothing (pt_chain) */
PT_INLINE void lanes_acc(double *restrict dst, const double *restrict src, double d, int64_t q)
{
    if (d == 0.0)
        return;
    for (int64_t k = 0; k < q; ++k)
        if (src[k] != 0.0)
            dst[k] += d * src[k];
}

/* the lanes g of an instruction into both its operands at once, times da
 * into sa and db into sb (NULL: not a slot), each lane of g read once: as
 * it is not reloaded between the two (they might alias, for all the
 * compiler knows), one lane compiles as tightly as the scalar sweep */
PT_INLINE void lanes_to_operands(double *sa, double da, double *sb, double db, const double *g, int64_t q)
{
    if (da == 0.0)
        sa = NULL;
    if (db == 0.0)
        sb = NULL;
    for (int64_t k = 0; k < q; ++k) {
        const double gk = g[k];
        if (gk == 0.0)
            continue;
        if (sa)
            sa[k] += da * gk;
        if (sb)
            sb[k] += db * gk;
    }
}

/* The loops; each caller runs them with q (or p) = 1 as a constant too, so
 * that one lane compiles to scalar code. */
PT_INLINE int sweep_reverse_block(const pt_tape *t, int64_t out, double *adj, int64_t q)
{
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;
    const double *v = t->val, *K = t->consts;

    for (int64_t i = out; i >= 0; --i) {
        const double *g = adj + i * q;
        if (pt_lanes_zero(g, q))
            continue;
        switch (op[i]) {
#define PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB)                             \
            lanes_to_operands(HA ? adj + ia * q : NULL, HA ? (DA) : 0.0,      \
                              HB ? adj + ib * q : NULL, HB ? (DB) : 0.0, g, q);
#include "forms.h"
        case PT_CUSTOM:  /* a call back into Python (custom.c) */
            if (pt_custom_vjp(t, i, v, adj, q, 0))
                return PT_E_CALLBACK;
            break;
        default: /* LEAF */
            break;
        }
    }
    return PT_OK;
}

PT_INLINE int sweep_tangent_block(const pt_tape *t, int64_t n, double *tan, int64_t p)
{
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;
    const double *v = t->val, *K = t->consts;

    for (int64_t i = 0; i < n; ++i) {
        double *d = tan + i * p;
        switch (op[i]) {
/* operands with zero lanes only: nothing to add, no value to read */
#define PT_FORMS_FIRST(HA, HB)                                                \
            const int za = !HA || pt_lanes_zero(tan + ia * p, p);             \
            const int zb = !HB || pt_lanes_zero(tan + ib * p, p);             \
            if (za && zb)                                                     \
                break;
#define PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB)                             \
            if (!za)                                                          \
                lanes_acc(d, tan + ia * p, (DA), p);                          \
            if (!zb)                                                          \
                lanes_acc(d, tan + ib * p, (DB), p);
#include "forms.h"
        case PT_CUSTOM:  /* a call back into Python (custom.c) */
            if (pt_custom_jvp(t, i, v, tan, p))
                return PT_E_CALLBACK;
            break;
        default: /* LEAF: its seeds */
            break;
        }
    }
    return PT_OK;
}

PT_SWEEP_ALIGNED int pt_sweep_tangent_block(const pt_tape *t, int64_t n, double *tan, int64_t p)
{
    if (p == 1)
        return sweep_tangent_block(t, n, tan, 1);
    return sweep_tangent_block(t, n, tan, p);
}

static int check_slots(const pt_tape *t, int64_t m, const int64_t *slots)
{
    for (int64_t j = 0; j < m; ++j)
        if (slots[j] < 0 || slots[j] >= t->n)
            return PT_E_SLOT;
    return PT_OK;
}

int64_t pt_first_nonfinite(const double *lanes, int64_t n, int64_t p)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < p; ++k)
            if (!isfinite(lanes[i * p + k]))
                return i;
    return -1;
}

/* anomaly mode: lane by lane through the checked reverse sweep, in the tape's
 * own adjoint array, so the first nan or inf stops at its instruction
 * (pt_tape_bad) and Python names it, as for backward() */
static int backward_block_checked(pt_tape *t, int64_t nout, const int64_t *outs, int64_t q,
                                  const double *seeds, int64_t nin, const int64_t *ins,
                                  double *result, int64_t top)
{
    for (int64_t k = 0; k < q; ++k) {
        if (pt_tape_adjoints(t, top + 1))
            return PT_E_NOMEM;
        for (int64_t j = 0; j < nout; ++j)
            t->adj[outs[j]] += seeds[j * q + k];
        const int64_t bad = pt_sweep_reverse_checked(t, top, t->adj);
        if (bad == PT_E_CALLBACK)
            return PT_E_CALLBACK;
        t->bad = bad;
        if (bad >= 0)
            return PT_E_NONFINITE;
        for (int64_t i = 0; i < nin; ++i)
            result[i * q + k] = ins[i] <= top ? t->adj[ins[i]] : 0.0;
    }
    return PT_OK;
}

/* the sweeps of pt_backward_block, the tape marked busy around them (tape.h) */
static int backward_block(pt_tape *t, int64_t nout, const int64_t *outs, int64_t q,
                          const double *seeds, int64_t nin, const int64_t *ins, double *result);

PT_SWEEP_ALIGNED int pt_backward_block(pt_tape *t, int64_t nout, const int64_t *outs, int64_t q,
                      const double *seeds, int64_t nin, const int64_t *ins, double *result)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    const int st = pt_sweep_begin(t);
    if (st)
        return st;
    const int r = backward_block(t, nout, outs, q, seeds, nin, ins, result);
    pt_sweep_end(t);
    return r;
}

static int backward_block(pt_tape *t, int64_t nout, const int64_t *outs, int64_t q,
                          const double *seeds, int64_t nin, const int64_t *ins, double *result)
{
    if (q < 1 || check_slots(t, nout, outs) || check_slots(t, nin, ins))
        return PT_E_SLOT;
    int64_t top = 0;
    for (int64_t j = 0; j < nout; ++j)
        if (outs[j] > top)
            top = outs[j];
    if (pt_anomaly_active())
        return backward_block_checked(t, nout, outs, q, seeds, nin, ins, result, top);
    double *adj = pt_tape_scratch(t, (top + 1) * q);
    if (!adj)
        return PT_E_NOMEM;
    for (int64_t j = 0; j < nout; ++j)
        for (int64_t k = 0; k < q; ++k)
            adj[outs[j] * q + k] += seeds[j * q + k];
    const int st = q == 1 ? sweep_reverse_block(t, top, adj, 1) : sweep_reverse_block(t, top, adj, q);
    if (st)
        return st;
    for (int64_t i = 0; i < nin; ++i)
        for (int64_t k = 0; k < q; ++k)
            result[i * q + k] = ins[i] <= top ? adj[ins[i] * q + k] : 0.0;
    return PT_OK;
}

static int tangent_block(pt_tape *t, int64_t nin, const int64_t *ins, int64_t p,
                         const double *seeds, int64_t nout, const int64_t *outs, double *result);

int pt_tangent_block(pt_tape *t, int64_t nin, const int64_t *ins, int64_t p,
                     const double *seeds, int64_t nout, const int64_t *outs, double *result)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    const int st = pt_sweep_begin(t);
    if (st)
        return st;
    const int r = tangent_block(t, nin, ins, p, seeds, nout, outs, result);
    pt_sweep_end(t);
    return r;
}

static int tangent_block(pt_tape *t, int64_t nin, const int64_t *ins, int64_t p,
                         const double *seeds, int64_t nout, const int64_t *outs, double *result)
{
    if (p < 1 || check_slots(t, nout, outs) || check_slots(t, nin, ins))
        return PT_E_SLOT;
    for (int64_t i = 0; i < nin; ++i)
        if (t->op[ins[i]] != PT_LEAF)
            return PT_E_SLOT;
    double *tan = pt_tape_scratch(t, t->n * p);
    if (!tan)
        return PT_E_NOMEM;
    for (int64_t i = 0; i < nin; ++i)
        for (int64_t k = 0; k < p; ++k)
            tan[ins[i] * p + k] += seeds[i * p + k];
    if (pt_sweep_tangent_block(t, t->n, tan, p))
        return PT_E_CALLBACK;
    if (pt_anomaly_active() && (t->bad = pt_first_nonfinite(tan, t->n, p)) >= 0)
        return PT_E_NONFINITE;  /* anomaly mode: the first slot whose tangent is nan or inf */
    for (int64_t j = 0; j < nout; ++j)
        for (int64_t k = 0; k < p; ++k)
            result[j * p + k] = tan[outs[j] * p + k];
    return PT_OK;
}
