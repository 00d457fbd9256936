/* array_reduce.c -- reductions and scans:
 *   SUM     over any set of axes, with or without keepdims: a strided loop
 *           over x in which y's strides are 0 along the summed axes (the
 *           transpose of broadcasting, which is its adjoint); summed rows
 *           by numpy's pairwise summation, a leading axis eight rows a pass (AVX2 where the CPU has it)
 *   MAX     max (or min) of each row of r elements; the adjoint goes to the
 *           elements equal to it, shared evenly among ties (torch.amax's
 *           rule); a row with a nan has the value nan, and its nans share it.
 *           SSE2 loops (AVX2 ones when the CPU has it) find the extremum and,
 *           in the adjoint, the first tie; the rest are counted after it
 *   PROD    product of each row: the adjoint of x_k is the product of the
 *           others (prefix and suffix products: exact with zeros)
 *   CUMSUM  running sums along rows; the adjoint is the reversed running sum
 * Rows are the last r elements of x in C order: Python moves the reduced
 * axis last first (a VIEW), so each kernel is a simple loop over rows. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "array.h"
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__AVX2__) && !defined(PT_NO_AVX2)
#include <immintrin.h>  /* an AVX2 variant of the extremum loop, chosen at run time */
#define PT_AVX2_DISPATCH 1
#endif
#if defined(__SSE2__)
#include <emmintrin.h>  /* every x86-64 compiler has it: the extremum and
                           tie-search loops below, which gcc does not
                           vectorise itself (a max with nans, an early exit) */
#endif

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

/* the sum of p[0 .. n): numpy's pairwise summation (blocks of 128 in 8
 * independent lanes, halves added recursively), which the compiler
 * vectorises and whose error grows with log n, as numpy's does */
static double pairwise_sum(const double *p, int64_t n)
{
    if (n < 8) {
        double acc = 0.0;
        for (int64_t j = 0; j < n; ++j)
            acc += p[j];
        return acc;
    }
    if (n <= 128) {
        double r[8];
        for (int l = 0; l < 8; ++l)
            r[l] = p[l];
        int64_t j = 8;
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; ++l)
                r[l] += p[j + l];
        double acc = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; j < n; ++j)
            acc += p[j];
        return acc;
    }
    int64_t h = n / 2;
    h -= h % 8;
    return pairwise_sum(p, h) + pairwise_sum(p + h, n - h);
}

/* one row of SUM (and of its tangent): x's row p of n elements into y,
 * whose stride along it is s (0: summed over, 1: kept, the usual cases) */
static void sum_row(const double *p, int64_t n, double *y, int64_t s)
{
    if (s == 0) {
        *y += pairwise_sum(p, n);
    } else if (s == 1) {  /* a row of x added into y: vectorised */
        double *restrict yy = y;
        for (int64_t j = 0; j < n; ++j)
            yy[j] += p[j];
    } else {
        for (int64_t j = 0; j < n; ++j)
            y[j * s] += p[j];
    }
}

/* m rows of n elements (x's stride xs apart from p) added in order into y
 * (stride 1), eight at a time: y loaded and stored once per eight rows, the
 * sums the same as row by row (numpy's order). The loop is memory-bound only
 * when it is wide: AVX2 (chosen at run time, as for MAX below) made a cold
 * 1000 x 1000 sum 1.4x faster than SSE2, eight rows a pass 1.2x faster than
 * four (measured on the reference VM, data evicted between calls) */
#define PT_SUM_ROWS_BODY                                                                   \
    int64_t i = 0;                                                                         \
    for (; i + 8 <= m; i += 8) {                                                           \
        const double *a = p + i * xs;                                                      \
        for (int64_t j = 0; j < n; ++j)                                                    \
            y[j] = ((((((((y[j] + a[j]) + a[j + xs]) + a[j + 2 * xs]) + a[j + 3 * xs])     \
                       + a[j + 4 * xs]) + a[j + 5 * xs]) + a[j + 6 * xs]) + a[j + 7 * xs]); \
    }                                                                                      \
    for (; i < m; ++i)                                                                     \
        sum_row(p + i * xs, n, y, 1);
