/* array.c -- the array table: recording array instructions, and the calls
 * the reverse and tangent sweeps make when they reach one (array.h).
 *
 * Recording checks everything before it changes anything: operands on the
 * tape, shapes, parameters (a view's reach, a gather's indices), sizes; then
 * it grows the pools, allocates the value, computes it, and only then
 * appends the entry and the instruction.  A failure anywhere leaves the
 * tape as it was. */
#define _DEFAULT_SOURCE  /* madvise, posix_memalign */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include "array.h"

int pt_array_op(void) { return PT_ARRAY; }

int64_t pt_tape_narrays(const pt_tape *t) { return t->nar; }

/* elements of one array at most: 2^48 doubles is far beyond any machine */
#define PT_MAX_ELEMENTS ((int64_t)1 << 48)

void pt_contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int32_t d = ndim - 1; d >= 0; --d) {
        strides[d] = s;
        s *= shape[d] > 0 ? shape[d] : 1;
    }
}

void pt_loop_init(struct pt_loop *L, int32_t nd, const int64_t *shape, int nops, int64_t st[][PT_MAXDIM])
{
    int32_t n = 0;
    L->nops = nops;
    for (int32_t d = 0; d < nd; ++d) {
        if (shape[d] == 1)
            continue;
        int merge = n > 0 && shape[d] != 0 && L->shape[n - 1] != 0;
        for (int k = 0; k < nops && merge; ++k)
            merge = L->st[k][n - 1] == st[k][d] * shape[d];
        if (merge) {
            L->shape[n - 1] *= shape[d];
            for (int k = 0; k < nops; ++k)
                L->st[k][n - 1] = st[k][d];
            continue;
        }
        L->shape[n] = shape[d];
        for (int k = 0; k < 3; ++k)
            L->st[k][n] = k < nops ? st[k][d] : 0;
        ++n;
    }
    if (n == 0) {  /* a single element */
        L->shape[0] = 1;
        for (int k = 0; k < 3; ++k)
            L->st[k][0] = 0;
        n = 1;
    }
    for (int32_t d = 0; d < n; ++d)
        if (L->shape[d] == 0) {  /* no element at all: one empty row */
            L->shape[0] = 0;
            n = 1;
            break;
        }
    L->nd = n;
}

void pt_broadcast_strides(int32_t nd, int32_t xnd, const int64_t *xshape, int64_t *st)
{
    int64_t c[PT_MAXDIM];
    pt_contiguous_strides(xnd, xshape, c);
    for (int32_t d = 0; d < nd; ++d) {
        const int32_t e = d - (nd - xnd);
        st[d] = (e < 0 || xshape[e] == 1) ? 0 : c[e];
    }
}

/* ---- the memory of array buffers ----------------------------------------------
 * A fresh large block costs a page fault per 4 KB page at its first touch
 * (measured by the benchmarks: recording x * 0.5 on 10^6 elements took 3.2
 * ns per element in fresh memory, 0.37 in reused memory; numpy's own loop
 * 0.29).  Blocks below glibc's mmap threshold fault too: free() gives the
 * top of the heap back to the system, and the next tape's buffers fault
 * again (Rosenbrock n = 10^4, 80 KB arrays: 700 faults per H v, 2.6 ms a
 * call; 0.39 ms once cached).  So every buffer beyond the arena's
 * (CACHE_MIN bytes or more) that a freed tape gives
 * back is kept, up to CACHE_BYTES in all, and handed to the next buffer
 * that fits, the last given back first (the likeliest still in cache; a
 * training loop makes the same sizes every step); fresh ones
 * of HUGE bytes or more are aligned to 2 MB and asked to be backed by
 * transparent huge pages (one fault per 2 MB), as numpy does. */
enum { CACHE_SLOTS = 256 };
#define CACHE_MIN ((size_t)PT_ARENA_MAX * sizeof(double))
#define CACHE_BYTES ((size_t)256 << 20)
#define HUGE ((size_t)4 << 20)

/* a block of n doubles kept for reuse: in the cache, or a tape's spares (recycling) */
struct pt_spare { double *p; int64_t n; };

/* the block of list[0 .. count) to hand to a buffer of n doubles, taken out
 * of the list (NULL: none): the smallest that fits, wasting at most half,
 * and of equals the last given back (the likeliest still in cache) */
static double *take_fitting(struct pt_spare *list, int64_t *count, int64_t n, int64_t *got)
{
    int64_t best = -1;
    for (int64_t k = *count - 1; k >= 0; --k)
        if (list[k].n >= n && list[k].n / 2 <= n && (best < 0 || list[k].n < list[best].n))
            best = k;
    if (best < 0)
        return NULL;
    double *p = list[best].p;
    *got = list[best].n;
    memmove(list + best, list + best + 1, (size_t)(--*count - best) * sizeof *list);
    return p;
}

static struct pt_spare cache[CACHE_SLOTS];
static int64_t ncache;
static size_t cached_bytes;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void cache_fork_prepare(void) { pthread_mutex_lock(&cache_lock); }
static void cache_fork_done(void) { pthread_mutex_unlock(&cache_lock); }

__attribute__((constructor)) static void install_cache_fork_handlers(void)
{
    pthread_atfork(cache_fork_prepare, cache_fork_done, cache_fork_done);
}

double *pt_arr_alloc(int64_t n)
{
    const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(double);
    if (bytes < CACHE_MIN)
        return malloc(bytes);
    int64_t got;
    pthread_mutex_lock(&cache_lock);
    double *p = take_fitting(cache, &ncache, n, &got);
    if (p)
        cached_bytes -= (size_t)got * sizeof(double);
    pthread_mutex_unlock(&cache_lock);
    if (p)
        return p;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE) {
        void *q;
        if (posix_memalign(&q, (size_t)2 << 20, bytes))
            return NULL;
        madvise(q, bytes, MADV_HUGEPAGE);  /* advice only: no error to handle */
        return q;
    }
#endif
    return malloc(bytes);
}

void pt_arr_release(double *p, int64_t n)
{
    const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(double);
    if (!p)
        return;
    if (bytes >= CACHE_MIN && bytes <= CACHE_BYTES) {
        pthread_mutex_lock(&cache_lock);
        while (ncache && (ncache == CACHE_SLOTS || cached_bytes + bytes > CACHE_BYTES)) {
            free(cache[0].p);  /* the oldest goes */
            cached_bytes -= (size_t)cache[0].n * sizeof(double);
            memmove(cache, cache + 1, (size_t)--ncache * sizeof *cache);
        }
        cache[ncache++] = (struct pt_spare){p, n};
        cached_bytes += bytes;
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    free(p);
}

/* the arena: chunks of doubles, each twice the last (up to ARENA_CHUNK_MAX) */
struct pt_chunk {
    struct pt_chunk *next;
    int64_t used, cap;
    int64_t pad;  /* mem 16-byte aligned */
    double mem[];
};
enum { ARENA_CHUNK_MIN = 4096, ARENA_CHUNK_MAX = 1 << 17 };

/* p (n doubles, the tape's) given back for the tape's next buffers: 0, or -1 without memory */
static int spare_give(pt_tape *t, double *p, int64_t n)
{
    if (t->nspare == t->spare_cap) {
        const int64_t cap = t->spare_cap ? 2 * t->spare_cap : 8;
        struct pt_spare *q = realloc(t->spare, (size_t)cap * sizeof *q);
        if (!q)
            return -1;
        t->spare = q;
        t->spare_cap = cap;
    }
    t->spare[t->nspare++] = (struct pt_spare){p, n};
    return 0;
}

double *pt_tape_buffer(pt_tape *t, int64_t n)
{
    if (n > PT_ARENA_MAX) {
        int64_t got;  /* a buffer the tape gave back (recycling), else a new one */
        double *p = t->nspare ? take_fitting(t->spare, &t->nspare, n, &got) : NULL;
        return p ? p : pt_arr_alloc(n);
    }
    const int64_t m = ((n > 0 ? n : 1) + 3) & ~(int64_t)3;  /* 32-byte steps */
    struct pt_chunk *c = t->arena;
    if (!c || c->used + m > c->cap) {
        int64_t cap = c ? 2 * c->cap : ARENA_CHUNK_MIN;
        if (cap > ARENA_CHUNK_MAX)
            cap = ARENA_CHUNK_MAX;
        struct pt_chunk *d = malloc(sizeof *d + (size_t)cap * sizeof(double));
        if (!d)
            return NULL;
        d->next = c;
        d->used = 0;
        d->cap = cap;
        t->arena = c = d;
    }
    double *p = c->mem + c->used;
    c->used += m;
    return p;
}

void pt_tape_buffer_release(double *p, int64_t n)
{
    if (n > PT_ARENA_MAX)
        pt_arr_release(p, n);
}

static void arena_free(pt_tape *t)
{
    for (struct pt_chunk *c = t->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    t->arena = NULL;
}

/* ---- splitting a loop across cores ----------------------------------------
 * The range is cut into a few chunks per thread that the threads take in
 * turn (an atomic counter), so a core that another process keeps busy does
 * less of it instead of holding everyone up (an even split made a loaded
 * 2-core machine twice as slow as one thread).  The caller works too and
 * then waits only for chunks already taken; threads are detached and hold
 * the team by a count, so one that starts late finds no work and goes. */
enum { MAX_THREADS = 16, CHUNKS_PER_THREAD = 4 };

struct team {
    void (*fn)(void *, int64_t, int64_t);
    void *ctx;
    int64_t n, chunk, nchunks;
    int64_t next;  /* atomic: the next chunk to take */
    int64_t done;  /* atomic: chunks finished */
    int refs;      /* atomic: the caller and the threads that started */
};

static void team_release(struct team *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(w);
}

static void team_work(struct team *w)
{
    int64_t k;
    while ((k = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED)) < w->nchunks) {
        const int64_t lo = k * w->chunk, hi = lo + w->chunk < w->n ? lo + w->chunk : w->n;
        w->fn(w->ctx, lo, hi);
        __atomic_fetch_add(&w->done, 1, __ATOMIC_RELEASE);
    }
}

static void *team_thread(void *p)
{
    team_work(p);
    team_release(p);
    return NULL;
}

static int cores(void)
{
    static int n;
    if (!n) {
        const long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : (c > MAX_THREADS ? MAX_THREADS : (int)c);
    }
    return n;
}

void pt_parallel(int64_t n, int64_t grain, void (*fn)(void *, int64_t, int64_t), void *ctx)
{
    int64_t nt = grain > 0 ? n / grain : 1;
    if (nt > cores())
        nt = cores();
    struct team *w = nt < 2 ? NULL : malloc(sizeof *w);
    if (!w) {
        fn(ctx, 0, n);
        return;
    }
    const int64_t chunk = ((n + nt * CHUNKS_PER_THREAD - 1) / (nt * CHUNKS_PER_THREAD) + 63) & ~(int64_t)63;
    *w = (struct team){fn, ctx, n, chunk, (n + chunk - 1) / chunk, 0, 0, 1};
    pthread_attr_t attr;
    const int attr_made = pthread_attr_init(&attr) == 0;
    const int attr_ok = attr_made && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
    for (int64_t k = 1; k < nt && attr_ok; ++k) {
        pthread_t tid;
        __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
        if (pthread_create(&tid, &attr, team_thread, w)) {
            __atomic_sub_fetch(&w->refs, 1, __ATOMIC_RELAXED);
            break;  /* the caller does the rest */
        }
    }
    if (attr_made)
        pthread_attr_destroy(&attr);
    team_work(w);
    while (__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) < w->nchunks)
        sched_yield();  /* a chunk another thread took is still running */
    team_release(w);
}

