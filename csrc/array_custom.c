/* array_custom.c -- custom primitives on arrays (kind PT_A_CUSTOM): one
 * instruction per call of the user's function, whose value Python computed
 * when it was recorded; every rule is a call back into Python
 * (pt_set_custom_array_callback), which gets the operands' values, the
 * result and the cotangent or tangents as pointers into the tape's buffers
 * and the key of Python's record of the call (shapes, the primitive), and
 * adds its answer into the buffers given.  C knows nothing of the function.
 *
 * A callback that fails makes the kernel answer PT_E_CALLBACK: the sweep
 * stops and Python raises the rule's exception again. */
#include <stdlib.h>
#include "array.h"

static pt_custom_array_fn callback;

void pt_set_custom_array_callback(pt_custom_array_fn f) { callback = f; }

/* the call for e: operand values and tangents, outs */
static int call(int mode, const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, const double *g,
                double *const *outs)
{
    if (!callback)
        return PT_E_CALLBACK;
    const double *stack[16] = {0};
    const double **vals = e->nargs <= 8 ? stack : malloc((size_t)(2 * e->nargs) * sizeof *vals);
    if (!vals)
        return PT_E_NOMEM;
    const double **tans = vals + (e->nargs <= 8 ? 8 : e->nargs);
    for (int j = 0; j < e->nargs; ++j) {
        vals[j] = x[j].val;
        tans[j] = x[j].tan;
    }
    const int64_t key = t->ar_par[e->par];
    const int r = callback(mode, key, e->nargs, vals, tans, e->val, g, outs);
    if (vals != stack)
        free(vals);
    return r ? PT_E_CALLBACK : PT_OK;
}

/* what each operand's adjoint buffer gets from g: added (the buffers of a
 * kind that does not assign are zeroed at a first contribution) */
static int with_adjoints(int mode, const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    double *stack[8] = {0};
    double **outs = e->nargs <= 8 ? stack : malloc((size_t)e->nargs * sizeof *outs);
    if (!outs)
        return PT_E_NOMEM;
    int any = 0;
    for (int j = 0; j < e->nargs; ++j)
        any |= (outs[j] = x[j].adj) != NULL;
    const int st = any ? call(mode, t, e, x, g, outs) : PT_OK;
    if (outs != stack)
        free(outs);
    return st;
}

int pt_custom_array_value(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *y)
{
    double *outs[1] = {y};  /* the callback writes f's value (replays) */
    return call(PT_CUSTOM_VALUE, t, e, x, NULL, outs);
}

int pt_custom_array_vjp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    return with_adjoints(PT_CUSTOM_VJP, t, e, x, g);
}

int pt_custom_array_jvp(const pt_tape *t, const struct pt_arr *e, const struct pt_view *x, double *out)
{
    return call(PT_CUSTOM_JVP, t, e, x, NULL, &out);
}

int pt_custom_array_hvp(const pt_tape *t, const struct pt_arr *e, struct pt_view *x, const double *g)
{
    return with_adjoints(PT_CUSTOM_HVP, t, e, x, g);
}
