/* array_elementwise.c -- every row of ops.def over arrays (MAP1, MAP2): the
 * value, adjoint and tangent loops are generated from the row's own columns,
 * so an array operation can never disagree with its scalar twin.
 *
 * MAP2 broadcasts as numpy does: the operands' strides are 0 along the axes
 * they are broadcast over (pt_broadcast_strides), and the adjoint loop adds
 * into the same element again there, which is the sum over broadcast axes
 * that HIPS autograd's `unbroadcast` computes.  Rows are specialised for the
 * stride patterns that dominate (both contiguous, one operand a scalar), so
 * the compiler vectorises them; other patterns take a strided loop.
 *
 * The chain rule is the scalar sweeps' (pt_chain): a zero adjoint or tangent
 * passes nothing on, even through an infinite derivative. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "array.h"
#include "rules.h"

/* pt_chain without a branch: the same value (0 when either factor is 0),
 * as a select the compiler vectorises; `||` made it a branch per element
 * and left the adjoint loops scalar */
static inline double chain(double d, double g)
{
    const double p = d * g;
    return ((d == 0.0) | (g == 0.0)) ? 0.0 : p;
}

/* ---- unary rows ---------------------------------------------------------- */

static void map1_value(int op, int64_t n, const double *x, double *y)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)                                              \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = x[j];                                            \
            y[j] = (V);                                                       \
        }                                                                     \
        break;
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

/* gx (+)= dy/dx * g: ACC 1 adds, 0 writes (base + it: 0, or the uniform
 * adjoint gx held before, pt_adj_accumulate_base); g read with stride GS (0: a
 * uniform adjoint); constants where it is called, so that each is a loop
 * of its own */
PT_INLINE void map1_chain_acc(int op, int acc, double base, int64_t gs, int64_t n, const double *x,
                              const double *py, const double *g, double *restrict gx)
{
    const double g0 = n ? g[0] : 0.0;  /* gs 0: a loop invariant (gx, another buffer, never changes it) */
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)                                              \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = x[j], y = py[j];                                 \
            (void)a; (void)y;                                                 \
            gx[j] = (acc ? gx[j] : base) + chain((DA), gs ? g[j * gs] : g0); \
        }                                                                     \
        break;
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

static void map1_chain(int op, int acc, double base, int64_t gs, int64_t n, const double *x, const double *py,
                       const double *g, double *gx)
{
    if (gs) {
        if (acc)
            map1_chain_acc(op, 1, base, 1, n, x, py, g, gx);
        else
            map1_chain_acc(op, 0, base, 1, n, x, py, g, gx);
    } else {
        if (acc)
            map1_chain_acc(op, 1, base, 0, n, x, py, g, gx);
        else
            map1_chain_acc(op, 0, base, 0, n, x, py, g, gx);
    }
}

/* ---- derivatives at one point, and what they depend on ------------------------
 * A derivative column that names none of the operands that vary along the
 * array (a, b: those with more than one element; y) is the same for every
 * element: a uniform adjoint through it stays uniform (x + c, x - y, x * c,
 * x / c, -x).  Which names a column uses is read off its own C text. */
static double d_at(int op, int which, double a, double b, double y)
{
    (void)a; (void)b; (void)y;
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA) case PT_##N: return (DA);
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB) case PT_##N: return which ? (DB) : (DA);
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default:
        return NAN;
    }
}

enum { USES_A = 1, USES_B = 2, USES_Y = 4 };

/* the names a, b, y among the identifiers of C text s */
static int names_used(const char *s)
{
    int m = 0;
    while (*s) {
        if (isalnum((unsigned char)*s) || *s == '_' || *s == '.') {
            const char *w = s;
            while (isalnum((unsigned char)*s) || *s == '_' || *s == '.')
                ++s;
            if (s - w == 1)
                m |= *w == 'a' ? USES_A : *w == 'b' ? USES_B : *w == 'y' ? USES_Y : 0;
        } else {
            ++s;
        }
    }
    return m;
}

static int uses_table[PT_NUM_OPS][2];
/* which second-derivative columns (bit 0: aa, 1: ab, 2: bb) are not the
 * literal 0.0: a zero column contributes nothing to forward over reverse
 * (x + y, x - y, x * c: no second-order pass at all) */
static int second_table[PT_NUM_OPS];