/* grow *p (elements of sz bytes, capacity *cap) to hold need; the old block
 * stays on failure */
static int reserve(void **p, int64_t *cap, int64_t need, size_t sz)
{
    if (need <= *cap)
        return PT_OK;
    int64_t c = *cap ? 2 * *cap : 64;
    while (c < need)
        c *= 2;
    if (pt_grow(p, c, sz))
        return PT_E_NOMEM;
    *cap = c;
    return PT_OK;
}

/* the number of elements of a shape, or PT_E_SHAPE */
static int64_t shape_size(int32_t ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > PT_MAXDIM)
        return PT_E_SHAPE;
    int64_t n = 1;
    for (int32_t d = 0; d < ndim; ++d) {
        if (shape[d] < 0 || (shape[d] > 0 && n > PT_MAX_ELEMENTS / shape[d]))
            return PT_E_SHAPE;
        n *= shape[d];
    }
    return n;
}

void pt_arr_operand(const pt_tape *t, const struct pt_arr *e, int j, struct pt_view *x)
{
    static const int64_t no_shape[1] = {1};
    const int64_t s = t->ar_arg[e->arg + j];
    x->adj = NULL;
    x->fresh = x->uniform = x->solo = 0;
    x->tan = NULL;
    if (s >= 0 && t->op[s] == PT_ARRAY) {
        const struct pt_arr *o = &t->ar[t->a[s]];
        x->val = o->val;
        x->size = o->size;
        x->ndim = o->ndim;
        x->shape = pt_arr_shape_of(t, o);
    } else {
        x->val = s >= 0 ? &t->val[s] : &t->consts[-1 - s];
        x->size = 1;
        x->ndim = 0;
        x->shape = no_shape;
    }
}

/* ---- the kernels by kind -------------------------------------------------- */

typedef int (*value_fn)(const pt_tape *, const struct pt_arr *, const struct pt_view *, double *);
typedef int (*vjp_fn)(const pt_tape *, const struct pt_arr *, struct pt_view *, const double *);

/* each kind's kernels: its value (recording), adjoint (reverse sweep) and
 * tangent (tangent sweep) rules; CONST and LEAF have none */
static const struct kernels {
    value_fn value;
    vjp_fn vjp;
    value_fn jvp;
    int assigns;  /* vjp honours x[j].fresh (writes a fresh buffer instead of zeroing and adding) */
    int uniform;  /* vjp takes uniform adjoints (its own and its operands': pt_view.uniform) */
    /* how operand j's adjoint follows e's (PT_FLOW_*): PT_FLOW_SAME shares
     * e's buffer at its first contribution (pt_arr.shared) instead of a copy;
     * a LEAF that a uniform adjoint reaches through PT_FLOW_ONE or SAME keeps
     * it uniform before it claims its grad (adj_buffer) */
    int (*flow)(const pt_tape *, const struct pt_arr *, const struct pt_view *, int);
    /* the second-derivative term of forward over reverse (array.h); NULL:
     * none (the kind is linear, or piecewise linear, in its operands), or
     * it is part of vjp_hvp */
    vjp_fn hvp;
    /* vjp and both terms of forward over reverse in one pass (array.h; the
     * elementwise kinds, whose rows say whether they have a second term:
     * pt_map_second); NULL: pt_array_hvp runs vjp and hvp one after another */
    int (*vjp_hvp)(const pt_tape *, const struct pt_arr *, struct pt_view *, struct pt_view *, const double *,
                   const double *);
    int jvp_writes;  /* jvp writes every element of its output (else it adds: pt_array_jvp zeroes it first) */
} kernels[PT_A_NUM_KINDS] = {
    [PT_A_MAP1] = {pt_map_value, pt_map_vjp, pt_map_jvp, 1, 1, pt_map_flow, NULL, pt_map_vjp_hvp, 1},
    [PT_A_MAP2] = {pt_map_value, pt_map_vjp, pt_map_jvp, 1, 1, pt_map_flow, NULL, pt_map_vjp_hvp, 1},
    [PT_A_SUM] = {pt_reduce_value, pt_reduce_vjp, pt_reduce_jvp, 1, 1, NULL, NULL},
    [PT_A_MAX] = {pt_reduce_value, pt_reduce_vjp, pt_reduce_jvp, 0, 0, NULL, NULL},
    [PT_A_PROD] = {pt_reduce_value, pt_reduce_vjp, pt_reduce_jvp, 0, 0, NULL, pt_reduce_hvp},
    [PT_A_CUMSUM] = {pt_reduce_value, pt_reduce_vjp, pt_reduce_jvp, 0, 0, NULL, NULL},
    [PT_A_VIEW] = {pt_move_value, pt_move_vjp, pt_move_jvp, 0, 0, NULL, NULL},
    [PT_A_GATHER] = {pt_move_value, pt_move_vjp, pt_move_jvp, 0, 0, NULL, NULL},
    [PT_A_CONCAT] = {pt_move_value, pt_move_vjp, pt_move_jvp, 0, 0, NULL, NULL},
    [PT_A_SCATTER] = {pt_move_value, pt_move_vjp, pt_move_jvp, 0, 0, NULL, NULL},
    [PT_A_MATMUL] = {pt_matmul_value, pt_matmul_vjp, pt_matmul_jvp, 1, 0, NULL, pt_matmul_hvp},
    [PT_A_CUSTOM] = {NULL, pt_custom_array_vjp, pt_custom_array_jvp, 0, 0, NULL, pt_custom_array_hvp},
};

/* ---- recording ------------------------------------------------------------- */

/* the slot of handle h on tape t if it may be an operand, else -1 */
static int64_t operand_slot(const pt_tape *t, int64_t h)
{
    if (h < 0 || (h & (((int64_t)1 << PT_ID_BITS) - 1)) != t->id)
        return -1;
    const int64_t s = h >> PT_ID_BITS;
    if (s >= t->n || t->op[s] == PT_GUARD || t->op[s] == PT_NOP)
        return -1;
    return s;
}

/* ---- recycling (array.h) ------------------------------------------------------ */

/* mark the values e's sweeps will read (PT_LIFE_KEEP): operands and its own */
static void keep_what_sweeps_read(pt_tape *t, struct pt_arr *e, const int64_t *args)
{
    int operands, own;
    switch (e->kind) {
    case PT_A_MAP1:
    case PT_A_MAP2: {
        const int m = pt_map_reads(e->op, (args[0] >= 0) | (e->nargs > 1 && args[1] >= 0) << 1);
        operands = m & 3;  /* bit j: operand j */
        own = (m & 4) != 0;
    } break;
    case PT_A_SUM:
    case PT_A_VIEW:
    case PT_A_GATHER:
    case PT_A_CUMSUM:
    case PT_A_CONCAT:
    case PT_A_SCATTER:
    case PT_A_CONST:
    case PT_A_LEAF:
        operands = own = 0;
        break;
    case PT_A_MATMUL:
        operands = 3;
        own = 0;
        break;
    default:  /* MAX, PROD (and any kind added later, until it says otherwise) */
        operands = ~0;
        own = 1;
        break;
    }
    if (own)
        e->life |= PT_LIFE_KEEP;
    for (int j = 0; j < e->nargs; ++j) {
        const int64_t s = args[j];
        if (s >= 0 && t->op[s] == PT_ARRAY && ((operands >> (j < 30 ? j : 30)) & 1))
            t->ar[t->a[s]].life |= PT_LIFE_KEEP;
    }
}

int pt_arr_drop(pt_tape *t, int64_t slot)
{
    if (!t || slot < 0 || pthread_mutex_trylock(&t->dead_lock))
        return 0;  /* busy: this one is not recycled (only memory is lost, never a value) */
    int st = 0;
    if (t->ndead == t->dead_cap) {
        const int64_t cap = t->dead_cap ? 2 * t->dead_cap : 16;
        int64_t *q = realloc(t->dead, (size_t)cap * sizeof *q);
        if (q) {
            t->dead = q;
            t->dead_cap = cap;
        }
    }
    if (t->ndead < t->dead_cap) {
        t->dead[t->ndead] = slot;
        __atomic_store_n(&t->ndead, t->ndead + 1, __ATOMIC_RELEASE);
        st = 1;
    }
    pthread_mutex_unlock(&t->dead_lock);
    return st;
}

