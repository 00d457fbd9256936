/* sweep_hessian.c -- second order by forward over reverse: a tangent pass
 * (p directions) and one reverse pass that carries, besides each adjoint
 * ybar, its tangents ybar' (p lanes).  For y = f(a, b):
 *
 *   abar  += f_a ybar
 *   abar' += f_a ybar' + (f_aa a' + f_ab b') ybar
 *   bbar  += f_b ybar
 *   bbar' += f_b ybar' + (f_ab a' + f_bb b') ybar
 *
 * so at the inputs abar' = H v: a Hessian-vector product for a small constant
 * times the cost of a gradient.  Second derivatives come from ops.def.  A zero
 * factor contributes nothing, as in the other sweeps.  A custom instruction
 * (custom.c) is a call back into Python, which differentiates the
 * primitive's reverse rule along the tangents (PT_CUSTOM_HVP).
 *
 * On a tape with arrays (pt_hvp_arrays, one direction) the scalar slots'
 * tangents and adjoints are t->tan and t->adj, as in the other sweeps, and
 * an array instruction's ybar' is its adt buffer (array.h: the kinds'
 * second-derivative kernels), adjd[i] flagging whether it holds values. */
#include <math.h>
#include <string.h>
#include "tape.h"
#include "array.h"
#include "rules.h"

/* dst[k] += f * gd[k] + (f1 * t1[k] + f2 * t2[k]) * g, a zero factor passing nothing */
PT_INLINE void hv_lanes(double *dst, const double *gd, double f, double g,
                        const double *t1, double f1, const double *t2, double f2, int64_t p)
{
    for (int64_t k = 0; k < p; ++k) {
        double d = 0.0;
        d += pt_chain(f, gd[k]);
        if (g != 0.0) {
            if (t1)
                d += pt_chain(pt_chain(f1, t1[k]), g);
            if (t2)
                d += pt_chain(pt_chain(f2, t2[k]), g);
        }
        dst[k] += d;
    }
}

/* anomaly mode: is scalar slot s's adjoint, or one of its p tangents, nan
 * or inf?  Noted in t->bad_sweep */
static int scalar_bad(pt_tape *t, const double *adj, const double *adjd, int64_t s, int64_t p)
{
    if (!isfinite(adj[s])) {
        t->bad_sweep = PT_BAD_ADJOINT;
        return 1;
    }
    for (int64_t k = 0; k < p; ++k)
        if (!isfinite(adjd[s * p + k])) {
            t->bad_sweep = PT_BAD_ADJOINT_TAN;
            return 1;
        }
    return 0;
}

/* anomaly mode, after array slot i's rule (pt_array_hvp, p = 1): did it make
 * an operand's adjoint or its tangent nan or inf?  Noted in t->bad_array and
 * t->bad_sweep */
static int array_bad(pt_tape *t, int64_t i, const double *adjd)
{
    if (pt_array_adjoints_bad(t, i)) {
        t->bad_sweep = PT_BAD_ADJOINT;
        return 1;
    }
    const struct pt_arr *e = &t->ar[t->a[i]];
    t->bad_sweep = PT_BAD_ADJOINT_TAN;
    for (int j = 0; j < e->nargs; ++j) {
        const int64_t s = t->ar_arg[e->arg + j];
        if (s < 0)
            continue;  /* a constant */
        if (t->op[s] != PT_ARRAY) {
            if (pt_array_note_nonfinite(t, e, s, &adjd[s], 1, 0, NULL))
                return 1;
            continue;
        }
        const struct pt_arr *o = &t->ar[t->a[s]];
        if (adjd[s] != 0.0 && o->adt &&
            pt_array_note_nonfinite(t, e, s, o->adt, o->size, o->ndim, pt_arr_shape_of(t, o)))
            return 1;
    }
    return 0;
}

static int stop_at(pt_tape *t, int64_t i)
{
    t->bad = i;
    return PT_E_NONFINITE;
}

