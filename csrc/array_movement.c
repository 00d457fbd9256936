/* array_movement.c -- instructions that move elements without arithmetic:
 *   VIEW    y[j] = x[off + sum_d j_d * stride_d]: every numpy view (transpose,
 *           swapaxes, broadcast_to, basic slicing with steps, reshape,
 *           expand_dims, squeeze, diagonal) is one affine map; Python takes
 *           its offset and strides from numpy itself (pytape/array_ops.py)
 *   GATHER  y[j] = x[idx[j]]: integer-array indexing, take, boolean masks
 *   CONCAT  the operands' elements one after another
 *   SCATTER y = 0, y[idx[j]] += x[j]: the transpose of GATHER (and of a VIEW,
 *           its indices listed), recorded where create_graph records an adjoint
 * The adjoint of each is the transpose of the move: VIEW and GATHER add
 * into x's adjoint (repeated elements, as broadcast_to makes, sum), CONCAT
 * hands each operand its piece, SCATTER gathers.  The tangent is the same
 * move as the value. */
#include <string.h>
#include "array.h"

/* the loop of a VIEW: over y's shape, y contiguous (operand 0), x through
 * the view's strides (operand 1) */
static void view_loop(const pt_tape *t, const struct pt_arr *e, struct pt_loop *L)
{
    int64_t st[3][PT_MAXDIM];
    const int64_t *par = t->ar_par + e->par;
    pt_contiguous_strides(e->ndim, pt_arr_shape_of(t, e), st[0]);
    for (int32_t d = 0; d < e->ndim; ++d)
        st[1][d] = par[1 + d];
    pt_loop_init(L, e->ndim, pt_arr_shape_of(t, e), 2, st);
}

/* y = the move of x (value and tangent alike) */
static void move_forward(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, int tangent, double *y)
{
    const int64_t *par = t->ar_par + e->par;
    switch (e->kind) {
    case PT_A_VIEW: {
        const double *src = (tangent ? x[0].tan : x[0].val) + par[0];
        struct pt_loop L;
        view_loop(t, e, &L);
        PT_FOR_ROWS(&L, o, n, s, {
            const double *p = src + o[1];
            double *q = y + o[0];
            if (s[1] == 1)
                memcpy(q, p, (size_t)n * sizeof *q);
            else
                for (int64_t j = 0; j < n; ++j)
                    q[j] = p[j * s[1]];
        });
    } break;
    case PT_A_GATHER: {
        const double *src = tangent ? x[0].tan : x[0].val;
        for (int64_t j = 0; j < e->size; ++j)
            y[j] = src[par[j]];
    } break;
    case PT_A_SCATTER: {
        const double *src = tangent ? x[0].tan : x[0].val;
        memset(y, 0, (size_t)e->size * sizeof *y);
        for (int64_t j = 0; j < x[0].size; ++j)
            y[par[j]] += src[j];
    } break;
    default: { /* CONCAT */
        int64_t at = 0;
        for (int j = 0; j < e->nargs; ++j) {
            const double *src = tangent ? x[j].tan : x[j].val;
            if (src)
                memcpy(y + at, src, (size_t)x[j].size * sizeof *y);
            at += x[j].size;
        }
    } break;
    }
}

int pt_move_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y)
{
    move_forward(t, e, x, 0, y);
    return PT_OK;
}

int pt_move_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out)
{
    if (e->kind == PT_A_CONCAT || x[0].tan)
        move_forward(t, e, x, 1, out);  /* CONCAT: operands without a tangent keep out's zeros */
    return PT_OK;
}

int pt_move_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    const int64_t *par = t->ar_par + e->par;
    switch (e->kind) {
    case PT_A_VIEW: {
        if (!x[0].adj)
            break;
        double *dst = x[0].adj + par[0];
        struct pt_loop L;
        view_loop(t, e, &L);
        PT_FOR_ROWS(&L, o, n, s, {
            double *p = dst + o[1];
            const double *q = g + o[0];
            for (int64_t j = 0; j < n; ++j)
                p[j * s[1]] += q[j];
        });
    } break;
    case PT_A_GATHER:
        if (x[0].adj)
            for (int64_t j = 0; j < e->size; ++j)
                x[0].adj[par[j]] += g[j];
        break;
    case PT_A_SCATTER:
        if (x[0].adj)
            for (int64_t j = 0; j < x[0].size; ++j)
                x[0].adj[j] += g[par[j]];
        break;
    default: { /* CONCAT */
        int64_t at = 0;
        for (int j = 0; j < e->nargs; ++j) {
            if (x[j].adj)
                for (int64_t k = 0; k < x[j].size; ++k)
                    x[j].adj[k] += g[at + k];
            at += x[j].size;
        }
    } break;
    }
    return PT_OK;
}
