/* pytape.h -- the public C API of the pytape tape engine.
 *
 * This header is op-agnostic: adding a primitive to ops.def never changes it.
 * It is also the cffi cdef: build_tape.py feeds it to cffi with every line
 * that starts with '#' removed, so keep declarations plain C (no macros).
 *
 * Conventions: functions that make a slot return its index (>= 0) or a
 * negative PT_E_* status; functions that do work return a status (0 = ok).
 * C never prints, aborts or knows about Python; pytape/_native.py turns
 * statuses into exceptions.
 */
#ifndef PYTAPE_H
#define PYTAPE_H
#include <stdint.h>
#include <stddef.h>

enum pt_status {
    PT_OK = 0,
    PT_E_NOMEM = -1,     /* an allocation failed; the tape is unchanged */
    PT_E_CONSUMED = -2,  /* backward() consumed the tape (no retain_graph) */
    PT_E_THREAD = -3,    /* the tape belongs to another thread */
    PT_E_NOGRAD = -4,    /* recording is disabled in this thread (no_grad) */
    PT_E_SLOT = -5,      /* a slot index outside the tape */
    PT_E_OP = -6,        /* an opcode of the wrong kind for this call */
    PT_E_FULL = -7,      /* the tape reached its maximum number of slots */
    PT_E_ANOMALY = -8,   /* anomaly mode: record again in checked mode */
    PT_E_NONFINITE = -9, /* checked mode: a value or adjoint is nan or inf */
    PT_E_GUARD = -10,    /* replay: a recorded comparison came out otherwise */
    PT_E_HANDLE = -11,   /* a handle names no registered tape: take pt_record */
    PT_E_TAPES = -12,    /* the operands were recorded on different tapes */
    PT_E_CALLBACK = -13, /* a custom primitive's rule failed in the callback (Python re-raises) */
    PT_E_BUSY = -14,     /* the tape is in a sweep that is calling a custom rule */
    PT_E_SHAPE = -15,    /* array operands whose shapes do not fit the operation */
    PT_E_ARRAY = -16,    /* this sweep does not take array instructions (yet) */
    PT_E_LARGE = -17,    /* pt_arr_map1: the operand has `limit` elements or more (nothing recorded) */
    PT_E_DENSE = -18     /* sparsity: index sets past PT_SPARSITY_LIMIT entries (a dense derivative) */
};

/* Handles: how Python names a slot when it records.  handle = slot <<
 * PT_ID_BITS | id, where id is the tape's index in a registry of the tapes
 * Python records on (pt_tape_register; 0: not registered).  So a recording
 * entry point takes one small integer per operand and no tape pointer: a
 * unary op is a one-argument call, the cheapest kind cffi makes. */
enum pt_handles { PT_ID_BITS = 6 };

enum pt_op_kind {
    PT_KIND_NONE = 0,    /* reserved opcode 0: never a valid instruction */
    PT_KIND_LEAF = 1,
    PT_KIND_UNARY = 2,   /* y = f(a) */
    PT_KIND_VV = 3,      /* y = f(a, b), both slots */
    PT_KIND_VC = 4,      /* y = f(a, b), b a constant */
    PT_KIND_CV = 5,      /* y = f(a, b), a a constant */
    PT_KIND_GUARD = 6,   /* a comparison recorded while tracing */
    PT_KIND_CUSTOM = 7,  /* y = f(x1, ..., xn), f a custom primitive (Python) */
    PT_KIND_ARRAY = 8    /* an array operation (array.h) */
};

/* what operand a (which = 0) or b (which = 1) of an instruction holds */
enum pt_operand_kind {
    PT_OPERAND_NONE = 0,          /* none (0 in the array); NOP and unknown opcodes */
    PT_OPERAND_SLOT = 1,          /* a slot */
    PT_OPERAND_CONST = 2,         /* a constant index (the constant side of *_VC, *_CV) */
    PT_OPERAND_LEAF = 3,          /* LEAF's a: the leaf index k */
    PT_OPERAND_SLOT_OR_CONST = 4, /* GUARD's b: a slot when >= 0, else constant -1 - b */
    PT_OPERAND_CUSTOM = 5,        /* CUSTOM's a: its index k in the tape's custom table */
    PT_OPERAND_PRIMITIVE = 6,     /* CUSTOM's b: the primitive's id (Python's registry) */
    PT_OPERAND_ARRAY = 7,         /* ARRAY's a: its index k in the tape's array table */
    PT_OPERAND_ARRAY_KIND = 8     /* ARRAY's b: its kind (enum pt_array_kind) */
};

enum pt_cmp { PT_LT = 0, PT_LE = 1, PT_GT = 2, PT_GE = 3, PT_EQ = 4, PT_NE = 5 };

typedef struct pt_tape pt_tape;

/* the op table, read by Python at import */
int pt_num_ops(void);
const char *pt_op_name(int op);
int pt_op_kind(int op);
int pt_operand(int op, int which);   /* enum pt_operand_kind */
/* the C text of d(op)/d(a) (operand 0) or d(op)/d(b) (operand 1), in terms of
 * a, b, y: Python records it as instructions for create_graph */
