/* sweep_batch.c -- many replays in one call: row r of X holds the values of
 * the tape's leaves (its inputs, in leaf order) and gets the outputs' values
 * and, for one output, its gradient.  The loop over rows runs here, split
 * into contiguous blocks of rows over threads (pthreads; a thread that
 * cannot be started leaves its block to the calling thread).
 *
 * The tape itself is only read, except that the calling thread, if it owns
 * the tape, uses the tape's own value and adjoint arrays as its working
 * memory (as pt_replay and pt_backward would); other threads allocate their
 * own.  Value-only replays of a tape with a register plan need nregs doubles
 * per thread instead of n (tape_compile.c).
 *
 * A tape with custom instructions is replayed by the calling thread alone:
 * each of them is a call back into Python (custom.c), which holds the GIL
 * anyway, and a failed rule stops the batch (PT_E_CALLBACK). */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include "tape.h"

enum {
    PT_MAX_THREADS = 64,
    PT_WORK_PER_THREAD = 1 << 17  /* instructions replayed before a second thread pays */
};

struct rows_job {
    pt_tape *t;
    int64_t r0, r1;          /* rows [r0, r1) */
    const double *X;
    int64_t nout;
    const int64_t *outs;
    double *Y, *G;           /* G: NULL for values only */
    int64_t *fail;
    int own;                 /* work in the tape's own val/adj arrays */
    int status;
};

/* the rows of one job, in buffers v (values or registers) and adj */
static void rows(struct rows_job *j, double *v, double *adj)
{
    const pt_tape *t = j->t;
    const int64_t nin = t->nleaf, nout = j->nout;
    const int regs = !j->G && t->nregs > 0;
    pt_tape view = *t;  /* the tape with this job's values, for the reverse sweep */
    view.val = v;
    for (int64_t r = j->r0; r < j->r1; ++r) {
        const double *x = j->X + r * nin;
        double *y = j->Y + r * nout;
        for (int64_t k = 0; k < nin; ++k)
            v[regs ? t->rr[t->leaf_slot[k]] : t->leaf_slot[k]] = x[k];
        const int64_t bad = regs ? pt_sweep_forward_registers(t, v) : pt_sweep_forward(t, v);
        if (bad == PT_E_CALLBACK) {
            j->status = PT_E_CALLBACK;
            return;
        }
        j->fail[r] = bad;
        for (int64_t q = 0; q < nout; ++q)
            y[q] = bad >= 0 ? NAN : v[regs ? t->rr[j->outs[q]] : j->outs[q]];
        if (!j->G)
            continue;
        double *g = j->G + r * nin;
        const int64_t out = j->outs[0];
        if (bad >= 0) {
            for (int64_t k = 0; k < nin; ++k)
                g[k] = NAN;
            continue;
        }
        memset(adj, 0, (size_t)(out + 1) * sizeof *adj);
        adj[out] = 1.0;
        if (pt_sweep_reverse(&view, out, adj)) {
            j->status = PT_E_CALLBACK;
            return;
        }
        for (int64_t k = 0; k < nin; ++k)
            g[k] = t->leaf_slot[k] <= out ? adj[t->leaf_slot[k]] : 0.0;
    }
}

static void *run_rows(void *arg)
{
    struct rows_job *j = arg;
    pt_tape *t = j->t;
    const int regs = !j->G && t->nregs > 0;
    double *v = NULL, *adj = NULL;
    int owned = 0;  /* buffers allocated here */
    if (j->own && !regs) {
        v = t->val;
        if (j->G && !(adj = pt_buffer(&t->adj, &t->adj_cap, t->n, 0))) {
            j->status = PT_E_NOMEM;
            return NULL;
        }
    } else {
        owned = 1;
        v = malloc((size_t)(regs ? t->nregs : t->n) * sizeof *v);
        adj = j->G ? malloc((size_t)t->n * sizeof *adj) : NULL;
        if (!v || (j->G && !adj)) {
            free(v);
            free(adj);
            j->status = PT_E_NOMEM;
            return NULL;
        }
    }
    rows(j, v, adj);
    if (j->own && j->G && j->r1 > j->r0)
        t->adj_n = j->outs[0] + 1;
    if (owned) {
        free(v);
        free(adj);
    }
    return NULL;
}

static int batch(pt_tape *t, int64_t nrows, const double *X, int64_t nout, const int64_t *outs,
                 double *Y, double *G, int64_t *fail, int nthreads)
{
    for (int64_t q = 0; q < nout; ++q)
        if (outs[q] < 0 || outs[q] >= t->n || t->op[outs[q]] == PT_GUARD)
            return PT_E_SLOT;
    if (nrows <= 0)
        return PT_OK;
    int64_t nt = nthreads < 1 ? 1 : (nthreads > PT_MAX_THREADS ? PT_MAX_THREADS : nthreads);
    const int64_t work = nrows * (t->n > 0 ? t->n : 1);
    if (nt > work / PT_WORK_PER_THREAD)
        nt = work / PT_WORK_PER_THREAD > 0 ? work / PT_WORK_PER_THREAD : 1;
    if (nt > nrows)
        nt = nrows;
    if (t->ncu > 0)
        nt = 1;
    const int own = pt_tape_is_owner(t);
    if (own) {  /* the owner's arrays are this batch's memory: no sweep may start in a callback */
        const int st = pt_sweep_begin(t);
        if (st)
            return st;
    }

    struct rows_job jobs[PT_MAX_THREADS];
    pthread_t tid[PT_MAX_THREADS];
    int started[PT_MAX_THREADS] = {0};
    for (int64_t k = 0; k < nt; ++k) {
        jobs[k] = (struct rows_job){t, nrows * k / nt, nrows * (k + 1) / nt, X, nout, outs, Y, G, fail,
                                    k == 0 && own, PT_OK};
    }
    for (int64_t k = 1; k < nt; ++k)
        started[k] = pthread_create(&tid[k], NULL, run_rows, &jobs[k]) == 0;
    run_rows(&jobs[0]);
    int status = jobs[0].status;
    for (int64_t k = 1; k < nt; ++k) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            run_rows(&jobs[k]);
        if (!status)
            status = jobs[k].status;
    }
    if (own)
        pt_sweep_end(t);
    return status;
}

int pt_batch_values(pt_tape *t, int64_t nrows, const double *X, int64_t nout, const int64_t *outs,
                    double *Y, int64_t *fail, int nthreads)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    return batch(t, nrows, X, nout, outs, Y, NULL, fail, nthreads);
}

int pt_batch_gradients(pt_tape *t, int64_t nrows, const double *X, int64_t out, double *Y, double *G,
                       int64_t *fail, int nthreads)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    return batch(t, nrows, X, 1, &out, Y, G, fail, nthreads);
}
