/* custom.c -- custom instructions (pytape.h: custom primitives): their
 * operand table, and the calls into the callback that Python registers,
 * which the sweeps make when they reach one.
 *
 * C knows the instruction's operands and what a sweep needs from it, nothing
 * of the function: the callback gets the primitive's id (b[i]), the operand
 * values and the lanes, and answers numbers or a failure.  The buffers of a
 * call live on the stack: at most PT_CUSTOM_MAX_ARGS operands, and lanes in
 * blocks of LANES per call (about 70 KB for the Hessian's). */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "tape.h"

enum { LANES = 64 };

static pt_custom_fn callback;

void pt_set_custom_callback(pt_custom_fn f) { callback = f; }

int pt_custom_op(void) { return PT_CUSTOM; }

int64_t pt_tape_ncustom(const pt_tape *t) { return t->ncu; }
int64_t pt_tape_ncustom_args(const pt_tape *t) { return t->ncu_arg; }

void pt_tape_custom_table(const pt_tape *t, int32_t *counts, int32_t *args)
{
    for (int64_t k = 0; k < t->ncu; ++k)
        counts[k] = (int32_t)(t->cu_start[k + 1] - t->cu_start[k]);
    if (t->ncu_arg)
        memcpy(args, t->cu_arg, (size_t)t->ncu_arg * sizeof *args);
}

int64_t pt_tape_custom_entry(const pt_tape *t, int64_t k, int32_t *args)
{
    if (k < 0 || k >= t->ncu)
        return PT_E_SLOT;
    const int64_t n = t->cu_start[k + 1] - t->cu_start[k];
    memcpy(args, t->cu_arg + t->cu_start[k], (size_t)n * sizeof *args);
    return n;
}

int64_t pt_custom_append(pt_tape *t, int64_t nargs, const int32_t *args)
{
    if (t->ncu + 2 > t->cu_cap) {
        const int64_t cap = t->cu_cap ? 2 * t->cu_cap : 64;
        if (pt_grow((void **)&t->cu_start, cap, sizeof *t->cu_start))
            return PT_E_NOMEM;
        t->cu_cap = cap;
        t->cu_start[0] = t->ncu ? t->cu_start[0] : 0;
    }
    if (t->ncu_arg + nargs > t->cu_arg_cap) {
        int64_t cap = t->cu_arg_cap ? 2 * t->cu_arg_cap : 256;
        while (cap < t->ncu_arg + nargs)
            cap *= 2;
        if (pt_grow((void **)&t->cu_arg, cap, sizeof *t->cu_arg))
            return PT_E_NOMEM;
        t->cu_arg_cap = cap;
    }
    memcpy(t->cu_arg + t->ncu_arg, args, (size_t)nargs * sizeof *args);
    t->ncu_arg += nargs;
    const int64_t k = t->ncu++;
    t->cu_start[k + 1] = t->ncu_arg;
    return k;
}

/* the operand values of custom instruction i into x, from v (slots or
 * registers) and the constant pool; their number, and in *slots which are
 * slots (bit j) */
static int64_t gather(const pt_tape *t, int64_t i, const double *v, int registers, double *x, uint64_t *slots,
                      const int32_t **ops)
{
    int64_t n;
    const int32_t *r = pt_custom_operands(t, i, registers, &n);
    *slots = 0;
    for (int64_t j = 0; j < n; ++j) {
        if (r[j] >= 0) {
            x[j] = v[r[j]];
            *slots |= (uint64_t)1 << j;
        } else {
            x[j] = t->consts[-1 - r[j]];
        }
    }
    *ops = r;
    return n;
}

int pt_custom_value(const pt_tape *t, int64_t i, const double *v, int registers, double *y)
{
    double x[PT_CUSTOM_MAX_ARGS];
    uint64_t slots;
    const int32_t *ops;
    const int64_t n = gather(t, i, v, registers, x, &slots, &ops);
    if (!callback || callback(PT_CUSTOM_VALUE, t->b[i], i, n, slots, x, NAN, 1, NULL, y))
        return PT_E_CALLBACK;
    return PT_OK;
}

