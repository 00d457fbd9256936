/* tape.c -- tape storage, growth, recording, and the op tables generated
 * from ops.def.  See tape.h for the layout and its invariants. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "tape.h"
#include "array.h"
#include "rules.h"

/* ---- the op table ------------------------------------------------------ */

static const char *const op_names[PT_NUM_OPS] = {
    "nop", "leaf", "guard",
#define PT_OP1(N, S, V, DA, DAA) S,
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB) S, S "_vc", S "_cv",
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    "custom", "array",
};

/* each opcode's kind and what its operands a and b hold: the one table of
 * which operands are slots (pt_reads_slot, and Python through pt_operand) */
const struct pt_op_info pt_op_table[PT_NUM_OPS] = {
    {PT_KIND_NONE, {PT_OPERAND_NONE, PT_OPERAND_NONE}},
    {PT_KIND_LEAF, {PT_OPERAND_LEAF, PT_OPERAND_NONE}},
    {PT_KIND_GUARD, {PT_OPERAND_SLOT, PT_OPERAND_SLOT_OR_CONST}},
#define PT_OP1(N, S, V, DA, DAA) {PT_KIND_UNARY, {PT_OPERAND_SLOT, PT_OPERAND_NONE}},
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    {PT_KIND_VV, {PT_OPERAND_SLOT, PT_OPERAND_SLOT}},                         \
    {PT_KIND_VC, {PT_OPERAND_SLOT, PT_OPERAND_CONST}},                        \
    {PT_KIND_CV, {PT_OPERAND_CONST, PT_OPERAND_SLOT}},
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    {PT_KIND_CUSTOM, {PT_OPERAND_CUSTOM, PT_OPERAND_PRIMITIVE}},
    {PT_KIND_ARRAY, {PT_OPERAND_ARRAY, PT_OPERAND_ARRAY_KIND}},
};

/* the text of each row's columns (value, d/da, d/db, d2/da2, d2/dadb,
 * d2/db2; "" where none): Python records the first derivatives as
 * instructions (create_graph) and writes them into generated C (codegen) */
static const char *const op_texts[PT_NUM_OPS][6] = {
    {"", "", "", "", "", ""}, {"", "", "", "", "", ""}, {"", "", "", "", "", ""},
#define PT_OP1(N, S, V, DA, DAA) {#V, #DA, "", #DAA, "", ""},
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB) \
    {#V, #DA, #DB, #DAA, #DAB, #DBB}, {#V, #DA, #DB, #DAA, #DAB, #DBB}, {#V, #DA, #DB, #DAA, #DAB, #DBB},
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    {"", "", "", "", "", ""},  /* CUSTOM: its rules are Python's */
    {"", "", "", "", "", ""},  /* ARRAY: its kernels' (array*.c) */
};

int pt_num_ops(void) { return PT_NUM_OPS; }

const char *pt_op_rule(int op, int operand)
{
    return (operand == 0 || operand == 1) ? pt_op_text(op, 1 + operand) : "";
}

const char *pt_op_text(int op, int column)
{
    return (op >= 0 && op < PT_NUM_OPS && column >= 0 && column < 6) ? op_texts[op][column] : "";
}

const char *pt_op_name(int op)
{
    return (op >= 0 && op < PT_NUM_OPS) ? op_names[op] : "";
}

int pt_op_kind(int op)
{
    return (op >= 0 && op < PT_NUM_OPS) ? pt_op_table[op].kind : PT_KIND_NONE;
}

int pt_operand(int op, int which)
{
    return (op >= 0 && op < PT_NUM_OPS && (which == 0 || which == 1)) ? pt_op_table[op].operand[which]
                                                                       : PT_OPERAND_NONE;
}

/* value rules: the text of each row's value column, for any operand kind */
static inline double value1(int op, double a)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA) case PT_##N: return (V);
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default: return NAN;
    }
}

