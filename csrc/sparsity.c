/* sparsity.c -- which entries of a Jacobian or a Hessian can be nonzero,
 * found from the tape alone (index sets: no value is read), and the greedy
 * graph colourings that pack the nonzero columns into few sweeps
 * (pytape/sparse.py runs the sweeps and reads the entries back).
 *
 * Structure from ops.def: a derivative column written "0.0" is zero whatever
 * the operands; any other column may be nonzero.  So a `where`, `maximum` or
 * `relu` counts both branches (their columns depend on values, not "0.0"),
 * and `floor` or a comparison passes no dependence at all.  A custom
 * primitive may depend on every operand, to second order on every pair.
 *
 * Jacobian pattern: row j is the set of inputs that output j reaches through
 * nonzero columns: one depth-first search of the tape per output, each slot
 * visited once per output (a stamp per slot, never cleared).  The cost is
 * the sum of the outputs' cones: a constraint on three variables costs its
 * own few instructions, however long the tape.
 *
 * Hessian pattern (as the forward-reverse index domains of Walther, 2008):
 * an instruction the output reaches ("live", reverse reachability) that is
 * nonlinear in operands u, w (a second-derivative column that is not "0.0")
 * adds X(u) x X(w) to the pattern, X(u) the inputs u depends on.  X is
 * computed forward, only for the slots those products need, as sorted index
 * sets in one pool; a union equal to one of its operands shares that
 * operand's set instead of copying it, and a product of two sets already
 * added is not added again, so a long chain of operations on the same few
 * inputs costs one set, not one per instruction.
 *
 * Both answer pairs (row, column) in malloc'd arrays (struct pt_pattern,
 * freed by pt_pattern_free), possibly repeated: Python sums them into a
 * scipy.sparse matrix.  Index sets and pairs beyond PT_SPARSITY_LIMIT
 * entries answer PT_E_DENSE: such a derivative is dense, a dense sweep is
 * the way to it. */
#include <stdlib.h>
#include <string.h>
#include "tape.h"

/* which derivative columns of an opcode may be nonzero */
enum { NZ_A = 1, NZ_B = 2, NZ_AA = 4, NZ_AB = 8, NZ_BB = 16 };

static const char *const column_text[PT_NUM_OPS][5] = {
    {"0.0", "0.0", "0.0", "0.0", "0.0"},  /* NOP */
    {"0.0", "0.0", "0.0", "0.0", "0.0"},  /* LEAF: an input, or a value without operands */
    {"0.0", "0.0", "0.0", "0.0", "0.0"},  /* GUARD: a comparison, not a value */
#define PT_OP1(N, S, V, DA, DAA) {#DA, "0.0", #DAA, "0.0", "0.0"},
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB) \
    {#DA, #DB, #DAA, #DAB, #DBB}, {#DA, #DB, #DAA, #DAB, #DBB}, {#DA, #DB, #DAA, #DAB, #DBB},
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    {"", "", "", "", ""},  /* CUSTOM: its operands in the custom table, all of them */
    {"", "", "", "", ""},  /* ARRAY: refused (PT_E_ARRAY) */
};

static void structure_table(unsigned char *st)
{
    for (int op = 0; op < PT_NUM_OPS; ++op) {
        st[op] = 0;
        for (int k = 0; k < 5; ++k)
            if (strcmp(column_text[op][k], "0.0") != 0)
                st[op] |= (unsigned char)(1u << k);
    }
}

/* the slots through which instruction i's value depends on its operands
 * (first derivatives not "0.0"), into o (room for PT_CUSTOM_MAX_ARGS); their
 * number */
static int64_t first_operands(const pt_tape *t, const unsigned char *st, int64_t i, int32_t *o)
{
    const int op = t->op[i];
    int64_t k = 0;
    if (op == PT_CUSTOM) {
        int64_t m;
        const int32_t *r = pt_custom_operands(t, i, 0, &m);
        for (int64_t j = 0; j < m; ++j)
            if (r[j] >= 0)
                o[k++] = r[j];
        return k;
    }
    /* a product with the constant 0 (a zero of a matrix in numpy code recorded
     * element by element) depends on nothing: its derivative is exactly 0 */
    if ((op == PT_MUL_VC && t->consts[t->b[i]] == 0.0) || (op == PT_MUL_CV && t->consts[t->a[i]] == 0.0))
        return 0;
    if ((st[op] & NZ_A) && pt_reads_slot(op, 0, t->a[i]))
        o[k++] = t->a[i];
    if ((st[op] & NZ_B) && pt_reads_slot(op, 1, t->b[i]))
        o[k++] = t->b[i];
    return k;
}

