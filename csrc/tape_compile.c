/* tape_compile.c -- the trace-time optimisation pass (pytape.trace) and the
 * register plan of value-only replays.
 *
 * pt_tape_compile copies a recorded tape into a new one that computes the
 * same outputs from the same inputs with less:
 *
 *   constant folding   a slot that depends on no input (a leaf that is not
 *                      an input, and everything computed only from such
 *                      leaves) becomes a constant: its value at trace time.
 *                      An instruction with one constant operand becomes its
 *                      *_VC / *_CV form; a guard comparing constants goes.
 *   dead code          only instructions that reach an output or a guard
 *                      that depends on an input are kept.
 *   layout             the inputs' LEAF instructions come first, slot k for
 *                      input k, then the kept instructions in their order.
 *
 * pt_tape_plan_registers then maps slots to registers (tape.h): a linear scan
 * that hands a register back once its slot has been read for the last time.
 * It needs the compiled layout (leaves first), and inputs keep distinct
 * registers, as replays load them all before the loop.
 *
 * pt_replay_plan is the same analysis for tapes with array instructions,
 * which are not copied but replayed in place (sweep_forward.c): the list of
 * the instructions a replay recomputes.
 *
 * Custom instructions (custom.c) take part like the others: one whose
 * operands depend on no input folds into its value at trace time (as
 * sin(2.0) would; its rule is not called again), the operands of one that is
 * kept are mapped one by one (an operand that folded becomes a constant),
 * and the register plan maps their slots too (cu_reg).
 */
#include <stdlib.h>
#include "array.h"

/* the comparison with its sides swapped: a < b  <=>  b > a */
static int mirror(int cmp)
{
    switch (cmp) {
    case PT_LT: return PT_GT;
    case PT_LE: return PT_GE;
    case PT_GT: return PT_LT;
    case PT_GE: return PT_LE;
    default: return cmp;  /* EQ, NE */
    }
}

/* the slots instruction i reads: *n of them, in *wide (array operands) or
 * *narrow (custom operands; -1 - c for constants) or pair[0 .. n) */
static void operands_of(const pt_tape *t, int64_t i, int64_t *n, const int64_t **wide, const int32_t **narrow,
                        int64_t pair[2])
{
    *wide = NULL;
    *narrow = NULL;
    *n = 0;
    const int op = t->op[i];
    if (op == PT_ARRAY) {
        const struct pt_arr *e = &t->ar[t->a[i]];
        *wide = t->ar_arg + e->arg;
        *n = e->nargs;
    } else if (op == PT_CUSTOM) {
        *narrow = pt_custom_operands(t, i, 0, n);
    } else if (op != PT_LEAF && op != PT_NOP) {
        if (pt_reads_slot(op, 0, t->a[i]))
            pair[(*n)++] = t->a[i];
        if (pt_reads_slot(op, 1, t->b[i]))
            pair[(*n)++] = t->b[i];
    }
}

static int64_t operand_k(int64_t k, const int64_t *wide, const int32_t *narrow, const int64_t pair[2])
{
    return wide ? wide[k] : narrow ? narrow[k] : pair[k];
}

/* which slots vary with the inputs (var: set by the caller for the inputs,
 * zero elsewhere) and which of those reach a root or a guard that varies
 * (live, zeroed: the operands they read, back from there) */
static void vary_and_reach(const pt_tape *t, int64_t nroot, const int64_t *roots, uint8_t *var, uint8_t *live)
{
    int64_t m, pair[2];
    const int64_t *wide;
    const int32_t *narrow;
    for (int64_t i = 0; i < t->n; ++i) {
        operands_of(t, i, &m, &wide, &narrow, pair);
        for (int64_t k = 0; k < m; ++k) {
            const int64_t s = operand_k(k, wide, narrow, pair);
            var[i] |= s >= 0 && var[s];
        }
    }
    for (int64_t j = 0; j < nroot; ++j)
        live[roots[j]] = var[roots[j]];
    for (int64_t i = t->n - 1; i >= 0; --i) {
        live[i] |= t->op[i] == PT_GUARD && var[i];
        if (!live[i])
            continue;
        operands_of(t, i, &m, &wide, &narrow, pair);
        for (int64_t k = 0; k < m; ++k) {
            const int64_t s = operand_k(k, wide, narrow, pair);
            if (s >= 0)
                live[s] |= var[s];
        }
    }
}