static inline double value2(int op, double a, double b)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB) case PT_##N: return (V);
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default: return NAN;
    }
}

double pt_eval1(int op, double a)
{
    return pt_op_kind(op) == PT_KIND_UNARY ? value1(op, a) : NAN;
}

double pt_eval2(int op, double a, double b)
{
    return pt_op_kind(op) == PT_KIND_VV ? value2(op, a, b) : NAN;
}

/* ---- recording modes of the calling thread ---------------------------- */

/* initial-exec: one %fs-relative load instead of a __tls_get_addr call on
 * every recorded operation (measured: ~15 ns of ~150 ns per op) */
#define PT_TLS __thread __attribute__((tls_model("initial-exec")))

/* 0 in normal recording: one test on the hot path (tape.h: PT_MODE_*) */
PT_TLS int pt_thread_mode;

/* a per-thread address: cheaper to compare than pthread_self() */
static PT_TLS char thread_marker;

static void set_mode(int bit, int on) { pt_thread_mode = on ? (pt_thread_mode | bit) : (pt_thread_mode & ~bit); }

void pt_set_grad_enabled(int enabled) { set_mode(PT_MODE_NOGRAD, !enabled); }
int pt_grad_enabled(void) { return !(pt_thread_mode & PT_MODE_NOGRAD); }
void pt_set_anomaly(int enabled) { set_mode(PT_MODE_ANOMALY, enabled); }
int pt_anomaly_enabled(void) { return (pt_thread_mode & PT_MODE_ANOMALY) != 0; }
void pt_set_checked(int enabled) { set_mode(PT_MODE_CHECKED, enabled); }

/* ---- lifetime and the registry of handles ---------------------------- */

/* Registered tapes by id (pytape.h: handles).  Ids are taken and given back
 * under the lock; the recording entry points read an entry without it, for a
 * tape that cannot go away meanwhile: a Var of it holds it (tape.h).  The
 * same lock guards the list of every live tape (`tapes`). */
enum { PT_IDS = 1 << PT_ID_BITS };
#define PT_ID_MASK ((int64_t)PT_IDS - 1)
static pt_tape *registry[PT_IDS];
static pt_tape *tapes;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/* fork(): no thread holds the lock while the process is copied; in the
 * child, which has only the forking thread, tapes of the other threads lose
 * their owner (tape.h) */
static void fork_prepare(void) { pthread_mutex_lock(&registry_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&registry_lock); }
static void fork_child(void)
{
    for (pt_tape *t = tapes; t; t = t->next)
        if (t->owner_key != &thread_marker)
            t->owner_key = NULL;
    pthread_mutex_unlock(&registry_lock);
}

__attribute__((constructor)) static void install_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

pt_tape *pt_tape_new(void)
{
    pt_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->owner = pthread_self();
    t->owner_key = &thread_marker;
    t->bad = -1;
    if (pthread_mutex_init(&t->dead_lock, NULL)) {
        free(t);
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    t->next = tapes;
    if (tapes)
        tapes->prev = t;
    tapes = t;
    pthread_mutex_unlock(&registry_lock);
    return t;
}

int pt_tape_register(pt_tape *t)
{
    pthread_mutex_lock(&registry_lock);
    for (int k = 1; k < PT_IDS && !t->id; ++k)
        if (!registry[k]) {
            t->id = k;
            __atomic_store_n(&registry[k], t, __ATOMIC_RELEASE);
        }
    pthread_mutex_unlock(&registry_lock);
    return t->id;
}

static inline pt_tape *handle_tape(int64_t h)
{
    return __atomic_load_n(&registry[h & PT_ID_MASK], __ATOMIC_ACQUIRE);
}

/* the handle of slot i of t, or i itself if it is a negative status */
static inline int64_t handle_of(const pt_tape *t, int64_t i)
{
    return i < 0 ? i : (i << PT_ID_BITS) | t->id;
}

void pt_tape_free(pt_tape *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&registry_lock);
    if (t->id)
        __atomic_store_n(&registry[t->id], NULL, __ATOMIC_RELEASE);
    if (t->prev)
        t->prev->next = t->next;
    else
        tapes = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&registry_lock);
    free(t->op);
    free(t->a);
    free(t->b);
    free(t->val);
    free(t->consts);
    free(t->leaf_slot);
    free(t->leaf_grad);
    free(t->adj);
    free(t->tan);
    free(t->scratch);
    free(t->ra);
    free(t->rb);
    free(t->rr);
    free(t->cu_arg);
    free(t->cu_start);
    free(t->cu_reg);
    pt_array_free(t);
    pthread_mutex_destroy(&t->dead_lock);
    free(t);
}

