/* array.h -- array instructions: one tape slot per numpy operation.
 *
 * An array instruction is slot i with op[i] == PT_ARRAY: a[i] = k, its entry
 * in the tape's array table t->ar, b[i] = its kind (enum pt_array_kind,
 * pytape.h).  Entry k holds the instruction's shape, its operands and integer
 * parameters (both in pools of the tape), and three buffers of `size`
 * doubles the tape owns: the value (computed when recorded), the adjoint and
 * the tangent (made by the first sweep that reaches the instruction).
 *
 *   slot i:  op ARRAY | a = k | b = kind | val = element 0 (nan if empty)
 *   ar[k]:   ndim, shape (t->ar_dim), operands (t->ar_arg), parameters
 *            (t->ar_par), val, adj, tan
 *
 * Operands (int64 in t->ar_arg): an array slot, a scalar slot (any other
 * instruction: a 0-d array whose value is val[s] and whose adjoint is
 * adj[s]), or -1 - c for constant c of the pool (a 0-d constant).  So
 * Var * Tensor needs no conversion instruction, and x * 2.0 no constant
 * array.
 *
 * Adjoints and tangents of array slots are flagged in the scalar arrays:
 * adj[i] == PT_ADJ_FULL means "ar[k].adj holds this sweep's adjoint",
 * PT_ADJ_UNIFORM "every element of it is ar[k].adj[0]" (the adjoint of a
 * sum's operand, and what constant derivatives make of it: no pass over
 * memory until a kernel needs the elements); 0 means the instruction has
 * not been reached (its buffer, if any, is stale).  The reverse sweep's
 * `if (adj[i] == 0) continue` therefore skips unreached array instructions
 * like scalar ones, and the first contribution of a sweep writes a buffer
 * instead of adding to it (pt_view.fresh).  Likewise
 * tan[i] for tangents: a zero flag is a zero tangent, and a kernel whose
 * operands all have zero tangents leaves its own flag 0.
 *
 * The kernels of each kind live beside each other: elementwise rows
 * (array_elementwise.c, generated from ops.def), views and gathers
 * (array_movement.c), reductions and scans (array_reduce.c), matrix
 * products (array_matmul.c), custom primitives (array_custom.c: calls back
 * into Python); array.c holds the table, recording and the dispatch of the
 * sweeps.
 */
#ifndef PT_ARRAY_H
#define PT_ARRAY_H

#include "tape.h"

/* adj[i] of an array slot (0: not reached); PT_ADJ_GRAD: a LEAF whose
 * adjoint this sweep accumulates in its grad array (the grad was zero) */
enum { PT_ADJ_FULL = 1, PT_ADJ_UNIFORM = 2, PT_ADJ_GRAD = 3 };

struct pt_arr {
    int32_t kind;        /* enum pt_array_kind */
    int32_t op;          /* MAP1 / MAP2: the op-table row (unary, or the VV form) */
    int32_t borrowed;    /* CONST / LEAF: val is the caller's memory (not freed with the tape) */
    int32_t ndim;
    int32_t nargs;       /* operands: t->ar_arg[arg .. arg + nargs) */
    int32_t shared;      /* adj is, this sweep, the adjoint buffer of an instruction
                            that passes its adjoint on unchanged (x + c: the
                            derivative 1): read only, not this entry's to free;
                            a second contribution copies it first (adj_buffer) */
    int32_t life;        /* PT_LIFE_* bits: may its buffers be recycled? (array.c) */
    int64_t size;        /* elements: the product of the shape */
    int64_t dim;         /* shape: t->ar_dim[dim .. dim + ndim) */
    int64_t arg;
    int64_t par, npar;   /* integer parameters: t->ar_par[par .. par + npar) */
    int64_t slot;        /* the instruction's slot */
    double *val, *adj, *tan;
    double *adt;         /* the tangent of the adjoint (second order: pt_array_hvp) */
    double *grad;        /* LEAF: Python's grad array, which backward() adds to */
    int64_t *gstate;     /* LEAF: Python's cell: 0 = grad is zero (its memory stale), 1 = it holds values */
};

