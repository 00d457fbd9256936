/* sweep_reverse.c -- the reverse (adjoint) sweep: one backward loop over the
 * tape, adj[x] += d(y)/d(x) * adj[y] for every instruction y = f(...) from out
 * down to 0, the adjoint rules generated from ops.def (forms.h).
 *
 * An instruction whose adjoint is exactly zero is skipped: it does not reach
 * the output (it was recorded after a branch, or only feeds other outputs) or
 * its influence is multiplied away.  So 0 * inf never turns into a nan
 * gradient: d/dx of relu(-1) * sqrt(x) at x = 0 is 0, as in exact arithmetic
 * (PyTorch gives nan there).  Likewise a zero local derivative passes nothing
 * on (pt_chain), which is how where() sends exactly 0 to the branch it did
 * not take.  A nan adjoint still propagates through nonzero derivatives. */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "tape.h"
#include "array.h"
#include "rules.h"

/* adj[s] += d; with `checked`, is the sum nan or inf? */
PT_INLINE int acc(double *adj, int64_t s, double d, int checked)
{
    adj[s] += d;
    return checked && !isfinite(adj[s]);
}

/* (array.h) each adjoint array slot i's rule wrote is read whole (a scalar
 * operand's, an array's buffer, one element of a uniform one, an array
 * leaf's grad where the sweep accumulates it) */
int pt_array_adjoints_bad(pt_tape *t, int64_t i)
{
    const struct pt_arr *e = &t->ar[t->a[i]];
    for (int j = 0; j < e->nargs; ++j) {
        const int64_t s = t->ar_arg[e->arg + j];
        if (s < 0)
            continue;  /* a constant */
        if (t->op[s] != PT_ARRAY) {
            if (pt_array_note_nonfinite(t, e, s, &t->adj[s], 1, 0, NULL))
                return 1;
            continue;
        }
        const double flag = t->adj[s];
        const struct pt_arr *o = &t->ar[t->a[s]];
        const double *g = flag == PT_ADJ_GRAD ? o->grad : o->adj;
        if (flag == 0.0 || o->kind == PT_A_CONST || !g)
            continue;  /* not reached (no adjoint asked for), or none kept */
        if (pt_array_note_nonfinite(t, e, s, g, flag == PT_ADJ_UNIFORM ? (o->size > 0) : o->size, o->ndim,
                                    pt_arr_shape_of(t, o)))
            return 1;
    }
    return 0;
}

/* the loop; `checked` (a constant in each caller) stops it at the first
 * instruction whose adjoint rule makes an adjoint nan or inf (returned);
 * a failed custom rule stops it with PT_E_CALLBACK; else -1 */
PT_INLINE int64_t reverse_loop(const pt_tape *t, int64_t out, double *adj, int checked)
{
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;
    const double *v = t->val, *K = t->consts;

    for (int64_t i = out; i >= 0; --i) {
        const double g = adj[i];
        if (g == 0.0)
            continue;
        switch (op[i]) {
#define PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB)                             \
            if (HA && acc(adj, ia, pt_chain((DA), g), checked))               \
                return i;                                                     \
            if (HB && acc(adj, ib, pt_chain((DB), g), checked))               \
                return i;
#include "forms.h"
        case PT_CUSTOM: {  /* a call back into Python (custom.c) */
            const int st = pt_custom_vjp(t, i, v, adj, 1, checked);
            if (st)
                return st < 0 ? st : i;
        } break;
        case PT_ARRAY: {  /* an array kernel's adjoint rule (array.c) */
            const int st = pt_array_vjp((pt_tape *)t, i);
            if (st)
                return st == PT_E_CALLBACK ? PT_E_CALLBACK : PT_SWEEP_NOMEM;
            if (checked && pt_array_adjoints_bad((pt_tape *)t, i))
                return i;
        } break;
        default: /* LEAF: its adjoint is final */
            break;
        }
    }
    return -1;
}

PT_SWEEP_ALIGNED int pt_sweep_reverse(const pt_tape *t, int64_t out, double *adj)
{
    const int64_t r = reverse_loop(t, out, adj, 0);
    return r == PT_E_CALLBACK ? PT_E_CALLBACK : r == PT_SWEEP_NOMEM ? PT_E_NOMEM : PT_OK;
}

/* anomaly mode: the same loop, checking every adjoint it changes */
PT_SWEEP_ALIGNED int64_t pt_sweep_reverse_checked(const pt_tape *t, int64_t out, double *adj)
{
    return reverse_loop(t, out, adj, 1);
}

/* Grad cells may be shared by tapes that sweep in different threads: every
 * write to one (the sweep's, pt_grad_add's, pt_grad_set's) takes this lock.
 * fork() takes it too (pthread_atfork), so the child never inherits it held
 * by a thread that does not exist there. */
static pthread_mutex_t grad_cells_lock = PTHREAD_MUTEX_INITIALIZER;
/* signalled when a sweep stops writing array grads directly (PT_GRAD_CLAIMED) */
static pthread_cond_t grad_cells_done = PTHREAD_COND_INITIALIZER;

void pt_grad_lock(void) { pthread_mutex_lock(&grad_cells_lock); }
void pt_grad_unlock(void) { pthread_mutex_unlock(&grad_cells_lock); }
void pt_grad_wake(void) { pthread_cond_broadcast(&grad_cells_done); }