/* the loop; the caller runs it with p = 1 as a constant too, so that one
 * Hessian-vector product (the common case) compiles to scalar code.  Only
 * the columns of operands that are slots are evaluated.  `checked` (a
 * constant in each caller, anomaly mode) stops it at the first instruction
 * that makes an adjoint or a tangent of one nan or inf: PT_E_NONFINITE,
 * the instruction in t->bad. */
PT_INLINE int sweep_hessian(const pt_tape *t, int64_t out, const double *tan, double *adj, double *adjd,
                             int64_t p, int checked)
{
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;
    const double *v = t->val, *K = t->consts;

    for (int64_t i = out; i >= 0; --i) {
        const double g = adj[i];
        const double *gd = adjd + i * p;
        if (g == 0.0 && pt_lanes_zero(gd, p))
            continue;
        switch (op[i]) {
#define PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB)                             \
            const double fa = HA ? (DA) : 0.0, faa = HA ? (DAA) : 0.0;        \
            const double fb = HB ? (DB) : 0.0, fbb = HB ? (DBB) : 0.0;        \
            const double fab = HA && HB ? (DAB) : 0.0;                        \
            const double *ta = HA ? tan + ia * p : NULL;                      \
            const double *tb = HB ? tan + ib * p : NULL;                      \
            if (HA && g != 0.0)                                               \
                adj[ia] += pt_chain(fa, g);                                   \
            if (HB && g != 0.0)                                               \
                adj[ib] += pt_chain(fb, g);                                   \
            if (HA)                                                           \
                hv_lanes(adjd + ia * p, gd, fa, g, ta, faa, tb, fab, p);      \
            if (HB)                                                           \
                hv_lanes(adjd + ib * p, gd, fb, g, ta, fab, tb, fbb, p);      \
            if (checked && ((HA && scalar_bad((pt_tape *)t, adj, adjd, ia, p)) || \
                            (HB && scalar_bad((pt_tape *)t, adj, adjd, ib, p))))  \
                return stop_at((pt_tape *)t, i);
#include "forms.h"
        case PT_CUSTOM:  /* a call back into Python (custom.c) */
            if (pt_custom_hvp(t, i, tan, adj, adjd, p))
                return PT_E_CALLBACK;
            break;
        case PT_ARRAY: {  /* pt_hvp_arrays only (p = 1): array.c */
            const int st = pt_array_hvp((pt_tape *)t, i, adjd);
            if (st)
                return st;
            if (checked && array_bad((pt_tape *)t, i, adjd))
                return stop_at((pt_tape *)t, i);
        } break;
        default: /* LEAF */
            break;
        }
    }
    return PT_OK;
}

/* anomaly mode's loop: one copy for every p (the op switch is long: a copy
 * per call site doubled this file's compile time) */
static int sweep_hessian_checked(const pt_tape *t, int64_t out, const double *tan, double *adj, double *adjd,
                                 int64_t p)
{
    return sweep_hessian(t, out, tan, adj, adjd, p, 1);
}

/* one Hessian-vector product (the common case), for both callers */
static int sweep_hessian_1(const pt_tape *t, int64_t out, const double *tan, double *adj, double *adjd)
{
    return sweep_hessian(t, out, tan, adj, adjd, 1, 0);
}

static int hvp_block(pt_tape *t, int64_t out, int64_t nin, const int64_t *ins, int64_t p,
                     const double *seeds, double *grad, double *result);

PT_SWEEP_ALIGNED int pt_hvp_block(pt_tape *t, int64_t out, int64_t nin, const int64_t *ins, int64_t p,
                 const double *seeds, double *grad, double *result)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    const int st = pt_sweep_begin(t);
    if (st)
        return st;
    const int r = hvp_block(t, out, nin, ins, p, seeds, grad, result);
    pt_sweep_end(t);
    return r;
}

