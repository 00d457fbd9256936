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
 * factor contributes nothing, as in the other sweeps. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "tape.h"
#include "rules.h"

/* dst[k] += f * gd[k] + (f1 * t1[k] + f2 * t2[k]) * g, a zero factor passing nothing */
static inline __attribute__((always_inline)) void hv_lanes(double *dst, const double *gd, double f, double g,
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

/* the loop; inlined into one function per lane count below, so that p = 1
 * (one Hessian-vector product, the common case) compiles to scalar code */
static inline __attribute__((always_inline)) void
sweep_hessian(const pt_tape *t, int64_t out, const double *tan, double *adj, double *adjd, int64_t p)
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
#define PT_OP1(N, S, V, DA, DAA)                                              \
        case PT_##N: {                                                        \
            const double a = v[A[i]], y = v[i];                               \
            (void)a; (void)y;                                                 \
            const double fa = (DA), faa = (DAA);                              \
            if (g != 0.0)                                                     \
                adj[A[i]] += pt_chain(fa, g);                                          \
            hv_lanes(adjd + (int64_t)A[i] * p, gd, fa, g,                     \
                     tan + (int64_t)A[i] * p, faa, NULL, 0.0, p);             \
        } break;
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
        case PT_##N: {                                                        \
            const double a = v[A[i]], b = v[B[i]], y = v[i];                  \
            (void)a; (void)b; (void)y;                                        \
            const double fa = (DA), fb = (DB);                                \
            const double faa = (DAA), fab = (DAB), fbb = (DBB);               \
            const double *ta = tan + (int64_t)A[i] * p, *tb = tan + (int64_t)B[i] * p; \
            if (g != 0.0) {                                                   \
                adj[A[i]] += pt_chain(fa, g);                                          \
                adj[B[i]] += pt_chain(fb, g);                                          \
            }                                                                 \
            hv_lanes(adjd + (int64_t)A[i] * p, gd, fa, g, ta, faa, tb, fab, p); \
            hv_lanes(adjd + (int64_t)B[i] * p, gd, fb, g, ta, fab, tb, fbb, p); \
        } break;                                                              \
        case PT_##N##_VC: {                                                   \
            const double a = v[A[i]], b = K[B[i]], y = v[i];                  \
            (void)a; (void)b; (void)y;                                        \
            const double fa = (DA), faa = (DAA);                              \
            if (g != 0.0)                                                     \
                adj[A[i]] += pt_chain(fa, g);                                          \
            hv_lanes(adjd + (int64_t)A[i] * p, gd, fa, g,                     \
                     tan + (int64_t)A[i] * p, faa, NULL, 0.0, p);             \
        } break;                                                              \
        case PT_##N##_CV: {                                                   \
            const double a = K[A[i]], b = v[B[i]], y = v[i];                  \
            (void)a; (void)b; (void)y;                                        \
            const double fb = (DB), fbb = (DBB);                              \
            if (g != 0.0)                                                     \
                adj[B[i]] += pt_chain(fb, g);                                          \
            hv_lanes(adjd + (int64_t)B[i] * p, gd, fb, g,                     \
                     tan + (int64_t)B[i] * p, fbb, NULL, 0.0, p);             \
        } break;
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
        default: /* LEAF */
            break;
        }
    }
}

static void sweep_hessian_1(const pt_tape *t, int64_t out, const double *tan, double *adj, double *adjd)
{
    sweep_hessian(t, out, tan, adj, adjd, 1);
}

static void sweep_hessian_p(const pt_tape *t, int64_t out, const double *tan, double *adj, double *adjd,
                            int64_t p)
{
    sweep_hessian(t, out, tan, adj, adjd, p);
}

PT_SWEEP_ALIGNED int pt_hvp_block(pt_tape *t, int64_t out, int64_t nin, const int64_t *ins, int64_t p,
                 const double *seeds, double *grad, double *result)
{
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
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
    pt_sweep_tangent_block(t, m, tan, p);
    adj[out] = 1.0;
    if (p == 1)
        sweep_hessian_1(t, out, tan, adj, adjd);
    else
        sweep_hessian_p(t, out, tan, adj, adjd, p);
    for (int64_t i = 0; i < nin; ++i) {
        const int inside = ins[i] < m;
        if (grad)
            grad[i] = inside ? adj[ins[i]] : 0.0;
        for (int64_t k = 0; k < p; ++k)
            result[i * p + k] = inside ? adjd[ins[i] * p + k] : 0.0;
    }
    return PT_OK;
}
