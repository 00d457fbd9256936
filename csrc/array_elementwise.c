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
#include <math.h>
#include "array.h"
#include "rules.h"

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

/* gx (+)= dy/dx * g: ACC 1 adds, 0 writes (a constant where it is called,
 * so that each is a loop of its own) */
PT_INLINE void map1_chain_acc(int op, int acc, int64_t n, const double *x, const double *py, const double *g,
                              double *gx)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)                                              \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = x[j], y = py[j];                                 \
            (void)a; (void)y;                                                 \
            gx[j] = (acc ? gx[j] : 0.0) + pt_chain((DA), g[j]);               \
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

static void map1_chain(int op, int acc, int64_t n, const double *x, const double *py, const double *g, double *gx)
{
    if (acc)
        map1_chain_acc(op, 1, n, x, py, g, gx);
    else
        map1_chain_acc(op, 0, n, x, py, g, gx);
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

/* which = 0: ga[j*sa] (+)= dy/da * g[j]; which = 1: gb[j*sb] (+)= dy/db * g[j]
 * (acc 1: add, 0: write) */
PT_INLINE void row2_chain(int op, int which, int acc, int64_t n, const double *pa, int64_t sa, const double *pb,
                          int64_t sb, const double *py, const double *g, double *gx, int64_t sx)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = pa[j * sa], b = pb[j * sb], y = py[j];           \
            (void)a; (void)b; (void)y;                                        \
            gx[j * sx] = (acc ? gx[j * sx] : 0.0) + pt_chain(which ? (DB) : (DA), g[j]); \
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

/* the stride patterns for the operand `which` (0: a, 1: b), a constant in
 * each call, so that every pattern of every row is a loop of its own that
 * the compiler vectorises (a select per element does not: the adjoint loops
 * ran at half the value loops' speed) */
#define PT_BY_OPERAND(CALL_A, CALL_B)                                         \
    if (which) {                                                              \
        PT_PATTERNS(CALL_B)                                                   \
    } else {                                                                  \
        PT_PATTERNS(CALL_A)                                                   \
    }

static void rows2_value(int op, int64_t n, const double *pa, int64_t sa, const double *pb, int64_t sb, double *py)
{
#define CALL(A, B) row2_value(op, n, pa, A, pb, B, py)
    PT_PATTERNS(CALL)
#undef CALL
}

static void rows2_chain(int op, int which, int acc, int64_t n, const double *pa, int64_t sa, const double *pb,
                        int64_t sb, const double *py, const double *g, double *gx)
{
    if (acc) {
#define CALL_A(A, B) row2_chain(op, 0, 1, n, pa, A, pb, B, py, g, gx, A)
#define CALL_B(A, B) row2_chain(op, 1, 1, n, pa, A, pb, B, py, g, gx, B)
        PT_BY_OPERAND(CALL_A, CALL_B)
#undef CALL_A
#undef CALL_B
    } else {
#define CALL_A(A, B) row2_chain(op, 0, 0, n, pa, A, pb, B, py, g, gx, A)
#define CALL_B(A, B) row2_chain(op, 1, 0, n, pa, A, pb, B, py, g, gx, B)
        PT_BY_OPERAND(CALL_A, CALL_B)
#undef CALL_A
#undef CALL_B
    }
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

/* ---- the kernels -------------------------------------------------------- */

/* the tangent: out[j] += dy/da * ta + dy/db * tb, the operands' tangents
 * read through their (broadcast) strides */
PT_INLINE void row2_tangent(int op, int which, int64_t n, const double *pa, int64_t sa, const double *pb,
                            int64_t sb, const double *py, const double *tx, int64_t sx, double *out)
{
    switch (op) {
#define PT_OP1(N, S, V, DA, DAA)
#define PT_OP2(N, S, V, DA, DB, DAA, DAB, DBB)                                \
    case PT_##N:                                                              \
        for (int64_t j = 0; j < n; ++j) {                                     \
            const double a = pa[j * sa], b = pb[j * sb], y = py[j];           \
            (void)a; (void)b; (void)y;                                        \
            out[j] += pt_chain(which ? (DB) : (DA), tx[j * sx]);              \
        }                                                                     \
        break;
#include "ops.def"
#undef PT_OP1
#undef PT_OP2
    default:
        break;
    }
}

static void rows2_tangent(int op, int which, int64_t n, const double *pa, int64_t sa, const double *pb, int64_t sb,
                          const double *py, const double *tx, double *out)
{
#define CALL_A(A, B) row2_tangent(op, 0, n, pa, A, pb, B, py, tx, A, out)
#define CALL_B(A, B) row2_tangent(op, 1, n, pa, A, pb, B, py, tx, B, out)
    PT_BY_OPERAND(CALL_A, CALL_B)
#undef CALL_A
#undef CALL_B
}

/* ---- one long row, split across cores (pt_parallel) ------------------------
 * When the loop is a single row (same shapes, or a scalar operand), its
 * elements are independent: chunks of it run on several threads.  Only an
 * adjoint accumulated into a broadcast operand (stride 0) is not split. */
struct row_job {
    int op, mode, which;   /* mode: 0 value, 1 adjoint, 2 tangent (MAP1: which = -1) */
    int acc;               /* adjoint: add (1) or write (0) */
    const double *pa, *pb, *py, *in;
    int64_t sa, sb;
    double *out;
};

enum { ROW_VALUE = 0, ROW_ADJOINT = 1, ROW_TANGENT = 2 };

static void row_chunk(void *p, int64_t lo, int64_t hi)
{
    const struct row_job *j = p;
    const int64_t n = hi - lo;
    const double *pa = j->pa + lo * j->sa, *pb = j->pb ? j->pb + lo * j->sb : NULL, *py = j->py + lo;
    if (j->which < 0) {  /* MAP1 */
        if (j->mode == ROW_VALUE)
            map1_value(j->op, n, pa, j->out + lo);
        else
            map1_chain(j->op, j->acc, n, pa, py, j->in + lo, j->out + lo);
        return;
    }
    const int64_t sx = j->which ? j->sb : j->sa;
    switch (j->mode) {
    case ROW_VALUE:
        rows2_value(j->op, n, pa, j->sa, pb, j->sb, j->out + lo);
        break;
    case ROW_ADJOINT:  /* gx (stride sx = 1) (+)= d * g */
        rows2_chain(j->op, j->which, j->acc, n, pa, j->sa, pb, j->sb, py, j->in + lo, j->out + lo * sx);
        break;
    default:           /* out += d * tx (tx read through stride sx) */
        rows2_tangent(j->op, j->which, n, pa, j->sa, pb, j->sb, py, j->in + lo * sx, j->out + lo);
        break;
    }
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
        struct row_job j = {e->op, ROW_VALUE, -1, 0, x[0].val, NULL, e->val, NULL, 1, 0, y};
        run_row(&j, e->size, 1);
        return PT_OK;
    }
    struct pt_loop L;
    loop2(t, e, x, &L);
    if (L.nd == 1) {
        struct row_job j = {e->op, ROW_VALUE, 0, 0, x[0].val, x[1].val, y, NULL, L.st[1][0], L.st[2][0], y};
        run_row(&j, L.shape[0], 1);
        return PT_OK;
    }
    PT_FOR_ROWS(&L, o, n, s, rows2_value(e->op, n, x[0].val + o[1], s[1], x[1].val + o[2], s[2], y + o[0]););
    return PT_OK;
}

int pt_map_vjp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, const double *g)
{
    if (e->kind == PT_A_MAP1) {
        if (x[0].adj) {
            struct row_job j = {e->op, ROW_ADJOINT, -1, !x[0].fresh, x[0].val, NULL, e->val, g, 1, 0, x[0].adj};
            run_row(&j, e->size, 1);
        }
        return PT_OK;
    }
    struct pt_loop L;
    loop2(t, e, x, &L);
    for (int which = 0; which < 2; ++which) {
        double *gx = x[which].adj;
        if (!gx)
            continue;
        const int acc = pt_adj_accumulate(&x[which], x[which].size == e->size);  /* not broadcast: covered once */
        if (L.nd == 1) {  /* split unless gx is a broadcast scalar (every chunk would add to it) */
            struct row_job j = {e->op, ROW_ADJOINT, which, acc, x[0].val, x[1].val, e->val, g, L.st[1][0],
                                L.st[2][0], gx};
            run_row(&j, L.shape[0], L.st[1 + which][0] != 0);
            continue;
        }
        PT_FOR_ROWS(&L, o, n, s,
                    rows2_chain(e->op, which, acc, n, x[0].val + o[1], s[1], x[1].val + o[2], s[2], e->val + o[0],
                                g + o[0], gx + o[1 + which]););
    }
    return PT_OK;
}

int pt_map_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out)
{
    if (e->kind == PT_A_MAP1) {
        if (x[0].tan) {
            struct row_job j = {e->op, ROW_TANGENT, -1, 1, x[0].val, NULL, e->val, x[0].tan, 1, 0, out};
            run_row(&j, e->size, 1);
        }
        return PT_OK;
    }
    struct pt_loop L;
    loop2(t, e, x, &L);
    for (int which = 0; which < 2; ++which) {
        const double *tx = x[which].tan;
        if (!tx)
            continue;
        if (L.nd == 1) {
            struct row_job j = {e->op, ROW_TANGENT, which, 1, x[0].val, x[1].val, e->val, tx, L.st[1][0], L.st[2][0], out};
            run_row(&j, L.shape[0], 1);
            continue;
        }
        PT_FOR_ROWS(&L, o, n, s,
                    rows2_tangent(e->op, which, n, x[0].val + o[1], s[1], x[1].val + o[2], s[2], e->val + o[0],
                                  tx + o[1 + which], out + o[0]););
    }
    return PT_OK;
}