/* ---- recycling: the live set of large arrays, not all of them ---------------
 * Python tells the tape when the result object of a large array instruction
 * dies (pt_arr_drop: tensor.py watches results of PT_RECYCLE_MIN elements or
 * more, whose handles come back from recording with 2^PT_WATCH_SHIFT added).  No instruction can name that slot again, so
 *  - its value buffer is given back at once, unless a sweep reads it: an
 *    operand of a product, of MAX, a row whose derivatives name a, b or y
 *    (PT_LIFE_KEEP, set when the readers are recorded);
 *  - its adjoint buffer is given back when the reverse sweep has passed it on
 *    (no one can ask for its .grad), unless an operand shares it.
 * Given-back buffers stay the tape's (t->spare) and are handed to its next
 * buffers of about their size, still warm in cache: a chain of operations on
 * large arrays works in the memory of the arrays alive, as numpy's
 * temporaries do.  An entry whose value was given back keeps the pointer: a
 * kernel that does not use a value may still load it (a dead load), and the
 * memory is the tape's until it is freed. */
enum { PT_LIFE_KEEP = 1, PT_LIFE_DEAD = 2, PT_LIFE_SPARE = 4, PT_LIFE_SHARES = 8 };
/* val holds no value of this entry's: given back, or shared with others (below) */
enum { PT_LIFE_ELSEWHERE = PT_LIFE_SPARE | PT_LIFE_SHARES };

/* ---- replays' working memory (pytape.trace) ----------------------------------
 * A traced tape replays its plan in a fixed order, so the large values that
 * no sweep reads (not PT_LIFE_KEEP) and that are not outputs can share
 * buffers: an instruction takes the buffer of a value whose last reader came
 * before it (of the same size), and its own goes back (PT_LIFE_SHARES: val
 * is another entry's buffer, not freed with this one).  A replay's values
 * then take the memory of the values alive at once, and of those the sweeps
 * need.  Between two replays such an entry's value is whatever the last
 * instruction computed there (inspection shows it as recycled). */
enum { PT_SHARE_MIN = PT_RECYCLE_MIN };
int64_t pt_replay_share_values(pt_tape *t, int64_t nplan, const int64_t *plan, int64_t nroot, const int64_t *roots);

/* which of a row's operand values (bit 0: a, 1: b) and own value (bit 2: y)
 * its first and second derivatives read, those for its variable operands
 * (vars: bit 0 a, bit 1 b; a constant operand gets no derivative) */
int pt_map_reads(int op, int vars);

/* an operand as a kernel sees it: data (NULL: none), size and shape */
struct pt_view {
    const double *val;
    double *adj;         /* where its adjoint goes (NULL: a constant) */
    int fresh;           /* adj holds nothing yet this sweep: the kernel writes
                            (not adds) every element, or zeroes it first */
    int uniform;         /* adj[0] stands for every element (PT_ADJ_UNIFORM):
                            the kernel adds to adj[0] or expands it first
                            (pt_adj_accumulate); it sets uniform when it
                            writes one value for all (kinds marked `uniform`) */
    int solo;            /* an array slot that no other operand of the
                            instruction names: it may be made uniform */
    const double *tan;   /* its tangent (NULL: zero) */
    int64_t size;
    int32_t ndim;
    const int64_t *shape;
};

enum { PT_MAXDIM = PT_ARRAY_MAX_DIMS };

/* the reverse loop's answer when an array kernel could not allocate (its
 * other answers are slots, -1 and PT_E_CALLBACK; PT_E_NOMEM is -1) */
enum { PT_SWEEP_NOMEM = -1000 };

static inline const int64_t *pt_arr_shape_of(const pt_tape *t, const struct pt_arr *e)
{
    return t->ar_dim + e->dim;
}