static int nonzero(const char *s)
{
    return !(s[0] == '0' && s[1] == '.' && s[2] == '0' && s[3] == '\0');
}
/* the names read by the derivatives needed when operand a (index 1), b (2)
 * or both (3) are variables: first and second derivative columns */
static int reads_table[PT_NUM_OPS][4];
static pthread_once_t uses_once = PTHREAD_ONCE_INIT;

static void uses_init(void)
{
#define PT_OP1(N, S, V, DA, DAA)                                              \
    uses_table[PT_##N][0] = names_used(#DA);                                  \
    second_table[PT_##N] = nonzero(#DAA);                                     \
    reads_table[PT_##N][1] = reads_table[PT_##N][3] = uses_table[PT_##N][0] | names_used(#DAA);
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    second_table[PT_##N] = nonzero(#DAA) | nonzero(#DAB) << 1 | nonzero(#DBB) << 2; \
    uses_table[PT_##N][0] = names_used(#DA);                                  \
    uses_table[PT_##N][1] = names_used(#DB);                                  \
    reads_table[PT_##N][1] = uses_table[PT_##N][0] | names_used(#DAA);        \
    reads_table[PT_##N][2] = uses_table[PT_##N][1] | names_used(#DBB);        \
    reads_table[PT_##N][3] = reads_table[PT_##N][1] | reads_table[PT_##N][2] | names_used(#DAB);
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
}

int pt_map_reads(int op, int vars)
{
    pthread_once(&uses_once, uses_init);
    return op >= 0 && op < PT_NUM_OPS && vars >= 0 && vars < 4 ? reads_table[op][vars] : USES_A | USES_B | USES_Y;
}

/* is row op's derivative for operand `which` the same at every element of e? */
static int d_uniform(const struct pt_arr *e, const struct pt_view *x, int which)
{
    pthread_once(&uses_once, uses_init);
    const int m = uses_table[e->op][which];
    return e->size <= 1 || ((!(m & USES_A) || x[0].size == 1) && (!(m & USES_B) || (e->nargs > 1 && x[1].size == 1))
                            && !(m & USES_Y));
}

/* operand which's derivative at element 0 (the same at every element where
 * pt_map_flow says PT_FLOW_ONE or more) */
static double d_first(const struct pt_arr *e, const struct pt_view *x, int which)
{
    return d_at(e->op, which, x[0].val[0], e->nargs > 1 ? x[1].val[0] : 0.0, e->val[0]);
}

int pt_map_flow(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, int which)
{
    (void)t;
    if (e->size == 0 || x[which].size != e->size || !d_uniform(e, x, which))
        return PT_FLOW_ELEMENTS;
    return d_first(e, x, which) == 1.0 ? PT_FLOW_SAME : PT_FLOW_ONE;
}

/* ---- binary rows ---------------------------------------------------------- */

/* one row of n elements: a = pa[j*sa], b = pb[j*sb]; with constant strides
 * (inlined into rows2) each pattern compiles to its own loop */
PT_INLINE void row2_value(int op, int64_t n, const double *pa, int64_t sa, const double *pb, int64_t sb,
                          double *py)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = pa[j * sa], b = pb[j * sb];                      \
            py[j] = (V);                                                      \
        }                                                                     \
        break;
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

/* which = 0: ga[j*sa] (+)= dy/da * g[j*gs]; which = 1: gb[j*sb] (+)= dy/db * g[j*gs]
 * (acc 1: add, 0: write base + it; gs 0: a uniform adjoint) */
PT_INLINE void row2_chain(int op, int which, int acc, double base, int64_t gs, int64_t n, const double *pa,
                          int64_t sa, const double *pb, int64_t sb, const double *py, const double *g,
                          double *restrict gx, int64_t sx)
{
    const double g0 = n ? g[0] : 0.0;  /* gs 0: a loop invariant (gx, another buffer, never changes it) */
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = pa[j * sa], b = pb[j * sb], y = py[j];           \
            (void)a; (void)b; (void)y;                                        \
            gx[j * sx] = (acc ? gx[j * sx] : base) + chain(which ? (DB) : (DA), gs ? g[j * gs] : g0); \
        }                                                                     \
        break;
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

/* the stride patterns: contiguous, a scalar on either side, anything else */
#define PT_PATTERNS(CALL)                                                     \
    if (sa == 1 && sb == 1) {                                                 \
        CALL(1, 1);                                                           \
    } else if (sa == 0 && sb == 1) {                                          \
        CALL(0, 1);                                                           \
    } else if (sa == 1 && sb == 0) {                                          \
        CALL(1, 0);                                                           \
    } else {                                                                  \
        CALL(sa, sb);                                                         \
    }

/* the stride patterns for the operand `which` (0: a, 1: b) that the
 * adjoint loops write, a constant in each call, so that every pattern of
 * every row is a loop of its own that the compiler vectorises (a select per
 * element does not: the adjoint loops ran at half the value loops' speed);
 * an operand broadcast over the row (its own stride 0) is summed into one
 * element, serially, which a loop of its own would not speed up: that
 * pattern takes the general loop (a quarter fewer loops to compile) */
#define PT_BY_WRITTEN_OPERAND(CALL_A, CALL_B)                                 \
    if (which) {                                                              \
        if (sa == 1 && sb == 1)                                               \
            CALL_B(1, 1);                                                     \
        else if (sa == 0 && sb == 1)                                          \
            CALL_B(0, 1);                                                     \
        else                                                                  \
            CALL_B(sa, sb);                                                   \
    } else {                                                                  \
        if (sa == 1 && sb == 1)                                               \
            CALL_A(1, 1);                                                     \
        else if (sa == 1 && sb == 0)                                          \
            CALL_A(1, 0);                                                     \
        else                                                                  \
            CALL_A(sa, sb);                                                   \
    }

static void rows2_value(int op, int64_t n, const double *pa, int64_t sa, const double *pb, int64_t sb, double *py)
{
#define CALL(A, B) row2_value(op, n, pa, A, pb, B, py)
    PT_PATTERNS(CALL)
#undef CALL
}

static void rows2_chain(int op, int which, int acc, double base, int64_t gs, int64_t n, const double *pa,
                        int64_t sa, const double *pb, int64_t sb, const double *py, const double *g, double *gx)
{
#define CALL_A(A, B) row2_chain(op, 0, ACC, base, GS, n, pa, A, pb, B, py, g, gx, A)
#define CALL_B(A, B) row2_chain(op, 1, ACC, base, GS, n, pa, A, pb, B, py, g, gx, B)
#define ACC_GS(ACC_, GS_)                                                     \
    do {                                                                      \
        enum { ACC = ACC_, GS = GS_ };                                        \
        PT_BY_WRITTEN_OPERAND(CALL_A, CALL_B)                                 \
    } while (0)
    if (gs) {
        if (acc)
            ACC_GS(1, 1);
        else
            ACC_GS(0, 1);
    } else {  /* a uniform adjoint g[0] */
        if (acc)
            ACC_GS(1, 0);
        else
            ACC_GS(0, 0);
    }
#undef ACC_GS
#undef CALL_A
#undef CALL_B
}

/* the loop over e's shape with operands y (contiguous), a and b broadcast */
static void loop2(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, struct pt_loop *L)
{
    int64_t st[3][PT_MAXDIM];
    pt_contiguous_strides(e->ndim, pt_arr_shape_of(t, e), st[0]);
    pt_broadcast_strides(e->ndim, x[0].ndim, x[0].shape, st[1]);
    pt_broadcast_strides(e->ndim, x[1].ndim, x[1].shape, st[2]);
    pt_loop_init(L, e->ndim, pt_arr_shape_of(t, e), 3, st);
}

/* operands of e's size or of one element, the common case: one row whose
 * strides are 1 or 0 (an operand of e's size has e's layout: broadcasting
 * can only have added axes of length 1), without setting up a loop */
static int one_row(const struct pt_arr *e, const struct pt_view *x, int64_t *sa, int64_t *sb)
{
    const int64_t n = e->size;
    if ((x[0].size != n && x[0].size != 1) || (x[1].size != n && x[1].size != 1))
        return 0;
    *sa = x[0].size == n;
    *sb = x[1].size == n;
    return 1;
}

/* ---- the kernels -------------------------------------------------------- */

/* ---- one long row, split across cores (pt_parallel) ------------------------
 * When the loop is a single row (same shapes, or a scalar operand), its
 * elements are independent: chunks of it run on several threads.  Only an
 * adjoint accumulated into a broadcast operand (stride 0) is not split. */
struct row_job {
    int op, mode, which;   /* mode: 0 value, 1 adjoint (MAP1: which = -1) */
    int acc;               /* adjoint: add (1) or write (0: base + it) */
    int64_t gs;            /* adjoint: g's stride (0: uniform, `in` = &g[0]) */
    const double *pa, *pb, *py, *in;
    int64_t sa, sb;
    double *out;
    double base;           /* adjoint, written: what is added to each element (0, or a uniform adjoint held) */
};

enum { ROW_VALUE = 0, ROW_ADJOINT = 1 };

static void row_chunk(void *p, int64_t lo, int64_t hi)
{
    const struct row_job *j = p;
    const int64_t n = hi - lo;
    const double *pa = j->pa + lo * j->sa, *pb = j->pb ? j->pb + lo * j->sb : NULL, *py = j->py + lo;
    if (j->which < 0) {  /* MAP1 */
        if (j->mode == ROW_VALUE)
            map1_value(j->op, n, pa, j->out + lo);
        else
            map1_chain(j->op, j->acc, j->base, j->gs, n, pa, py, j->in + lo * j->gs, j->out + lo);
        return;
    }
    const int64_t sx = j->which ? j->sb : j->sa;
    if (j->mode == ROW_VALUE)
        rows2_value(j->op, n, pa, j->sa, pb, j->sb, j->out + lo);
    else  /* gx (stride sx = 1) (+)= d * g */
        rows2_chain(j->op, j->which, j->acc, j->base, j->gs, n, pa, j->sa, pb, j->sb, py, j->in + lo * j->gs,
                    j->out + lo * sx);
}

static void run_row(struct row_job *j, int64_t n, int split)
{
    if (split)
        pt_parallel(n, PT_PARALLEL_GRAIN, row_chunk, j);
    else
        row_chunk(j, 0, n);
}

int pt_map_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y)
{
    if (e->kind == PT_A_MAP1) {
        struct row_job j = {e->op, ROW_VALUE, -1, 0, 1, x[0].val, NULL, e->val, NULL, 1, 0, y, 0.0};
        run_row(&j, e->size, 1);
        return PT_OK;
    }
    int64_t sa, sb;
    if (one_row(e, x, &sa, &sb)) {
        struct row_job j = {e->op, ROW_VALUE, 0, 0, 1, x[0].val, x[1].val, y, NULL, sa, sb, y, 0.0};
        run_row(&j, e->size, 1);
        return PT_OK;
    }
    struct pt_loop L;
    loop2(t, e, x, &L);
    if (L.nd == 1) {
        struct row_job j = {e->op, ROW_VALUE, 0, 0, 1, x[0].val, x[1].val, y, NULL, L.st[1][0], L.st[2][0], y, 0.0};
        run_row(&j, L.shape[0], 1);
        return PT_OK;
    }
    PT_FOR_ROWS(&L, o, n, s, rows2_value(e->op, n, x[0].val + o[1], s[1], x[1].val + o[2], s[2], y + o[0]););
    return PT_OK;
}

int pt_map_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    const int64_t gs = !pt_adj_is_uniform(t, e);  /* 0: g[0] is every element's adjoint */
    for (int which = 0; which < e->nargs; ++which) {
        struct pt_view *v = &x[which];
        if (!v->adj)
            continue;
        /* a uniform g through a derivative that is the same everywhere, into
         * an operand of e's shape (a broadcast one sums): one value */
        if (!gs && pt_map_flow(t, e, x, which) != PT_FLOW_ELEMENTS &&
            pt_adj_uniform(v, pt_chain(d_first(e, x, which), g[0])))
            continue;
        double base;
        const int acc = pt_adj_accumulate_base(v, v->size == e->size, &base);  /* not broadcast: covered once */
        if (e->kind == PT_A_MAP1) {
            struct row_job j = {e->op, ROW_ADJOINT, -1, acc, gs, x[0].val, NULL, e->val, g, 1, 0, v->adj, base};
            run_row(&j, e->size, 1);
            return PT_OK;
        }
        int64_t sa, sb;
        if (one_row(e, x, &sa, &sb)) {  /* split unless gx is a broadcast scalar (every chunk would add to it) */
            struct row_job j = {e->op, ROW_ADJOINT, which, acc, gs, x[0].val, x[1].val, e->val, g, sa, sb, v->adj,
                                base};
            run_row(&j, e->size, which ? sb : sa);
            continue;
        }
        struct pt_loop L;
        loop2(t, e, x, &L);
        if (L.nd == 1) {  /* split unless gx is a broadcast scalar (every chunk would add to it) */
            struct row_job j = {e->op, ROW_ADJOINT, which, acc, gs, x[0].val, x[1].val, e->val, g, L.st[1][0],
                                L.st[2][0], v->adj, base};
            run_row(&j, L.shape[0], L.st[1 + which][0] != 0);
            continue;
        }
        double *gx = v->adj;
        PT_FOR_ROWS(&L, o, n, s,
                    rows2_chain(e->op, which, acc, base, gs, n, x[0].val + o[1], s[1], x[1].val + o[2], s[2],
                                e->val + o[0], g + o[0] * gs, gx + o[1 + which]););
    }
    return PT_OK;
}

/* does row e->op have a second derivative that is not the literal 0.0
 * (x + y, x - y, x * c: none; forward over reverse then needs the adjoint
 * tangent's first term only) */
int pt_map_second(const struct pt_arr *e)
{
    pthread_once(&uses_once, uses_init);
    return second_table[e->op] != 0;
}

/* ---- forward over reverse in one pass (pt_map_vjp_hvp) ----------------------
 * For operand w of y = f(a, b), with adjoint g and its tangent gd:
 *
 *   gx  (+)= f_w g
 *   gxd (+)= f_w gd + (f_wa a' + f_wb b') g
 *
 * one pass over the elements, each derivative column evaluated once (it
 * replaced three: the vjp of g, the vjp of gd and a second-term kernel),
 * the sums formed in the order of those three passes.  The pass goes by
 * blocks of FUSED_BLOCK elements: first the derivative columns it needs
 * (one loop per row and column, as simple as the row's own rule: those of
 * x * y, x - c vectorise), then one loop, the same for every row, that
 * combines them; what is absent (gd, a tangent, a column that is zero) is
 * decided per block, not per element. */

enum { FUSED_BLOCK = 256 };
enum { COL_D = 0, COL_AA = 1, COL_AB = 2, COL_BB = 3 };  /* COL_D: the operand's first derivative */

/* column c of unary row op at n elements */
static void col1(int op, int c, int64_t n, const double *x, const double *py, double *restrict out)
{
    switch (op) {
#define PT_COL(E)                                                             \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = x[j], y = py[j];                                 \
            (void)a; (void)y;                                                 \
            out[j] = (E);                                                     \
        }
#define PT_OP1(N, S, V, DA, DAA)                                              \
    case PT_##N:                                                              \
        if (c == COL_D) {                                                     \
            PT_COL(DA)                                                        \
        } else {                                                              \
            PT_COL(DAA)                                                       \
        }                                                                     \
        break;
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)
#include "ops.def"
#undef PT_COL
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

/* column c of binary row op (COL_D: of operand which) at n elements */
PT_INLINE void col2_row(int op, int c, int which, int64_t n, const double *pa, int64_t sa, const double *pb,
                        int64_t sb, const double *py, double *restrict out)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)
#define PT_COL(E)                                                             \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = pa[j * sa], b = pb[j * sb], y = py[j];           \
            (void)a; (void)b; (void)y;                                        \
            out[j] = (E);                                                     \
        }
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    case PT_##N:                                                              \
        switch (c) {                                                          \
        case COL_D:                                                           \
            if (which) {                                                      \
                PT_COL(DB)                                                    \
            } else {                                                          \
                PT_COL(DA)                                                    \
            }                                                                 \
            break;                                                            \
        case COL_AA: PT_COL(DAA) break;                                       \
        case COL_AB: PT_COL(DAB) break;                                       \
        default: PT_COL(DBB) break;                                           \
        }                                                                     \
        break;
#include "ops.def"
#undef PT_COL
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

static void col2(int op, int c, int which, int64_t n, const double *pa, int64_t sa, const double *pb, int64_t sb,
                 const double *py, double *out)
{
#define CALL(A, B) col2_row(op, c, which, n, pa, A, pb, B, py, out)
    PT_PATTERNS(CALL)
#undef CALL
}

/* one operand's pass over n elements: the columns computed, then combined
 * into gx (stride sx; NULL: it shares e's adjoint, nothing to write) and
 * gxd; c2a, c2b the second-derivative columns along a' and b' (NULL: that
 * term is absent), ta, tb read with the operands' strides */
struct fused_row {
    const double *g, *gd, *ta, *tb;
    int64_t sa, sb, sx;
    double *gx, *gxd;
    int accx, accd;
    double basex;
};

PT_INLINE void combine(const struct fused_row *r, int64_t n, const double *d, const double *c2a, const double *c2b,
                       int64_t sa, int64_t sb, int64_t sx)
{
    const double *g = r->g, *gd = r->gd, *ta = r->ta, *tb = r->tb;
    double *restrict gx = r->gx, *restrict gxd = r->gxd;
    const int accx = r->accx, accd = r->accd;
    const double basex = r->basex;
    if (gx)
        for (int64_t j = 0; j < n; ++j) {
            const double old = gx[j * sx];
            gx[j * sx] = (accx ? old : basex) + chain(d[j], g[j]);
        }
    if (c2a || c2b) {  /* the second term: one loop per pair of tangents present */
#define PT_SECOND(TERM)                                                       \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double old = gxd[j * sx];                                   \
            double s = accd ? old : 0.0;                                      \
            if (gd)                                                           \
                s += chain(d[j], gd[j]);                                      \
            double dd = 0.0;                                                  \
            TERM                                                              \
            gxd[j * sx] = s + dd;                                             \
        }
        if (c2a && c2b) {
            PT_SECOND(dd += chain(chain(c2a[j], ta[j * sa]), g[j]); dd += chain(chain(c2b[j], tb[j * sb]), g[j]);)
        } else if (c2a) {
            PT_SECOND(dd += chain(chain(c2a[j], ta[j * sa]), g[j]);)
        } else {
            PT_SECOND(dd += chain(chain(c2b[j], tb[j * sb]), g[j]);)
        }
#undef PT_SECOND
    } else if (gd) {
        for (int64_t j = 0; j < n; ++j) {
            const double old = gxd[j * sx];
            gxd[j * sx] = (accd ? old : 0.0) + chain(d[j], gd[j]);
        }
    } else if (!accd) {
        for (int64_t j = 0; j < n; ++j)
            gxd[j * sx] = 0.0;
    }
}

static void combine_strided(const struct fused_row *r, int64_t n, const double *d, const double *c2a,
                            const double *c2b)
{
    const int64_t sa = r->sa, sb = r->sb, sx = r->sx;
    if (sa == 1 && sb == 1)
        combine(r, n, d, c2a, c2b, 1, 1, 1);
    else if (sa == 1 && sb == 0)
        combine(r, n, d, c2a, c2b, 1, 0, sx);
    else if (sa == 0 && sb == 1)
        combine(r, n, d, c2a, c2b, 0, 1, sx);
    else
        combine(r, n, d, c2a, c2b, sa, sb, sx);
}

/* a job for pt_parallel: one operand over one row (MAP1: which = -1);
 * ca, cb the columns of its second term along a', b' (-1: none) */
struct fused_job {
    int op, which, ca, cb;
    const double *pa, *pb, *py;
    struct fused_row r;
};

static void fused_chunk(void *p, int64_t lo, int64_t hi)
{
    const struct fused_job *J = p;
    double d[FUSED_BLOCK], c2a[FUSED_BLOCK], c2b[FUSED_BLOCK];
    for (int64_t k = lo; k < hi; k += FUSED_BLOCK) {
        const int64_t n = hi - k < FUSED_BLOCK ? hi - k : FUSED_BLOCK;
        struct fused_row r = J->r;
        const int64_t sa = r.sa, sb = r.sb;
        r.g += k;
        r.gd = r.gd ? r.gd + k : NULL;
        r.ta = r.ta ? r.ta + k * sa : NULL;
        r.tb = r.tb ? r.tb + k * sb : NULL;
        r.gx = r.gx ? r.gx + k * r.sx : NULL;
        r.gxd += k * r.sx;
        const double *pa = J->pa + k * sa, *pb = J->pb ? J->pb + k * sb : NULL, *py = J->py + k;
        if (J->which < 0) {
            col1(J->op, COL_D, n, pa, py, d);
            if (J->ca >= 0)
                col1(J->op, COL_AA, n, pa, py, c2a);
        } else {
            col2(J->op, COL_D, J->which, n, pa, sa, pb, sb, py, d);
            if (J->ca >= 0)
                col2(J->op, J->ca, J->which, n, pa, sa, pb, sb, py, c2a);
            if (J->cb >= 0)
                col2(J->op, J->cb, J->which, n, pa, sa, pb, sb, py, c2b);
        }
        combine_strided(&r, n, d, J->ca >= 0 ? c2a : NULL, J->cb >= 0 ? c2b : NULL);
    }
}

/* how operand x's buffers take this pass: the adjoint's (acc, base) from
 * pt_adj_accumulate_base, the adt's acc (a fresh one the pass does not
 * cover is zeroed first) */
static void fused_accumulate(struct pt_view *x, struct pt_view *xd, int covers, struct fused_row *r)
{
    r->accx = 1;
    r->basex = 0.0;
    if (x->adj)
        r->accx = pt_adj_accumulate_base(x, covers, &r->basex);
    r->accd = pt_adj_accumulate(xd, covers);
}

int pt_map_vjp_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, struct pt_view *xd, const double *g,
                   const double *gd)
{
    pthread_once(&uses_once, uses_init);
    const int cols = second_table[e->op];
    if (e->kind == PT_A_MAP1) {
        if (!xd[0].adj)
            return PT_OK;
        const int second = cols && x[0].tan;
        struct fused_job j = {e->op, -1, second ? COL_AA : -1, -1, x[0].val, NULL, e->val,
                              {g, gd, second ? x[0].tan : NULL, NULL, 1, 0, 1, x[0].adj, xd[0].adj, 1, 1, 0.0}};
        fused_accumulate(&x[0], &xd[0], 1, &j.r);
        pt_parallel(e->size, PT_PARALLEL_GRAIN, fused_chunk, &j);
        return PT_OK;
    }
    struct pt_loop L;
    loop2(t, e, x, &L);
    for (int which = 0; which < 2; ++which) {
        if (!xd[which].adj)
            continue;
        /* the second-derivative columns of this operand's term that are not zero, along tangents present:
         * f_aa, f_ab along a' for a; f_ab, f_bb along b' for b */
        const int ca = x[0].tan && (cols & (which ? 2 : 1)) ? (which ? COL_AB : COL_AA) : -1;
        const int cb = x[1].tan && (cols & (which ? 4 : 2)) ? (which ? COL_BB : COL_AB) : -1;
        struct fused_job j = {e->op, which, ca, cb, x[0].val, x[1].val, e->val,
                              {g, gd, ca >= 0 ? x[0].tan : NULL, cb >= 0 ? x[1].tan : NULL, 0, 0, 0, x[which].adj,
                               xd[which].adj, 1, 1, 0.0}};
        fused_accumulate(&x[which], &xd[which], x[which].size == e->size, &j.r);
        if (L.nd == 1) {  /* split unless the operand is broadcast (every chunk would add to it) */
            j.r.sa = L.st[1][0];
            j.r.sb = L.st[2][0];
            j.r.sx = L.st[1 + which][0];
            if (j.r.sx != 0)
                pt_parallel(L.shape[0], PT_PARALLEL_GRAIN, fused_chunk, &j);
            else
                fused_chunk(&j, 0, L.shape[0]);
            continue;
        }
        const struct fused_job base = j;
        PT_FOR_ROWS(&L, o, n, s, {
            j = base;
            j.pa = x[0].val + o[1];
            j.pb = x[1].val + o[2];
            j.py = e->val + o[0];
            j.r.g = g + o[0];
            j.r.gd = gd ? gd + o[0] : NULL;
            j.r.ta = base.r.ta ? base.r.ta + o[1] : NULL;
            j.r.tb = base.r.tb ? base.r.tb + o[2] : NULL;
            j.r.gx = base.r.gx ? base.r.gx + o[1 + which] : NULL;
            j.r.gxd = base.r.gxd + o[1 + which];
            j.r.sa = s[1];
            j.r.sb = s[2];
            j.r.sx = s[1 + which];
            fused_chunk(&j, 0, n);
        });
    }
    return PT_OK;
}

/* ---- the tangent (pt_map_jvp), from the same columns -------------------------
 * out = f_a a' + f_b b', written (the kinds' table says so: pt_array_jvp
 * does not zero it first), as 0.0 + each term in turn: the sums the loops
 * that added into a zeroed buffer formed. */

PT_INLINE void tangent_combine(int64_t n, const double *da, const double *ta, int64_t sa, const double *db,
                               const double *tb, int64_t sb, double *restrict out)
{
    if (ta && tb)
        for (int64_t j = 0; j < n; ++j)
            out[j] = (0.0 + chain(da[j], ta[j * sa])) + chain(db[j], tb[j * sb]);
    else if (ta)
        for (int64_t j = 0; j < n; ++j)
            out[j] = 0.0 + chain(da[j], ta[j * sa]);
    else
        for (int64_t j = 0; j < n; ++j)
            out[j] = 0.0 + chain(db[j], tb[j * sb]);
}

/* one row (MAP1: pb NULL), for pt_parallel */
struct tangent_job {
    int op;
    const double *pa, *pb, *py, *ta, *tb;
    int64_t sa, sb;
    double *out;
};

static void tangent_chunk(void *p, int64_t lo, int64_t hi)
{
    const struct tangent_job *J = p;
    const int64_t sa = J->sa, sb = J->sb;
    double da[FUSED_BLOCK], db[FUSED_BLOCK];
    for (int64_t k = lo; k < hi; k += FUSED_BLOCK) {
        const int64_t n = hi - k < FUSED_BLOCK ? hi - k : FUSED_BLOCK;
        const double *pa = J->pa + k * sa, *py = J->py + k;
        const double *ta = J->ta ? J->ta + k * sa : NULL, *tb = J->tb ? J->tb + k * sb : NULL;
        if (!J->pb) {
            col1(J->op, COL_D, n, pa, py, da);
            tangent_combine(n, da, ta, 1, NULL, NULL, 0, J->out + k);
            continue;
        }
        const double *pb = J->pb + k * sb;
        if (ta)
            col2(J->op, COL_D, 0, n, pa, sa, pb, sb, py, da);
        if (tb)
            col2(J->op, COL_D, 1, n, pa, sa, pb, sb, py, db);
        if (sa == 1 && sb == 1)
            tangent_combine(n, da, ta, 1, db, tb, 1, J->out + k);
        else if (sa == 1 && sb == 0)
            tangent_combine(n, da, ta, 1, db, tb, 0, J->out + k);
        else if (sa == 0 && sb == 1)
            tangent_combine(n, da, ta, 0, db, tb, 1, J->out + k);
        else
            tangent_combine(n, da, ta, sa, db, tb, sb, J->out + k);
    }
}

int pt_map_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out)
{
    if (e->kind == PT_A_MAP1) {
        struct tangent_job j = {e->op, x[0].val, NULL, e->val, x[0].tan, NULL, 1, 0, out};
        if (x[0].tan)
            pt_parallel(e->size, PT_PARALLEL_GRAIN, tangent_chunk, &j);
        else
            memset(out, 0, (size_t)e->size * sizeof(double));
        return PT_OK;
    }
    if (!x[0].tan && !x[1].tan) {
        memset(out, 0, (size_t)e->size * sizeof(double));
        return PT_OK;
    }
    struct pt_loop L;
    loop2(t, e, x, &L);
    struct tangent_job j = {e->op, x[0].val, x[1].val, e->val, x[0].tan, x[1].tan, 0, 0, out};
    if (L.nd == 1) {
        j.sa = L.st[1][0];
        j.sb = L.st[2][0];
        pt_parallel(L.shape[0], PT_PARALLEL_GRAIN, tangent_chunk, &j);
        return PT_OK;
    }
    PT_FOR_ROWS(&L, o, n, s, {
        struct tangent_job r = j;
        r.pa += o[1];
        r.pb += o[2];
        r.py += o[0];
        r.ta = j.ta ? j.ta + o[1] : NULL;
        r.tb = j.tb ? j.tb + o[2] : NULL;
        r.sa = s[1];
        r.sb = s[2];
        r.out += o[0];
        tangent_chunk(&r, 0, n);
    });
    return PT_OK;
}