const char *pt_op_rule(int op, int operand);
/* the C text of column `column` of op's row: 0 the value, 1 d/da, 2 d/db,
 * 3 d2/da2, 4 d2/dadb, 5 d2/db2 ("" where none): generated C (codegen.py) */
const char *pt_op_text(int op, int column);
/* the text of rules.h (the helpers those columns call), as built in */
const char *pt_rules_text(void);

/* tape lifetime and inspection */
pt_tape *pt_tape_new(void);
void pt_tape_free(pt_tape *t);            /* also unregisters it */
/* give t an id in the registry of tapes recorded on through handles; returns
 * the id, or 0 when all 2**PT_ID_BITS - 1 ids are taken (then t records
 * through pt_record only).  Ids return to the registry when tapes are freed. */
int pt_tape_register(pt_tape *t);
int64_t pt_tape_len(const pt_tape *t);
int64_t pt_tape_nleaves(const pt_tape *t);
/* every LEAF instruction's slot and grad cell (its address; a leaf gets a
 * second slot when it comes back to a tape after being used on another),
 * pt_tape_nleaves(t) entries each */
void pt_tape_leaves(const pt_tape *t, int64_t *slots, uintptr_t *cells);
int64_t pt_tape_nconsts(const pt_tape *t);
size_t pt_tape_nbytes(const pt_tape *t, int used);
int pt_tape_consumed(const pt_tape *t);
void pt_tape_consume(pt_tape *t);          /* as backward() without retain_graph */
int pt_tape_is_owner(const pt_tape *t);
unsigned long pt_tape_owner(const pt_tape *t);
int pt_tape_op_at(const pt_tape *t, int64_t i);
double pt_value(const pt_tape *t, int64_t i);
/* adjoints (and tangents, below) only for the owner thread: NAN for others,
 * whose reads could meet an adjoint array that backward() is replacing */
double pt_adjoint(const pt_tape *t, int64_t i);
int pt_set_adjoint(pt_tape *t, int64_t i, double g);

/* copies of instructions [start, stop) into caller arrays (each may be NULL):
 * opcode, operands (slots, or constant indices on the constant side of *_VC
 * and *_CV; the leaf index for LEAF), value, adjoint (0 where not swept;
 * the owner thread only, else PT_E_THREAD); returns the number copied */
int64_t pt_tape_copy(const pt_tape *t, int64_t start, int64_t stop, uint16_t *op,
                     int32_t *a, int32_t *b, double *val, double *adj);
double pt_tape_const(const pt_tape *t, int64_t k);
/* all pt_tape_nconsts(t) constants into out; returns how many */
int64_t pt_tape_copy_consts(const pt_tape *t, double *out);
/* counts[op] += number of instructions with that opcode (pt_num_ops entries) */
void pt_tape_op_counts(const pt_tape *t, int64_t *counts);
/* mark[i] = 1 for every slot <= out that out depends on (out included);
 * returns how many */
int64_t pt_tape_reach(const pt_tape *t, int64_t out, uint8_t *mark);

/* recording: append one instruction, return its handle (or a PT_E_*).
 * The hot path: each op has its own entry points taking handles,
 *     pt_rec_NAME(ha)  pt_rec_NAME(ha, hb)  pt_rec_NAME_VC(ha, double b)
 *     pt_rec_NAME_CV(double a, hb)
 * (tape.c; build_tape.py declares them to cffi from the rows of ops.def, so
 * this header stays op-agnostic).  They answer PT_E_HANDLE for a tape that is
 * not registered and PT_E_TAPES for operands of two tapes.  pt_record is the
 * explicit path for everything else: any opcode, slots (not handles) of
 * tape t, c the constant of a *_VC / *_CV form. */
int64_t pt_leaf(pt_tape *t, double value, double *grad);
/* the writes to grad cells outside a sweep, under the sweep's lock:
 * *cells[k] += g[k] for k < n; *cell = g */
void pt_grad_add(int64_t n, double *const *cells, const double *g);
void pt_grad_set(double *cell, double g);
/* an array leaf's grad (n doubles) and its state cell (pt_arr_leaf), under
 * the lock of backward's writes to grads, once no sweep writes it directly:
 * src != NULL: grad = src; n < 0: zero it (the cell only); else: write
 * out the zeros a zero cell stands for */
void pt_arr_grad_set(double *grad, int64_t n, int64_t *state, const double *src);
int64_t pt_record(pt_tape *t, int op, int64_t a, int64_t b, double c);
/* a slot's value, adjoint and tangent by handle (Var.value, .grad, .tangent):
 * NAN where the handle's tape is not registered, or for the adjoint and
 * tangent where this thread does not own it (then ask with the tape) */
double pt_value_h(int64_t h);
double pt_adjoint_h(int64_t h);
double pt_tangent_h(int64_t h);

/* an op's value without recording (no_grad, plain numbers) */
double pt_eval1(int op, double a);
double pt_eval2(int op, double a, double b);

