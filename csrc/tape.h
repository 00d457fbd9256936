/* tape.h -- the tape: a flat Wengert list in growable C arrays.
 *
 *   slot i:   op[i]   a[i]   b[i]   val[i]      adj[i] (after a reverse sweep)
 *           +-------+------+------+----------+ +--------+
 *   0       | LEAF  |  k0  |  0   |  2.0     | | 5.5    |  leaf k0 (x1), first used here
 *   1       | LOG   |  0   |  0   |  0.693   | | 1.0    |  v1 = log(v0)
 *   2       | LEAF  |  k1  |  0   |  5.0     | | 1.716  |  leaf k1 (x2)
 *   3       | MUL   |  0   |  2   |  10.0    | | 1.0    |  v3 = v0 * v2
 *   4       | ADD   |  1   |  3   |  10.693  | | 1.0    |  v4 = v1 + v3
 *   5       | SIN   |  2   |  0   | -0.959   | | -1.0   |  v5 = sin(v2)
 *   6       | SUB   |  4   |  5   |  11.652  | | 1.0    |  v6 = v4 - v5   (output)
 *           +-------+------+------+----------+ +--------+
 *   consts[]: immediates of *_VC / *_CV instructions, indexed by a or b;
 *             equal recent constants share one entry
 *   leaf_slot[k], leaf_grad[k]: where leaf k sits and the grad cell (owned by
 *                               Python) that the sweep adds its adjoint to
 *
 * Invariants
 *  - Instruction i produces slot i; its operands are slots < i (or constant
 *    indices for the constant side of *_VC / *_CV).  So the tape is in
 *    topological order and the reverse sweep is one backward loop.
 *  - What a[i] and b[i] hold (a slot, a constant index, a leaf index, none)
 *    is one table per opcode, pt_op_table (pt_operand for Python), and "is
 *    this operand a slot" is pt_reads_slot.  Sweeps spell the operand forms
 *    of a row (unary, var-var, _VC, _CV) once, in forms.h.
 *  - op[i] != 0: opcode 0 is reserved so that zeroed memory is never valid.
 *  - For LEAF, a[i] is the leaf's index k in leaf_slot/leaf_grad.
 *  - GUARD (recorded only by pytape.trace) is a comparison, not a value:
 *    a[i] the left slot, b[i] the right slot or -1 - k for constant k, and
 *    val[i] = 2 * cmp + outcome.  Replay re-checks it; every other sweep
 *    skips it.
 *  - n <= cap; every array holds at least cap entries (consts: ccap, leaves:
 *    lcap).  Growth doubles; a failed allocation leaves n and every array
 *    as they were (PT_E_NOMEM), so the tape is never half-written.
 *  - val[i] is computed by C when the instruction is recorded, from the
 *    same rule text (ops.def) that a replay will use.
 *  - The adjoint array is allocated by the first reverse sweep; adj_n is the
 *    number of slots the last sweep covered (0: no sweep yet).  Likewise the
 *    tangent array and the forward tangent sweep (tan, tan_n).
 *  - A register plan (ra, rb, rr, nregs; compiled tapes only) maps slots to
 *    registers for value-only replays: instruction i reads registers ra[i],
 *    rb[i] (constant indices stay as they are) and writes register rr[i];
 *    a register is reused once its slot is read for the last time, so a
 *    replay needs nregs doubles (the live set) rather than n.  Outputs
 *    keep their registers to the end.
 *  - Only the owner thread records or sweeps; a consumed tape records nothing
 *    and sweeps no more, but its values and adjoints stay readable.
 *  - fork(): the child has only the thread that forked.  The locks are taken
 *    around fork (pthread_atfork), so none is held in the child, and the
 *    child's tapes owned by other threads get no owner: they answer
 *    PT_E_THREAD rather than being swept by a new thread that happens to
 *    reuse a dead thread's thread-local address (tape.c).
 *  - Python names slots by handles, slot << PT_ID_BITS | id, id the tape's
 *    index in the registry (tape.c).  A tape keeps its id until it is freed,
 *    and Python frees a tape only once no Var refers to it, so a handle
 *    Python holds always names the tape it was made on.
 *
 *  - CUSTOM (a custom primitive, pytape.h, custom.c): a[i] = k, its entry in
 *    the custom table, whose operands (slots < i, or -1 - c for constant c)
 *    are cu_arg[cu_start[k] .. cu_start[k + 1]); b[i] the primitive's id.
 *    Custom instructions are numbered in tape order (the k-th has a[i] = k).
 *    Sweeps call back into Python for them (custom.c); no generic operand
 *    loop sees their operands (pt_reads_slot is false for a and b), so every
 *    pass that follows operands asks pt_custom_operands for them.
 *
 * Later additions (not rewrites): array instructions, in the same way as
 * CUSTOM: a new op kind whose a/b index a table of (array) operands; array
 * custom primitives and several outputs extend the custom table (a shape per
 * operand, an output count per entry) rather than the scalar arrays.
 *
 * Bytes per scalar instruction: op 2 + a 4 + b 4 + val 8 = 18, plus 8 per
 * distinct constant and 8 for the adjoint once swept.
 */