/* ---- growth: doubling; on failure nothing observable changes ----------- */

#define PT_MAX_SLOTS ((int64_t)INT32_MAX)

int pt_grow(void **p, int64_t newcap, size_t sz)
{
    void *q = realloc(*p, (size_t)newcap * sz);
    if (!q)
        return PT_E_NOMEM;
    *p = q;
    return PT_OK;
}

static int grow_instructions(pt_tape *t)
{
    if (t->cap >= PT_MAX_SLOTS)
        return PT_E_FULL;
    int64_t newcap = t->cap ? 2 * t->cap : 1024;
    if (newcap > PT_MAX_SLOTS)
        newcap = PT_MAX_SLOTS;
    /* each array may end up larger than cap if a later one fails: harmless,
     * cap only moves once all four hold newcap entries */
    if (pt_grow((void **)&t->op, newcap, sizeof *t->op) ||
        pt_grow((void **)&t->a, newcap, sizeof *t->a) ||
        pt_grow((void **)&t->b, newcap, sizeof *t->b) ||
        pt_grow((void **)&t->val, newcap, sizeof *t->val))
        return PT_E_NOMEM;
    t->cap = newcap;
    return PT_OK;
}

/* append constant c to the pool, unconditionally */
static int64_t append_const(pt_tape *t, double c)
{
    if (t->nconst == t->ccap) {
        if (t->ccap >= PT_MAX_SLOTS)
            return PT_E_FULL;
        int64_t newcap = t->ccap ? 2 * t->ccap : 256;
        if (pt_grow((void **)&t->consts, newcap, sizeof *t->consts))
            return PT_E_NOMEM;
        t->ccap = newcap;
    }
    t->consts[t->nconst] = c;
    return t->nconst++;
}

/* the pool index of constant c: a recent equal constant (same bits) is
 * shared through a 16-entry cache, so x * 2.0 in a loop stores 2.0 once and
 * the instruction costs 18 bytes, not 26 */
static int64_t add_const(pt_tape *t, double c)
{
    uint64_t bits, old;
    memcpy(&bits, &c, sizeof bits);
    const unsigned h = (unsigned)((bits * 0x9E3779B97F4A7C15u) >> 60);
    const int64_t k = (int64_t)t->ccache[h] - 1;
    if (k >= 0) {
        memcpy(&old, &t->consts[k], sizeof old);
        if (old == bits)
            return k;
    }
    const int64_t j = append_const(t, c);
    if (j >= 0)
        t->ccache[h] = (uint32_t)(j + 1);
    return j;
}

/* ---- recording --------------------------------------------------------- */

/* May this thread append to t now?  A negative status if not; 1 if the
 * value must be checked (anomaly mode, see pt_set_checked); else 0.  In
 * anomaly mode operations answer PT_E_ANOMALY until Python, having noted
 * their source line, records them again in checked mode. */
