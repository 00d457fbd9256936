/* sweep_reverse.c -- the reverse (adjoint) sweep: one backward loop over the
 * tape, the adjoint rules generated from ops.def. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include "tape.h"
#include "rules.h"

/* adj[x] += d(y)/d(x) * adj[y] for every instruction y = f(...) from out
 * down to 0.  Rows see a, b (operand values) and y (the instruction's value).
 *
 * An instruction whose adjoint is exactly zero is skipped: it does not reach
 * the output (it was recorded after a branch, or only feeds other outputs) or
 * its influence is multiplied away.  So 0 * inf never turns into a nan
 * gradient: d/dx of relu(-1) * sqrt(x) at x = 0 is 0, as in exact arithmetic
 * (PyTorch gives nan there).  A nan adjoint still propagates. */
void pt_sweep_reverse(const pt_tape *t, int64_t out, double *adj)
{
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;
    const double *v = t->val, *K = t->consts;

    for (int64_t i = out; i >= 0; --i) {
        const double g = adj[i];
        if (g == 0.0)
            continue;
        switch (op[i]) {
#define PT_OP1(N, S, V, DA)                                                   \
        case PT_##N: {                                                        \
            const double a = v[A[i]], y = v[i];                               \
            (void)a; (void)y;                                                 \
            adj[A[i]] += (DA) * g;                                            \
        } break;
#define PT_OP2(N, S, V, DA, DB)                                               \
        case PT_##N: {                                                        \
            const double a = v[A[i]], b = v[B[i]], y = v[i];                  \
            (void)a; (void)b; (void)y;                                        \
            adj[A[i]] += (DA) * g;                                            \
            adj[B[i]] += (DB) * g;                                            \
        } break;                                                              \
        case PT_##N##_VC: {                                                   \
            const double a = v[A[i]], b = K[B[i]], y = v[i];                  \
            (void)a; (void)b; (void)y;                                        \
            adj[A[i]] += (DA) * g;                                            \
        } break;                                                              \
        case PT_##N##_CV: {                                                   \
            const double a = K[A[i]], b = v[B[i]], y = v[i];                  \
            (void)a; (void)b; (void)y;                                        \
            adj[B[i]] += (DB) * g;                                            \
        } break;
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
        default: /* LEAF: its adjoint is final */
            break;
        }
    }
}

/* grad cells may be shared by tapes that sweep in different threads */
static pthread_mutex_t grad_cells_lock = PTHREAD_MUTEX_INITIALIZER;

int pt_backward(pt_tape *t, int64_t out, double seed, int retain)
{
    if (t->consumed)
        return PT_E_CONSUMED;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (out < 0 || out >= t->n)
        return PT_E_SLOT;

    const int64_t m = out + 1;
    if (t->adj_cap < m) {
        double *adj = calloc((size_t)t->n, sizeof *adj);
        if (!adj)
            return PT_E_NOMEM;
        free(t->adj);
        t->adj = adj;
        t->adj_cap = t->n;
    } else {
        memset(t->adj, 0, (size_t)m * sizeof *t->adj);
    }
    t->adj_n = m;
    t->adj[out] = seed;

    pt_sweep_reverse(t, out, t->adj);

    pthread_mutex_lock(&grad_cells_lock);
    for (int64_t k = 0; k < t->nleaf; ++k) {
        const int32_t s = t->leaf_slot[k];
        if (s < m && t->leaf_grad[k])
            *t->leaf_grad[k] += t->adj[s];
    }
    pthread_mutex_unlock(&grad_cells_lock);

    if (!retain)
        t->consumed = 1;
    return PT_OK;
}