/* modes of the calling thread: grad mode (pytape.no_grad) and anomaly mode
 * (pytape.detect_anomaly): operations answer PT_E_ANOMALY, then are recorded
 * with pt_set_checked(1), which refuses a nan or inf value */
void pt_set_grad_enabled(int enabled);
int pt_grad_enabled(void);
void pt_set_anomaly(int enabled);
int pt_anomaly_enabled(void);
void pt_set_checked(int enabled);
int64_t pt_tape_bad(const pt_tape *t);   /* where a checked backward stopped */
/* after PT_E_NONFINITE from a second-order call (pt_hvp_arrays,
 * pt_hvp_block): which of its sweeps stopped at pt_tape_bad, and on what */
enum pt_bad_sweep {
    PT_BAD_TANGENT = 1,      /* its tangent sweep: a tangent */
    PT_BAD_ADJOINT = 2,      /* its reverse sweep: an adjoint */
    PT_BAD_ADJOINT_TAN = 3   /* its reverse sweep: the tangent of an adjoint (H v's terms) */
};
int pt_tape_bad_sweep(const pt_tape *t);

/* the reverse sweep: adjoints of every slot <= out for the seed
 * d(out) = seed; leaf adjoints are added to their grad cells */
int pt_backward(pt_tape *t, int64_t out, double seed, int retain);

/* q reverse sweeps in one pass: sweep k seeds d(outs[j]) = seeds[j*q + k];
 * result[i*q + k] = d(sweep k)/d(ins[i]).  Reads the tape only (no grad cell,
 * no consumption), except in anomaly mode, where it sweeps lane by lane in
 * the tape's adjoint array and stops at a nan or inf (PT_E_NONFINITE,
 * pt_tape_bad).  Rows of Jacobians, vector-Jacobian products. */
int pt_backward_block(pt_tape *t, int64_t nout, const int64_t *outs, int64_t q,
                      const double *seeds, int64_t nin, const int64_t *ins, double *result);
/* p tangent sweeps in one pass: sweep k seeds d(ins[i]) = seeds[i*p + k] for
 * LEAF slots ins; result[j*p + k] = tangent k of outs[j].  Columns of
 * Jacobians, Jacobian-vector products.  In anomaly mode a nan or inf tangent
 * gives PT_E_NONFINITE, pt_tape_bad the first slot that has one. */
int pt_tangent_block(pt_tape *t, int64_t nin, const int64_t *ins, int64_t p,
                     const double *seeds, int64_t nout, const int64_t *outs, double *result);

/* trace: record that (v[a] CMP rhs) came out `outcome`; rhs is v[b] for
 * b >= 0, else the constant c.  Returns the guard's slot. */
int64_t pt_guard(pt_tape *t, int64_t a, int64_t b, double c, int cmp, int outcome);
/* replay (the forward sweep): new values for LEAF slots, then every
 * instruction recomputed from the value rules.  A guard whose outcome changes
 * stops it with PT_E_GUARD and *where = the guard's slot; the values are then
 * partly new, so replay again before reading them. */
int pt_replay(pt_tape *t, int64_t nin, const int64_t *slots, const double *values, int64_t *where);

/* record once, replay many (pytape.trace) -------------------------------- */

/* tapes with array instructions are replayed in place (sweep_forward.c):
 * pt_tape_keep_values before recording (no buffer is recycled), then
 * pt_replay_inputs takes the inputs over (LEAF, array LEAF or CONST slots:
 * their values copied into the tape's buffers, their grads detached: the
 * adjoints stay on the tape), pt_replay_plan lists the instructions to
 * recompute (those that depend on an input and reach a root or a guard:
 * their count, written to plan, which has room for t->n), and
 * pt_replay_arrays sets the inputs (input k's values at data + offs[k]) and
 * recomputes the plan: PT_E_GUARD with *where at a guard that came out
 * otherwise */
void pt_tape_keep_values(pt_tape *t);
int pt_replay_inputs(pt_tape *t, int64_t nin, const int64_t *ins);
/* after pt_replay_plan: large values no sweep reads share buffers along the
 * plan (csrc/array.h); the bytes this saves, or a status */
int64_t pt_replay_share_values(pt_tape *t, int64_t nplan, const int64_t *plan, int64_t nroot, const int64_t *roots);
int64_t pt_replay_plan(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nroot, const int64_t *roots,
                       int64_t *plan);
/* the slots on a path from one of `ins` (any slots) to one of `roots`: those
 * that depend on an input and that a root depends on, inputs and roots
 * included, guards not, in tape order (create_graph on arrays:
 * pytape/array_adjoints.py); their count (out has room for t->n) or a status */
int64_t pt_tape_paths(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nroot, const int64_t *roots,
                      int64_t *out);
int pt_replay_arrays(pt_tape *t, int64_t nin, const int64_t *ins, const double *data, const int64_t *offs,
                     int64_t nplan, const int64_t *plan, int64_t *where);
/* one point's value and gradient in one call: input k's values at data[k]
 * (lent for the call, not copied), the plan replayed, the reverse sweep from
 * `out` (a scalar slot or a one-element array), input k's adjoint into
 * grads[k]; PT_E_GUARD with *where as pt_replay_arrays */