#ifndef PT_TAPE_H
#define PT_TAPE_H

#include <pthread.h>
#include "pytape.h"

/* the opcode enum, generated from ops.def */
enum pt_opcode {
    PT_NOP = 0,
    PT_LEAF = 1,
    PT_GUARD = 2,   /* a recorded comparison, re-checked by replay (trace) */
#define PT_OP1(N, S, V, DA, DAA) PT_##N,
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB) PT_##N, PT_##N##_VC, PT_##N##_CV,
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    PT_CUSTOM,      /* a custom primitive (custom.c); after the rows, not one of them */
    PT_ARRAY,       /* an array operation (array.h) */
    PT_NUM_OPS
};

/* the op table (tape.c, generated from ops.def): each opcode's kind and what
 * its operands a and b hold (enum pt_op_kind, enum pt_operand_kind) */
struct pt_op_info {
    unsigned char kind, operand[2];
};
extern const struct pt_op_info pt_op_table[PT_NUM_OPS];

/* does operand `which` (0: a, 1: b), of value x, of an instruction with the
 * valid opcode op name a slot?  (A GUARD's b does when x >= 0.) */
static inline int pt_reads_slot(int op, int which, int64_t x)
{
    const int kind = pt_op_table[op].operand[which];
    return kind == PT_OPERAND_SLOT || (kind == PT_OPERAND_SLOT_OR_CONST && x >= 0);
}

/* for loops called with a constant argument (a lane count, a flag): inlined
 * into every caller, so each constant compiles to its own specialised loop */
#define PT_INLINE static inline __attribute__((always_inline))

struct pt_tape {
    int64_t n, cap;            /* instructions recorded, capacity */
    uint16_t *op;
    int32_t *a, *b;
    double *val;

    double *consts;            /* immediates */
    int64_t nconst, ccap;
    uint32_t ccache[16];       /* recent constants: index + 1 (0: empty) */

    int32_t *leaf_slot;        /* leaves: slot and grad cell */
    double **leaf_grad;
    int64_t nleaf, lcap;

    double *adj;               /* adjoints, from the reverse sweep */
    int64_t adj_n, adj_cap;

    double *tan;               /* tangents, from the forward tangent sweep */
    int64_t tan_n, tan_cap;

    double *scratch;           /* working memory of the block and Hessian sweeps */
    int64_t scratch_cap;       /* (doubles), kept between sweeps: no page faults */

    int32_t *ra, *rb, *rr;     /* register plan (compiled tapes, tape_compile.c) */
    int64_t nregs;             /* registers; 0: no plan */

    int32_t *cu_arg;           /* custom table (custom.c): operands of every CUSTOM */
    int64_t ncu_arg, cu_arg_cap;
    int64_t *cu_start;         /* custom k's operands: cu_arg[cu_start[k] .. cu_start[k + 1]) */
    int64_t ncu, cu_cap;       /* custom instructions; cu_start holds ncu + 1 entries */
    int64_t nacu;              /* custom array instructions (array_custom.c): sweeps call back too */
    int32_t *cu_reg;           /* register plan: cu_arg with slots as registers (ncu_arg) */

    struct pt_arr *ar;         /* array table (array.h): entry of every ARRAY instruction */
    int64_t nar, ar_cap;
    int64_t *ar_dim, nar_dim, ar_dim_cap;  /* their shapes */
    int64_t *ar_arg, nar_arg, ar_arg_cap;  /* their operands */
    int64_t *ar_par, nar_par, ar_par_cap;  /* their parameters */
    struct pt_chunk *arena;    /* small array buffers (array.c: pt_tape_buffer) */
    struct pt_spare *spare;    /* large array buffers given back while the tape lives (array.c: recycling) */
    int64_t nspare, spare_cap;
    int64_t *dead, ndead, dead_cap;  /* array slots whose Python result died, not yet looked at */
    pthread_mutex_t dead_lock; /* guards dead: a result may die in any thread */