static void sum_rows_base(const double *p, int64_t xs, int64_t m, int64_t n, double *restrict y)
{
    PT_SUM_ROWS_BODY
}
#if defined(PT_AVX2_DISPATCH)
__attribute__((target("avx2"))) static void sum_rows_avx2(const double *p, int64_t xs, int64_t m, int64_t n,
                                                          double *restrict y)
{
    PT_SUM_ROWS_BODY
}
#endif
#undef PT_SUM_ROWS_BODY

#if defined(PT_AVX2_DISPATCH)
/* row_extremum's loop on 16 elements a step (r >= 16): max (or min) in 4
 * lanes of 4, a nan flag; the rest of the row by the caller from *k */
__attribute__((target("avx2"))) static int extremum_avx2(const double *x, int64_t r, int sign, int64_t *k,
                                                          double *best)
{
    __m256d m0 = _mm256_loadu_pd(x), m1 = _mm256_loadu_pd(x + 4), m2 = _mm256_loadu_pd(x + 8),
            m3 = _mm256_loadu_pd(x + 12);
    __m256d n0 = _mm256_cmp_pd(m0, m1, _CMP_UNORD_Q), n1 = _mm256_cmp_pd(m2, m3, _CMP_UNORD_Q);
    int64_t j = 16;
#define PT_EXTREMUM_LOOP(OP)                                                    \
    for (; j + 16 <= r; j += 16) {                                              \
        const __m256d v0 = _mm256_loadu_pd(x + j), v1 = _mm256_loadu_pd(x + j + 4); \
        const __m256d v2 = _mm256_loadu_pd(x + j + 8), v3 = _mm256_loadu_pd(x + j + 12); \
        n0 = _mm256_or_pd(n0, _mm256_cmp_pd(v0, v1, _CMP_UNORD_Q));            \
        n1 = _mm256_or_pd(n1, _mm256_cmp_pd(v2, v3, _CMP_UNORD_Q));            \
        m0 = OP(m0, v0);                                                        \
        m1 = OP(m1, v1);                                                        \
        m2 = OP(m2, v2);                                                        \
        m3 = OP(m3, v3);                                                        \
    }
    if (sign > 0)
        PT_EXTREMUM_LOOP(_mm256_max_pd)
    else
        PT_EXTREMUM_LOOP(_mm256_min_pd)
#undef PT_EXTREMUM_LOOP
    *k = j;
    if (_mm256_movemask_pd(_mm256_or_pd(n0, n1)))
        return 1;
    double m[16];
    _mm256_storeu_pd(m, m0);
    _mm256_storeu_pd(m + 4, m1);
    _mm256_storeu_pd(m + 8, m2);
    _mm256_storeu_pd(m + 12, m3);
    double b = m[0];
    for (int l = 1; l < 16; ++l)
        b = sign > 0 ? (m[l] > b ? m[l] : b) : (m[l] < b ? m[l] : b);
    *best = b;
    return 0;
}

/* row_ties' loops from *k on 16 (then 8) elements a step: the first index
 * at or after *k whose step holds an element equal to y (into *k: the caller
 * finds it), or, when count, how many equal y from *k to the last whole step */
__attribute__((target("avx2"))) static int64_t ties_avx2(const double *x, int64_t r, double y, int64_t *k,
                                                         int count)
{
    const __m256d yy = _mm256_set1_pd(y);
    int64_t j = *k;
    if (!count) {
        for (; j + 16 <= r; j += 16) {
            const __m256d e = _mm256_or_pd(_mm256_or_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j), yy, _CMP_EQ_OQ),
                                                         _mm256_cmp_pd(_mm256_loadu_pd(x + j + 4), yy, _CMP_EQ_OQ)),
                                           _mm256_or_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 8), yy, _CMP_EQ_OQ),
                                                        _mm256_cmp_pd(_mm256_loadu_pd(x + j + 12), yy, _CMP_EQ_OQ)));
            if (_mm256_movemask_pd(e))
                break;
        }
        *k = j;
        return 0;
    }
    __m256i n0 = _mm256_setzero_si256(), n1 = _mm256_setzero_si256();
    for (; j + 8 <= r; j += 8) {
        n0 = _mm256_sub_epi64(n0, _mm256_castpd_si256(_mm256_cmp_pd(_mm256_loadu_pd(x + j), yy, _CMP_EQ_OQ)));
        n1 = _mm256_sub_epi64(n1, _mm256_castpd_si256(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 4), yy, _CMP_EQ_OQ)));
    }
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(n0, n1));
    *k = j;
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

