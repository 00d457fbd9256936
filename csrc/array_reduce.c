/* array_reduce.c -- reductions and scans:
 *   SUM     over any set of axes, with or without keepdims: a strided loop
 *           over x in which y's strides are 0 along the summed axes (the
 *           transpose of broadcasting, which is its adjoint)
 *   MAX     max (or min) of each row of r elements; the adjoint goes to the
 *           elements equal to it, shared evenly among ties (torch.amax's
 *           rule); a row with a nan has the value nan, and its nans share it
 *   PROD    product of each row: the adjoint of x_k is the product of the
 *           others (prefix and suffix products: exact with zeros)
 *   CUMSUM  running sums along rows; the adjoint is the reversed running sum
 * Rows are the last r elements of x in C order: Python moves the reduced
 * axis last first (a VIEW), so each kernel is a simple loop over rows. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "array.h"

/* SUM's loop: over x's shape, x contiguous (operand 0), y's strides 0 on
 * the summed axes (operand 1) */
static void sum_loop(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, struct pt_loop *L)
{
    const int64_t *par = t->ar_par + e->par;  /* keepdims, then a flag per axis of x */
    int64_t st[3][PT_MAXDIM], ys[PT_MAXDIM];
    pt_contiguous_strides(x->ndim, x->shape, st[0]);
    pt_contiguous_strides(e->ndim, pt_arr_shape_of(t, e), ys);
    int32_t k = 0;
    for (int32_t d = 0; d < x->ndim; ++d) {
        if (par[1 + d]) {
            st[1][d] = 0;
            k += par[0] != 0;  /* keepdims: y has this axis, of length 1 */
        } else {
            st[1][d] = ys[k++];
        }
    }
    pt_loop_init(L, x->ndim, x->shape, 2, st);
}

/* the extremum of a row and how many elements attain it */
static double row_extremum(const double *x, int64_t r, double sign, int64_t *ties)
{
    double m = x[0] * sign;
    int nan = m != m;
    for (int64_t k = 1; k < r; ++k) {
        const double v = x[k] * sign;
        nan |= v != v;
        if (v > m)
            m = v;
    }
    int64_t c = 0;
    if (nan) {
        for (int64_t k = 0; k < r; ++k)
            c += x[k] != x[k];
        *ties = c;
        return NAN;
    }
    for (int64_t k = 0; k < r; ++k)
        c += x[k] * sign == m;
    *ties = c;
    return m * sign;
}

/* is x[k] one of the elements a row's extremum y came from? */
static inline int attains(double xk, double y) { return y != y ? xk != xk : xk == y; }

int pt_reduce_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y)
{
    const int64_t *par = t->ar_par + e->par;
    switch (e->kind) {
    case PT_A_SUM: {
        struct pt_loop L;
        sum_loop(t, e, x, &L);
        memset(y, 0, (size_t)e->size * sizeof *y);
        PT_FOR_ROWS(&L, o, n, s, {
            const double *p = x->val + o[0];
            if (s[1] == 0) {
                double acc = 0.0;
                for (int64_t j = 0; j < n; ++j)
                    acc += p[j];
                y[o[1]] += acc;
            } else {
                for (int64_t j = 0; j < n; ++j)
                    y[o[1] + j * s[1]] += p[j];
            }
        });
    } break;
    case PT_A_MAX: {
        const int64_t r = par[0], rows = x->size / r;
        int64_t ties;
        for (int64_t i = 0; i < rows; ++i)
            y[i] = row_extremum(x->val + i * r, r, (double)par[1], &ties);
    } break;
    case PT_A_PROD: {
        const int64_t r = par[0], rows = x->size / r;
        for (int64_t i = 0; i < rows; ++i) {
            double p = 1.0;
            for (int64_t k = 0; k < r; ++k)
                p *= x->val[i * r + k];
            y[i] = p;
        }
    } break;
    default: { /* CUMSUM */
        const int64_t r = par[0], rows = x->size / r;
        for (int64_t i = 0; i < rows; ++i) {
            double acc = 0.0;
            for (int64_t k = 0; k < r; ++k)
                y[i * r + k] = acc += x->val[i * r + k];
        }
    } break;
    }
    return PT_OK;
}

/* PROD: the products of all elements of row x but each, into out (r of them) */
static void products_but_one(const double *x, int64_t r, double *out)
{
    double left = 1.0;
    for (int64_t k = 0; k < r; ++k) {
        out[k] = left;
        left *= x[k];
    }
    double right = 1.0;
    for (int64_t k = r - 1; k >= 0; --k) {
        out[k] *= right;
        right *= x[k];
    }
}