/* the body of pt_tape_compile, with its scratch arrays allocated */
static int compile(const pt_tape *s, int64_t nin, const int64_t *ins, int64_t nroot,
                   const int64_t *roots, int64_t *map, uint8_t *var, uint8_t *live, pt_tape *d)
{
    const int64_t n = s->n;
    const uint16_t *op = s->op;
    const int32_t *A = s->a, *B = s->b;

    /* which slots vary with the inputs, and which of those are needed */
    for (int64_t k = 0; k < nin; ++k) {
        if (ins[k] < 0 || ins[k] >= n || op[ins[k]] != PT_LEAF || var[ins[k]])
            return PT_E_SLOT;  /* not a leaf, or an input listed twice */
        var[ins[k]] = 1;
    }
    for (int64_t j = 0; j < nroot; ++j)
        if (roots[j] < 0 || roots[j] >= n)
            return PT_E_SLOT;
    vary_and_reach(s, nroot, roots, var, live);

    /* the new tape: inputs first, then the live instructions */
    for (int64_t i = 0; i < n; ++i)
        map[i] = var[i] ? -1 : -2;  /* dropped; -2: a constant */
    for (int64_t k = 0; k < nin; ++k) {
        const int64_t j = pt_append_leaf(d, s->val[ins[k]]);
        if (j < 0)
            return (int)j;
        map[ins[k]] = j;
    }
    for (int64_t i = 0; i < n; ++i) {
        if (!live[i] || op[i] == PT_LEAF)
            continue;
        const int kind = pt_op_kind(op[i]);
        int code = op[i];
        int64_t a = A[i], b = B[i], c;
        double v = s->val[i];
        switch (kind) {
        case PT_KIND_UNARY:
            a = map[a];
            break;
        case PT_KIND_VV:
            if (var[a] && var[b]) {
                a = map[a];
                b = map[b];
            } else if (var[a]) {  /* b folds into a constant: the VC form */
                code += 1;
                if ((c = pt_append_const(d, s->val[b])) < 0)
                    return (int)c;
                a = map[a];
                b = c;
            } else {              /* a folds: the CV form */
                code += 2;
                if ((c = pt_append_const(d, s->val[a])) < 0)
                    return (int)c;
                a = c;
                b = map[b];
            }
            break;
        case PT_KIND_VC:
            if ((c = pt_append_const(d, s->consts[b])) < 0)
                return (int)c;
            a = map[a];
            b = c;
            break;
        case PT_KIND_CV:
            if ((c = pt_append_const(d, s->consts[a])) < 0)
                return (int)c;
            a = c;
            b = map[b];
            break;
        case PT_KIND_CUSTOM: {  /* its operands mapped; b (the primitive) stays */
            int32_t ops[PT_CUSTOM_MAX_ARGS];
            int64_t m;
            const int32_t *r = pt_custom_operands(s, i, 0, &m);
            for (int64_t j = 0; j < m; ++j) {
                if (r[j] >= 0 && var[r[j]]) {
                    ops[j] = (int32_t)map[r[j]];
                    continue;
                }
                if ((c = pt_append_const(d, r[j] >= 0 ? s->val[r[j]] : s->consts[-1 - r[j]])) < 0)
                    return (int)c;
                ops[j] = (int32_t)(-1 - c);
            }
            if ((a = pt_custom_append(d, m, ops)) < 0)
                return (int)a;
        } break;
        default: { /* GUARD: a the left slot, b the right slot or -1 - constant */
            const int cmp = (int)v / 2, outcome = (int)v & 1;
            const int b_var = b >= 0 && var[b];
            const double rhs = b >= 0 ? s->val[b] : s->consts[-1 - b];
            if (!var[a]) {  /* only the right side varies: swap the sides */
                if ((c = pt_append_const(d, s->val[a])) < 0)
                    return (int)c;
                a = map[b];
                b = -1 - c;
                v = (double)(2 * mirror(cmp) + outcome);
            } else if (b_var) {
                a = map[a];
                b = map[b];
            } else {
                if ((c = pt_append_const(d, rhs)) < 0)
                    return (int)c;
                a = map[a];
                b = -1 - c;
            }
        } break;
        }
        const int64_t j = pt_append(d, code, a, b, v);
        if (j < 0)
            return (int)j;
        map[i] = j;
    }
    return PT_OK;
}