/* ---- growable int32 arrays --------------------------------------------- */

struct ints {
    int32_t *p;
    int64_t n, cap;
};

/* room for `more` entries; PT_E_DENSE past the limit, PT_E_NOMEM */
static int ints_reserve(struct ints *v, int64_t more)
{
    if (v->n + more <= v->cap)
        return PT_OK;
    if (v->n + more > PT_SPARSITY_LIMIT)
        return PT_E_DENSE;
    int64_t cap = v->cap ? v->cap : 1024;
    while (cap < v->n + more)
        cap *= 2;
    if (cap > PT_SPARSITY_LIMIT)
        cap = PT_SPARSITY_LIMIT;
    return pt_grow((void **)&v->p, cap, sizeof(int32_t)) ? PT_E_NOMEM : (v->cap = cap, PT_OK);
}

static void pattern_clear(pt_pattern *res)
{
    res->nnz = 0;
    res->row = res->col = NULL;
}

void pt_pattern_free(pt_pattern *res)
{
    free(res->row);
    free(res->col);
    pattern_clear(res);
}

/* the pairs (r[k], c[k]) into res, which then owns them */
static int pattern_take(pt_pattern *res, struct ints *r, struct ints *c)
{
    res->nnz = r->n;
    res->row = r->p;
    res->col = c->p;
    r->p = c->p = NULL;
    return PT_OK;
}

/* column of each input slot (-1: not an input), PT_E_SLOT for a slot outside
 * the tape; negative entries of ins are inputs f did not use.  Fills the
 * structure table too: what both patterns start from */
static int32_t *input_columns(const pt_tape *t, int64_t nin, const int64_t *ins, unsigned char *structure,
                              int *status)
{
    structure_table(structure);
    int32_t *col = malloc((size_t)(t->n > 0 ? t->n : 1) * sizeof(int32_t));
    if (!col) {
        *status = PT_E_NOMEM;
        return NULL;
    }
    for (int64_t i = 0; i < t->n; ++i)
        col[i] = -1;
    for (int64_t k = 0; k < nin; ++k) {
        if (ins[k] >= t->n || k > INT32_MAX) {
            free(col);
            *status = PT_E_SLOT;
            return NULL;
        }
        if (ins[k] >= 0)
            col[ins[k]] = (int32_t)k;
    }
    *status = PT_OK;
    return col;
}

/* ---- the Jacobian's pattern -------------------------------------------- */

int pt_jacobian_pattern(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t nout, const int64_t *outs,
                        pt_pattern *res)
{
    pattern_clear(res);
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    for (int64_t j = 0; j < nout; ++j)
        if (outs[j] >= t->n || j >= INT32_MAX)
            return PT_E_SLOT;
    int st = PT_OK;
    unsigned char structure[PT_NUM_OPS];
    int32_t *col = input_columns(t, nin, ins, structure, &st);
    if (!col)
        return st;
    const size_t n = (size_t)(t->n > 0 ? t->n : 1);
    int32_t *stamp = calloc(n, sizeof(int32_t));
    int32_t *stack = malloc(n * sizeof(int32_t));
    struct ints r = {0}, c = {0};
    int32_t o[PT_CUSTOM_MAX_ARGS];
    if (!stamp || !stack)
        st = PT_E_NOMEM;
    for (int64_t j = 0; j < nout && st == PT_OK; ++j) {
        if (outs[j] < 0)  /* a constant output: an empty row */
            continue;
        int64_t top = 0;
        stack[top++] = (int32_t)outs[j];
        stamp[outs[j]] = (int32_t)(j + 1);
        while (top > 0 && st == PT_OK) {
            const int64_t i = stack[--top];
            if (col[i] >= 0) {  /* an input: no operands */
                if (!(st = ints_reserve(&r, 1)) && !(st = ints_reserve(&c, 1))) {
                    r.p[r.n++] = (int32_t)j;
                    c.p[c.n++] = col[i];
                }
                continue;
            }
            const int64_t m = first_operands(t, structure, i, o);
            for (int64_t k = 0; k < m; ++k)
                if (stamp[o[k]] != j + 1) {
                    stamp[o[k]] = (int32_t)(j + 1);
                    stack[top++] = o[k];
                }
        }
    }
    free(col);
    free(stamp);
    free(stack);
    if (st == PT_OK)
        return pattern_take(res, &r, &c);
    free(r.p);
    free(c.p);
    return st;
}