/* the slots of results that died (pt_arr_drop): mark them, and give back the
 * values no sweep reads, except those of `args` (the operands of an
 * instruction being recorded) */
void pt_array_give_back_dead(pt_tape *t, const int64_t *args, int nargs)
{
    if (!__atomic_load_n(&t->ndead, __ATOMIC_ACQUIRE) || pthread_mutex_trylock(&t->dead_lock))
        return;
    if (t->keep_values) {  /* a replay recomputes every value in its own buffer */
        __atomic_store_n(&t->ndead, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&t->dead_lock);
        return;
    }
    for (int64_t k = 0; k < t->ndead; ++k) {
        const int64_t s = t->dead[k];
        if (s >= t->n || t->op[s] != PT_ARRAY)
            continue;
        struct pt_arr *e = &t->ar[t->a[s]];
        e->life |= PT_LIFE_DEAD;
        int operand = 0;
        for (int j = 0; j < nargs; ++j)
            operand |= args[j] == s;
        if (operand || (e->life & (PT_LIFE_KEEP | PT_LIFE_SPARE)) || e->borrowed || e->kind == PT_A_LEAF ||
            e->kind == PT_A_CONST || e->size < PT_RECYCLE_MIN || spare_give(t, e->val, e->size))
            continue;
        e->life |= PT_LIFE_SPARE;
    }
    __atomic_store_n(&t->ndead, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->dead_lock);
}

/* after the reverse sweep passed e's adjoint on: give its buffer back if
 * e's result died and no operand shares the buffer (an operand that shares
 * it has it as its own adj; its view may say NULL: nothing to write) */
static void give_back_adjoint(pt_tape *t, struct pt_arr *e)
{
    if (!(e->life & PT_LIFE_DEAD) || !e->adj || e->shared || e->size < PT_RECYCLE_MIN)
        return;
    for (int j = 0; j < e->nargs; ++j) {
        const int64_t s = t->ar_arg[e->arg + j];
        if (s >= 0 && t->op[s] == PT_ARRAY && t->ar[t->a[s]].adj == e->adj)
            return;
    }
    if (!spare_give(t, e->adj, e->size))
        e->adj = NULL;
}

int pt_array_note_nonfinite(pt_tape *t, const struct pt_arr *e, int64_t operand, const double *p, int64_t n,
                            int32_t ndim, const int64_t *shape)
{
    for (int64_t j = 0; j < n; ++j)
        if (!isfinite(p[j])) {
            struct pt_bad_array *b = &t->bad_array;
            b->facts[PT_BAD_KIND] = e->kind;
            b->facts[PT_BAD_OP] = e->kind == PT_A_MAP1 || e->kind == PT_A_MAP2 ? e->op : -1;
            b->facts[PT_BAD_SIGN] = e->kind == PT_A_MAX && e->npar > 1 ? t->ar_par[e->par + 1] : 0;
            b->facts[PT_BAD_OPERAND] = operand;
            b->facts[PT_BAD_ELEMENT] = j;
            b->facts[PT_BAD_NDIM] = ndim;
            if (ndim)
                memcpy(b->shape, shape, (size_t)ndim * sizeof *shape);
            b->value = p[j];
            return 1;
        }
    return 0;
}

/* a new entry's room, value and commit: the entry is written at t->nar but
 * counted only by commit.  In anomaly mode (pt_thread_mode) the value of
 * an instruction that is not data (LEAF, CONST: as scalar leaves) is
 * checked: a nan or inf is refused (PT_E_NONFINITE, noted in t->bad_array)
 * and a recorded one's handle flagged for Python (pytape.h: PT_NOTE_SHIFT) */
static int64_t append(pt_tape *t, struct pt_arr *e, const int64_t *shape, const int64_t *args, const int64_t *par,
                      const double *data)
{
    if (reserve((void **)&t->ar, &t->ar_cap, t->nar + 1, sizeof *t->ar) ||
        reserve((void **)&t->ar_dim, &t->ar_dim_cap, t->nar_dim + e->ndim, sizeof *t->ar_dim) ||
        reserve((void **)&t->ar_arg, &t->ar_arg_cap, t->nar_arg + e->nargs, sizeof *t->ar_arg) ||
        reserve((void **)&t->ar_par, &t->ar_par_cap, t->nar_par + e->npar, sizeof *t->ar_par))
        return PT_E_NOMEM;
    e->dim = t->nar_dim;
    e->arg = t->nar_arg;
    e->par = t->nar_par;
    if (e->ndim)
        memcpy(t->ar_dim + e->dim, shape, (size_t)e->ndim * sizeof *shape);
    if (e->nargs)
        memcpy(t->ar_arg + e->arg, args, (size_t)e->nargs * sizeof *args);
    if (e->npar)
        memcpy(t->ar_par + e->par, par, (size_t)e->npar * sizeof *par);
    e->adj = e->tan = e->adt = NULL;
    e->life = 0;
    pt_array_give_back_dead(t, args, e->nargs);
    e->val = e->borrowed ? (double *)data : pt_tape_buffer(t, e->size);
    if (!e->val)
        return PT_E_NOMEM;
    if (e->borrowed) {
        /* the caller's memory, kept alive and unchanged as long as the tape (pytape/tensor.py) */
    } else if (data) {
        if (e->size)
            memcpy(e->val, data, (size_t)e->size * sizeof(double));
    } else {
        struct pt_view x[8];  /* pt_arr_operand fills each operand's */
        struct pt_view *xs = e->nargs <= 8 ? x : malloc((size_t)e->nargs * sizeof *xs);
        if (!xs) {
            pt_tape_buffer_release(e->val, e->size);
            return PT_E_NOMEM;
        }
        for (int j = 0; j < e->nargs; ++j)
            pt_arr_operand(t, e, j, &xs[j]);
        const int st = kernels[e->kind].value ? kernels[e->kind].value(t, e, xs, e->val) : PT_E_OP;
        if (xs != x)
            free(xs);
        if (st) {
            pt_tape_buffer_release(e->val, e->size);
            return st;
        }
    }
    int64_t note = 0;
    if (__builtin_expect(pt_thread_mode & PT_MODE_ANOMALY, 0) && e->kind != PT_A_LEAF && e->kind != PT_A_CONST) {
        /* (e's parameters, read for a MAX's sign, are in the pool already, uncounted) */
        if (pt_array_note_nonfinite(t, e, -1, e->val, e->size, e->ndim, shape)) {
            pt_tape_buffer_release(e->val, e->size);
            return PT_E_NONFINITE;
        }
        note = ((int64_t)1 << PT_WATCH_SHIFT) | ((int64_t)1 << PT_NOTE_SHIFT);
    }
    /* commit: nothing below can fail (pt_check_recording made room for the instruction) */
    keep_what_sweeps_read(t, e, args);
    const int64_t watch = !e->borrowed && e->size >= PT_RECYCLE_MIN && e->kind != PT_A_LEAF && e->kind != PT_A_CONST
                              ? (int64_t)1 << PT_WATCH_SHIFT : 0;
    const int64_t k = t->nar;
    e->slot = t->n;
    t->ar[k] = *e;
    t->nar = k + 1;
    t->nar_dim += e->ndim;
    t->nar_arg += e->nargs;
    t->nar_par += e->npar;
    return pt_handle_of(t, pt_emit(t, PT_ARRAY, k, e->kind, e->size ? e->val[0] : NAN)) + (watch | note);
}

static int64_t record_data(pt_tape *t, int kind, int32_t ndim, const int64_t *shape, const double *data,
                           double *grad, int64_t *gstate, int borrow)
{
    const int64_t s = pt_check_recording(t);
    if (s < 0)
        return s;
    struct pt_arr e = {0};
    e.kind = kind;
    e.ndim = ndim;
    e.size = shape_size(ndim, shape);
    if (e.size < 0)
        return e.size;
    e.grad = grad;
    e.gstate = gstate;
    e.borrowed = borrow != 0 && e.size > 0;
    return append(t, &e, shape, NULL, NULL, data);
}

int64_t pt_arr_const(pt_tape *t, int32_t ndim, const int64_t *shape, const double *data, int borrow)
{
    return record_data(t, PT_A_CONST, ndim, shape, data, NULL, NULL, borrow);
}

int64_t pt_arr_leaf(pt_tape *t, int32_t ndim, const int64_t *shape, const double *data, double *grad,
                    int64_t *gstate, int borrow)
{
    return record_data(t, PT_A_LEAF, ndim, shape, data, grad, gstate, borrow);
}

/* the shape and size of operand slot s (s < 0: a constant, 0-d) */
static int32_t slot_shape(const pt_tape *t, int64_t s, const int64_t **shape, int64_t *size)
{
    static const int64_t none[1] = {1};
    if (s >= 0 && t->op[s] == PT_ARRAY) {
        const struct pt_arr *o = &t->ar[t->a[s]];
        *shape = pt_arr_shape_of(t, o);
        *size = o->size;
        return o->ndim;
    }
    *shape = none;
    *size = 1;
    return 0;
}

/* numpy's broadcasting of two shapes into out: its ndim, or PT_E_SHAPE */
static int32_t broadcast(int32_t na, const int64_t *sa, int32_t nb, const int64_t *sb, int64_t *out)
{
    const int32_t n = na > nb ? na : nb;
    for (int32_t d = 0; d < n; ++d) {
        const int64_t x = d < n - na ? 1 : sa[d - (n - na)];
        const int64_t y = d < n - nb ? 1 : sb[d - (n - nb)];
        if (x != y && x != 1 && y != 1)
            return PT_E_SHAPE;
        out[d] = x == 1 ? y : x;
    }
    return n;
}