/* a bit that libgcc's constructor set at load time: cheap per row */
static int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#endif

/* sum_rows_base, or its AVX2 build where the CPU has it */
static void sum_rows(const double *p, int64_t xs, int64_t m, int64_t n, double *restrict y)
{
#if defined(PT_AVX2_DISPATCH)
    if (n >= 16 && have_avx2()) {
        sum_rows_avx2(p, xs, m, n, y);
        return;
    }
#endif
    sum_rows_base(p, xs, m, n, y);
}

/* the max of a row of r >= 1 elements (sign = 1) or its min (sign = -1);
 * nan when it holds a nan */
static double row_extremum(const double *x, int64_t r, int sign)
{
    int64_t k = 0;
#if defined(PT_AVX2_DISPATCH)
    if (r >= 16 && have_avx2()) {
        double best;
        if (extremum_avx2(x, r, sign, &k, &best))
            return NAN;
        for (; k < r; ++k) {
            const double v = x[k];
            if (v != v)
                return NAN;
            best = sign > 0 ? (v > best ? v : best) : (v < best ? v : best);
        }
        return best;
    }
#endif
#if defined(__SSE2__)
    if (r >= 8) {
        __m128d m0 = _mm_loadu_pd(x), m1 = _mm_loadu_pd(x + 2), m2 = _mm_loadu_pd(x + 4), m3 = _mm_loadu_pd(x + 6);
        __m128d n0 = _mm_cmpunord_pd(m0, m0), n1 = _mm_cmpunord_pd(m1, m1);
        n0 = _mm_or_pd(n0, _mm_cmpunord_pd(m2, m2));
        n1 = _mm_or_pd(n1, _mm_cmpunord_pd(m3, m3));
        k = 8;
#define PT_EXTREMUM_LOOP(OP)                                                    \
        for (; k + 8 <= r; k += 8) {                                            \
            const __m128d v0 = _mm_loadu_pd(x + k), v1 = _mm_loadu_pd(x + k + 2); \
            const __m128d v2 = _mm_loadu_pd(x + k + 4), v3 = _mm_loadu_pd(x + k + 6); \
            n0 = _mm_or_pd(n0, _mm_cmpunord_pd(v0, v1));                        \
            n1 = _mm_or_pd(n1, _mm_cmpunord_pd(v2, v3));                        \
            m0 = OP(m0, v0);                                                    \
            m1 = OP(m1, v1);                                                    \
            m2 = OP(m2, v2);                                                    \
            m3 = OP(m3, v3);                                                    \
        }
        if (sign > 0)
            PT_EXTREMUM_LOOP(_mm_max_pd)
        else
            PT_EXTREMUM_LOOP(_mm_min_pd)
#undef PT_EXTREMUM_LOOP
        double m[8];
        _mm_storeu_pd(m, m0);
        _mm_storeu_pd(m + 2, m1);
        _mm_storeu_pd(m + 4, m2);
        _mm_storeu_pd(m + 6, m3);
        if (_mm_movemask_pd(_mm_or_pd(n0, n1)))
            return NAN;
        double best = m[0];
        for (int l = 1; l < 8; ++l)
            best = sign > 0 ? (m[l] > best ? m[l] : best) : (m[l] < best ? m[l] : best);
        for (; k < r; ++k) {
            const double v = x[k];
            if (v != v)
                return NAN;
            best = sign > 0 ? (v > best ? v : best) : (v < best ? v : best);
        }
        return best;
    }
#endif
    double best = x[0];
    int nan = best != best;
    for (k = 1; k < r; ++k) {
        const double v = x[k];
        nan |= v != v;
        best = sign > 0 ? (v > best ? v : best) : (v < best ? v : best);
    }
    return nan ? NAN : best;
}