void pt_grad_wait_unclaimed(const int64_t *state)
{
    while (*state == PT_GRAD_CLAIMED)
        pthread_cond_wait(&grad_cells_done, &grad_cells_lock);
}

static void fork_prepare(void) { pthread_mutex_lock(&grad_cells_lock); }
static void fork_done(void) { pthread_mutex_unlock(&grad_cells_lock); }

__attribute__((constructor)) static void install_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_done, fork_done);
}

void pt_grad_add(int64_t n, double *const *cells, const double *g)
{
    pthread_mutex_lock(&grad_cells_lock);
    for (int64_t k = 0; k < n; ++k)
        *cells[k] += g[k];
    pthread_mutex_unlock(&grad_cells_lock);
}

void pt_grad_set(double *cell, double g)
{
    pthread_mutex_lock(&grad_cells_lock);
    *cell = g;
    pthread_mutex_unlock(&grad_cells_lock);
}

void pt_arr_grad_set(double *grad, int64_t n, int64_t *state, const double *src)
{
    pthread_mutex_lock(&grad_cells_lock);
    pt_grad_wait_unclaimed(state);
    if (src) {  /* a new grad */
        memcpy(grad, src, (size_t)n * sizeof *grad);
        *state = PT_GRAD_HELD;
    } else if (n < 0) {  /* zero_grad(): no pass over memory */
        *state = PT_GRAD_ZERO;
    } else if (*state == PT_GRAD_ZERO) {  /* read: the zeros written out */
        memset(grad, 0, (size_t)n * sizeof *grad);
        *state = PT_GRAD_HELD;
    }
    pthread_mutex_unlock(&grad_cells_lock);
}

int pt_tape_adjoints(pt_tape *t, int64_t m)
{
    if (!pt_buffer(&t->adj, &t->adj_cap, m, 1))
        return PT_E_NOMEM;
    t->adj_n = m;
    return PT_OK;
}

/* the sweep of pt_backward, the tape marked busy around it */
static int backward_sweep(pt_tape *t, int64_t out)
{
    if (pt_anomaly_active()) {
        const int64_t bad = pt_sweep_reverse_checked(t, out, t->adj);
        if (bad == PT_E_CALLBACK)
            return PT_E_CALLBACK;
        if (bad == PT_SWEEP_NOMEM)
            return PT_E_NOMEM;
        t->bad = bad;
        return bad >= 0 ? PT_E_NONFINITE : PT_OK;
    }
    return pt_sweep_reverse(t, out, t->adj);
}

/* backward from slot out: the seed is set by the caller's `seed` function
 * once the adjoints are zeroed (a scalar's, or an array's buffer) */
static int backward(pt_tape *t, int64_t out, double seed, const double *aseed, int retain)
{
    if (t->consumed)
        return PT_E_CONSUMED;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (t->busy)
        return PT_E_BUSY;
    if (out < 0 || out >= t->n)
        return PT_E_SLOT;

    const int64_t m = out + 1;
    if (t->nar)
        pt_array_give_back_dead(t, NULL, 0);  /* results that died since the last recording */
    if (pt_tape_adjoints(t, m))
        return PT_E_NOMEM;
    if (aseed) {
        if (t->op[out] != PT_ARRAY)
            return PT_E_OP;
        int fresh;  /* the seed is written over it */
        double *g = pt_arr_adj_buffer(t, out, &fresh);
        if (!g)
            return PT_E_NOMEM;
        memcpy(g, aseed, (size_t)t->ar[t->a[out]].size * sizeof *g);
    } else {
        t->adj[out] = seed;
    }

    pt_sweep_begin(t);
    const int st = backward_sweep(t, out);
    pt_sweep_end(t);
    if (st) {
        if (t->nar)
            pt_array_leaf_unclaim(t, m);  /* grads it wrote directly: zero again */
        return st;  /* no leaf grad changed, the tape not consumed */
    }

    if (t->grads_off)
        return PT_OK;  /* pt_backward_adjoints: the adjoints stay on the tape (retained) */
    pthread_mutex_lock(&grad_cells_lock);
    for (int64_t k = 0; k < t->nleaf; ++k) {
        const int32_t s = t->leaf_slot[k];
        if (s < m && t->leaf_grad[k])
            *t->leaf_grad[k] += t->adj[s];
    }
    if (t->nar)
        pt_array_leaf_grads(t, m);
    pthread_mutex_unlock(&grad_cells_lock);

    if (!retain)
        t->consumed = 1;
    return PT_OK;
}

int pt_backward(pt_tape *t, int64_t out, double seed, int retain)
{
    if (out >= 0 && out < t->n && t->op[out] == PT_ARRAY)
        return PT_E_OP;  /* an array's adjoint is seeded by pt_backward_array */
    return backward(t, out, seed, NULL, retain);
}

int pt_backward_array(pt_tape *t, int64_t out, const double *seed, int retain)
{
    return backward(t, out, 0.0, seed, retain);
}

int pt_backward_adjoints(pt_tape *t, int64_t out, double seed, const double *aseed)
{
    if (!aseed && out >= 0 && out < t->n && t->op[out] == PT_ARRAY)
        return PT_E_OP;
    if (t->busy)  /* another sweep's flag is not ours to set */
        return PT_E_BUSY;
    t->grads_off = 1;
    const int st = backward(t, out, seed, aseed, 1);
    t->grads_off = 0;
    return st;
}