/* ---- the Hessian's pattern --------------------------------------------- */

/* index sets: set of slot i at pool[off[i] .. off[i] + len[i]), sorted */
struct sets {
    struct ints pool;
    int64_t *off;
    int32_t *len;
};

/* X(i) = the union of its operands' sets; an operand's own set when the
 * union equals it (no copy) */
static int set_union(struct sets *s, int64_t i, const int32_t *o, int64_t m)
{
    int64_t best = -1;  /* the largest operand set */
    for (int64_t k = 0; k < m; ++k)
        if (best < 0 || s->len[o[k]] > s->len[o[best]])
            best = k;
    s->off[i] = 0;
    s->len[i] = 0;
    if (best < 0)
        return PT_OK;
    s->off[i] = s->off[o[best]];
    s->len[i] = s->len[o[best]];
    for (int64_t k = 0; k < m; ++k) {
        const int64_t b = o[k];
        if (s->len[b] == 0 || s->off[b] == s->off[i])
            continue;
        /* merge X(i) and X(b) at the pool's end (offsets: the pool may move) */
        const int64_t na = s->len[i], nb = s->len[b], start = s->pool.n;
        int st = ints_reserve(&s->pool, na + nb);
        if (st)
            return st;
        const int32_t *pa = s->pool.p + s->off[i], *pb = s->pool.p + s->off[b];
        int32_t *out = s->pool.p + start;
        int64_t x = 0, y = 0, z = 0;
        while (x < na && y < nb) {
            const int32_t u = pa[x], w = pb[y];
            out[z++] = u <= w ? u : w;
            x += u <= w;
            y += w <= u;
        }
        while (x < na)
            out[z++] = pa[x++];
        while (y < nb)
            out[z++] = pb[y++];
        if (z == na)       /* X(b) within X(i) */
            continue;
        if (z == nb) {     /* X(i) within X(b) */
            s->off[i] = s->off[b];
            s->len[i] = (int32_t)nb;
            continue;
        }
        s->off[i] = start;
        s->len[i] = (int32_t)z;
        s->pool.n = start + z;
    }
    return PT_OK;
}

/* products X(u) x X(w) already added, by the sets' offsets (a set is one
 * region of the pool, shared by every slot that has it): open addressing */
struct seen {
    int64_t *key;  /* 2 per entry; -1: empty */
    int64_t cap, n;
};

