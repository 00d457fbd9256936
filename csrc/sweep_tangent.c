/* sweep_tangent.c -- the forward (tangent) sweep: one forward loop over the
 * tape, ydot = dy/da * adot + dy/db * bdot, the rules generated from the
 * derivative columns of ops.def (forms.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tape.h"
#include "array.h"
#include "rules.h"

/* A zero tangent contributes nothing, even through an infinite derivative,
 * and a zero derivative passes nothing on, even an infinite tangent
 * (pt_chain): the forward twins of the reverse sweep's rules. */
PT_SWEEP_ALIGNED int pt_sweep_tangent(const pt_tape *t, double *tan)
{
    const uint16_t *op = t->op;
    const int32_t *A = t->a, *B = t->b;
    const double *v = t->val, *K = t->consts;
    const int64_t n = t->n;

    for (int64_t i = 0; i < n; ++i) {
        switch (op[i]) {
#define PT_CASE(HA, HB, V, DA, DB, DAA, DAB, DBB)                             \
            double d = 0.0;                                                   \
            if (HA && tan[ia] != 0.0)                                         \
                d += pt_chain((DA), tan[ia]);                                 \
            if (HB && tan[ib] != 0.0)                                         \
                d += pt_chain((DB), tan[ib]);                                 \
            tan[i] = d;
#include "forms.h"
        case PT_CUSTOM:  /* a call back into Python (custom.c) */
            if (pt_custom_jvp(t, i, v, tan, 1))
                return PT_E_CALLBACK;
            break;
        case PT_ARRAY: {  /* an array kernel's tangent rule (array.c) */
            const int st = pt_array_jvp((pt_tape *)t, i);
            if (st)
                return st;
        } break;
        default: /* LEAF: its seed */
            break;
        }
    }
    return PT_OK;
}

/* anomaly mode, after the sweep: the first array slot below `stop` whose
 * tangent has a nan or inf (noted in t->bad_array), or -1 */
static int64_t array_tangent_bad(pt_tape *t, int64_t stop)
{
    for (int64_t k = 0; k < t->nar && t->ar[k].slot < stop; ++k) {
        const struct pt_arr *e = &t->ar[k];
        if (t->tan[e->slot] != 0.0 && e->tan &&
            pt_array_note_nonfinite(t, e, e->slot, e->tan, e->size, e->ndim, pt_arr_shape_of(t, e)))
            return e->slot;
    }
    return -1;
}

int pt_forward_tangent(pt_tape *t, int64_t nseeds, const int64_t *slots, const double *seeds)
{
    return pt_forward_tangent_arrays(t, nseeds, slots, seeds, 0, NULL, NULL, NULL);
}

int pt_forward_tangent_arrays(pt_tape *t, int64_t nseeds, const int64_t *slots, const double *seeds,
                              int64_t narr, const int64_t *aslots, const int64_t *aoff, const double *aseeds)
{
    if (t->consumed)  /* as pt_backward: backward() released the tape */
        return PT_E_CONSUMED;
    if (!pt_tape_is_owner(t))
        return PT_E_THREAD;
    if (t->busy)
        return PT_E_BUSY;
    for (int64_t k = 0; k < nseeds; ++k)
        if (slots[k] < 0 || slots[k] >= t->n || t->op[slots[k]] != PT_LEAF)
            return PT_E_SLOT;
    if (!pt_buffer(&t->tan, &t->tan_cap, t->n, 1))
        return PT_E_NOMEM;
    for (int64_t k = 0; k < narr; ++k)
        if (aslots[k] < 0 || aslots[k] >= t->n || t->op[aslots[k]] != PT_ARRAY ||
            t->ar[t->a[aslots[k]]].kind != PT_A_LEAF)
            return PT_E_SLOT;
    for (int64_t k = 0; k < nseeds; ++k)
        t->tan[slots[k]] += seeds[k];
    for (int64_t k = 0; k < narr; ++k) {  /* an array leaf's seed: its tangent buffer, flagged */
        struct pt_arr *e = &t->ar[t->a[aslots[k]]];
        if (!e->tan && !(e->tan = pt_tape_buffer(t, e->size)))
            return PT_E_NOMEM;
        if (t->tan[aslots[k]] == 0.0)
            memset(e->tan, 0, (size_t)e->size * sizeof(double));
        for (int64_t j = 0; j < e->size; ++j)
            e->tan[j] += aseeds[aoff[k] + j];
        t->tan[aslots[k]] = 1.0;
    }
    pt_sweep_begin(t);
    const int st = pt_sweep_tangent(t, t->tan);
    pt_sweep_end(t);
    t->tan_n = st ? 0 : t->n;  /* a failed custom rule: no tangents to read */
    if (st)
        return st;
    if (pt_anomaly_active()) {  /* anomaly mode: the first nan or inf tangent */
        t->bad = pt_first_nonfinite(t->tan, t->n, 1);  /* scalar slots (array slots hold flags) */
        const int64_t a = array_tangent_bad(t, t->bad >= 0 ? t->bad : t->n);
        if (a >= 0)
            t->bad = a;
        if (t->bad >= 0)
            return PT_E_NONFINITE;
    }
    return PT_OK;
}

double pt_tangent(const pt_tape *t, int64_t i)
{
    if (!pt_tape_is_owner(t))
        return NAN;  /* see pt_adjoint */
    return (i >= 0 && i < t->tan_n) ? t->tan[i] : 0.0;
}

int64_t pt_tape_tangent_n(const pt_tape *t) { return t->tan_n; }