static int64_t record_map(pt_tape *t, int kind, int op, int64_t sa, int64_t sb, const double *value)
{
    const int expect = kind == PT_A_MAP1 ? PT_KIND_UNARY : PT_KIND_VV;
    if (pt_op_kind(op) != expect)
        return PT_E_OP;
    struct pt_arr e = {0};
    int64_t shape[PT_MAXDIM], args[2] = {sa, sb}, size;
    const int64_t *s0, *s1;
    int32_t n0 = slot_shape(t, sa, &s0, &size);
    if (kind == PT_A_MAP1) {
        if (n0)  /* a 0-d operand's shape may be NULL (no dims on the tape yet) */
            memcpy(shape, s0, (size_t)n0 * sizeof *shape);
        e.ndim = n0;
    } else {
        int32_t n1 = slot_shape(t, sb, &s1, &size);
        e.ndim = broadcast(n0, s0, n1, s1, shape);
        if (e.ndim < 0)
            return e.ndim;
    }
    e.kind = kind;
    e.op = op;
    e.nargs = kind == PT_A_MAP1 ? 1 : 2;
    e.size = shape_size(e.ndim, shape);
    return append(t, &e, shape, args, NULL, value);
}

/* the tape that records handle h's operation and h's operand slot there:
 * the slot, or a status (*t NULL when there is no recording tape) */
static int64_t recording_operand(int64_t h, pt_tape **t)
{
    int64_t s;
    if (!(*t = pt_recording_tape(h, &s)))
        return s;
    const int64_t i = operand_slot(*t, h);
    return i < 0 ? PT_E_SLOT : i;
}

int64_t pt_arr_map1(int op, int64_t ha, int64_t limit)
{
    pt_tape *t;
    const int64_t ia = recording_operand(ha, &t);
    if (ia < 0)
        return ia;
    if (t->op[ia] == PT_ARRAY && t->ar[t->a[ia]].size >= limit)
        return PT_E_LARGE;
    return record_map(t, PT_A_MAP1, op, ia, 0, NULL);
}

int64_t pt_arr_map1_given(int op, int64_t ha, const double *value)
{
    pt_tape *t;
    const int64_t ia = recording_operand(ha, &t);
    return ia < 0 ? ia : record_map(t, PT_A_MAP1, op, ia, 0, value);
}

int64_t pt_arr_map2(int op, int64_t ha, int64_t hb)
{
    pt_tape *t;
    const int64_t ia = recording_operand(ha, &t);
    if (ia < 0)
        return ia;
    if ((ha ^ hb) & (((int64_t)1 << PT_ID_BITS) - 1))
        return PT_E_TAPES;
    const int64_t ib = operand_slot(t, hb);
    return ib < 0 ? PT_E_SLOT : record_map(t, PT_A_MAP2, op, ia, ib, NULL);
}

/* MAP2 with constant c on side `which` (its pool index: shared with scalar constants) */
static int64_t map2_const(int op, int64_t h, double c, int which)
{
    pt_tape *t;
    const int64_t i = recording_operand(h, &t);
    if (i < 0)
        return i;
    const int64_t k = pt_append_const(t, c);
    if (k < 0)
        return k;
    return which ? record_map(t, PT_A_MAP2, op, i, -1 - k, NULL) : record_map(t, PT_A_MAP2, op, -1 - k, i, NULL);
}

int64_t pt_arr_map2_vc(int op, int64_t ha, double b) { return map2_const(op, ha, b, 1); }

int64_t pt_arr_map2_cv(int op, double a, int64_t hb) { return map2_const(op, hb, a, 0); }

/* the checks of pt_arr_record by kind; fills e's shape (derived ones) */
static int check_kind(const pt_tape *t, struct pt_arr *e, const int64_t *args, int64_t *shape, const int64_t *par)
{
    const int64_t *xs = NULL;
    int64_t xsize = 0;
    const int32_t xn = e->nargs ? slot_shape(t, args[0], &xs, &xsize) : 0;
    switch (e->kind) {
    case PT_A_SUM: {
        if (e->nargs != 1 || e->npar != 1 + xn)
            return PT_E_SHAPE;
        int32_t n = 0;
        for (int32_t d = 0; d < xn; ++d) {
            if (!par[1 + d])
                shape[n++] = xs[d];
            else if (par[0])
                shape[n++] = 1;
        }
        e->ndim = n;
        return PT_OK;
    }
    case PT_A_CUMSUM:
        if (xn)
            memcpy(shape, xs, (size_t)xn * sizeof *shape);
        e->ndim = xn;
        __attribute__((fallthrough));  /* the rows' check */
    case PT_A_MAX:
    case PT_A_PROD: {
        if (e->nargs != 1 || e->npar < 1 || par[0] <= 0 || xsize % par[0])
            return PT_E_SHAPE;
        if (e->kind == PT_A_MAX && (e->npar != 2 || (par[1] != 1 && par[1] != -1)))
            return PT_E_SHAPE;
        const int64_t rows = xsize / par[0];
        return (e->kind == PT_A_CUMSUM || shape_size(e->ndim, shape) == rows) ? PT_OK : PT_E_SHAPE;
    }
    case PT_A_VIEW: {
        if (e->nargs != 1 || e->npar != 1 + e->ndim)
            return PT_E_SHAPE;
        if (e->size == 0)
            return PT_OK;
        int64_t lo = par[0], hi = par[0], reach;
        for (int32_t d = 0; d < e->ndim; ++d) {
            const int64_t step = par[1 + d];
            if (step > PT_MAX_ELEMENTS || step < -PT_MAX_ELEMENTS ||
                __builtin_mul_overflow(shape[d] - 1, step < 0 ? -step : step, &reach) || reach > PT_MAX_ELEMENTS)
                return PT_E_SHAPE;  /* beyond any array: no overflow below */
            if (step < 0)
                lo -= reach;
            else
                hi += reach;
        }
        return (lo >= 0 && hi < xsize) ? PT_OK : PT_E_SHAPE;
    }
    case PT_A_GATHER:
        if (e->nargs != 1 || e->npar != e->size)
            return PT_E_SHAPE;
        for (int64_t j = 0; j < e->npar; ++j)
            if (par[j] < 0 || par[j] >= xsize)
                return PT_E_SHAPE;
        return PT_OK;
    case PT_A_SCATTER:  /* one index into y per element of x */
        if (e->nargs != 1 || e->npar != xsize)
            return PT_E_SHAPE;
        for (int64_t j = 0; j < e->npar; ++j)
            if (par[j] < 0 || par[j] >= e->size)
                return PT_E_SHAPE;
        return PT_OK;
    case PT_A_CONCAT: {
        if (e->nargs < 1)
            return PT_E_SHAPE;
        int64_t total = 0;
        for (int64_t j = 0; j < e->nargs; ++j) {
            int64_t n;
            slot_shape(t, args[j], &xs, &n);
            total += n;
        }
        return total == e->size ? PT_OK : PT_E_SHAPE;
    }
    case PT_A_MATMUL: {
        if (e->nargs != 2 || e->npar != 8)
            return PT_E_SHAPE;
        const int64_t nb = par[0], m = par[1], n = par[2], k = par[3];
        if (nb < 0 || m < 0 || n < 0 || k < 0 || shape_size(1, &nb) < 0 || (par[6] != 0 && par[6] != 1) ||
            (par[7] != 0 && par[7] != 1) || (par[4] != 0 && par[4] != 1) || (par[5] != 0 && par[5] != 1))
            return PT_E_SHAPE;
        int64_t ysize;
        slot_shape(t, args[1], &xs, &ysize);
        const double mk = (double)(par[6] ? nb : 1) * (double)m * (double)k;
        const double kn = (double)(par[7] ? nb : 1) * (double)k * (double)n;
        return (mk == (double)xsize && kn == (double)ysize && (double)nb * m * n == (double)e->size) ? PT_OK
                                                                                                  : PT_E_SHAPE;
    }
    case PT_A_CUSTOM:  /* the shape the caller gives, its value computed in Python */
        return e->npar == 1 ? PT_OK : PT_E_SHAPE;
    default:
        return PT_E_OP;
    }
}

/* an instruction of `kind` on operand slots args (checked: earlier slots, or
 * constants of the pool) with the given shape (derived kinds compute it) and
 * parameters; its value computed by the kind's kernel, or copied from data
 * (CUSTOM) */
static int64_t record_slots(pt_tape *t, int kind, int64_t nargs, const int64_t *args, int32_t ndim,
                            const int64_t *shape_in, int64_t npar, const int64_t *par, const double *data)
{
    struct pt_arr e = {0};
    int64_t shape[PT_MAXDIM], st = PT_OK;
    e.kind = kind;
    e.nargs = (int32_t)nargs;
    e.npar = npar;
    e.ndim = ndim;
    if (ndim < 0 || ndim > PT_MAXDIM)
        return PT_E_SHAPE;
    if (ndim)
        memcpy(shape, shape_in, (size_t)ndim * sizeof *shape);
    if (kind != PT_A_SUM && kind != PT_A_CUMSUM && (e.size = shape_size(ndim, shape)) < 0)
        return e.size;
    st = check_kind(t, &e, args, shape, par);
    if (!st && (e.size = shape_size(e.ndim, shape)) < 0)
        st = e.size;
    if (!st)
        st = append(t, &e, shape, args, par, data);
    if (st >= 0 && kind == PT_A_CUSTOM)
        ++t->nacu;
    return st;
}

/* the same on operand handles hs (of one recording tape) */
static int64_t record_kind(int kind, int64_t nargs, const int64_t *hs, int32_t ndim, const int64_t *shape_in,
                           int64_t npar, const int64_t *par, const double *data)
{
    if (nargs < 1 || nargs > PT_ARRAY_MAX_ARGS || npar < 0)
        return PT_E_SHAPE;
    int64_t s;
    pt_tape *t = pt_recording_tape(hs[0], &s);
    if (!t)
        return s;
    int64_t stack_args[8];
    int64_t *args = nargs <= 8 ? stack_args : malloc((size_t)nargs * sizeof *args);
    if (!args)
        return PT_E_NOMEM;
    int64_t st = PT_OK;
    for (int64_t j = 0; j < nargs && !st; ++j) {
        if ((hs[j] ^ hs[0]) & (((int64_t)1 << PT_ID_BITS) - 1))
            st = PT_E_TAPES;
        else if ((args[j] = operand_slot(t, hs[j])) < 0)
            st = PT_E_SLOT;
    }
    if (!st)
        st = record_slots(t, kind, nargs, args, ndim, shape_in, npar, par, data);
    if (args != stack_args)
        free(args);
    return st;
}