/* operand j of entry e: value and shape; adj/tan pointers filled by the sweeps */
void pt_arr_operand(const pt_tape *t, const struct pt_arr *e, int j, struct pt_view *x);
/* the adjoint buffer of slot s for this sweep (scalar slot: &adj[s]); NULL
 * for constants (s < 0) or when it cannot be allocated.  An array slot's
 * buffer holds nothing at the first contribution of a sweep: with fresh ==
 * NULL it is zeroed then; otherwise *fresh says whether it was (1: the
 * caller writes every element, 0: it adds) */
double *pt_arr_adj_buffer(pt_tape *t, int64_t s, int *fresh);
/* how a vjp contributes to x's adjoint buffer element by element: 0 =
 * write it (fresh, and the kernel writes each element once: `covers`), 1 =
 * add (a fresh buffer the kernel would not cover, e.g. a broadcast operand,
 * is zeroed first; a uniform one is expanded) */
int pt_adj_accumulate(struct pt_view *x, int covers);
/* pt_adj_accumulate for kernels that write base + their contribution: a
 * uniform adjoint u that the kernel covers is written over (0, *base = u)
 * instead of expanded and added to; otherwise *base = 0 */
int pt_adj_accumulate_base(struct pt_view *x, int covers, double *base);
/* x's adjoint (+)= v for every element, kept uniform (x->solo, and fresh or
 * uniform; answers 0 otherwise, and the caller writes the elements) */
int pt_adj_uniform(struct pt_view *x, double v);
/* is e's own adjoint uniform this sweep (its value g[0])? */
static inline int pt_adj_is_uniform(const pt_tape *t, const struct pt_arr *e)
{
    return t->adj[e->slot] == PT_ADJ_UNIFORM;
}
/* the tangent of operand slot s for this sweep, or NULL when it is zero */
const double *pt_arr_tan_of(const pt_tape *t, int64_t s);

/* contiguous strides (in elements) of a shape */
void pt_contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *strides);

/* ---- strided n-d loops ------------------------------------------------------
 * One loop over a shape with up to three operands, each with its own strides
 * in elements (0 on a broadcast axis, negative for a reversed one).  Axes of
 * length 1 are dropped and neighbouring axes that every operand walks
 * contiguously are merged, so same-shape operands become one row and the
 * inner loop is as long as it can be. */
struct pt_loop {
    int32_t nd;                 /* axes after merging (>= 1); the last is the inner row */
    int nops;
    int64_t shape[PT_MAXDIM];
    int64_t st[3][PT_MAXDIM];
};
void pt_loop_init(struct pt_loop *L, int32_t nd, const int64_t *shape, int nops, int64_t st[][PT_MAXDIM]);
/* operand strides of x's shape broadcast to an nd-axis shape (right-aligned) */
void pt_broadcast_strides(int32_t nd, int32_t xnd, const int64_t *xshape, int64_t *st);

/* run BODY once per inner row: o[k] the offset of operand k's row, N its
 * length, S[k] operand k's inner stride (names given by the caller) */
#define PT_FOR_ROWS(L, o, N, S, BODY)                                         \
    do {                                                                      \
        const struct pt_loop *L_ = (L);                                       \
        const int32_t nd_ = L_->nd;                                           \
        int64_t idx_[PT_MAXDIM] = {0}, o[3] = {0, 0, 0}, rows_ = 1;           \
        const int64_t N = L_->shape[nd_ - 1];                                 \
        const int64_t S[3] = {L_->st[0][nd_ - 1], L_->st[1][nd_ - 1], L_->st[2][nd_ - 1]}; \
        (void)S;                                                              \
        for (int32_t d_ = 0; d_ < nd_ - 1; ++d_)                              \
            rows_ *= L_->shape[d_];                                           \
        for (int64_t r_ = 0; r_ < rows_; ++r_) {                              \
            BODY                                                              \
            for (int32_t d_ = nd_ - 2; d_ >= 0; --d_) {                       \
                for (int k_ = 0; k_ < 3; ++k_)                                \
                    o[k_] += L_->st[k_][d_];                                  \
                if (++idx_[d_] < L_->shape[d_])                               \
                    break;                                                    \
                for (int k_ = 0; k_ < 3; ++k_)                                \
                    o[k_] -= L_->st[k_][d_] * L_->shape[d_];                  \
                idx_[d_] = 0;                                                 \
            }                                                                 \
        }                                                                     \
    } while (0)