static uint64_t mix(int64_t u, int64_t w)
{
    uint64_t h = (uint64_t)u * 0x9E3779B97F4A7C15ull ^ ((uint64_t)w + 0x632BE59BD9B4E019ull);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

/* 1 if the pair is new (and now seen), 0 if seen, or PT_E_NOMEM */
static int seen_add(struct seen *s, int64_t u, int64_t w)
{
    if (2 * (s->n + 1) > s->cap) {
        const int64_t cap = s->cap ? 2 * s->cap : 1024;
        int64_t *key = malloc((size_t)cap * 2 * sizeof(int64_t));
        if (!key)
            return PT_E_NOMEM;
        for (int64_t k = 0; k < 2 * cap; ++k)
            key[k] = -1;
        for (int64_t k = 0; k < s->cap; ++k) {
            if (s->key[2 * k] < 0)
                continue;
            uint64_t h = mix(s->key[2 * k], s->key[2 * k + 1]) & (uint64_t)(cap - 1);
            while (key[2 * h] >= 0)
                h = (h + 1) & (uint64_t)(cap - 1);
            key[2 * h] = s->key[2 * k];
            key[2 * h + 1] = s->key[2 * k + 1];
        }
        free(s->key);
        s->key = key;
        s->cap = cap;
    }
    uint64_t h = mix(u, w) & (uint64_t)(s->cap - 1);
    while (s->key[2 * h] >= 0) {
        if (s->key[2 * h] == u && s->key[2 * h + 1] == w)
            return 0;
        h = (h + 1) & (uint64_t)(s->cap - 1);
    }
    s->key[2 * h] = u;
    s->key[2 * h + 1] = w;
    ++s->n;
    return 1;
}

/* X(u) x X(w), and X(w) x X(u), into the pairs, unless added before */
static int add_product(const struct sets *s, struct seen *seen, struct ints *r, struct ints *c, int64_t u,
                       int64_t w)
{
    if (s->len[u] == 0 || s->len[w] == 0)
        return PT_OK;
    int64_t ou = s->off[u], ow = s->off[w];
    if (ou > ow) {
        const int64_t x = u;
        u = w;
        w = x;
        ou = s->off[u];
        ow = s->off[w];
    }
    const int fresh = seen_add(seen, ou, ow);
    if (fresh <= 0)
        return fresh;
    const int64_t nu = s->len[u], nw = s->len[w], count = (ou == ow ? 1 : 2) * nu * nw;
    int st = ints_reserve(r, count);
    if (st || (st = ints_reserve(c, count)))
        return st;
    const int32_t *pu = s->pool.p + ou, *pw = s->pool.p + ow;
    for (int64_t x = 0; x < nu; ++x)
        for (int64_t y = 0; y < nw; ++y) {
            r->p[r->n++] = pu[x];
            c->p[c->n++] = pw[y];
            if (ou != ow) {
                r->p[r->n++] = pw[y];
                c->p[c->n++] = pu[x];
            }
        }
    return PT_OK;
}

/* the second-order operand pairs of live instruction i: products into r, c
 * (phase 1), or only marking their operands as needing sets (phase 0) */
static int second_order_terms(const pt_tape *t, const unsigned char *st, int64_t i, struct sets *s,
                              struct seen *seen, struct ints *r, struct ints *c, uint8_t *need,
                              const uint8_t *dep, int phase)
{
    const int op = t->op[i];
    if (op == PT_CUSTOM) {  /* every pair of its operands: X(i), their union, with itself */
        if (phase == 0)
            need[i] = dep[i];
        return phase == 0 ? PT_OK : add_product(s, seen, r, c, i, i);
    }
    const int ha = pt_reads_slot(op, 0, t->a[i]), hb = pt_reads_slot(op, 1, t->b[i]);
    const int64_t a = t->a[i], b = t->b[i];
    const int aa = ha && (st[op] & NZ_AA), bb = hb && (st[op] & NZ_BB), ab = ha && hb && (st[op] & NZ_AB);
    if (phase == 0) {  /* an operand that depends on no input has the empty set: a product with it is empty */
        if ((aa && dep[a]) || (ab && dep[a] && dep[b]))
            need[a] = 1;
        if ((bb && dep[b]) || (ab && dep[a] && dep[b]))
            need[b] = 1;
        return PT_OK;
    }
    int e = PT_OK;
    if (aa)
        e = add_product(s, seen, r, c, a, a);
    if (!e && bb)
        e = add_product(s, seen, r, c, b, b);
    if (!e && ab)
        e = add_product(s, seen, r, c, a, b);
    return e;
}

int pt_hessian_pattern(const pt_tape *t, int64_t nin, const int64_t *ins, int64_t out, pt_pattern *res)
{
    pattern_clear(res);
    if (pt_has_arrays(t))
        return PT_E_ARRAY;
    if (out >= t->n)
        return PT_E_SLOT;
    if (out < 0)  /* a constant: no second derivative */
        return PT_OK;
    int st = PT_OK;
    unsigned char structure[PT_NUM_OPS];
    int32_t *col = input_columns(t, nin, ins, structure, &st);
    if (!col)
        return st;
    const size_t n = (size_t)out + 1;
    uint8_t *live = calloc(n, 1), *need = calloc(n, 1), *dep = calloc(n, 1);
    /* sets start empty: a slot whose set is never computed is one that no product needs */
    struct sets s = {{0}, calloc(n, sizeof(int64_t)), calloc(n, sizeof(int32_t))};
    struct seen seen = {0};
    struct ints r = {0}, c = {0};
    int32_t o[PT_CUSTOM_MAX_ARGS];
    if (!live || !need || !dep || !s.off || !s.len)
        st = PT_E_NOMEM;
    if (st == PT_OK) {
        /* dep: depends on some input (a cheap forward pass: a product of a data
         * parameter and a sum over every input needs no set of the sum) */
        for (int64_t i = 0; i <= out; ++i) {
            if (col[i] >= 0) {
                dep[i] = 1;
                continue;
            }
            const int64_t m = first_operands(t, structure, i, o);
            for (int64_t k = 0; k < m && !dep[i]; ++k)
                dep[i] = dep[o[k]];
        }
        /* live: what the output depends on; need: the slots whose sets the products read */
        live[out] = 1;
        for (int64_t i = out; i >= 0; --i) {
            if (!live[i])
                continue;
            const int64_t m = first_operands(t, structure, i, o);
            for (int64_t k = 0; k < m; ++k)
                live[o[k]] = 1;
            second_order_terms(t, structure, i, &s, &seen, &r, &c, need, dep, 0);
        }
        for (int64_t i = out; i >= 0; --i) {
            if (!need[i] || col[i] >= 0)
                continue;
            const int64_t m = first_operands(t, structure, i, o);
            for (int64_t k = 0; k < m; ++k)
                need[o[k]] = 1;
        }
        /* the sets, forward, then the products */
        for (int64_t i = 0; i <= out && st == PT_OK; ++i) {
            if (!need[i])
                continue;
            if (col[i] >= 0) {
                if (!(st = ints_reserve(&s.pool, 1))) {
                    s.off[i] = s.pool.n;
                    s.len[i] = 1;
                    s.pool.p[s.pool.n++] = col[i];
                }
            } else {
                st = set_union(&s, i, o, first_operands(t, structure, i, o));
            }
        }
        for (int64_t i = 0; i <= out && st == PT_OK; ++i)
            if (live[i])
                st = second_order_terms(t, structure, i, &s, &seen, &r, &c, need, dep, 1);
    }
    free(col);
    free(live);
    free(need);
    free(dep);
    free(s.pool.p);
    free(s.off);
    free(s.len);
    free(seen.key);
    if (st == PT_OK)
        return pattern_take(res, &r, &c);
    free(r.p);
    free(c.p);
    return st;
}

/* ---- colourings -------------------------------------------------------- */

/* forbidden[c] == v: colour c is taken near vertex v (n entries, -1: none) */
static int64_t *forbidden_new(int64_t n)
{
    int64_t *forbidden = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (forbidden)
        for (int64_t c = 0; c < n; ++c)
            forbidden[c] = -1;
    return forbidden;
}

/* the smallest colour not forbidden for v, counted in *ncolours */
static int64_t smallest_free(const int64_t *forbidden, int64_t v, int64_t *ncolours)
{
    int64_t c = 0;
    while (forbidden[c] == v)
        ++c;
    if (c + 1 > *ncolours)
        *ncolours = c + 1;
    return c;
}

int64_t pt_colour_columns(int64_t n, const int64_t *rowptr, const int64_t *cols, const int64_t *colptr,
                          const int64_t *rows, const uint8_t *skip_row, int64_t *colour)
{
    int64_t *forbidden = forbidden_new(n), ncolours = 0;
    if (!forbidden)
        return PT_E_NOMEM;
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t p = colptr[j]; p < colptr[j + 1]; ++p) {
            const int64_t i = rows[p];
            if (skip_row && skip_row[i])
                continue;
            for (int64_t q = rowptr[i]; q < rowptr[i + 1]; ++q) {
                const int64_t k = cols[q];
                if (k < j)  /* coloured already */
                    forbidden[colour[k]] = j;
            }
        }
        colour[j] = smallest_free(forbidden, j, &ncolours);
    }
    free(forbidden);
    return ncolours;
}

int64_t pt_colour_star(int64_t n, const int64_t *ptr, const int64_t *idx, const uint8_t *skip, int64_t *colour)
{
    int64_t *forbidden = forbidden_new(n), ncolours = 0;
    if (!forbidden)
        return PT_E_NOMEM;
    for (int64_t v = 0; v < n; ++v)
        colour[v] = -1;
    for (int64_t v = 0; v < n; ++v) {
        if (skip && skip[v])
            continue;
        for (int64_t p = ptr[v]; p < ptr[v + 1]; ++p) {
            const int64_t w = idx[p];
            if (w == v || (skip && skip[w]))
                continue;
            const int64_t cw = colour[w];
            if (cw >= 0)
                forbidden[cw] = v;
            for (int64_t q = ptr[w]; q < ptr[w + 1]; ++q) {
                const int64_t x = idx[q];
                if (x == w || x == v || (skip && skip[x]) || colour[x] < 0)
                    continue;
                /* a path v - w - x: v may share x's colour only through a w of a smaller colour */
                if (cw < 0 || colour[x] < cw)
                    forbidden[colour[x]] = v;
            }
        }
        colour[v] = smallest_free(forbidden, v, &ncolours);
    }
    free(forbidden);
    return ncolours;
}