int pt_replay_gradient(pt_tape *t, int64_t nin, const int64_t *ins, const double *const *data, int64_t nplan,
                       const int64_t *plan, int64_t out, double *value, double *const *grads, int64_t *where);
/* pt_replay_gradient for nrows rows of X (each `width` doubles, input k's at
 * offset offs[k]): the value into Y[r], the gradient into G's row r laid out
 * as X's, fail[r] the slot of the guard row r failed (Y[r] nan), else -1 */
int pt_replay_gradient_rows(pt_tape *t, int64_t nin, const int64_t *ins, const int64_t *offs, int64_t nrows,
                            int64_t width, const double *X, double *Y, double *G, int64_t *fail, int64_t nplan,
                            const int64_t *plan, int64_t out);

/* the trace-time optimisation pass (tape_compile.c): *out gets a new tape
 * computing the roots from the inputs ins (LEAF slots of src): inputs first
 * (slot k for ins[k]), constants folded, dead code dropped.  map[i] (src->n
 * entries) gets the new slot of src's slot i, -1 if it was dropped, -2 if it
 * became a constant (its value on src).  Guards that depend on an input are
 * roots too. */
int pt_tape_compile(const pt_tape *src, int64_t nin, const int64_t *ins, int64_t nroot,
                    const int64_t *roots, int64_t *map, pt_tape **out);
/* the register plan of value-only replays (a compiled tape; outs keep their
 * registers); then pt_tape_nregs(t) doubles hold a replay */
int pt_tape_plan_registers(pt_tape *t, int64_t nout, const int64_t *outs);
int64_t pt_tape_nregs(const pt_tape *t);
/* the array table of a saved tape (pytape/saved.py; NULL: none): per array
 * instruction, in slot order, its facts (PT_SAVED_N int64 each), then pools of
 * their shapes, operands and parameters, and the values of the LEAF and CONST
 * entries (the others are recomputed when loaded, through the recording
 * checks).  pt_tape_array_table_sizes gives nar, ndims, nargs, npars, ndata;
 * pt_tape_array_table fills the arrays (PT_E_OP for a custom array
 * instruction: its function is Python's, not saved) */
enum { PT_SAVED_KIND = 0, PT_SAVED_OP = 1, PT_SAVED_NDIM = 2, PT_SAVED_NARGS = 3, PT_SAVED_NPAR = 4,
       PT_SAVED_N = 5 };
struct pt_saved_arrays {
    int64_t nar, ndims, nargs, npars, ndata;
    const int64_t *facts, *dims, *args, *pars;
    const double *data;
};
void pt_tape_array_table_sizes(const pt_tape *t, int64_t *sizes);
int pt_tape_array_table(const pt_tape *t, int64_t *facts, int64_t *dims, int64_t *args, int64_t *pars, double *data);
/* a new tape from arrays (tape_load.c), every instruction checked first:
 * PT_E_OP for arrays that break the tape's invariants; the custom table as
 * pt_tape_custom_table gives it (ncustom counts, nargs operands) */
int pt_tape_load(int64_t n, const uint16_t *op, const int32_t *a, const int32_t *b, const double *val,
                 int64_t nconst, const double *consts, int64_t ncustom, const int32_t *counts,
                 int64_t nargs, const int32_t *args, const struct pt_saved_arrays *arrays, pt_tape **out);
/* batches (sweep_batch.c): row r of X (nrows x nleaves) gives the leaves'
 * values; Y (nrows x nout) the outputs' values, G (nrows x nleaves) the
 * gradient of out; fail[r] the slot of the guard that row r failed, else -1
 * (its Y and G are then nan).  Up to nthreads threads; one (the caller) on a
 * tape with custom instructions, whose callbacks run Python. */
int pt_batch_values(pt_tape *t, int64_t nrows, const double *X, int64_t nout, const int64_t *outs,
                    double *Y, int64_t *fail, int nthreads);
int pt_batch_gradients(pt_tape *t, int64_t nrows, const double *X, int64_t out, double *Y, double *G,
                       int64_t *fail, int nthreads);

/* forward-over-reverse: Hessian-vector products of out for p directions in
 * one tangent pass and one reverse pass, from the second-derivative columns
 * of ops.def.  Direction k seeds d(ins[i]) = seeds[i*p + k] (LEAF slots);
 * result[i*p + k] = (H v_k)[i]; grad (if not NULL) gets d(out)/d(ins[i]).
 * Reads the tape only (its scratch memory aside). */
int pt_hvp_block(pt_tape *t, int64_t out, int64_t nin, const int64_t *ins, int64_t p,
                 const double *seeds, double *grad, double *result);