/* ---- saved tapes (pytape/saved.py, tape_load.c) ------------------------------
 * An entry as saved: facts kind, op, ndim, nargs, npar (PT_SAVED_*), its
 * shape, operands and parameters, and for LEAF and CONST its value (the
 * others are recomputed from their operands when loaded). */

int pt_tape_array_table(const pt_tape *t, int64_t *facts, int64_t *dims, int64_t *args, int64_t *pars, double *data)
{
    for (int64_t k = 0; k < t->nar; ++k) {
        const struct pt_arr *e = &t->ar[k];
        if (e->kind == PT_A_CUSTOM || (e->life & PT_LIFE_SPARE))
            return PT_E_OP;  /* a call back into Python, or a value given back: not saved */
        int64_t *f = facts + k * PT_SAVED_N;
        f[PT_SAVED_KIND] = e->kind;
        f[PT_SAVED_OP] = e->op;
        f[PT_SAVED_NDIM] = e->ndim;
        f[PT_SAVED_NARGS] = e->nargs;
        f[PT_SAVED_NPAR] = e->npar;
    }
    if (t->nar_dim)
        memcpy(dims, t->ar_dim, (size_t)t->nar_dim * sizeof *dims);
    if (t->nar_arg)
        memcpy(args, t->ar_arg, (size_t)t->nar_arg * sizeof *args);
    if (t->nar_par)
        memcpy(pars, t->ar_par, (size_t)t->nar_par * sizeof *pars);
    for (int64_t k = 0; k < t->nar; ++k) {
        const struct pt_arr *e = &t->ar[k];
        if ((e->kind == PT_A_LEAF || e->kind == PT_A_CONST) && e->size) {
            memcpy(data, e->val, (size_t)e->size * sizeof *data);
            data += e->size;
        }
    }
    return PT_OK;
}

void pt_tape_array_table_sizes(const pt_tape *t, int64_t *sizes)
{
    int64_t ndata = 0;
    for (int64_t k = 0; k < t->nar; ++k)
        if (t->ar[k].kind == PT_A_LEAF || t->ar[k].kind == PT_A_CONST)
            ndata += t->ar[k].size;
    sizes[0] = t->nar;
    sizes[1] = t->nar_dim;
    sizes[2] = t->nar_arg;
    sizes[3] = t->nar_par;
    sizes[4] = ndata;
}

int64_t pt_arr_load(pt_tape *t, const int64_t *f, const int64_t *shape, const int64_t *args, const int64_t *par,
                    const double *data, int64_t ndata, int64_t *used)
{
    const int64_t kind = f[PT_SAVED_KIND], op = f[PT_SAVED_OP], ndim = f[PT_SAVED_NDIM];
    const int64_t nargs = f[PT_SAVED_NARGS], npar = f[PT_SAVED_NPAR];
    *used = 0;
    if (kind < 0 || kind >= PT_A_NUM_KINDS || kind == PT_A_CUSTOM || ndim < 0 || ndim > PT_MAXDIM || nargs < 0 ||
        nargs > PT_ARRAY_MAX_ARGS || npar < 0)
        return PT_E_OP;
    for (int64_t j = 0; j < nargs; ++j) {  /* earlier slots that are values, or constants of the pool */
        const int64_t s = args[j];
        if (s >= 0 ? (s >= t->n || t->op[s] == PT_GUARD || t->op[s] == PT_NOP) : -1 - s >= t->nconst)
            return PT_E_OP;
    }
    if (kind == PT_A_LEAF || kind == PT_A_CONST) {
        const int64_t size = shape_size((int32_t)ndim, shape);
        if (size < 0 || nargs || npar || size > ndata)
            return PT_E_OP;
        *used = size;
        return record_data(t, (int)kind, (int32_t)ndim, shape, data, NULL, NULL, 0);
    }
    if (kind == PT_A_MAP1 || kind == PT_A_MAP2) {
        if (nargs != (kind == PT_A_MAP1 ? 1 : 2) || npar || op < 0 || op >= PT_NUM_OPS)
            return PT_E_OP;
        const int64_t s = record_map(t, (int)kind, (int)op, args[0], kind == PT_A_MAP2 ? args[1] : 0, NULL);
        if (s >= 0 && (t->ar[t->nar - 1].ndim != ndim ||
                       (ndim && memcmp(pt_arr_shape_of(t, &t->ar[t->nar - 1]), shape, (size_t)ndim * sizeof *shape))))
            return PT_E_OP;  /* not the shape saved (its slot stays: the caller frees the tape) */
        return s;
    }
    if (nargs < 1)
        return PT_E_OP;
    return record_slots(t, (int)kind, nargs, args, (int32_t)ndim, shape, npar, par, NULL);
}

int64_t pt_arr_record(int kind, int64_t nargs, const int64_t *hs, int32_t ndim, const int64_t *shape_in,
                      int64_t npar, const int64_t *par)
{
    if (kind == PT_A_CUSTOM)
        return PT_E_OP;  /* pt_arr_custom: it has a value */
    return record_kind(kind, nargs, hs, ndim, shape_in, npar, par, NULL);
}

int64_t pt_arr_custom(int64_t nargs, const int64_t *hs, int32_t ndim, const int64_t *shape, const double *data,
                      int64_t key)
{
    return record_kind(PT_A_CUSTOM, nargs, hs, ndim, shape, 1, &key, data);
}

int64_t pt_arr_sum_all(int64_t ha)
{
    pt_tape *t;
    const int64_t ia = recording_operand(ha, &t);
    if (ia < 0)
        return ia;
    if (t->op[ia] != PT_ARRAY)
        return PT_E_SLOT;
    int64_t par[1 + PT_MAXDIM], no_shape[1] = {0};
    const int32_t nd = t->ar[t->a[ia]].ndim;
    par[0] = 0;  /* keepdims */
    for (int32_t d = 0; d < nd; ++d)
        par[1 + d] = 1;
    return pt_arr_record(PT_A_SUM, 1, &ha, 0, no_shape, 1 + nd, par);
}

/* ---- reading ---------------------------------------------------------------- */

static const struct pt_arr *entry_h(int64_t h)
{
    const pt_tape *t = pt_handle_tape(h);
    const int64_t i = h >> PT_ID_BITS;
    if (!t || i < 0 || i >= t->n || t->op[i] != PT_ARRAY)
        return NULL;
    return &t->ar[t->a[i]];
}

int pt_arr_shape(int64_t h, int64_t *shape)
{
    const pt_tape *t = pt_handle_tape(h);
    if (!t)
        return PT_E_HANDLE;
    const int64_t i = h >> PT_ID_BITS;
    if (i < 0 || i >= t->n)
        return PT_E_SLOT;
    if (t->op[i] != PT_ARRAY)
        return 0;
    const struct pt_arr *e = &t->ar[t->a[i]];
    if (e->ndim)
        memcpy(shape, pt_arr_shape_of(t, e), (size_t)e->ndim * sizeof *shape);
    return e->ndim;
}

const double *pt_arr_value(int64_t h)
{
    const struct pt_arr *e = entry_h(h);
    return e ? e->val : NULL;
}

/* a uniform adjoint written out to every element */
static void expand(pt_tape *t, int64_t s)
{
    const struct pt_arr *o = &t->ar[t->a[s]];
    const double u = o->adj[0];
    for (int64_t j = 1; j < o->size; ++j)
        o->adj[j] = u;
    t->adj[s] = PT_ADJ_FULL;
}

const double *pt_arr_adjoint(pt_tape *t, int64_t i)
{
    if (!pt_tape_is_owner(t) || i < 0 || i >= t->adj_n || t->op[i] != PT_ARRAY || t->adj[i] == 0.0)
        return NULL;
    if (t->adj[i] == PT_ADJ_UNIFORM)
        expand(t, i);
    const struct pt_arr *e = &t->ar[t->a[i]];
    return t->adj[i] == PT_ADJ_GRAD ? e->grad : e->adj;
}

/* does this sweep accumulate LEAF o's adjoint in its grad array directly?
 * Yes if the grad is zero (its state cell says so) and no other sweep has
 * claimed it: the claim is taken under the grads' lock */
static int claim_grad(const pt_tape *t, const struct pt_arr *o)
{
    if (!o->gstate || t->grads_off)
        return 0;
    pt_grad_lock();
    const int mine = *o->gstate == PT_GRAD_ZERO;
    if (mine)
        *o->gstate = PT_GRAD_CLAIMED;
    pt_grad_unlock();
    return mine;
}

const double *pt_arr_tangent(pt_tape *t, int64_t i)
{
    if (!pt_tape_is_owner(t) || i < 0 || i >= t->tan_n || t->op[i] != PT_ARRAY || t->tan[i] == 0.0)
        return NULL;
    return t->ar[t->a[i]].tan;
}

/* ---- inspection (pytape/display.py, anomaly.py) -------------------------------- */