static inline int64_t check_recording(pt_tape *t, int is_leaf)
{
    int64_t checked = 0;
    if (pt_thread_mode) {
        if (pt_thread_mode & PT_MODE_NOGRAD)
            return PT_E_NOGRAD;
        if (pt_thread_mode & PT_MODE_CHECKED)
            checked = 1;
        else if (!is_leaf)
            return PT_E_ANOMALY;
    }
    if (t->consumed | t->busy)
        return t->busy ? PT_E_BUSY : PT_E_CONSUMED;
    if (t->owner_key != &thread_marker)
        return PT_E_THREAD;
    if (t->n == t->cap) {
        int s = grow_instructions(t);
        if (s)
            return s;
    }
    return checked;
}

/* append one instruction; with `checked`, refuse a value that is not finite */
static inline int64_t emit(pt_tape *t, int op, int64_t a, int64_t b, double v, int64_t checked)
{
    if (checked && !isfinite(v))
        return PT_E_NONFINITE;
    const int64_t i = t->n;
    t->op[i] = (uint16_t)op;
    t->a[i] = (int32_t)a;
    t->b[i] = (int32_t)b;
    t->val[i] = v;
    t->n = i + 1;
    return i;
}

#define IN_TAPE(t, i) ((uint64_t)(i) < (uint64_t)(t)->n)

/* append a LEAF instruction (capacity for it already there) */
static int64_t record_leaf(pt_tape *t, double value, double *grad)
{
    if (t->nleaf == t->lcap) {
        int64_t newcap = t->lcap ? 2 * t->lcap : 64;
        if (pt_grow((void **)&t->leaf_slot, newcap, sizeof *t->leaf_slot) ||
            pt_grow((void **)&t->leaf_grad, newcap, sizeof *t->leaf_grad))
            return PT_E_NOMEM;
        t->lcap = newcap;
    }
    const int64_t k = t->nleaf++;
    t->leaf_slot[k] = (int32_t)t->n;
    t->leaf_grad[k] = grad;
    return emit(t, PT_LEAF, k, 0, value, 0);
}

int64_t pt_leaf(pt_tape *t, double value, double *grad)
{
    int64_t s = check_recording(t, 1);
    if (s < 0)
        return s;
    return handle_of(t, record_leaf(t, value, grad));
}

/* One entry point per op and operand form, generated from ops.def, taking
 * and returning handles (pytape.h):
 *   pt_rec_NAME(ha)                 unary:   y = f(v[a])
 *   pt_rec_NAME(ha, hb)             binary:  y = f(v[a], v[b])
 *   pt_rec_NAME_VC(ha, double b)    binary with a constant b
 *   pt_rec_NAME_CV(double a, hb)    binary with a constant a
 * Separate functions rather than one taking an opcode: measured ~10 ns less
 * per recorded op (no opcode argument to convert, no switch to dispatch).
 * Handles rather than a tape pointer and slots: one argument fewer per call
 * (cffi packs the arguments of a call with two or more into a tuple, and a
 * pointer argument is type-checked on every call). */

/* the tape of handle h if this thread may append to it now, else NULL and
 * the status in *s (see check_recording) */
static inline pt_tape *recording_tape(int64_t h, int64_t *s)
{
    pt_tape *t = handle_tape(h);
    if (!t) {
        *s = PT_E_HANDLE;
        return NULL;
    }
    *s = check_recording(t, 0);
    return *s < 0 ? NULL : t;
}

/* array instructions (array.c) never answer PT_E_ANOMALY: in anomaly mode
 * they are recorded at once and array.c checks their values (append: it
 * refuses a nan or inf, and flags the handle for Python to note the line);
 * room for one instruction is made here */
int64_t pt_check_recording(pt_tape *t)
{
    const int64_t s = check_recording(t, 1);
    return s < 0 ? s : 0;
}
/* the tape that handles of id 0 name in this thread, while Python records
 * array instructions on a tape without an id (pt_set_unregistered) */
static PT_TLS pt_tape *unregistered;

void pt_set_unregistered(pt_tape *t) { unregistered = t; }