/* is x[k] one of the elements a row's extremum y came from? */
static inline int attains(double xk, double y) { return y != y ? xk != xk : xk == y; }

/* the elements of a row of r attaining its extremum y: how many, and the
 * first of them (*first; r when none) */
static int64_t row_ties(const double *x, int64_t r, double y, int64_t *first)
{
    int64_t k = 0, c = 0;
    if (y != y) {  /* a nan row: its nans */
        for (; k < r && x[k] == x[k]; ++k)
            ;
        *first = k;
        for (; k < r; ++k)
            c += x[k] != x[k];
        return c;
    }
#if defined(PT_AVX2_DISPATCH)
    const int avx2 = r >= 16 && have_avx2();
    if (avx2)
        ties_avx2(x, r, y, &k, 0);
#else
    const int avx2 = 0;
#endif
    (void)avx2;
#if defined(__SSE2__)
    /* the first match, 8 elements at a time */
    const __m128d yy = _mm_set1_pd(y);
    for (; !avx2 && k + 8 <= r; k += 8) {
        const __m128d e = _mm_or_pd(_mm_or_pd(_mm_cmpeq_pd(_mm_loadu_pd(x + k), yy),
                                              _mm_cmpeq_pd(_mm_loadu_pd(x + k + 2), yy)),
                                    _mm_or_pd(_mm_cmpeq_pd(_mm_loadu_pd(x + k + 4), yy),
                                              _mm_cmpeq_pd(_mm_loadu_pd(x + k + 6), yy)));
        if (_mm_movemask_pd(e))
            break;
    }
#endif
    for (; k < r && x[k] != y; ++k)
        ;
    *first = k;
    if (k == r)
        return 0;
    /* the others after it (equal: -1 per lane, subtracted) */
    c = 1;
    ++k;
#if defined(PT_AVX2_DISPATCH)
    if (avx2)
        c += ties_avx2(x, r, y, &k, 1);
#endif
#if defined(__SSE2__)
    __m128i n = _mm_setzero_si128();
    for (; k + 4 <= r; k += 4) {
        n = _mm_sub_epi64(n, _mm_castpd_si128(_mm_cmpeq_pd(_mm_loadu_pd(x + k), yy)));
        n = _mm_sub_epi64(n, _mm_castpd_si128(_mm_cmpeq_pd(_mm_loadu_pd(x + k + 2), yy)));
    }
    int64_t lanes[2];
    _mm_storeu_si128((__m128i *)lanes, n);
    c += lanes[0] + lanes[1];
#endif
    for (; k < r; ++k)
        c += x[k] == y;
    return c;
}