static void facts_of(const pt_tape *t, const struct pt_arr *e, int64_t *f)
{
    const size_t d = sizeof(double);
    f[PT_FACT_SLOT] = e->slot;
    f[PT_FACT_KIND] = e->kind;
    f[PT_FACT_OP] = e->kind == PT_A_MAP1 || e->kind == PT_A_MAP2 ? e->op : -1;
    f[PT_FACT_SIGN] = e->kind == PT_A_MAX && e->npar > 1 ? t->ar_par[e->par + 1] : 0;
    f[PT_FACT_NDIM] = e->ndim;
    f[PT_FACT_NARGS] = e->nargs;
    f[PT_FACT_SIZE] = e->size;
    /* as pt_array_nbytes counts them */
    f[PT_FACT_VALUE_BYTES] = (!e->borrowed && !(e->life & PT_LIFE_ELSEWHERE)) ? (int64_t)(e->size * d) : 0;
    f[PT_FACT_ADJOINT_BYTES] = (e->adj && !e->shared) ? (int64_t)(e->size * d) : 0;
    f[PT_FACT_TANGENT_BYTES] = (int64_t)(e->size * d) * ((e->tan != NULL) + (e->adt != NULL));
}

void pt_tape_array_facts(const pt_tape *t, int64_t *facts)
{
    for (int64_t k = 0; k < t->nar; ++k)
        facts_of(t, &t->ar[k], facts + k * PT_FACT_N);
}

int64_t pt_tape_narray_args(const pt_tape *t) { return t->nar_arg; }

void pt_tape_array_args(const pt_tape *t, int64_t *args)
{
    if (t->nar_arg)
        memcpy(args, t->ar_arg, (size_t)t->nar_arg * sizeof *args);
}

int pt_tape_array_entry(const pt_tape *t, int64_t i, int64_t *facts, int64_t *shape, int64_t *args)
{
    if (i < 0 || i >= t->n || t->op[i] != PT_ARRAY)
        return PT_E_SLOT;
    const struct pt_arr *e = &t->ar[t->a[i]];
    facts_of(t, e, facts);
    if (e->ndim)
        memcpy(shape, pt_arr_shape_of(t, e), (size_t)e->ndim * sizeof *shape);
    if (e->nargs)
        memcpy(args, t->ar_arg + e->arg, (size_t)e->nargs * sizeof *args);
    return PT_OK;
}

int64_t pt_tape_array_leaves(const pt_tape *t, int64_t *slots, uintptr_t *grads)
{
    int64_t n = 0;
    for (int64_t k = 0; k < t->nar; ++k) {
        const struct pt_arr *e = &t->ar[k];
        if (e->kind == PT_A_LEAF && e->grad) {
            slots[n] = e->slot;
            grads[n++] = (uintptr_t)e->grad;
        }
    }
    return n;
}

int64_t pt_tape_array_params(const pt_tape *t, int64_t i, int64_t *par, int64_t cap)
{
    if (i < 0 || i >= t->n || t->op[i] != PT_ARRAY)
        return PT_E_SLOT;
    const struct pt_arr *e = &t->ar[t->a[i]];
    const int64_t n = e->npar < cap ? e->npar : cap;
    if (n > 0)
        memcpy(par, t->ar_par + e->par, (size_t)n * sizeof *par);
    return e->npar;
}

int pt_tape_array_summary(pt_tape *t, int64_t i, int which, double *out)
{
    if (i < 0 || i >= t->n || t->op[i] != PT_ARRAY || which < 0 || which > 2)
        return PT_E_SLOT;
    const struct pt_arr *e = &t->ar[t->a[i]];
    if (which && !pt_tape_is_owner(t))
        return PT_E_THREAD;
    const double *p = which == 0 ? ((e->life & PT_LIFE_ELSEWHERE) ? NULL : e->val)
                      : which == 1 ? pt_arr_adjoint(t, i) : pt_arr_tangent(t, i);
    if (!p || e->size == 0)
        return 1;
    double lo = NAN, hi = NAN, bad = 0;
    for (int64_t j = 0; j < e->size; ++j) {
        const double x = p[j];
        if (!isfinite(x))
            bad += 1;
        else if (!(x >= lo))  /* the first finite one too (lo nan) */
            lo = x;
        if (isfinite(x) && !(x <= hi))
            hi = x;
    }
    out[0] = p[0];
    out[1] = lo;
    out[2] = hi;
    out[3] = bad;
    return 0;
}

int64_t pt_tape_first_nonfinite(pt_tape *t)
{
    for (int64_t i = 0; i < t->n; ++i) {
        const int op = t->op[i];
        if (op == PT_ARRAY) {
            struct pt_arr *e = &t->ar[t->a[i]];
            if (e->kind != PT_A_LEAF && e->kind != PT_A_CONST && !(e->life & PT_LIFE_ELSEWHERE) &&
                pt_array_note_nonfinite(t, e, -1, e->val, e->size, e->ndim, pt_arr_shape_of(t, e)))
                return i;
        } else if (op != PT_LEAF && op != PT_GUARD && op != PT_NOP && !isfinite(t->val[i])) {
            return i;
        }
    }
    return -1;
}

int pt_tape_bad_array(const pt_tape *t, int64_t *facts, int64_t *shape, double *value)
{
    const struct pt_bad_array *b = &t->bad_array;
    if (!b->facts[PT_BAD_KIND])  /* kinds start at 1: zeroed, nothing found yet */
        return 1;
    memcpy(facts, b->facts, sizeof b->facts);
    if (b->facts[PT_BAD_NDIM])
        memcpy(shape, b->shape, (size_t)b->facts[PT_BAD_NDIM] * sizeof *shape);
    *value = b->value;
    return 0;
}

/* ---- the sweeps --------------------------------------------------------------- */

/* slot s's adjoint buffer for a kernel: NULL for constants or without
 * memory; *fresh = 1 at the first contribution of the sweep (the buffer
 * unwritten: fresh == NULL zeroes it), *uniform = 1 when it holds one value
 * for all (uniform == NULL expands it).  A LEAF's adjoint goes to its grad
 * array when the sweep can claim it (claim_grad): at the first contribution,
 * or, when that one keeps it uniform (`keep`: one number in its own buffer,
 * no pass), at the first that needs its elements, the number moving to the
 * grad array's element 0 */
static double *adj_buffer(pt_tape *t, int64_t s, int *fresh, int *uniform, int keep)
{
    if (fresh)
        *fresh = 0;
    if (uniform)
        *uniform = 0;
    if (s < 0)
        return NULL;
    if (t->op[s] != PT_ARRAY)
        return &t->adj[s];
    struct pt_arr *o = &t->ar[t->a[s]];
    if (o->kind == PT_A_CONST)
        return NULL;
    if (t->adj[s] == PT_ADJ_GRAD)
        return o->grad;
    if (t->adj[s] == 0.0) {  /* the first contribution of this sweep */
        if (o->shared) {  /* the last sweep's: not ours */
            o->adj = NULL;
            o->shared = 0;
        }
        double *buf = o->adj;
        if (o->kind == PT_A_LEAF && !keep && claim_grad(t, o)) {  /* no pass to copy it there later */
            buf = o->grad;
            t->adj[s] = PT_ADJ_GRAD;
        } else {
            if (!buf && !(buf = o->adj = pt_tape_buffer(t, o->size)))
                return NULL;
            t->adj[s] = PT_ADJ_FULL;
        }
        if (fresh)
            *fresh = 1;
        else
            memset(buf, 0, (size_t)o->size * sizeof(double));
        return buf;
    } else if (t->adj[s] == PT_ADJ_UNIFORM) {
        if (o->kind == PT_A_LEAF && !keep && o->size > 0 && claim_grad(t, o)) {
            t->adj[s] = PT_ADJ_GRAD;
            o->grad[0] = o->adj[0];
            if (uniform) {
                *uniform = 1;  /* the kernel writes over it (pt_adj_accumulate_base) or expands it */
            } else {
                for (int64_t j = 1; j < o->size; ++j)
                    o->grad[j] = o->grad[0];
            }
            return o->grad;
        }
        if (uniform)
            *uniform = 1;
        else
            expand(t, s);
    } else if (o->shared) {  /* a second contribution: to a copy of its own */
        double *own = pt_tape_buffer(t, o->size);
        if (!own)
            return NULL;
        memcpy(own, o->adj, (size_t)o->size * sizeof(double));
        o->adj = own;
        o->shared = 0;
    }
    return o->adj;
}

/* does operand j of e (slot s) take e's adjoint buffer as its own, read
 * only, at its first contribution (flow PT_FLOW_SAME)? Not a LEAF (its
 * adjoint goes to the grad array) nor an operand with a buffer of its own
 * (a later sweep's: it would be lost), and e's adjoint holds every element */
static int shares(pt_tape *t, const struct pt_arr *e, const struct pt_view *x, int j, int64_t s)
{
    if (!kernels[e->kind].flow || s < 0 || t->op[s] != PT_ARRAY || t->adj[s] != 0.0 ||
        t->adj[e->slot] != PT_ADJ_FULL)
        return 0;
    struct pt_arr *o = &t->ar[t->a[s]];
    if (o->kind == PT_A_LEAF || o->kind == PT_A_CONST || (o->adj && !o->shared) ||
        kernels[e->kind].flow(t, e, x, j) != PT_FLOW_SAME)
        return 0;
    o->adj = e->adj;
    o->shared = 1;
    t->adj[s] = PT_ADJ_FULL;
    return 1;
}

double *pt_arr_adj_buffer(pt_tape *t, int64_t s, int *fresh)
{
    return adj_buffer(t, s, fresh, NULL, 0);
}

int pt_adj_accumulate(struct pt_view *x, int covers)
{
    const int fresh = x->fresh;
    x->fresh = 0;
    if (x->uniform) {
        const double u = x->adj[0];
        for (int64_t j = 1; j < x->size; ++j)
            x->adj[j] = u;
        x->uniform = 0;
        return 1;
    }
    if (!fresh)
        return 1;
    if (covers)
        return 0;
    memset(x->adj, 0, (size_t)x->size * sizeof(double));
    return 1;
}

int pt_adj_accumulate_base(struct pt_view *x, int covers, double *base)
{
    *base = 0.0;
    if (x->uniform && covers && x->size > 0) {
        *base = x->adj[0];
        x->uniform = x->fresh = 0;
        return 0;
    }
    return pt_adj_accumulate(x, covers);
}