    int32_t id;                /* index in the registry of handles (pytape.h), 0: none */
    int consumed;
    int keep_values;           /* recorded for replays (pytape.trace): nothing recycled (array.c) */
    int grads_off;             /* this sweep leaves leaves' grads alone (pt_backward_adjoints) */
    int busy;                  /* a sweep of this tape is calling a custom rule (custom.c) */
    int64_t bad;               /* the instruction a checked sweep stopped at, or -1 */
    int bad_sweep;             /* what a second-order call's check found (enum pt_bad_sweep, pytape.h) */
    struct pt_bad_array {      /* anomaly mode and arrays: the nan or inf found (array.c) */
        int64_t facts[PT_BAD_N];   /* enum pt_bad_fact (pytape.h) */
        int64_t shape[PT_ARRAY_MAX_DIMS];
        double value;
    } bad_array;
    pthread_t owner;           /* the thread that records on this tape */
    const void *owner_key;     /* the address of a thread-local of that thread */
    pt_tape *prev, *next;      /* every live tape, for the fork handler (tape.c) */
};

/* the recording modes of the calling thread (tape.c: pt_set_grad_enabled,
 * pt_set_anomaly, pt_set_checked; 0 in normal recording); array.c reads it
 * when it records an array instruction (one load: initial-exec TLS) */
enum { PT_MODE_NOGRAD = 1, PT_MODE_ANOMALY = 2, PT_MODE_CHECKED = 4 };
extern __thread int pt_thread_mode __attribute__((tls_model("initial-exec")));

/* the per-op recording entry points (tape.c), generated from ops.def: they
 * take and return handles (pytape.h) */
#define PT_OP1(N, S, V, DA, DAA) int64_t pt_rec_##N(int64_t ha);
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    int64_t pt_rec_##N(int64_t ha, int64_t hb);                               \
    int64_t pt_rec_##N##_VC(int64_t ha, double b);                            \
    int64_t pt_rec_##N##_CV(double a, int64_t hb);
#include "ops.def"
#undef PT_OP1
#undef PT_OP2

/* appending without the recording checks, for tapes built in C (compiled
 * and loaded ones, tape_compile.c): a slot or constant index, or PT_E_* */
int64_t pt_append(pt_tape *t, int op, int64_t a, int64_t b, double v);
int64_t pt_append_const(pt_tape *t, double c);      /* shares an equal recent one */
int64_t pt_append_const_at(pt_tape *t, double c);   /* always at index nconst */
int64_t pt_append_leaf(pt_tape *t, double value);   /* no grad cell */

/* grow *p (elements of size sz) to hold newcap; PT_E_NOMEM keeps the old block */
int pt_grow(void **p, int64_t newcap, size_t sz);

/* for array.c: the recording checks and append of tape.c */
pt_tape *pt_recording_tape(int64_t h, int64_t *status);
int64_t pt_check_recording(pt_tape *t);
int64_t pt_emit(pt_tape *t, int op, int64_t a, int64_t b, double v);
int64_t pt_handle_of(const pt_tape *t, int64_t i);
pt_tape *pt_handle_tape(int64_t h);
/* does a sweep other than reverse and tangent meet array instructions? */
static inline int pt_has_arrays(const pt_tape *t) { return t->nar > 0; }

/* ---- custom instructions (custom.c) ---------------------------------- */

/* append an entry of nargs operands to the custom table: its index k, or
 * PT_E_NOMEM (the table unchanged) */
int64_t pt_custom_append(pt_tape *t, int64_t nargs, const int32_t *args);
/* the operands of custom instruction i (slots, or -1 - c for constants), and
 * their number in *n; with `registers`, from the register plan */
static inline const int32_t *pt_custom_operands(const pt_tape *t, int64_t i, int registers, int64_t *n)
{
    const int64_t k = t->a[i];
    *n = t->cu_start[k + 1] - t->cu_start[k];
    return (registers ? t->cu_reg : t->cu_arg) + t->cu_start[k];
}
/* the calls of the sweeps, v the values (or registers) they work in:
 * y = f(x) into *y; the cotangent lanes adj[i*q ..] into the operands'
 * lanes (with `checked`, 1 if one became nan or inf); the tangent lanes of
 * slot i from the operands'.  0, or PT_E_CALLBACK when the rule failed.
 * Cold: the sweeps' loops are laid out for the op table's rows. */
