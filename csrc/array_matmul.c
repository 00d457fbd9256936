/* array_matmul.c -- MATMUL: batched matrix products through a BLAS dgemm.
 *
 * y[b] = op(x0[b]) @ op(x1[b]) for b < nb (par: nb, m, n, k, ta, tb, ba,
 * bb; op transposes when ta / tb; an operand without a batch (ba, bb = 0)
 * serves every b).  Every contraction numpy spells (matmul, dot, inner,
 * outer, tensordot, einsum of two operands) is lowered to this by Python
 * with views and reshapes around it (pytape/array_ops.py).
 *
 * The adjoints are two more products per batch, accumulated with beta = 1
 * (beta = 0 writes an adjoint buffer that is fresh this sweep):
 *   dA += dC op(B)^T   (or, A stored transposed, op(B) dC^T)
 *   dB += op(A)^T dC   (or, B stored transposed, dC^T op(A))
 * and the tangent is op(tA) op(B) + op(A) op(tB).
 *
 * The BLAS is whatever numpy or scipy already loaded (pytape/_blas.py finds
 * its dgemm and hands the pointer to pt_set_dgemm): no link-time
 * dependency.  Without one, and for products too small for a BLAS call to
 * pay (measured: below TINY multiply-adds), pytape's own loops run. */
#include <stdint.h>
#include <string.h>
#include "array.h"

typedef void (*dgemm32_fn)(const char *, const char *, const int32_t *, const int32_t *, const int32_t *,
                           const double *, const double *, const int32_t *, const double *, const int32_t *,
                           const double *, double *, const int32_t *);
typedef void (*dgemm64_fn)(const char *, const char *, const int64_t *, const int64_t *, const int64_t *,
                           const double *, const double *, const int64_t *, const double *, const int64_t *,
                           const double *, double *, const int64_t *);

static void *dgemm_ptr;
static int dgemm_bits;  /* 0: none, 32 or 64 */

void pt_set_dgemm(void *dgemm, int ilp64)
{
    dgemm_ptr = dgemm;
    dgemm_bits = dgemm ? (ilp64 ? 64 : 32) : 0;
}

int pt_dgemm_kind(void) { return dgemm_bits; }

/* m * n * k below which the loops beat a BLAS call: batched products, record +
 * backward, per gemm (2-core x86_64, numpy's OpenBLAS): loops 2.6x faster at 8,
 * even at 64, BLAS 1.1x faster at 216, 1.1-1.6x at 512-1000, 1.3-5x above */
enum { TINY = 128 };

/* C = alpha op(A) op(B) + beta C, row-major, by pytape's own loops */
static void gemm_loops(int ta, int tb, int64_t m, int64_t n, int64_t k, const double *A, int64_t lda,
                       const double *B, int64_t ldb, double beta, double *C, int64_t ldc)
{
    for (int64_t i = 0; i < m; ++i) {
        double *c = C + i * ldc;
        if (beta == 0.0)
            memset(c, 0, (size_t)n * sizeof *c);
        for (int64_t l = 0; l < k; ++l) {
            const double a = ta ? A[l * lda + i] : A[i * lda + l];
            if (a == 0.0)
                continue;
            if (!tb) {
                const double *b = B + l * ldb;
                for (int64_t j = 0; j < n; ++j)
                    c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < n; ++j)
                    c[j] += a * B[j * ldb + l];
            }
        }
    }
}

/* C = op(A) op(B) + beta C (row-major): column-major BLAS computes
 * C^T = op(B)^T op(A)^T, the same memory */
static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const double *A, int64_t lda, const double *B,
                 int64_t ldb, double beta, double *C, int64_t ldc)
{
    if (!dgemm_bits || m == 0 || n == 0 || k == 0 || (double)m * (double)n * (double)k < TINY ||
        (dgemm_bits == 32 && (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX ||
                              ldb > INT32_MAX || ldc > INT32_MAX))) {
        gemm_loops(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const char tra = ta ? 'T' : 'N', trb = tb ? 'T' : 'N';
    const double one = 1.0;
    if (dgemm_bits == 64) {
        const int64_t M = m, N = n, K = k, la = lda, lb = ldb, lc = ldc;
        ((dgemm64_fn)dgemm_ptr)(&trb, &tra, &N, &M, &K, &one, B, &lb, A, &la, &beta, C, &lc);
    } else {
        const int32_t M = (int32_t)m, N = (int32_t)n, K = (int32_t)k;
        const int32_t la = (int32_t)lda, lb = (int32_t)ldb, lc = (int32_t)ldc;
        ((dgemm32_fn)dgemm_ptr)(&trb, &tra, &N, &M, &K, &one, B, &lb, A, &la, &beta, C, &lc);
    }
}

struct mm {
    int64_t nb, m, n, k, ta, tb, ba, bb;
    int64_t lda, ldb;        /* leading dimensions of the stored blocks */
    int64_t sa, sb, sc;      /* block sizes (0 for an operand without batch) */
};

static struct mm params(const pt_tape *t, const struct pt_arr *e)
{
    const int64_t *p = t->ar_par + e->par;
    struct mm q = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], 0, 0, 0, 0, 0};
    q.lda = q.ta ? q.m : q.k;
    q.ldb = q.tb ? q.k : q.n;
    q.sa = q.ba ? q.m * q.k : 0;
    q.sb = q.bb ? q.k * q.n : 0;
    q.sc = q.m * q.n;
    return q;
}

