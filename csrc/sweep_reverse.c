/* sweep_reverse.c -- the reverse (adjoint) sweep: one backward loop over the
 * tape, the adjoint rules generated from ops.def. */
#include <math.h>
#include <pthread.h>
#include "tape.h"
#include "rules.h"

/* The loop itself is in sweep_reverse.inc, included by both functions below
 * with their own PT_ACC (how one adjoint contribution is added). */
PT_SWEEP_ALIGNED void pt_sweep_reverse(const pt_tape *t, int64_t out, double *adj)
{
#define PT_ACC(slot, contribution) adj[slot] += (contribution)
#include "sweep_reverse.inc"
#undef PT_ACC
}

/* anomaly mode: the same loop, stopping at the first instruction whose
 * adjoint rule makes an adjoint nan or inf */
PT_SWEEP_ALIGNED int64_t pt_sweep_reverse_checked(const pt_tape *t, int64_t out, double *adj)
{
#define PT_ACC(slot, contribution)                                            \
    do {                                                                      \
        adj[slot] += (contribution);                                          \
        if (!isfinite(adj[slot]))                                             \
            return i;                                                         \
    } while (0)
#include "sweep_reverse.inc"
#undef PT_ACC
    return -1;
}

/* grad cells may be shared by tapes that sweep in different threads */
static pthread_mutex_t grad_cells_lock = PTHREAD_MUTEX_INITIALIZER;

int pt_tape_adjoints(pt_tape *t, int64_t m)
{
    if (!pt_buffer(&t->adj, &t->adj_cap, m, 1))
        return PT_E_NOMEM;
    t->adj_n = m;
    return PT_OK;
}

int pt_backward(pt_tape *t, int64_t out, double seed, int retain)
{
    if (t->consumed)
        return PT_E_CONSUMED;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (out < 0 || out >= t->n)
        return PT_E_SLOT;

    const int64_t m = out + 1;
    if (pt_tape_adjoints(t, m))
        return PT_E_NOMEM;
    t->adj[out] = seed;

    if (pt_anomaly_active()) {
        t->bad = pt_sweep_reverse_checked(t, out, t->adj);
        if (t->bad >= 0)
            return PT_E_NONFINITE;  /* no leaf grad changed, the tape not consumed */
    } else {
        pt_sweep_reverse(t, out, t->adj);
    }

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