/* custom primitives (custom.c) --------------------------------------------
 *
 * A custom instruction (opcode pt_custom_op(), kind PT_KIND_CUSTOM) is
 * y = f(x1, ..., xn) for a function f that Python defines with its own
 * derivative rules (pytape/custom.py).  a[i] = k, its entry in the tape's
 * custom table, which lists its n operands (each a slot, or -1 - c for
 * constant c of the pool); b[i] = the primitive's id, Python's to interpret.
 * When a sweep reaches one it calls the callback registered here, once per
 * instruction (per lane block), with the operand values x (n doubles), the
 * value y and `slots` (bit j set: operand j is a slot, not a constant):
 *   PT_CUSTOM_VALUE  out[0] = f(x)                               (replays)
 *   PT_CUSTOM_VJP    in: `lanes` cotangents of y; out[j*lanes + k]: what
 *                    lane k adds to the adjoint of operand j      (reverse)
 *   PT_CUSTOM_JVP    in[j*lanes + k]: tangent lane k of operand j;
 *                    out[k]: tangent lane k of y                  (tangent)
 *   PT_CUSTOM_HVP    forward over reverse (pt_hvp_block): in[0] the adjoint
 *                    g of y, in[1 + k] its tangent lanes, in[1 + lanes +
 *                    j*lanes + k] the tangent lanes of operand j; out[j] what
 *                    operand j's adjoint gets (as VJP for g), out[n + j*lanes
 *                    + k] what its adjoint's tangent lane k gets   (Hessian)
 * A nonzero return stops the sweep with PT_E_CALLBACK (the tape unchanged
 * but for the adjoints, tangents or values that sweep was writing, and the
 * leaves' grad cells untouched).  While a sweep calls back, the tape refuses
 * recording and other sweeps (PT_E_BUSY).  C knows nothing of Python. */
enum pt_custom_mode { PT_CUSTOM_VALUE = 0, PT_CUSTOM_VJP = 1, PT_CUSTOM_JVP = 2, PT_CUSTOM_HVP = 3 };
enum pt_custom_limits { PT_CUSTOM_MAX_ARGS = 64 };
typedef int (*pt_custom_fn)(int mode, int32_t fn, int64_t i, int64_t nargs, uint64_t slots, const double *x,
                            double y, int64_t lanes, const double *in, double *out);
void pt_set_custom_callback(pt_custom_fn f);
int pt_custom_op(void);
/* record y = f(...) on t: operand j is slot args[j] if args[j] >= 0, else the
 * constant consts[j]; value is f's value (computed by the caller).  Returns
 * the handle, or a PT_E_* (PT_E_SLOT for 0 or more than PT_CUSTOM_MAX_ARGS
 * operands, or a slot outside the tape). */
int64_t pt_record_custom(pt_tape *t, int32_t fn, int64_t nargs, const int64_t *args, const double *consts,
                         double value);
int64_t pt_tape_ncustom(const pt_tape *t);        /* custom instructions */
int64_t pt_tape_ncustom_args(const pt_tape *t);   /* their operands, in all */
/* the custom table: counts[k] operands of the k-th custom instruction, args
 * all operands in order (a slot, or -1 - c for constant c) */
void pt_tape_custom_table(const pt_tape *t, int32_t *counts, int32_t *args);
/* the operands of the k-th custom instruction into args (room for
 * PT_CUSTOM_MAX_ARGS); their number, or PT_E_SLOT for no such entry */
int64_t pt_tape_custom_entry(const pt_tape *t, int64_t k, int32_t *args);

/* the forward (tangent) sweep: with d(slots[k]) = seeds[k] for LEAF slots
 * and 0 for every other leaf, the tangent of every slot of the tape */
int pt_forward_tangent(pt_tape *t, int64_t nseeds, const int64_t *slots, const double *seeds);
double pt_tangent(const pt_tape *t, int64_t i);   /* 0 where not swept */
int64_t pt_tape_tangent_n(const pt_tape *t);      /* slots the last tangent sweep covered */

/* array instructions (array.h, array*.c) -----------------------------------
 *
 * One instruction (opcode pt_array_op(), kind PT_KIND_ARRAY) per array
 * operation: its value, and in the sweeps its adjoint and tangent, are
 * float64 C-contiguous arrays the tape owns.  Operands are handles: of array
 * instructions, or of scalar slots (0-d operands); the constant forms take a
 * double.  Entry points answer a handle, or a PT_E_* (PT_E_SHAPE when the
 * shapes do not fit; the tape is then unchanged).
 *
 * Kinds and their parameters (pt_arr_record: par, and the output shape where
 * Python gives it):
 *   CONST, LEAF  data copied (pt_arr_const, pt_arr_leaf)
 *   MAP1, MAP2   an op-table row elementwise, MAP2 with numpy's broadcasting
 *                (pt_arr_map1, pt_arr_map2*: the shape is derived)
 *   SUM          par = [keepdims, r_0 .. r_{n-1}]: sum over axes d with r_d
 *                != 0 (the shape is derived)
 *   VIEW         y[j] = x[par[0] + sum_d j_d * par[1 + d]] over y's shape:
 *                transpose, broadcast_to, basic slicing, reshape
 *   GATHER       y[j] = x[par[j]] (flat indices; adjoint: scatter-add)
 *   MATMUL       par = [nb, m, n, k, ta, tb, ba, bb]: y[b] = op(x0[b]) @
 *                op(x1[b]) for b < nb, x0 (ba ? nb : 1) blocks of m x k (k x m
 *                if ta), x1 of k x n (n x k if tb); y holds nb * m * n
 *   MAX          par = [r, sign]: over the last r elements of each row,
 *                max (sign 1) or min (sign -1); ties share the adjoint
 *   PROD         par = [r]: products of rows of r
 *   CUMSUM       par = [r]: cumulative sums along rows of r (the shape is x's)
 *   CONCAT       the operands' elements one after another
 *   CUSTOM       par = [key]: a custom primitive on arrays (pt_arr_custom)
 *   SCATTER      y = 0, then y[par[j]] += x[j] for every element j of x (flat
 *                indices into y's shape, which Python gives): the adjoint of
 *                GATHER and VIEW as an instruction (create_graph on arrays,
 *                pytape/array_adjoints.py); its own adjoint is a gather
 */