int pt_adj_uniform(struct pt_view *x, double v)
{
    if (!x->solo || !(x->fresh || x->uniform))
        return 0;
    x->adj[0] = (x->fresh ? 0.0 : x->adj[0]) + v;  /* 0.0 + v: the sum a zeroed buffer would hold */
    x->fresh = 0;
    x->uniform = 1;
    return 1;
}

const double *pt_arr_tan_of(const pt_tape *t, int64_t s)
{
    if (s < 0 || t->tan[s] == 0.0)
        return NULL;
    return t->op[s] == PT_ARRAY ? t->ar[t->a[s]].tan : &t->tan[s];
}

/* the operand views of e with their adjoint buffers (reverse) or tangents;
 * reverse: fresh buffers are left unwritten for kinds whose vjp assigns (an
 * operand twice is fresh at most once: the vjp handles operands in order),
 * uniform ones stay so for kinds that take them, unless an operand repeats */
static struct pt_view *views(pt_tape *t, const struct pt_arr *e, struct pt_view *stack, int reverse)
{
    struct pt_view *x = e->nargs <= 8 ? stack : malloc((size_t)e->nargs * sizeof *x);
    if (!x)
        return NULL;
    const struct kernels *k = &kernels[e->kind];
    for (int j = 0; j < e->nargs; ++j)  /* all of them first: `flow` looks at each */
        pt_arr_operand(t, e, j, &x[j]);
    for (int j = 0; j < e->nargs; ++j) {
        const int64_t s = t->ar_arg[e->arg + j];
        if (!reverse) {
            x[j].tan = pt_arr_tan_of(t, s);
            continue;
        }
        if (shares(t, e, x, j, s)) {
            x[j].adj = NULL;  /* nothing for the kernel to do */
            continue;
        }
        int repeats = 0;  /* x * x: its elements for both (each fetch expands a uniform adjoint) */
        for (int i = 0; i < e->nargs && k->uniform; ++i)
            repeats |= i != j && t->ar_arg[e->arg + i] == s;
        /* a LEAF that stays uniform through e, the only operand naming it */
        const int keep = k->flow && !repeats && t->adj[e->slot] == PT_ADJ_UNIFORM && s >= 0 && t->op[s] == PT_ARRAY &&
                         t->ar[t->a[s]].kind == PT_A_LEAF && k->flow(t, e, x, j) != PT_FLOW_ELEMENTS;
        x[j].adj = adj_buffer(t, s, k->assigns ? &x[j].fresh : NULL, k->uniform && !repeats ? &x[j].uniform : NULL,
                              keep);
        x[j].solo = k->uniform && !repeats && s >= 0 && t->op[s] == PT_ARRAY && t->adj[s] != PT_ADJ_GRAD;
        if (s >= 0 && !x[j].adj && !(t->op[s] == PT_ARRAY && t->ar[t->a[s]].kind == PT_A_CONST)) {
            if (x != stack)
                free(x);
            return NULL;
        }
    }
    return x;
}

/* after the vjp at e (status st): the operands it left uniform, or
 * expanded, flagged so; e's adjoint given back */
static void vjp_done(pt_tape *t, struct pt_arr *e, const struct pt_view *x, int st)
{
    for (int j = 0; j < e->nargs; ++j)
        if (x[j].solo && x[j].adj)
            t->adj[t->ar_arg[e->arg + j]] = x[j].uniform ? PT_ADJ_UNIFORM : PT_ADJ_FULL;
    if (!st)
        give_back_adjoint(t, e);
}

int pt_array_vjp(pt_tape *t, int64_t i)
{
    struct pt_arr *e = &t->ar[t->a[i]];
    if (!kernels[e->kind].vjp || !e->adj)
        return PT_OK;  /* CONST and LEAF: nothing below them */
    if (t->adj[i] == PT_ADJ_UNIFORM && !kernels[e->kind].uniform)
        expand(t, i);
    struct pt_view stack[8];  /* views() fills each operand's */
    struct pt_view *x = views(t, e, stack, 1);
    if (!x)
        return PT_E_NOMEM;
    const int st = kernels[e->kind].vjp(t, e, x, e->adj);
    vjp_done(t, e, x, st);
    if (x != stack)
        free(x);
    return st;
}

int pt_array_value(pt_tape *t, int64_t i)
{
    struct pt_arr *e = &t->ar[t->a[i]];
    if (e->kind == PT_A_LEAF || e->kind == PT_A_CONST)
        return PT_OK;
    if (e->life & PT_LIFE_SPARE)
        return PT_E_OP;  /* its buffer was given back (a tape recorded without keep_values) */
    struct pt_view stack[8];
    struct pt_view *x = e->nargs <= 8 ? stack : malloc((size_t)e->nargs * sizeof *x);
    if (!x)
        return PT_E_NOMEM;
    for (int j = 0; j < e->nargs; ++j)
        pt_arr_operand(t, e, j, &x[j]);
    const int st = e->kind == PT_A_CUSTOM ? pt_custom_array_value(t, e, x, e->val) : kernels[e->kind].value(t, e, x, e->val);
    if (x != stack)
        free(x);
    t->val[i] = e->size ? e->val[0] : NAN;
    return st;
}

/* may entry e's value share a buffer in replays (array.h)? */
static int shareable(const pt_tape *t, const struct pt_arr *e, const uint8_t *root)
{
    return e->kind != PT_A_LEAF && e->kind != PT_A_CONST && e->kind != PT_A_CUSTOM && !e->borrowed &&
           !(e->life & (PT_LIFE_KEEP | PT_LIFE_SPARE)) && e->size >= PT_SHARE_MIN && !root[e->slot] &&
           t->keep_values;
}

int64_t pt_replay_share_values(pt_tape *t, int64_t nplan, const int64_t *plan, int64_t nroot, const int64_t *roots)
{
    if (!t->keep_values)
        return PT_E_OP;
    const int64_t n = t->n;
    int64_t *last = malloc((size_t)(n + 1) * sizeof *last);      /* plan position of a slot's last reader */
    uint8_t *root = calloc((size_t)n + 1, 1);
    struct pt_spare *pool = malloc((size_t)(nplan + 1) * sizeof *pool);  /* buffers free at this point */
    if (!last || !root || !pool) {
        free(last);
        free(root);
        free(pool);
        return PT_E_NOMEM;
    }
    for (int64_t i = 0; i < n; ++i)
        last[i] = -1;
    for (int64_t j = 0; j < nroot; ++j)
        if (roots[j] >= 0 && roots[j] < n)
            root[roots[j]] = 1;
    for (int64_t p = 0; p < nplan; ++p) {
        const int64_t i = plan[p];
        if (i < 0 || i >= n || t->op[i] != PT_ARRAY)
            continue;
        const struct pt_arr *e = &t->ar[t->a[i]];
        for (int j = 0; j < e->nargs; ++j) {
            const int64_t s = t->ar_arg[e->arg + j];
            if (s >= 0)
                last[s] = p;
        }
    }
    int64_t npool = 0, saved = 0;
    for (int64_t p = 0; p < nplan; ++p) {
        const int64_t i = plan[p];
        if (i < 0 || i >= n || t->op[i] != PT_ARRAY)
            continue;
        struct pt_arr *e = &t->ar[t->a[i]];
        if (shareable(t, e, root) && !(e->life & PT_LIFE_SHARES)) {  /* a free buffer of its size, if any */
            for (int64_t q = npool - 1; q >= 0; --q) {
                if (pool[q].n != e->size)
                    continue;
                pt_tape_buffer_release(e->val, e->size);
                e->val = pool[q].p;
                e->life |= PT_LIFE_SHARES;
                pool[q] = pool[--npool];
                saved += e->size * (int64_t)sizeof(double);
                break;
            }
        }
        for (int j = 0; j < e->nargs; ++j) {  /* operands read for the last time: their buffers are free after i */
            const int64_t s = t->ar_arg[e->arg + j];
            if (s < 0 || t->op[s] != PT_ARRAY || last[s] != p)
                continue;
            const struct pt_arr *o = &t->ar[t->a[s]];
            if (!shareable(t, o, root))
                continue;
            int dup = 0;
            for (int64_t q = 0; q < npool; ++q)
                dup |= pool[q].p == o->val;
            if (!dup)
                pool[npool++] = (struct pt_spare){o->val, o->size};
        }
    }
    free(last);
    free(root);
    free(pool);
    return saved;
}

int pt_array_own_value(pt_tape *t, int64_t s)
{
    struct pt_arr *e = &t->ar[t->a[s]];
    if (e->borrowed) {
        double *p = pt_tape_buffer(t, e->size);
        if (!p)
            return PT_E_NOMEM;
        memcpy(p, e->val, (size_t)e->size * sizeof *p);
        e->val = p;
        e->borrowed = 0;
    }
    e->grad = NULL;
    e->gstate = NULL;
    return PT_OK;
}

int pt_array_jvp(pt_tape *t, int64_t i)
{
    struct pt_arr *e = &t->ar[t->a[i]];
    if (!kernels[e->kind].jvp)
        return PT_OK;  /* CONST: zero; LEAF: its seed */
    struct pt_view stack[8];  /* views() fills each operand's */
    struct pt_view *x = views(t, e, stack, 0);
    if (!x)
        return PT_E_NOMEM;
    int any = 0;
    for (int j = 0; j < e->nargs; ++j)
        any |= x[j].tan != NULL;
    int st = PT_OK;
    t->tan[i] = 0.0;
    if (any) {
        if (!e->tan && !(e->tan = pt_tape_buffer(t, e->size)))
            st = PT_E_NOMEM;
        else {
            if (!kernels[e->kind].jvp_writes)
                memset(e->tan, 0, (size_t)e->size * sizeof(double));
            st = kernels[e->kind].jvp(t, e, x, e->tan);
            t->tan[i] = 1.0;
        }
    }
    if (x != stack)
        free(x);
    return st;
}