/* reverse (tangent = 0) or forward (tangent = 1) rule of MAX, PROD, CUMSUM
 * for one row: reverse adds into dx from dy = g[0 ..], forward sets dy */
static int rows_rule(const struct pt_arr *e, const int64_t *par, const struct pt_view *x, const double *yv,
                     const double *din, double *dout, int tangent)
{
    const int64_t r = par[0], rows = x->size / r;
    double *scratch = NULL;
    if (e->kind == PT_A_PROD && !(scratch = malloc((size_t)r * sizeof *scratch)))
        return PT_E_NOMEM;
    for (int64_t i = 0; i < rows; ++i) {
        const double *xr = x->val + i * r;
        switch (e->kind) {
        case PT_A_MAX: {
            int64_t c = 0;
            for (int64_t k = 0; k < r; ++k)
                c += attains(xr[k], yv[i]);
            if (!c)
                break;
            if (tangent) {
                double acc = 0.0;
                for (int64_t k = 0; k < r; ++k)
                    if (attains(xr[k], yv[i]))
                        acc += din[i * r + k];
                dout[i] = acc / (double)c;
            } else if (din[i] != 0.0) {
                const double share = din[i] / (double)c;
                for (int64_t k = 0; k < r; ++k)
                    if (attains(xr[k], yv[i]))
                        dout[i * r + k] += share;
            }
        } break;
        case PT_A_PROD:
            products_but_one(xr, r, scratch);
            if (tangent) {
                double acc = 0.0;
                for (int64_t k = 0; k < r; ++k)
                    if (din[i * r + k] != 0.0)
                        acc += scratch[k] * din[i * r + k];
                dout[i] = acc;
            } else if (din[i] != 0.0) {
                for (int64_t k = 0; k < r; ++k)
                    dout[i * r + k] += scratch[k] * din[i];
            }
            break;
        default: { /* CUMSUM */
            double acc = 0.0;
            if (tangent)
                for (int64_t k = 0; k < r; ++k)
                    dout[i * r + k] = acc += din[i * r + k];
            else
                for (int64_t k = r - 1; k >= 0; --k)
                    dout[i * r + k] += acc += din[i * r + k];
        } break;
        }
    }
    free(scratch);
    return PT_OK;
}

int pt_reduce_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    if (!x->adj)
        return PT_OK;
    if (e->kind != PT_A_SUM)
        return rows_rule(e, t->ar_par + e->par, x, e->val, g, x->adj, 0);
    /* one value for every element of x: a full sum (or a sum of a uniform adjoint) */
    const int gu = e->size == 1 || pt_adj_is_uniform(t, e);
    if (gu && pt_adj_uniform(x, g[0]))
        return PT_OK;
    struct pt_loop L;
    sum_loop(t, e, x, &L);
    if (gu) {
        const double u = g[0];
        if (pt_adj_accumulate(x, 1))
            for (int64_t j = 0; j < x->size; ++j)
                x->adj[j] += u;
        else
            for (int64_t j = 0; j < x->size; ++j)
                x->adj[j] = 0.0 + u;
    } else if (!pt_adj_accumulate(x, 1)) {  /* g broadcast back over x: each element written once */
        PT_FOR_ROWS(&L, o, n, s, {
            double *p = x->adj + o[0];
            const double *q = g + o[1];
            for (int64_t j = 0; j < n; ++j)
                p[j] = 0.0 + q[j * s[1]];
        });
    } else {
        PT_FOR_ROWS(&L, o, n, s, {
            double *p = x->adj + o[0];
            const double *q = g + o[1];
            for (int64_t j = 0; j < n; ++j)
                p[j] += q[j * s[1]];
        });
    }
    return PT_OK;
}

int pt_reduce_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out)
{
    if (!x->tan)
        return PT_OK;
    if (e->kind != PT_A_SUM)
        return rows_rule(e, t->ar_par + e->par, x, e->val, x->tan, out, 1);
    struct pt_loop L;
    sum_loop(t, e, x, &L);
    PT_FOR_ROWS(&L, o, n, s, {
        const double *p = x->tan + o[0];
        for (int64_t j = 0; j < n; ++j)
            out[o[1] + j * s[1]] += p[j];
    });
    return PT_OK;
}