enum pt_array_kind {
    PT_A_CONST = 1, PT_A_LEAF = 2, PT_A_MAP1 = 3, PT_A_MAP2 = 4, PT_A_SUM = 5, PT_A_VIEW = 6,
    PT_A_GATHER = 7, PT_A_MATMUL = 8, PT_A_MAX = 9, PT_A_PROD = 10, PT_A_CUMSUM = 11, PT_A_CONCAT = 12,
    PT_A_CUSTOM = 13, PT_A_SCATTER = 14, PT_A_NUM_KINDS = 15
};
enum pt_array_limits { PT_ARRAY_MAX_DIMS = 32, PT_ARRAY_MAX_ARGS = 1024 };
int pt_array_op(void);
/* the tape that handles of id 0 name in the calling thread (NULL: none):
 * Python sets it around array calls on a tape that got no id */
void pt_set_unregistered(pt_tape *t);
/* CONST and LEAF: a copy of data, or with `borrow` data itself, which the
 * caller keeps alive and unchanged as long as the tape (Python: a Tensor
 * leaf lends its array and copies it before anyone may write to it) */
int64_t pt_arr_const(pt_tape *t, int32_t ndim, const int64_t *shape, const double *data, int borrow);
/* LEAF: backward() adds its adjoint to grad, or writes it there while the
 * caller's cell *gstate says zero (PT_GRAD_ZERO: its memory is stale) and
 * sets it to PT_GRAD_HELD: a sweep that reaches the leaf first claims such a
 * grad (PT_GRAD_CLAIMED) and accumulates the adjoint in it directly.
 * gstate NULL: add */
enum pt_grad_state { PT_GRAD_ZERO = 0, PT_GRAD_HELD = 1, PT_GRAD_CLAIMED = 2 };
int64_t pt_arr_leaf(pt_tape *t, int32_t ndim, const int64_t *shape, const double *data, double *grad,
                    int64_t *gstate, int borrow);
/* MAP1 of row op on ha when ha has fewer than `limit` elements, else
 * PT_E_LARGE: Python computes large values with numpy (pt_arr_map1_given) */
int64_t pt_arr_map1(int op, int64_t ha, int64_t limit);
/* the same instruction as pt_arr_map1, its value given (numpy's SIMD loop
 * computed it: pytape/array_ops.py; as many doubles as the operand has) */
int64_t pt_arr_map1_given(int op, int64_t ha, const double *value);
int64_t pt_arr_map2(int op, int64_t ha, int64_t hb);
int64_t pt_arr_map2_vc(int op, int64_t ha, double b);
int64_t pt_arr_map2_cv(int op, double a, int64_t hb);
int64_t pt_arr_record(int kind, int64_t nargs, const int64_t *args, int32_t ndim, const int64_t *shape,
                      int64_t npar, const int64_t *par);
/* SUM of array ha over all its axes (np.sum(t)): pt_arr_record's, without
 * building its parameters in Python; PT_E_SLOT for a scalar slot */
int64_t pt_arr_sum_all(int64_t ha);
/* recycling (csrc/array.h): the array recording entry points above return
 * the handle plus 2^PT_WATCH_SHIFT for a result of PT_RECYCLE_MIN elements
 * or more that is not a LEAF or CONST: Python watches its result object and
 * calls pt_arr_drop(t, slot) when it dies (1; 0: not noted, the slot keeps
 * its memory) */
enum { PT_RECYCLE_MIN = 16384, PT_WATCH_SHIFT = 62, PT_NOTE_SHIFT = 61 };
/* anomaly mode (pt_set_anomaly): those entry points record at once (no
 * PT_E_ANOMALY) and check the value: a nan or inf answers PT_E_NONFINITE,
 * nothing recorded, what was found in pt_tape_bad_array; a recorded result
 * (not a LEAF or CONST) comes back with 2^PT_WATCH_SHIFT + 2^PT_NOTE_SHIFT
 * added, whatever its size: Python notes its source line (and watches it
 * if it has PT_RECYCLE_MIN elements or more) */