/* the memory of array buffers (values, adjoints, tangents) of n doubles:
 * NULL when it cannot be had; released with its element count */
double *pt_arr_alloc(int64_t n);
void pt_arr_release(double *p, int64_t n);
/* a buffer of n doubles owned by tape t, freed with it: small ones (up to
 * PT_ARENA_MAX) from the tape's arena, one pointer bump each (malloc and free
 * per buffer were a tenth of a small array operation's cost), larger ones
 * from pt_arr_alloc; releasing a small one returns nothing until the tape goes */
enum { PT_ARENA_MAX = 1024 };
double *pt_tape_buffer(pt_tape *t, int64_t n);
void pt_tape_buffer_release(double *p, int64_t n);

/* fn(ctx, lo, hi) over [0, n) in chunks, on up to one thread per `grain`
 * elements and per core (the caller's among them), each thread taking the
 * next chunk when done with one; inline when n < 2 grain.  fn must write
 * disjoint memory for disjoint ranges. */
void pt_parallel(int64_t n, int64_t grain, void (*fn)(void *, int64_t, int64_t), void *ctx);
/* elements below which an elementwise kernel stays on one thread (measured:
 * a thread's start and join cost about as much as 2^16 multiplications) */
enum { PT_PARALLEL_GRAIN = 1 << 17 };

/* ---- the kernels: value (record), vjp (reverse), jvp (tangent) ------------
 * value: e's value from its operands; vjp: g = e's adjoint into the
 * operands' adjoint buffers (x[j].adj, NULL: not needed), written where
 * x[j].fresh (kinds marked `assigns` in array.c; the others get zeroed
 * buffers), added to otherwise, operands in order; kinds marked `uniform`
 * read a uniform g (pt_adj_is_uniform) and may leave uniform operand
 * adjoints (pt_adj_uniform), the others see every element; jvp: e's tangent
 * into `out` from the operands' tangents (x[j].tan, NULL: zero), `out`
 * zeroed by the caller (the elementwise kinds write it all: `jvp_writes`
 * in array.c).  0 or PT_E_NOMEM. */
int pt_map_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y);
int pt_map_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_map_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out);
/* how operand `which` of e gets its adjoint from e's (kinds with a `flow`
 * rule in array.c): PT_FLOW_ONE when a derivative that is the same at every
 * element scales it (an operand of e's size: x + c, x * c), PT_FLOW_SAME
 * when that derivative is 1 (the adjoint passes on unchanged); a uniform
 * adjoint stays uniform through both, and PT_FLOW_SAME shares the buffer */
enum { PT_FLOW_ELEMENTS = 0, PT_FLOW_ONE = 1, PT_FLOW_SAME = 2 };
int pt_map_flow(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, int which);

int pt_move_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y);
int pt_move_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_move_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out);

int pt_reduce_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y);
int pt_reduce_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_reduce_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out);

int pt_matmul_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y);
int pt_matmul_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_matmul_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out);

/* ---- second order: the kernels' second-derivative terms --------------------
 * Forward over reverse (sweep_hessian.c) carries the tangent of every
 * adjoint (pt_arr.adt).  For y = f(a, b) with adjoint g and its tangent g':
 *
 *   a' bar += f_a g' + (f_aa a' + f_ab b') g
 *
 * The first term is the kind's own vjp applied to g' (a linear map of the
 * adjoint); the second is the kind's `hvp` kernel below, which adds g times
 * the tangent of the derivative into x[j].adj (the operands' adt buffers),
 * reading the operands' tangents x[j].tan (NULL: zero).  Kinds that are
 * linear in their operands (sums, views, gathers, scans) or piecewise
 * linear (MAX: the selection depends on values only) have no second term.
 * g holds every element (not uniform).  The elementwise kinds have no
 * `hvp` kernel: they do all of it (the adjoint too) in one pass over their
 * elements, `vjp_hvp` below. */