int pt_tape_compile(const pt_tape *src, int64_t nin, const int64_t *ins, int64_t nroot,
                    const int64_t *roots, int64_t *map, pt_tape **out)
{
    *out = NULL;
    if (pt_has_arrays(src))
        return PT_E_ARRAY;
    const int64_t n = src->n;
    uint8_t *var = calloc((size_t)n + 1, 1), *live = calloc((size_t)n + 1, 1);
    pt_tape *d = pt_tape_new();
    int st = (var && live && d) ? compile(src, nin, ins, nroot, roots, map, var, live, d) : PT_E_NOMEM;
    free(var);
    free(live);
    if (st) {
        pt_tape_free(d);
        return st;
    }
    *out = d;
    return PT_OK;
}

/* ---- the register plan ------------------------------------------------- */

static int plan(pt_tape *t, int64_t nout, const int64_t *outs, int64_t *last, int32_t *reg,
                int32_t *freelist)
{
    const int64_t n = t->n;
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;

    /* leaves first (the layout of compiled tapes): replays load every input
     * into its register before the loop, so inputs need distinct registers */
    for (int64_t k = 0; k < t->nleaf; ++k)
        if (t->leaf_slot[k] != k)
            return PT_E_OP;

    /* the last instruction reading each slot; outputs are read "at n" */
    for (int64_t i = 0; i < n; ++i)
        last[i] = -1;
    for (int64_t i = 0; i < n; ++i) {
        if (pt_reads_slot(op[i], 0, A[i]))
            last[A[i]] = i;
        if (pt_reads_slot(op[i], 1, B[i]))
            last[B[i]] = i;
        if (op[i] == PT_CUSTOM) {
            int64_t m;
            const int32_t *r = pt_custom_operands(t, i, 0, &m);
            for (int64_t j = 0; j < m; ++j)
                if (r[j] >= 0)
                    last[r[j]] = i;
        }
    }
    for (int64_t j = 0; j < nout; ++j) {
        if (outs[j] < 0 || outs[j] >= n)
            return PT_E_SLOT;
        last[outs[j]] = n;
    }

    int64_t nfree = 0, nregs = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int kind = pt_op_kind(op[i]);
        const int ra = pt_reads_slot(op[i], 0, A[i]), rb = pt_reads_slot(op[i], 1, B[i]);
        t->ra[i] = ra ? reg[A[i]] : A[i];  /* constant and leaf indices stay */
        t->rb[i] = rb ? reg[B[i]] : B[i];
        /* operands read for the last time give their registers back first:
         * the op reads them before it writes its result */
        if (ra && last[A[i]] == i)
            freelist[nfree++] = reg[A[i]];
        if (rb && last[B[i]] == i && !(ra && A[i] == B[i]))
            freelist[nfree++] = reg[B[i]];
        if (kind == PT_KIND_CUSTOM) {  /* its operands' registers; each slot given back once */
            int64_t m;
            const int32_t *r = pt_custom_operands(t, i, 0, &m);
            int32_t *rr = t->cu_reg + t->cu_start[A[i]];
            for (int64_t j = 0; j < m; ++j) {
                rr[j] = r[j] >= 0 ? reg[r[j]] : r[j];  /* constants stay */
                int first = r[j] >= 0 && last[r[j]] == i;
                for (int64_t j2 = 0; j2 < j && first; ++j2)
                    first = r[j2] != r[j];
                if (first)
                    freelist[nfree++] = reg[r[j]];
            }
        }
        if (kind == PT_KIND_GUARD) {
            t->rr[i] = reg[i] = -1;
            continue;
        }
        const int32_t r = nfree ? freelist[--nfree] : (int32_t)nregs++;
        t->rr[i] = reg[i] = r;
        if (last[i] < 0 && kind != PT_KIND_LEAF)  /* never read: free again at once */
            freelist[nfree++] = r;
    }
    t->nregs = nregs > 0 ? nregs : 1;
    return PT_OK;
}