int pt_arr_drop(pt_tape *t, int64_t slot);
/* an instruction's shape into shape (room for PT_ARRAY_MAX_DIMS): its ndim
 * (0 for a scalar slot), or PT_E_HANDLE / PT_E_SLOT */
int pt_arr_shape(int64_t h, int64_t *shape);
/* its value (NULL for a scalar slot or a bad handle); valid while the tape lives */
const double *pt_arr_value(int64_t h);
/* its adjoint from the last reverse sweep, its tangent from the last tangent
 * sweep (NULL: zero, or not this thread's tape) */
const double *pt_arr_adjoint(pt_tape *t, int64_t i);
const double *pt_arr_tangent(pt_tape *t, int64_t i);
int64_t pt_tape_narrays(const pt_tape *t);
/* every array LEAF instruction with a grad array: its slot and the grad's
 * address (a Tensor leaf gets a slot per placement: one on each tape it is
 * used on, and another on the same tape after its value was handed out for
 * writing); room for pt_tape_narrays(t) entries; their count */
int64_t pt_tape_array_leaves(const pt_tape *t, int64_t *slots, uintptr_t *grads);
/* inspection of array instructions (pytape/display.py): facts of an entry,
 * int64s indexed by enum pt_arr_fact.  OP: the op-table row of MAP1 / MAP2
 * (else -1); SIGN: MAX's 1 (max) or -1 (min), else 0; bytes: of the buffers
 * the tape holds for it (VALUE: 0 for a value lent by a Tensor leaf or given
 * back by recycling; TANGENT: the tangent and second order's adt) */
enum pt_arr_fact {
    PT_FACT_SLOT = 0, PT_FACT_KIND = 1, PT_FACT_OP = 2, PT_FACT_SIGN = 3, PT_FACT_NDIM = 4,
    PT_FACT_NARGS = 5, PT_FACT_SIZE = 6, PT_FACT_VALUE_BYTES = 7, PT_FACT_ADJOINT_BYTES = 8,
    PT_FACT_TANGENT_BYTES = 9, PT_FACT_N = 10
};
/* the facts of every array instruction in tape order: facts[k * PT_FACT_N + f] */
void pt_tape_array_facts(const pt_tape *t, int64_t *facts);
/* the operands of all array instructions one after another (an entry's
 * PT_FACT_NARGS of them: slots, or -1 - c for constant c of the pool) */
int64_t pt_tape_narray_args(const pt_tape *t);
void pt_tape_array_args(const pt_tape *t, int64_t *args);
/* array slot i: its facts (PT_FACT_N), shape (room for PT_ARRAY_MAX_DIMS)
 * and operands (room for PT_ARRAY_MAX_ARGS); 0, or PT_E_SLOT when slot i
 * holds no array instruction */
int pt_tape_array_entry(const pt_tape *t, int64_t i, int64_t *facts, int64_t *shape, int64_t *args);
/* array slot i's integer parameters (pt_arr_record's par): how many it has
 * (the first `cap` of them into par), or PT_E_SLOT */
int64_t pt_tape_array_params(const pt_tape *t, int64_t i, int64_t *par, int64_t cap);
/* a summary of array slot i's value (which = 0), adjoint from the last
 * reverse sweep (1) or tangent from the last tangent sweep (2): out[0] its
 * first element, out[1], out[2] the least and greatest finite elements (nan:
 * none), out[3] how many are nan or inf.  0; 1 when there is none (a zero
 * adjoint or tangent, an empty array, a value given back by recycling);
 * PT_E_SLOT; PT_E_THREAD for adjoints and tangents from another thread */
int pt_tape_array_summary(pt_tape *t, int64_t i, int which, double *out);
/* after a replay (pytape.trace under detect_anomaly): the first instruction
 * whose value holds a nan or inf, or -1; an array one's element is noted as
 * pt_tape_bad_array reads it (operand -1) */
int64_t pt_tape_first_nonfinite(pt_tape *t);

/* anomaly mode: the last nan or inf that a check of an array found on t.
 * Recording (PT_BAD_OPERAND -1): the refused instruction's kind, row, sign
 * and shape (it is not on the tape); the reverse sweep stopped at
 * pt_tape_bad(t) (an array instruction): the operand slot whose adjoint its
 * rule made nan or inf, in that operand's shape; the tangent sweep
 * (PT_BAD_OPERAND the slot itself): the instruction whose tangent is.
 * ELEMENT: the first bad element (flat, C order) and *value its value.
 * 0, or 1 when no array check found one */
enum pt_bad_fact {
    PT_BAD_KIND = 0, PT_BAD_OP = 1, PT_BAD_SIGN = 2, PT_BAD_OPERAND = 3, PT_BAD_ELEMENT = 4, PT_BAD_NDIM = 5,
    PT_BAD_N = 6
};
int pt_tape_bad_array(const pt_tape *t, int64_t *facts, int64_t *shape, double *value);
/* array memory from the tapes' allocator (a cache of freed large blocks:
 * no page faults in a loop that makes the same sizes each step); Python's
 * large Tensor leaves and grads live there too.  NULL: no memory */