/* does elementwise entry e's row have a second-derivative term at all? */
int pt_map_second(const struct pt_arr *e);
/* both passes of forward over reverse at once, for the elementwise kinds:
 * the adjoint g into x[j].adj (as the kind's vjp) and its tangent
 * f_a gd + (f_aa a' + f_ab b') g into xd[j].adj (the operands' adt
 * buffers; gd NULL: zero), reading the tangents x[j].tan; g holds every
 * element (not uniform) */
int pt_map_vjp_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, struct pt_view *xd, const double *g,
                   const double *gd);
/* custom primitives on arrays (array_custom.c): every rule is a call back into Python */
int pt_custom_array_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y);
int pt_custom_array_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_custom_array_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out);
int pt_custom_array_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_reduce_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);
int pt_matmul_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g);

/* a saved entry (pytape.h: pt_saved_arrays) appended to t, being loaded:
 * its handle, or a status; *used gets the data it took (LEAF, CONST) */
int64_t pt_arr_load(pt_tape *t, const int64_t *facts, const int64_t *shape, const int64_t *args, const int64_t *par,
                    const double *data, int64_t ndata, int64_t *used);
/* the sweeps' calls for array slot i (array.c) */
/* its value again from its operands' (a replay: sweep_forward.c) */
int pt_array_value(pt_tape *t, int64_t i);
/* a replay's input, array LEAF or CONST slot s: its value in the tape's own
 * buffer (a copy of borrowed memory), no grad array (adjoints stay on the tape) */
int pt_array_own_value(pt_tape *t, int64_t s);
int pt_array_vjp(pt_tape *t, int64_t i);
int pt_array_jvp(pt_tape *t, int64_t i);
/* forward over reverse at array slot i: the tangents of the operands'
 * adjoints (adt buffers; adjd[s] for a scalar slot s, and for an array slot
 * the flag "its adt holds this sweep's values"), then pt_array_vjp */
int pt_array_hvp(pt_tape *t, int64_t i, double *adjd);
/* array leaves' adjoints into their grad arrays (backward, after the sweep) */
void pt_array_leaf_grads(pt_tape *t, int64_t m);
/* after a failed sweep: the grads it claimed are zero again */
void pt_array_leaf_unclaim(pt_tape *t, int64_t m);
/* the lock of grad cells and array grads (sweep_reverse.c), and waiting
 * (with it held) until no sweep writes grad state *state's array directly */
void pt_grad_lock(void);
void pt_grad_unlock(void);
void pt_grad_wake(void);
void pt_grad_wait_unclaimed(const int64_t *state);
/* free every buffer of the array table */
void pt_array_free(pt_tape *t);
/* recycling: the slots of results that died are marked and the values no
 * sweep reads given back, except those of args (an instruction's operands) */
void pt_array_give_back_dead(pt_tape *t, const int64_t *args, int nargs);
size_t pt_array_nbytes(const pt_tape *t, int used);

/* ---- anomaly mode: the checks of array values, adjoints and tangents --------
 * Recording (append, array.c) refuses a value with a nan or inf; the checked
 * reverse sweep stops where an array rule made an operand's adjoint nan or
 * inf (sweep_reverse.c), the tangent sweep at the first array tangent that
 * is (sweep_tangent.c).  Each notes what it found in t->bad_array
 * (pt_tape_bad_array) with this: the first element of p[0 .. n) that is
 * nan or inf, in the shape (ndim, shape), of instruction e (its value for
 * operand -1, else the adjoint or tangent of slot `operand`); 1 if there is
 * one, else 0 */
int pt_array_note_nonfinite(pt_tape *t, const struct pt_arr *e, int64_t operand, const double *p, int64_t n,
                            int32_t ndim, const int64_t *shape);
/* after array slot i's adjoint rule (pt_array_vjp, pt_array_hvp): did it
 * make an operand's adjoint nan or inf?  1, noted in t->bad_array (the
 * operand and its first bad element), else 0 (sweep_reverse.c) */
int pt_array_adjoints_bad(pt_tape *t, int64_t i);

#endif