__attribute__((cold)) int pt_custom_value(const pt_tape *t, int64_t i, const double *v, int registers, double *y);
__attribute__((cold)) int pt_custom_vjp(const pt_tape *t, int64_t i, const double *v, double *adj, int64_t q,
                                        int checked);
__attribute__((cold)) int pt_custom_jvp(const pt_tape *t, int64_t i, const double *v, double *tan, int64_t p);
/* forward over reverse (sweep_hessian.c): the adjoint adj[i] and its tangent
 * lanes adjd[i*p ..] into the operands' adj and adjd, from their tangent
 * lanes tan (PT_CUSTOM_HVP) */
__attribute__((cold)) int pt_custom_hvp(const pt_tape *t, int64_t i, const double *tan, double *adj, double *adjd,
                                        int64_t p);
/* a sweep of t starts (PT_E_BUSY if a callback of another is running) and ends */
static inline int pt_sweep_begin(pt_tape *t)
{
    if (t->busy)
        return PT_E_BUSY;
    t->busy = t->ncu > 0 || t->nacu > 0;
    return PT_OK;
}
static inline void pt_sweep_end(pt_tape *t) { t->busy = 0; }

/* the forward sweep proper (sweep_forward.c): every non-LEAF slot of the tape
 * recomputed into v from the LEAF values already in v; the first guard whose
 * outcome changed stops it (its slot is returned), else -1; PT_E_CALLBACK
 * when a custom rule failed.  The register
 * form runs the register plan: v holds nregs registers instead of n slots. */
int64_t pt_sweep_forward(const pt_tape *t, double *v);
int64_t pt_sweep_forward_registers(const pt_tape *t, double *v);

/* the reverse sweep proper (sweep_reverse.c): adj must be zeroed on [0, out]
 * except for the seed; 0, or PT_E_CALLBACK when a custom rule failed */
int pt_sweep_reverse(const pt_tape *t, int64_t out, double *adj);
/* the same with every adjoint checked: the first instruction whose adjoint
 * rule made a nan or inf, or -1 (or PT_E_CALLBACK) */
int64_t pt_sweep_reverse_checked(const pt_tape *t, int64_t out, double *adj);
/* anomaly mode is on in this thread: sweeps check every adjoint */
int pt_anomaly_active(void);
/* a per-tape buffer of doubles (*buf, capacity *cap): grown to hold count,
 * its first count zeroed if `zero`; NULL if it cannot grow (the old block
 * stays).  Kept between sweeps: a fresh allocation per call costs a page
 * fault at the first touch of every page (a third of a Hessian-vector
 * product's time, measured). */
double *pt_buffer(double **buf, int64_t *cap, int64_t count, int zero);
/* the tape's own adjoint array, zeroed on [0, m) (adj_n = m): PT_E_NOMEM or 0 */
int pt_tape_adjoints(pt_tape *t, int64_t m);
/* the tape's scratch memory (of the block and Hessian sweeps), at least
 * count doubles, zeroed; NULL if that cannot be allocated */
double *pt_tape_scratch(pt_tape *t, int64_t count);
/* the first slot with a non-finite lane among p lanes of [0, n), or -1 */
int64_t pt_first_nonfinite(const double *lanes, int64_t n, int64_t p);

/* on the functions that hold a sweep's loop: starting on a 64-byte boundary,
 * a loop's speed depends on its own code, not on where the linker puts it
 * (measured: unchanged loops ran up to 20% slower, or faster, after edits in
 * other files moved them; aligned, within the noise) */
#define PT_SWEEP_ALIGNED __attribute__((aligned(64)))

/* are all p lanes of a slot zero? (the block and Hessian sweeps skip them) */
PT_INLINE int pt_lanes_zero(const double *g, int64_t p)
{
    for (int64_t k = 0; k < p; ++k)
        if (g[k] != 0.0)
            return 0;
    return 1;
}

/* p tangent lanes over slots [0, n) (sweep_block.c); tan is slot-major;
 * 0 or PT_E_CALLBACK */
int pt_sweep_tangent_block(const pt_tape *t, int64_t n, double *tan, int64_t p);

/* the tangent sweep proper (sweep_tangent.c): tan holds the seeds of the
 * LEAF slots and receives every other slot's tangent; 0 or PT_E_CALLBACK */
int pt_sweep_tangent(const pt_tape *t, double *tan);

#endif