static int hvp_block(pt_tape *t, int64_t out, int64_t nin, const int64_t *ins, int64_t p,
                     const double *seeds, double *grad, double *result)
{
    if (p < 1 || out < 0 || out >= t->n)
        return PT_E_SLOT;
    for (int64_t i = 0; i < nin; ++i)
        if (ins[i] < 0 || ins[i] >= t->n || t->op[ins[i]] != PT_LEAF)
            return PT_E_SLOT;
    const int64_t m = out + 1;
    double *tan = pt_tape_scratch(t, (2 * p + 1) * m);
    if (!tan)
        return PT_E_NOMEM;
    double *adjd = tan + m * p, *adj = adjd + m * p;
    for (int64_t i = 0; i < nin; ++i)
        if (ins[i] < m)
            for (int64_t k = 0; k < p; ++k)
                tan[ins[i] * p + k] += seeds[i * p + k];
    if (pt_sweep_tangent_block(t, m, tan, p))
        return PT_E_CALLBACK;
    const int checked = pt_anomaly_active();
    if (checked && (t->bad = pt_first_nonfinite(tan, m, p)) >= 0) {
        t->bad_sweep = PT_BAD_TANGENT;
        return PT_E_NONFINITE;
    }
    adj[out] = 1.0;
    const int st = checked ? sweep_hessian_checked(t, out, tan, adj, adjd, p)
                   : p == 1 ? sweep_hessian_1(t, out, tan, adj, adjd) : sweep_hessian(t, out, tan, adj, adjd, p, 0);
    if (st)
        return st;
    for (int64_t i = 0; i < nin; ++i) {
        const int inside = ins[i] < m;
        if (grad)
            grad[i] = inside ? adj[ins[i]] : 0.0;
        for (int64_t k = 0; k < p; ++k)
            result[i * p + k] = inside ? adjd[ins[i] * p + k] : 0.0;
    }
    return PT_OK;
}

/* forward over reverse on a tape with arrays: one direction (seeds for
 * scalar and array leaves, as pt_forward_tangent_arrays), from out (a scalar
 * slot, or an array of one element); H v into sres (per scalar seed slot)
 * and ares (per array slot k at aoff[k], of its size).  Leaf grads are left
 * as they were. */
int pt_hvp_arrays(pt_tape *t, int64_t out, int64_t nseeds, const int64_t *slots, const double *seeds,
                  int64_t narr, const int64_t *aslots, const int64_t *aoff, const double *aseeds,
                  double *sres, double *ares)
{
    if (out < 0 || out >= t->n)
        return PT_E_SLOT;
    if (t->op[out] == PT_ARRAY && t->ar[t->a[out]].size != 1)
        return PT_E_OP;
    int st = pt_forward_tangent_arrays(t, nseeds, slots, seeds, narr, aslots, aoff, aseeds);
    t->bad_sweep = PT_BAD_TANGENT;  /* anomaly mode: what it found (PT_E_NONFINITE) */
    if (st)
        return st;
    const int64_t m = out + 1;
    if (t->nar)
        pt_array_give_back_dead(t, NULL, 0);
    double *adjd;
    if (pt_tape_adjoints(t, m) || !(adjd = pt_tape_scratch(t, m)))
        return PT_E_NOMEM;
    if (t->op[out] == PT_ARRAY) {
        int fresh;
        double *g = pt_arr_adj_buffer(t, out, &fresh);
        if (!g)
            return PT_E_NOMEM;
        g[0] = 1.0;
    } else {
        t->adj[out] = 1.0;
    }
    pt_sweep_begin(t);
    st = pt_anomaly_active() ? sweep_hessian_checked(t, out, t->tan, t->adj, adjd, 1)
                             : sweep_hessian_1(t, out, t->tan, t->adj, adjd);
    pt_sweep_end(t);
    pt_array_leaf_unclaim(t, m);  /* grads the sweep wrote directly: zero again, as before it */
    if (st)
        return st;
    for (int64_t k = 0; k < nseeds; ++k)
        sres[k] = slots[k] < m ? adjd[slots[k]] : 0.0;
    for (int64_t k = 0; k < narr; ++k) {
        const int64_t s = aslots[k];
        const struct pt_arr *e = &t->ar[t->a[s]];
        if (s < m && adjd[s] != 0.0)
            memcpy(ares + aoff[k], e->adt, (size_t)e->size * sizeof(double));
        else
            memset(ares + aoff[k], 0, (size_t)e->size * sizeof(double));
    }
    return PT_OK;
}