double *pt_arr_alloc(int64_t n);
void pt_arr_release(double *p, int64_t n);
/* backward from array slot out with adjoint seed (its size); as pt_backward */
int pt_backward_array(pt_tape *t, int64_t out, const double *seed, int retain);
/* the same sweep (aseed NULL: a scalar slot out seeded with seed) that
 * leaves every leaf's grad alone and the tape retained: the adjoints stay on
 * the tape (pt_arr_adjoint, pt_adjoint), as pytape.autograd.grad asks */
int pt_backward_adjoints(pt_tape *t, int64_t out, double seed, const double *aseed);
/* the tangent sweep with seeds for scalar LEAF slots and array leaves
 * (aslots[k] an array LEAF, its seed aseeds[aoff[k] ..] of its size) */
int pt_forward_tangent_arrays(pt_tape *t, int64_t nseeds, const int64_t *slots, const double *seeds,
                              int64_t narr, const int64_t *aslots, const int64_t *aoff, const double *aseeds);
/* a custom primitive on arrays (kind PT_A_CUSTOM): one instruction on the
 * operands hs (handles of arrays or scalars of one tape), of the given shape
 * and value (data, copied: Python computed it); `key` names Python's record
 * of the call.  Its sweeps call the callback below: mode PT_CUSTOM_VJP adds
 * to outs[j] (operand j's adjoint buffer of its size, NULL: not needed) what
 * the cotangent g (of y's size) gives it; PT_CUSTOM_JVP adds to outs[0] (y's
 * size) the tangent due to the operands' tangents tans[j] (NULL: zero);
 * PT_CUSTOM_HVP asks for the second-order term (g, tans, outs as for both).
 * The callback answers 0, or -1 after a failure (the sweep stops:
 * PT_E_CALLBACK). */
typedef int (*pt_custom_array_fn)(int mode, int64_t key, int64_t nargs, const double *const *vals,
                                  const double *const *tans, const double *y, const double *g, double *const *outs);
void pt_set_custom_array_callback(pt_custom_array_fn f);
int64_t pt_arr_custom(int64_t nargs, const int64_t *hs, int32_t ndim, const int64_t *shape, const double *data,
                      int64_t key);
/* a Hessian-vector product on a tape with arrays: the tangent sweep with
 * those seeds, then forward over reverse from out (a scalar slot or a
 * one-element array); H v per scalar seed slot into sres, per array slot k
 * into ares[aoff[k] ..] */
int pt_hvp_arrays(pt_tape *t, int64_t out, int64_t nseeds, const int64_t *slots, const double *seeds,
                  int64_t narr, const int64_t *aslots, const int64_t *aoff, const double *aseeds,
                  double *sres, double *ares);
/* the matrix product: dgemm of a BLAS (Fortran interface; ilp64: 64-bit
 * integers), or NULL for pytape's own loops */
void pt_set_dgemm(void *dgemm, int ilp64);
int pt_dgemm_kind(void);   /* 0: own loops, 32 or 64: a BLAS with that integer width */

/* sparsity (sparsity.c): which entries of a Jacobian or Hessian can be
 * nonzero, from the tape's structure alone, as pairs (row[k], col[k]) in
 * malloc'd arrays, possibly repeated; free them with pt_pattern_free.
 * Inputs are the LEAF slots ins (column k: ins[k]; negative: not on the
 * tape); outputs outs (row j; negative: a constant).  Index sets and pairs
 * past PT_SPARSITY_LIMIT entries answer PT_E_DENSE; tapes with arrays
 * PT_E_ARRAY. */
enum { PT_SPARSITY_LIMIT = 1 << 28 };
typedef struct pt_pattern {
    int64_t nnz;
    int32_t *row, *col;
} pt_pattern;
int pt_jacobian_pattern(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nout, const int64_t *outs,
                        pt_pattern *res);
/* of the Hessian of the scalar slot out */
int pt_hessian_pattern(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t out, pt_pattern *res);
void pt_pattern_free(pt_pattern *res);
/* greedy colourings, in index order; colour[] gets 0, 1, ...; they answer
 * the number of colours, or PT_E_NOMEM.  pt_colour_columns: the n columns of a
 * pattern (CSR rowptr/cols and CSC colptr/rows) that share a row get
 * different colours (a distance-2 colouring: rows with skip_row[i] set, which
 * may be NULL, are left out); the rows of a pattern are its transpose's
 * columns.  pt_colour_star: a star colouring of a symmetric pattern (CSR;
 * the diagonal may be present): adjacent vertices differ and every path on
 * four vertices has three colours, so each entry of H is one entry of
 * H S for the seed matrix S of the colours (vertices with skip[v] set are
 * left out, with colour -1). */
int64_t pt_colour_columns(int64_t n, const int64_t *rowptr, const int64_t *cols, const int64_t *colptr,
                          const int64_t *rows, const uint8_t *skip_row, int64_t *colour);
int64_t pt_colour_star(int64_t n, const int64_t *ptr, const int64_t *idx, const uint8_t *skip, int64_t *colour);

#endif