pt_tape *pt_recording_tape(int64_t h, int64_t *status)
{
    pt_tape *t = pt_handle_tape(h);
    if (!t) {
        *status = PT_E_HANDLE;
        return NULL;
    }
    *status = pt_check_recording(t);
    return *status < 0 ? NULL : t;
}
int64_t pt_emit(pt_tape *t, int op, int64_t a, int64_t b, double v) { return emit(t, op, a, b, v, 0); }
int64_t pt_handle_of(const pt_tape *t, int64_t i) { return handle_of(t, i); }
pt_tape *pt_handle_tape(int64_t h) { return (h & PT_ID_MASK) ? handle_tape(h) : unregistered; }

#define PT_OP1(N, S, V, DA, DAA)                                              \
int64_t pt_rec_##N(int64_t ha)                                                \
{                                                                             \
    int64_t s;                                                                \
    pt_tape *t = recording_tape(ha, &s);                                      \
    if (!t)                                                                   \
        return s;                                                             \
    const int64_t ia = ha >> PT_ID_BITS;                                      \
    if (!IN_TAPE(t, ia))                                                      \
        return PT_E_SLOT;                                                     \
    const double a = t->val[ia];                                              \
    return handle_of(t, emit(t, PT_##N, ia, 0, (V), s));                      \
}
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
int64_t pt_rec_##N(int64_t ha, int64_t hb)                                    \
{                                                                             \
    int64_t s;                                                                \
    pt_tape *t = recording_tape(ha, &s);                                      \
    if (!t)                                                                   \
        return s;                                                             \
    if ((ha ^ hb) & PT_ID_MASK)                                               \
        return PT_E_TAPES;                                                    \
    const int64_t ia = ha >> PT_ID_BITS, ib = hb >> PT_ID_BITS;               \
    if (!IN_TAPE(t, ia) || !IN_TAPE(t, ib))                                   \
        return PT_E_SLOT;                                                     \
    const double a = t->val[ia], b = t->val[ib];                              \
    return handle_of(t, emit(t, PT_##N, ia, ib, (V), s));                     \
}                                                                             \
int64_t pt_rec_##N##_VC(int64_t ha, double b)                                 \
{                                                                             \
    int64_t s;                                                                \
    pt_tape *t = recording_tape(ha, &s);                                      \
    if (!t)                                                                   \
        return s;                                                             \
    const int64_t ia = ha >> PT_ID_BITS;                                      \
    if (!IN_TAPE(t, ia))                                                      \
        return PT_E_SLOT;                                                     \
    const int64_t k = add_const(t, b);                                        \
    if (k < 0)                                                                \
        return k;                                                             \
    const double a = t->val[ia];                                              \
    return handle_of(t, emit(t, PT_##N##_VC, ia, k, (V), s));                 \
}                                                                             \
int64_t pt_rec_##N##_CV(double a, int64_t hb)                                 \
{                                                                             \
    int64_t s;                                                                \
    pt_tape *t = recording_tape(hb, &s);                                      \
    if (!t)                                                                   \
        return s;                                                             \
    const int64_t ib = hb >> PT_ID_BITS;                                      \
    if (!IN_TAPE(t, ib))                                                      \
        return PT_E_SLOT;                                                     \
    const int64_t k = add_const(t, a);                                        \
    if (k < 0)                                                                \
        return k;                                                             \
    const double b = t->val[ib];                                              \
    return handle_of(t, emit(t, PT_##N##_CV, k, ib, (V), s));                 \
}
#include "ops.def"
#undef PT_OP1
#undef PT_OP2

/* the explicit path: any op of any tape, slots a and b, constant c */
int64_t pt_record(pt_tape *t, int op, int64_t a, int64_t b, double c)
{
    const int kind = pt_op_kind(op);
    if (kind < PT_KIND_UNARY || kind > PT_KIND_CV)
        return PT_E_OP;
    int64_t s = check_recording(t, 0);
    if (s < 0)
        return s;
    if (((kind == PT_KIND_UNARY || kind == PT_KIND_VV || kind == PT_KIND_VC) && !IN_TAPE(t, a)) ||
        ((kind == PT_KIND_VV || kind == PT_KIND_CV) && !IN_TAPE(t, b)))
        return PT_E_SLOT;
    double v;
    switch (kind) {
    case PT_KIND_UNARY:
        v = value1(op, t->val[a]);
        b = 0;
        break;
    case PT_KIND_VV:
        v = value2(op, t->val[a], t->val[b]);
        break;
    case PT_KIND_VC:
        if ((b = add_const(t, c)) < 0)
            return b;
        v = value2(op - 1, t->val[a], c);  /* NAME_VC follows NAME */
        break;
    default: /* CV */
        if ((a = add_const(t, c)) < 0)
            return a;
        v = value2(op - 2, c, t->val[b]);  /* NAME_CV follows NAME_VC */
        break;
    }
    return handle_of(t, emit(t, op, a, b, v, s));
}

int64_t pt_record_custom(pt_tape *t, int32_t fn, int64_t nargs, const int64_t *args, const double *consts,
                         double value)
{
    if (nargs < 1 || nargs > PT_CUSTOM_MAX_ARGS || fn < 0)
        return PT_E_SLOT;
    int64_t s = check_recording(t, 0);
    if (s < 0)
        return s;
    int32_t ops[PT_CUSTOM_MAX_ARGS];
    for (int64_t j = 0; j < nargs; ++j) {
        if (args[j] >= 0) {
            if (!IN_TAPE(t, args[j]) || t->op[args[j]] == PT_GUARD)
                return PT_E_SLOT;
            ops[j] = (int32_t)args[j];
        } else {
            const int64_t c = add_const(t, consts[j]);  /* a failed one leaves an unused constant: harmless */
            if (c < 0)
                return c;
            ops[j] = (int32_t)(-1 - c);
        }
    }
    if (s && !isfinite(value))  /* checked before the table grows: nothing half-written */
        return PT_E_NONFINITE;
    const int64_t k = pt_custom_append(t, nargs, ops);
    if (k < 0)
        return k;
    return handle_of(t, emit(t, PT_CUSTOM, k, fn, value, 0));
}

double pt_value_h(int64_t h)
{
    const pt_tape *t = handle_tape(h);
    const int64_t i = h >> PT_ID_BITS;
    return (t && IN_TAPE(t, i)) ? t->val[i] : NAN;
}

double pt_adjoint_h(int64_t h)
{
    const pt_tape *t = handle_tape(h);
    return t ? pt_adjoint(t, h >> PT_ID_BITS) : NAN;
}

double pt_tangent_h(int64_t h)
{
    const pt_tape *t = handle_tape(h);
    return t ? pt_tangent(t, h >> PT_ID_BITS) : NAN;
}

/* ---- per-tape buffers of the sweeps ----------------------------------- */

double *pt_buffer(double **buf, int64_t *cap, int64_t count, int zero)
{
    if (count > *cap || !*buf) {
        const int64_t c = count > 0 ? count : 1;
        double *p = zero ? calloc((size_t)c, sizeof *p) : malloc((size_t)c * sizeof *p);
        if (!p)
            return NULL;
        free(*buf);
        *buf = p;
        *cap = c;
    } else if (zero) {
        memset(*buf, 0, (size_t)count * sizeof **buf);
    }
    return *buf;
}

double *pt_tape_scratch(pt_tape *t, int64_t count)
{
    return pt_buffer(&t->scratch, &t->scratch_cap, count, 1);
}

/* ---- appending for tapes built in C (no mode, thread or consumed checks) */

int64_t pt_append(pt_tape *t, int op, int64_t a, int64_t b, double v)
{
    if (t->n == t->cap) {
        int s = grow_instructions(t);
        if (s)
            return s;
    }
    return emit(t, op, a, b, v, 0);
}

int64_t pt_append_const(pt_tape *t, double c) { return add_const(t, c); }

int64_t pt_append_const_at(pt_tape *t, double c) { return append_const(t, c); }

int64_t pt_append_leaf(pt_tape *t, double value)
{
    if (t->n == t->cap) {
        int s = grow_instructions(t);
        if (s)
            return s;
    }
    return record_leaf(t, value, NULL);
}

/* ---- inspection -------------------------------------------------------- */

int64_t pt_tape_len(const pt_tape *t) { return t->n; }
int64_t pt_tape_nleaves(const pt_tape *t) { return t->nleaf; }

void pt_tape_leaves(const pt_tape *t, int64_t *slots, uintptr_t *cells)
{
    for (int64_t k = 0; k < t->nleaf; ++k) {
        slots[k] = t->leaf_slot[k];
        cells[k] = (uintptr_t)t->leaf_grad[k];
    }
}
int64_t pt_tape_nconsts(const pt_tape *t) { return t->nconst; }
int pt_tape_consumed(const pt_tape *t) { return t->consumed; }
void pt_tape_consume(pt_tape *t) { t->consumed = 1; }
int64_t pt_tape_bad(const pt_tape *t) { return t->bad; }
int pt_tape_bad_sweep(const pt_tape *t) { return t->bad_sweep; }
int pt_anomaly_active(void) { return (pt_thread_mode & PT_MODE_ANOMALY) != 0; }
int pt_tape_is_owner(const pt_tape *t) { return t->owner_key == &thread_marker; }

/* glibc and musl: pthread_t is an integer the size of a pointer, equal to
 * Python's threading.get_ident() */
unsigned long pt_tape_owner(const pt_tape *t) { return (unsigned long)t->owner; }

/* bytes allocated (used = 0) or holding data (used = 1); the difference is
 * the spare capacity of amortised doubling, which the OS does not back with
 * memory until it is written */
size_t pt_tape_nbytes(const pt_tape *t, int used)
{
    const size_t per_instruction = sizeof *t->op + sizeof *t->a + sizeof *t->b + sizeof *t->val;
    const size_t per_leaf = sizeof *t->leaf_slot + sizeof *t->leaf_grad;
    const size_t plan = (t->nregs ? (size_t)t->n * 3 * sizeof *t->rr + (size_t)t->ncu_arg * sizeof *t->cu_reg : 0)
                        + (size_t)t->scratch_cap * sizeof(double);
    const size_t arrays = pt_array_nbytes(t, used);
    if (used)
        return arrays + sizeof *t + (size_t)t->n * per_instruction + (size_t)t->nconst * sizeof *t->consts
            + (size_t)t->nleaf * per_leaf + (size_t)(t->adj_n + t->tan_n) * sizeof(double) + plan
            + (size_t)t->ncu_arg * sizeof *t->cu_arg + (size_t)(t->ncu ? t->ncu + 1 : 0) * sizeof *t->cu_start;
    return arrays + sizeof *t + (size_t)t->cap * per_instruction + (size_t)t->ccap * sizeof *t->consts
        + (size_t)t->lcap * per_leaf + (size_t)(t->adj_cap + t->tan_cap) * sizeof(double) + plan
        + (size_t)t->cu_arg_cap * sizeof *t->cu_arg + (size_t)t->cu_cap * sizeof *t->cu_start;
}

int pt_tape_op_at(const pt_tape *t, int64_t i)
{
    return IN_TAPE(t, i) ? t->op[i] : PT_NOP;
}

double pt_value(const pt_tape *t, int64_t i)
{
    return IN_TAPE(t, i) ? t->val[i] : NAN;
}

/* Adjoints and tangents are read by the owner thread only: its backward()
 * runs without the GIL and may reallocate them meanwhile (nan: not yours) */
double pt_adjoint(const pt_tape *t, int64_t i)
{
    if (!pt_tape_is_owner(t))
        return NAN;
    return (i >= 0 && i < t->adj_n) ? t->adj[i] : 0.0;
}

int pt_set_adjoint(pt_tape *t, int64_t i, double g)
{
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (i < 0 || i >= t->adj_n)
        return PT_E_SLOT;
    t->adj[i] = g;
    return PT_OK;
}

int64_t pt_tape_copy(const pt_tape *t, int64_t start, int64_t stop, uint16_t *op,
                     int32_t *a, int32_t *b, double *val, double *adj)
{
    if (adj && !pt_tape_is_owner(t))
        return PT_E_THREAD;  /* see pt_adjoint */
    if (start < 0)
        start = 0;
    if (stop > t->n)
        stop = t->n;
    if (stop <= start)
        return 0;
    const size_t m = (size_t)(stop - start);
    if (op)
        memcpy(op, t->op + start, m * sizeof *op);
    if (a)
        memcpy(a, t->a + start, m * sizeof *a);
    if (b)
        memcpy(b, t->b + start, m * sizeof *b);
    if (val)
        memcpy(val, t->val + start, m * sizeof *val);
    if (adj)
        for (int64_t i = start; i < stop; ++i)
            adj[i - start] = pt_adjoint(t, i);
    return (int64_t)m;
}

double pt_tape_const(const pt_tape *t, int64_t k)
{
    return (k >= 0 && k < t->nconst) ? t->consts[k] : NAN;
}

int64_t pt_tape_copy_consts(const pt_tape *t, double *out)
{
    if (t->nconst)
        memcpy(out, t->consts, (size_t)t->nconst * sizeof *out);
    return t->nconst;
}

void pt_tape_op_counts(const pt_tape *t, int64_t *counts)
{
    for (int64_t i = 0; i < t->n; ++i)
        counts[t->op[i]]++;
}

/* one backward pass: a slot is reached if a reached instruction reads it */
int64_t pt_tape_reach(const pt_tape *t, int64_t out, uint8_t *mark)
{
    if (out < 0 || out >= t->n)
        return 0;
    memset(mark, 0, (size_t)(out + 1));
    mark[out] = 1;
    int64_t count = 0;
    for (int64_t i = out; i >= 0; --i) {
        if (!mark[i])
            continue;
        ++count;
        if (pt_reads_slot(t->op[i], 0, t->a[i]))
            mark[t->a[i]] = 1;
        if (pt_reads_slot(t->op[i], 1, t->b[i]))
            mark[t->b[i]] = 1;
        if (t->op[i] == PT_CUSTOM) {
            int64_t m;
            const int32_t *r = pt_custom_operands(t, i, 0, &m);
            for (int64_t j = 0; j < m; ++j)
                if (r[j] >= 0)
                    mark[r[j]] = 1;
        } else if (t->op[i] == PT_ARRAY) {
            const struct pt_arr *e = &t->ar[t->a[i]];
            for (int64_t j = 0; j < e->nargs; ++j)
                if (t->ar_arg[e->arg + j] >= 0)
                    mark[t->ar_arg[e->arg + j]] = 1;
        }
    }
    return count;
}

/* ---- guards (trace) ---------------------------------------------------- */

int64_t pt_guard(pt_tape *t, int64_t a, int64_t b, double c, int cmp, int outcome)
{
    int64_t s = check_recording(t, 1);
    if (s < 0)
        return s;
    if (!IN_TAPE(t, a) || (b >= 0 && !IN_TAPE(t, b)) || cmp < PT_LT || cmp > PT_NE)
        return PT_E_SLOT;
    if (b < 0) {
        const int64_t k = add_const(t, c);
        if (k < 0)
            return k;
        b = -1 - k;
    }
    return emit(t, PT_GUARD, a, b, (double)(2 * cmp + (outcome != 0)), 0);
}