int pt_reduce_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y)
{
    const int64_t *par = t->ar_par + e->par;
    switch (e->kind) {
    case PT_A_SUM: {
        struct pt_loop L;
        sum_loop(t, e, x, &L);
        memset(y, 0, (size_t)e->size * sizeof *y);
        const int32_t d = L.nd - 2;
        if (d >= 0 && L.st[1][d + 1] == 1 && L.st[1][d] == 0) {
            /* rows summed into a row of y (axis=0 of a matrix): the loop
             * without axis d, whose m rows each step adds at once */
            const int64_t m = L.shape[d], xs = L.st[0][d];
            struct pt_loop M = L;
            M.nd = L.nd - 1;
            for (int k = 0; k < 3; ++k)
                M.st[k][d] = L.st[k][d + 1];
            M.shape[d] = L.shape[d + 1];
            PT_FOR_ROWS(&M, o, n, s, { sum_rows(x->val + o[0], xs, m, n, y + o[1]); });
        } else {
            PT_FOR_ROWS(&L, o, n, s, { sum_row(x->val + o[0], n, y + o[1], s[1]); });
        }
    } break;
    case PT_A_MAX: {
        const int64_t r = par[0], rows = x->size / r;
        for (int64_t i = 0; i < rows; ++i)
            y[i] = row_extremum(x->val + i * r, r, (int)par[1]);
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
            if (!tangent && din[i] == 0.0)
                break;
            int64_t k0;
            const int64_t c = row_ties(xr, r, yv[i], &k0);
            if (!c)
                break;
            if (tangent) {
                double acc = din[i * r + k0];
                for (int64_t k = k0 + 1; k < r && c > 1; ++k)
                    if (attains(xr[k], yv[i]))
                        acc += din[i * r + k];
                dout[i] = acc / (double)c;
            } else {
                const double share = din[i] / (double)c;
                dout[i * r + k0] += share;
                for (int64_t k = k0 + 1; k < r && c > 1; ++k)
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

/* SUM's adjoint for one row of x: g (stride s along it: 0 or 1 usually)
 * written (fresh) or added into the row p of n elements */
static void broadcast_row(const double *q, int64_t s, double *restrict p, int64_t n, int fresh)
{
    if (s == 0) {
        const double v = *q;
        if (fresh)
            for (int64_t j = 0; j < n; ++j)
                p[j] = v;
        else
            for (int64_t j = 0; j < n; ++j)
                p[j] += v;
    } else if (s == 1) {
        if (fresh)
            memcpy(p, q, (size_t)n * sizeof *p);
        else
            for (int64_t j = 0; j < n; ++j)
                p[j] += q[j];
    } else if (fresh) {
        for (int64_t j = 0; j < n; ++j)
            p[j] = q[j * s];
    } else {
        for (int64_t j = 0; j < n; ++j)
            p[j] += q[j * s];
    }
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
    const int acc = pt_adj_accumulate(x, 1);  /* g broadcast back over x: each element written once */
    if (gu) {
        const double u = g[0];
        if (acc)
            for (int64_t j = 0; j < x->size; ++j)
                x->adj[j] += u;
        else
            for (int64_t j = 0; j < x->size; ++j)
                x->adj[j] = u;
    } else {
        PT_FOR_ROWS(&L, o, n, s, { broadcast_row(g + o[1], s[1], x->adj + o[0], n, !acc); });
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
    PT_FOR_ROWS(&L, o, n, s, { sum_row(x->tan + o[0], n, out + o[1], s[1]); });
    return PT_OK;
}

/* PROD, second order: each element's adjoint is g times the product of the
 * others, whose tangent is the sum over the others' tangents of the product
 * of the rest: prefix and suffix products carried as (value, tangent)
 * pairs, exact with zeros as in the reverse rule.  MAX has no second term
 * (which elements attain it depends on the values only), SUM and CUMSUM
 * are linear. */
int pt_reduce_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    if (e->kind != PT_A_PROD || !x->adj || !x->tan)
        return PT_OK;
    const int64_t r = t->ar_par[e->par];
    if (r <= 0)
        return PT_OK;
    const int64_t rows = x->size / r;
    double *pv = malloc((size_t)(2 * r) * sizeof *pv);
    if (!pv)
        return PT_E_NOMEM;
    double *pd = pv + r;
    for (int64_t i = 0; i < rows; ++i) {
        if (g[i] == 0.0)
            continue;
        const double *xr = x->val + i * r, *tr = x->tan + i * r;
        double lv = 1.0, ld = 0.0;
        for (int64_t k = 0; k < r; ++k) {
            pv[k] = lv;
            pd[k] = ld;
            ld = ld * xr[k] + lv * tr[k];
            lv *= xr[k];
        }
        double rv = 1.0, rd = 0.0;
        for (int64_t k = r - 1; k >= 0; --k) {
            pd[k] = pd[k] * rv + pv[k] * rd;
            rd = rd * xr[k] + rv * tr[k];
            rv *= xr[k];
            x->adj[i * r + k] += pd[k] * g[i];
        }
    }
    free(pv);
    return PT_OK;
}
