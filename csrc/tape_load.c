/* tape_load.c -- a tape from arrays (pytape's serialised compiled functions).
 *
 * The arrays may come from a file that was truncated, corrupted or crafted,
 * so every instruction is checked against the invariants of tape.h before
 * anything is built: a known opcode, operands that are earlier slots (never
 * a guard) or constant indices in range, leaves numbered in order, guard
 * codes that name a comparison, custom instructions numbered in order with
 * 1 to PT_CUSTOM_MAX_ARGS operands each, every one an earlier slot or a
 * constant index in range.  A tape that passes can be swept without reading
 * outside its arrays. */
#include "array.h"

static int slot_ok(const uint16_t *op, int64_t s, int64_t i)
{
    return s >= 0 && s < i && op[s] != PT_GUARD;
}

/* the custom table as given: the operands of custom instruction number k
 * (of those seen so far), read from *next on; false if they break the rules */
struct table {
    int64_t ncustom, nargs, k, next;
    const int32_t *counts, *args;
};

static int custom_ok(const uint16_t *op, int64_t i, int64_t x, int64_t nconst, struct table *c)
{
    if (x != c->k || c->k >= c->ncustom)
        return 0;
    const int64_t m = c->counts[c->k++];
    if (m < 1 || m > PT_CUSTOM_MAX_ARGS || m > c->nargs - c->next)
        return 0;
    for (int64_t j = 0; j < m; ++j) {
        const int64_t r = c->args[c->next++];
        if (!(r >= 0 ? slot_ok(op, r, i) : -1 - r < nconst))
            return 0;
    }
    return 1;
}

/* operand `which` (0: a, 1: b) of instruction i, of value x, as the op table
 * says it must be (pt_operand) */
static int operand_ok(const uint16_t *op, int64_t i, int which, int64_t x, int64_t nconst, int64_t *nleaf,
                      struct table *c)
{
    if (pt_reads_slot(op[i], which, x))
        return slot_ok(op, x, i);
    switch (pt_operand(op[i], which)) {
    case PT_OPERAND_NONE:  return x == 0;
    case PT_OPERAND_CONST: return x >= 0 && x < nconst;
    case PT_OPERAND_LEAF:  return x == (*nleaf)++;
    case PT_OPERAND_CUSTOM: return custom_ok(op, i, x, nconst, c);
    case PT_OPERAND_PRIMITIVE: return x >= 0;
    case PT_OPERAND_SLOT_OR_CONST: return -1 - x < nconst;  /* a GUARD's b < 0: constant -1 - b */
    default:               return 0;  /* an operand kind loading does not know */
    }
}

/* a guard's value: 2 * cmp + outcome */
static int guard_code_ok(double code)
{
    return code >= 0.0 && code <= 2.0 * PT_NE + 1.0 && code == (double)(int)code;
}

static int check(int64_t n, const uint16_t *op, const int32_t *a, const int32_t *b,
                 const double *val, int64_t nconst, struct table *c, const struct pt_saved_arrays *arr)
{
    int64_t nleaf = 0, k = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (op[i] == PT_ARRAY) {  /* entry k of the array table, in order, of the kind it says */
            if (!arr || a[i] != k || k >= arr->nar || b[i] != arr->facts[k * PT_SAVED_N + PT_SAVED_KIND])
                return PT_E_OP;
            ++k;
            continue;
        }
        const int ok = pt_op_kind(op[i]) != PT_KIND_NONE  /* not NOP or an unknown opcode */
                       && operand_ok(op, i, 0, a[i], nconst, &nleaf, c)
                       && operand_ok(op, i, 1, b[i], nconst, &nleaf, c)
                       && (op[i] != PT_GUARD || guard_code_ok(val[i]));
        if (!ok)
            return PT_E_OP;
    }
    /* every entry used */
    return c->k == c->ncustom && c->next == c->nargs && (!arr || k == arr->nar) ? PT_OK : PT_E_OP;
}

/* array entry k (at the pools' offsets in at[]: dims, args, pars, data) appended
 * through the recording checks (array.c: pt_arr_load), which recompute its value */
static int load_array(pt_tape *t, const struct pt_saved_arrays *arr, int64_t k, int64_t at[4])
{
    const int64_t *f = arr->facts + k * PT_SAVED_N;
    const int64_t ndim = f[PT_SAVED_NDIM], nargs = f[PT_SAVED_NARGS], npar = f[PT_SAVED_NPAR];
    if (ndim < 0 || nargs < 0 || npar < 0 || ndim > arr->ndims - at[0] || nargs > arr->nargs - at[1] ||
        npar > arr->npars - at[2])
        return PT_E_OP;
    int64_t st = pt_check_recording(t), used = 0;
    if (st < 0)
        return (int)st;
    st = pt_arr_load(t, f, arr->dims + at[0], arr->args + at[1], arr->pars + at[2], arr->data + at[3],
                     arr->ndata - at[3], &used);
    if (st < 0)
        return st == PT_E_NOMEM ? PT_E_NOMEM : PT_E_OP;
    at[0] += ndim;
    at[1] += nargs;
    at[2] += npar;
    at[3] += used;
    return PT_OK;
}

int pt_tape_load(int64_t n, const uint16_t *op, const int32_t *a, const int32_t *b, const double *val,
                 int64_t nconst, const double *consts, int64_t ncustom, const int32_t *counts,
                 int64_t nargs, const int32_t *args, const struct pt_saved_arrays *arrays, pt_tape **out)
{
    *out = NULL;
    if (n < 0 || nconst < 0 || n > INT32_MAX || nconst > INT32_MAX || ncustom < 0 || nargs < 0)
        return PT_E_OP;
    if (arrays && (arrays->nar < 0 || arrays->ndims < 0 || arrays->nargs < 0 || arrays->npars < 0 ||
                   arrays->ndata < 0))
        return PT_E_OP;
    struct table table = {ncustom, nargs, 0, 0, counts, args};
    int st = check(n, op, a, b, val, nconst, &table, arrays);
    if (st)
        return st;
    pt_tape *t = pt_tape_new();
    if (!t)
        return PT_E_NOMEM;
    t->keep_values = 1;  /* replayed in place: nothing recycled */
    const int mode = pt_thread_mode;  /* array entries are recorded: not refused under no_grad */
    pt_thread_mode = 0;
    int64_t at[4] = {0, 0, 0, 0}, k = 0;
    for (int64_t k = 0; k < nconst && !st; ++k)
        if (pt_append_const_at(t, consts[k]) < 0)  /* indices as given */
            st = PT_E_NOMEM;
    for (int64_t k = 0, next = 0; k < ncustom && !st; next += counts[k++])
        if (pt_custom_append(t, counts[k], args + next) < 0)
            st = PT_E_NOMEM;
    for (int64_t i = 0; i < n && !st; ++i) {
        if (op[i] == PT_ARRAY) {
            st = load_array(t, arrays, k++, at);
            continue;
        }
        const int64_t j = op[i] == PT_LEAF ? pt_append_leaf(t, val[i]) : pt_append(t, op[i], a[i], b[i], val[i]);
        if (j < 0)
            st = (int)j;
    }
    pt_thread_mode = mode;
    if (!st && arrays && (at[0] != arrays->ndims || at[1] != arrays->nargs || at[2] != arrays->npars ||
                          at[3] != arrays->ndata))
        st = PT_E_OP;  /* pools longer than their entries */
    if (st) {
        pt_tape_free(t);
        return st;
    }
    *out = t;
    return PT_OK;
}