/* the tangent of slot s's adjoint for pt_array_hvp: &adjd[s] for a scalar
 * slot, an array's adt buffer (flagged in adjd[s]: *fresh = 1 at the first
 * contribution of the sweep, when it holds nothing yet and the caller
 * writes or zeroes it); NULL for a constant, and *nomem = 1 when the buffer
 * cannot be had */
static double *adt_buffer(pt_tape *t, int64_t s, double *adjd, int *fresh, int *nomem)
{
    *fresh = 0;
    if (s < 0)
        return NULL;
    if (t->op[s] != PT_ARRAY)
        return &adjd[s];
    struct pt_arr *o = &t->ar[t->a[s]];
    if (o->kind == PT_A_CONST)
        return NULL;
    if (adjd[s] == 0.0) {
        if (!o->adt && !(o->adt = pt_tape_buffer(t, o->size))) {
            *nomem = 1;
            return NULL;
        }
        adjd[s] = 1.0;
        *fresh = 1;
    }
    return o->adt;
}

/* the fresh adt buffers among e's operand views zeroed (the kernels after
 * this point add) */
static void zero_fresh(const struct pt_arr *e, struct pt_view *x)
{
    for (int j = 0; j < e->nargs; ++j)
        if (x[j].fresh && x[j].adj) {
            memset(x[j].adj, 0, (size_t)x[j].size * sizeof(double));
            x[j].fresh = 0;
        }
}

/* pt_array_hvp in one pass of the kind's vjp_hvp (the elementwise kinds):
 * e's adjoint expanded if uniform, the operands' adjoint views as
 * pt_array_vjp's and their adt buffers beside them */
static int fused_hvp(pt_tape *t, int64_t i, double *adjd, int has_gd)
{
    struct pt_arr *e = &t->ar[t->a[i]];
    if (t->adj[i] == PT_ADJ_UNIFORM)
        expand(t, i);
    struct pt_view stack[8], xd[8];
    if (e->nargs > 8)
        return PT_E_OP;  /* not an elementwise kind */
    int nomem = 0;
    for (int j = 0; j < e->nargs; ++j) {
        const int64_t s = t->ar_arg[e->arg + j];
        pt_arr_operand(t, e, j, &xd[j]);
        xd[j].adj = adt_buffer(t, s, adjd, &xd[j].fresh, &nomem);
        xd[j].uniform = xd[j].solo = 0;
    }
    if (nomem)
        return PT_E_NOMEM;
    struct pt_view *x = views(t, e, stack, 1);
    if (!x)
        return PT_E_NOMEM;
    for (int j = 0; j < e->nargs; ++j)
        x[j].tan = pt_arr_tan_of(t, t->ar_arg[e->arg + j]);
    const int st = kernels[e->kind].vjp_hvp(t, e, x, xd, e->adj, has_gd ? e->adt : NULL);
    vjp_done(t, e, x, st);
    return st;
}

int pt_array_hvp(pt_tape *t, int64_t i, double *adjd)
{
    struct pt_arr *e = &t->ar[t->a[i]];
    const struct kernels *k = &kernels[e->kind];
    if (!k->vjp)
        return PT_OK;  /* CONST and LEAF: nothing below them */
    const int has_gd = adjd[i] != 0.0 && e->adt;
    const int has_g = t->adj[i] != 0.0 && e->adj;
    int any_tan = 0;
    for (int j = 0; j < e->nargs; ++j)
        any_tan |= pt_arr_tan_of(t, t->ar_arg[e->arg + j]) != NULL;
    if (k->vjp_hvp && has_g && (has_gd || (any_tan && pt_map_second(e))))
        return fused_hvp(t, i, adjd, has_gd);  /* the elementwise kinds; else below: at most f_a g' */
    if (has_gd || (has_g && k->hvp && any_tan)) {
        struct pt_view stack[8];
        struct pt_view *x = e->nargs <= 8 ? stack : malloc((size_t)e->nargs * sizeof *x);
        if (!x)
            return PT_E_NOMEM;
        int nomem = 0;
        for (int j = 0; j < e->nargs; ++j) {  /* element by element; an operand twice is fresh once */
            const int64_t s = t->ar_arg[e->arg + j];
            pt_arr_operand(t, e, j, &x[j]);
            x[j].tan = pt_arr_tan_of(t, s);
            x[j].adj = adt_buffer(t, s, adjd, &x[j].fresh, &nomem);
            x[j].uniform = x[j].solo = 0;
        }
        int st = nomem ? PT_E_NOMEM : PT_OK;
        if (!st && has_gd) {  /* f_a g': the kind's vjp of the adjoint's tangent, which holds every element */
            if (!k->assigns)
                zero_fresh(e, x);
            const double flag = t->adj[i];
            t->adj[i] = PT_ADJ_FULL;
            st = k->vjp(t, e, x, e->adt);
            t->adj[i] = flag;
        }
        if (!st)
            zero_fresh(e, x);  /* what the first term did not write */
        if (!st && has_g && k->hvp && any_tan) {  /* (f_aa a' + f_ab b') g */
            if (t->adj[i] == PT_ADJ_UNIFORM)
                expand(t, i);
            st = k->hvp(t, e, x, e->adj);
        }
        if (x != stack)
            free(x);
        if (st)
            return st;
    }
    return pt_array_vjp(t, i);
}

/* the LEAF entries of t below slot m that this sweep reached, with grads */
#define PT_FOR_LEAF_GRADS(t, m, e, flag, BODY)                                \
    for (int64_t k_ = 0; k_ < (t)->nar; ++k_) {                               \
        const struct pt_arr *e = &(t)->ar[k_];                                \
        if (e->kind != PT_A_LEAF || !e->grad || e->slot >= (m))               \
            continue;                                                         \
        const double flag = (t)->adj[e->slot];                                \
        if (flag == 0.0)                                                      \
            continue;                                                         \
        BODY                                                                  \
    }

void pt_array_leaf_grads(pt_tape *t, int64_t m)
{
    /* first the grads this sweep wrote directly: done (another sweep may be waiting for one) */
    int any = 0;
    PT_FOR_LEAF_GRADS(t, m, e, flag, {
        if (flag == PT_ADJ_GRAD) {
            *e->gstate = PT_GRAD_HELD;
            any = 1;
        }
    });
    if (any)
        pt_grad_wake();
    PT_FOR_LEAF_GRADS(t, m, e, flag, {
        if (flag == PT_ADJ_GRAD)
            continue;
        if (e->gstate)
            pt_grad_wait_unclaimed(e->gstate);
        double *g = e->grad;
        const int zero = e->gstate && *e->gstate == PT_GRAD_ZERO;  /* written, not added to */
        if (flag == PT_ADJ_UNIFORM) {
            const double u = e->adj[0];
            if (zero)
                for (int64_t j = 0; j < e->size; ++j)
                    g[j] = 0.0 + u;
            else
                for (int64_t j = 0; j < e->size; ++j)
                    g[j] += u;
        } else if (zero) {
            for (int64_t j = 0; j < e->size; ++j)
                g[j] = 0.0 + e->adj[j];
        } else {
            for (int64_t j = 0; j < e->size; ++j)
                g[j] += e->adj[j];
        }
        if (e->gstate)
            *e->gstate = PT_GRAD_HELD;
    });
}

void pt_array_leaf_unclaim(pt_tape *t, int64_t m)
{
    int any = 0;
    pt_grad_lock();
    PT_FOR_LEAF_GRADS(t, m, e, flag, {
        if (flag == PT_ADJ_GRAD) {
            *e->gstate = PT_GRAD_ZERO;
            any = 1;
        }
    });
    if (any)
        pt_grad_wake();
    pt_grad_unlock();
}

#undef PT_FOR_LEAF_GRADS

/* Buffers go back to the cache (which hands out the last given back first)
 * from the last instruction to the first, adjoints after values and spares
 * last, so that those a reverse sweep touched last, the likeliest still in
 * cache, are the first the next tape gets */
void pt_array_free(pt_tape *t)
{
    for (int64_t k = t->nar - 1; k >= 0; --k) {
        pt_tape_buffer_release(t->ar[k].tan, t->ar[k].size);
        pt_tape_buffer_release(t->ar[k].adt, t->ar[k].size);
        if (!t->ar[k].borrowed && !(t->ar[k].life & PT_LIFE_ELSEWHERE))
            pt_tape_buffer_release(t->ar[k].val, t->ar[k].size);
        if (!t->ar[k].shared)
            pt_tape_buffer_release(t->ar[k].adj, t->ar[k].size);
    }
    for (int64_t k = 0; k < t->nspare; ++k)
        pt_tape_buffer_release(t->spare[k].p, t->spare[k].n);
    free(t->spare);
    free(t->dead);
    arena_free(t);
    free(t->ar);
    free(t->ar_dim);
    free(t->ar_arg);
    free(t->ar_par);
}

size_t pt_array_nbytes(const pt_tape *t, int used)
{
    size_t bytes = (size_t)(used ? t->nar : t->ar_cap) * sizeof *t->ar
                   + (size_t)(used ? t->nar_dim : t->ar_dim_cap) * sizeof *t->ar_dim
                   + (size_t)(used ? t->nar_arg : t->ar_arg_cap) * sizeof *t->ar_arg
                   + (size_t)(used ? t->nar_par : t->ar_par_cap) * sizeof *t->ar_par;
    for (int64_t k = 0; k < t->nar; ++k) {
        const struct pt_arr *e = &t->ar[k];
        bytes += (size_t)e->size * sizeof(double) *
                 ((!e->borrowed && !(e->life & PT_LIFE_ELSEWHERE)) + (e->adj && !e->shared) + (e->tan != NULL) +
                  (e->adt != NULL));
    }
    for (int64_t k = 0; k < t->nspare; ++k)
        bytes += (size_t)t->spare[k].n * sizeof(double);
    bytes += (size_t)t->spare_cap * sizeof *t->spare + (size_t)t->dead_cap * sizeof *t->dead;
    return bytes;
}