int pt_custom_vjp(const pt_tape *t, int64_t i, const double *v, double *adj, int64_t q, int checked)
{
    double x[PT_CUSTOM_MAX_ARGS], out[PT_CUSTOM_MAX_ARGS * LANES];
    uint64_t slots;
    const int32_t *ops;
    const int64_t n = gather(t, i, v, 0, x, &slots, &ops);
    for (int64_t k0 = 0; k0 < q; k0 += LANES) {
        const int64_t m = q - k0 < LANES ? q - k0 : LANES;
        const double *g = adj + i * q + k0;
        if (pt_lanes_zero(g, m))
            continue;
        if (!callback || callback(PT_CUSTOM_VJP, t->b[i], i, n, slots, x, v[i], m, g, out))
            return PT_E_CALLBACK;
        for (int64_t j = 0; j < n; ++j) {
            if (ops[j] < 0)
                continue;
            double *d = adj + (int64_t)ops[j] * q + k0;
            for (int64_t k = 0; k < m; ++k) {
                d[k] += out[j * m + k];
                if (checked && !isfinite(d[k]))
                    return 1;
            }
        }
    }
    return PT_OK;
}

int pt_custom_jvp(const pt_tape *t, int64_t i, const double *v, double *tan, int64_t p)
{
    double x[PT_CUSTOM_MAX_ARGS], in[PT_CUSTOM_MAX_ARGS * LANES];
    uint64_t slots;
    const int32_t *ops;
    const int64_t n = gather(t, i, v, 0, x, &slots, &ops);
    for (int64_t k0 = 0; k0 < p; k0 += LANES) {
        const int64_t m = p - k0 < LANES ? p - k0 : LANES;
        double *d = tan + i * p + k0;
        int any = 0;
        for (int64_t j = 0; j < n; ++j)
            for (int64_t k = 0; k < m; ++k) {
                in[j * m + k] = ops[j] >= 0 ? tan[(int64_t)ops[j] * p + k0 + k] : 0.0;
                any |= in[j * m + k] != 0.0;
            }
        if (!any) {  /* zero tangents in: zero out, no call (as the other rules: nothing to pass on) */
            for (int64_t k = 0; k < m; ++k)
                d[k] = 0.0;
            continue;
        }
        if (!callback || callback(PT_CUSTOM_JVP, t->b[i], i, n, slots, x, v[i], m, in, d))
            return PT_E_CALLBACK;
    }
    return PT_OK;
}

int pt_custom_hvp(const pt_tape *t, int64_t i, const double *tan, double *adj, double *adjd, int64_t p)
{
    double x[PT_CUSTOM_MAX_ARGS], in[1 + LANES + PT_CUSTOM_MAX_ARGS * LANES];
    double out[PT_CUSTOM_MAX_ARGS + PT_CUSTOM_MAX_ARGS * LANES];
    uint64_t slots;
    const int32_t *ops;
    const int64_t n = gather(t, i, t->val, 0, x, &slots, &ops);
    for (int64_t k0 = 0; k0 < p; k0 += LANES) {
        const int64_t m = p - k0 < LANES ? p - k0 : LANES;
        in[0] = adj[i];
        for (int64_t k = 0; k < m; ++k)
            in[1 + k] = adjd[i * p + k0 + k];
        for (int64_t j = 0; j < n; ++j)
            for (int64_t k = 0; k < m; ++k)
                in[1 + m + j * m + k] = ops[j] >= 0 ? tan[(int64_t)ops[j] * p + k0 + k] : 0.0;
        if (!callback || callback(PT_CUSTOM_HVP, t->b[i], i, n, slots, x, t->val[i], m, in, out))
            return PT_E_CALLBACK;
        for (int64_t j = 0; j < n; ++j) {
            if (ops[j] < 0)
                continue;
            if (k0 == 0)  /* the adjoint itself once, with the first block of lanes */
                adj[ops[j]] += out[j];
            for (int64_t k = 0; k < m; ++k)
                adjd[(int64_t)ops[j] * p + k0 + k] += out[n + j * m + k];
        }
    }
    return PT_OK;
}