int pt_matmul_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y)
{
    const struct mm q = params(t, e);
    for (int64_t b = 0; b < q.nb; ++b)
        gemm((int)q.ta, (int)q.tb, q.m, q.n, q.k, x[0].val + b * q.sa, q.lda, x[1].val + b * q.sb, q.ldb, 0.0,
             y + b * q.sc, q.n);
    return PT_OK;
}

int pt_matmul_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    const struct mm q = params(t, e);
    /* beta 0 writes a fresh buffer: each block once, or a broadcast operand's at b = 0 (no batch: zeroed) */
    const int fresh[2] = {!pt_adj_accumulate(&x[0], q.nb > 0), !pt_adj_accumulate(&x[1], q.nb > 0)};
    for (int64_t b = 0; b < q.nb; ++b) {
        const double *A = x[0].val + b * q.sa, *B = x[1].val + b * q.sb, *G = g + b * q.sc;
        if (x[0].adj) {
            double *dA = x[0].adj + b * q.sa;
            const double beta = fresh[0] && (q.sa || !b) ? 0.0 : 1.0;
            if (!q.ta)  /* dA (m x k) += G op(B)^T */
                gemm(0, !q.tb, q.m, q.k, q.n, G, q.n, B, q.ldb, beta, dA, q.k);
            else        /* dA stored (k x m) += op(B) G^T */
                gemm((int)q.tb, 1, q.k, q.m, q.n, B, q.ldb, G, q.n, beta, dA, q.m);
        }
        if (x[1].adj) {
            double *dB = x[1].adj + b * q.sb;
            const double beta = fresh[1] && (q.sb || !b) ? 0.0 : 1.0;
            if (!q.tb)  /* dB (k x n) += op(A)^T G */
                gemm(!q.ta, 0, q.k, q.n, q.m, A, q.lda, G, q.n, beta, dB, q.n);
            else        /* dB stored (n x k) += G^T op(A) */
                gemm(1, (int)q.ta, q.n, q.k, q.m, G, q.n, A, q.lda, beta, dB, q.k);
        }
    }
    return PT_OK;
}

int pt_matmul_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out)
{
    const struct mm q = params(t, e);
    for (int64_t b = 0; b < q.nb; ++b) {
        double *C = out + b * q.sc;
        if (x[0].tan)
            gemm((int)q.ta, (int)q.tb, q.m, q.n, q.k, x[0].tan + b * q.sa, q.lda, x[1].val + b * q.sb, q.ldb, 1.0,
                 C, q.n);
        if (x[1].tan)
            gemm((int)q.ta, (int)q.tb, q.m, q.n, q.k, x[0].val + b * q.sa, q.lda, x[1].tan + b * q.sb, q.ldb, 1.0,
                 C, q.n);
    }
    return PT_OK;
}

/* second order: the product is bilinear, so the tangent of A's adjoint
 * G op(B)^T gains G op(B')^T, and B's op(A)^T G gains op(A')^T G: the vjp
 * with the other operand's tangent in place of its value (array.h) */
int pt_matmul_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    struct pt_view y[2];
    int st = PT_OK;
    if (x[0].adj && x[1].tan) {
        y[0] = x[0];
        y[1] = x[1];
        y[1].val = x[1].tan;
        y[1].adj = NULL;
        st = pt_matmul_vjp(t, e, y, g);
    }
    if (!st && x[1].adj && x[0].tan) {
        y[0] = x[0];
        y[1] = x[1];
        y[0].val = x[0].tan;
        y[0].adj = NULL;
        st = pt_matmul_vjp(t, e, y, g);
    }
    return st;
}