int pt_tape_plan_registers(pt_tape *t, int64_t nout, const int64_t *outs)
{
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    const size_t n = (size_t)t->n + 1;
    int64_t *last = malloc(n * sizeof *last);
    int32_t *reg = malloc(n * sizeof *reg), *freelist = malloc(n * sizeof *freelist);
    int32_t *ra = malloc(n * sizeof *ra), *rb = malloc(n * sizeof *rb), *rr = malloc(n * sizeof *rr);
    int32_t *cr = malloc(((size_t)t->ncu_arg + 1) * sizeof *cr);
    int st = PT_E_NOMEM;
    if (last && reg && freelist && ra && rb && rr && cr) {
        free(t->ra);
        free(t->rb);
        free(t->rr);
        free(t->cu_reg);
        t->ra = ra;
        t->rb = rb;
        t->rr = rr;
        t->cu_reg = cr;
        ra = rb = rr = cr = NULL;
        st = plan(t, nout, outs, last, reg, freelist);
        if (st)
            t->nregs = 0;
    }
    free(last);
    free(reg);
    free(freelist);
    free(ra);
    free(rb);
    free(rr);
    free(cr);
    return st;
}

int64_t pt_tape_nregs(const pt_tape *t) { return t->nregs; }

/* a replay's input: a LEAF, or an array LEAF or CONST (a data argument) */
static int replay_input(const pt_tape *t, int64_t s)
{
    return t->op[s] == PT_LEAF || (t->op[s] == PT_ARRAY && (t->b[s] == PT_A_LEAF || t->b[s] == PT_A_CONST));
}

/* the slots between inputs ins and roots (vary_and_reach's live set) into
 * out, in tape order, without those that `skip` names (replay inputs, or
 * guards): their count, or PT_E_SLOT for a slot out of range, or one of ins
 * that `input_ok` refuses */
static int64_t live_between(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nroot, const int64_t *roots,
                            int64_t *out, int (*input_ok)(const pt_tape *, int64_t),
                            int (*skip)(const pt_tape *, int64_t))
{
    const int64_t n = t->n;
    for (int64_t k = 0; k < nin; ++k)
        if (ins[k] < 0 || ins[k] >= n || !input_ok(t, ins[k]))
            return PT_E_SLOT;
    for (int64_t j = 0; j < nroot; ++j)
        if (roots[j] < 0 || roots[j] >= n)
            return PT_E_SLOT;
    uint8_t *var = calloc((size_t)n + 1, 2);
    if (!var)
        return PT_E_NOMEM;
    uint8_t *live = var + n + 1;
    for (int64_t k = 0; k < nin; ++k)
        var[ins[k]] = 1;
    vary_and_reach(t, nroot, roots, var, live);
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i)
        if (live[i] && !skip(t, i))
            out[count++] = i;
    free(var);
    return count;
}

static int any_slot(const pt_tape *t, int64_t s)
{
    (void)t;
    (void)s;
    return 1;
}

static int is_guard(const pt_tape *t, int64_t s)
{
    return t->op[s] == PT_GUARD;
}

int64_t pt_replay_plan(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nroot, const int64_t *roots,
                       int64_t *plan)
{
    return live_between(t, nin, ins, nroot, roots, plan, replay_input, replay_input);
}

int64_t pt_tape_paths(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nroot, const int64_t *roots,
                      int64_t *out)
{
    return live_between(t, nin, ins, nroot, roots, out, any_slot, is_guard);
}
