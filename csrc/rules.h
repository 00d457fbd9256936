/* rules.h -- the helpers that rows of ops.def may call, and nothing else.
 *
 * Each helper is a pure function of its arguments.  The conventions at
 * non-differentiable points follow PyTorch and are listed in README.md:
 * relu'(0) = 0, abs'(0) = 0, ties of minimum/maximum split the gradient
 * 0.5/0.5, clamp passes the gradient at its bounds, atan2'(0, 0) = 0,
 * d(a**b)/da = 0 when b == 0 and d(a**b)/db = 0 when a == 0 and b >= 0.
 * One deliberate difference: hypot'(0, 0) = 0 (a subgradient; PyTorch: nan).
 */
#ifndef PT_RULES_H
#define PT_RULES_H

#include <math.h>

#define PT_LN2      0.693147180559945309417232121458176568
#define PT_LN10     2.302585092994045684017991454684364208
#define PT_2_SQRTPI 1.128379167095512573896158903121545172 /* 2/sqrt(pi) */

static inline double pt_sign(double a) { return (double)((a > 0.0) - (a < 0.0)); }

/* relu keeps nan (like torch.relu); relu(0) = 0 */
static inline double pt_relu(double a) { return a <= 0.0 ? 0.0 : a; }

static inline double pt_sigmoid(double a)
{
    if (a >= 0.0)
        return 1.0 / (1.0 + exp(-a));
    const double e = exp(a);
    return e / (1.0 + e);
}

/* log(1 + exp(a)) without overflow */
static inline double pt_softplus(double a)
{
    return (a > 0.0 ? a : 0.0) + log1p(exp(-fabs(a)));
}

/* minimum/maximum propagate nan, like numpy and torch */
static inline double pt_max(double a, double b) { return (a >= b || a != a) ? a : b; }
static inline double pt_min(double a, double b) { return (a <= b || a != a) ? a : b; }

/* clamp to a bound; a nan operand or bound gives nan, like torch.clamp */
static inline double pt_clamp_min(double a, double lo) { return (a < lo || lo != lo) ? lo : a; }
static inline double pt_clamp_max(double a, double hi) { return (a > hi || hi != hi) ? hi : a; }

/* share of the gradient that goes to `win` when it is compared with `lose`:
 * 1 if it wins, 0 if it loses, 0.5 on a tie */
static inline double pt_tie(double win, double lose)
{
    return win > lose ? 1.0 : (win == lose ? 0.5 : 0.0);
}

/* the halves of where(c, t, f): -0.0 is the neutral element of + */
static inline double pt_where_t(double c, double t) { return c != 0.0 ? t : -0.0; }
static inline double pt_where_f(double c, double f) { return c != 0.0 ? -0.0 : f; }

/* one term of the chain rule, derivative d times tangent or adjoint g, in
 * every sweep: 0 when either factor is 0.  So a branch that where() did not
 * take, or an op with a zero derivative, passes nothing on even if g is inf
 * or nan, and a zero g passes nothing through an infinite derivative. */
static inline double pt_chain(double d, double g) { return (d == 0.0 || g == 0.0) ? 0.0 : d * g; }

static inline double pt_safe_div(double n, double d) { return d == 0.0 ? 0.0 : n / d; }

/* a ** b; x**2 is one multiplication, exactly the correctly rounded square
 * (Rosenbrock n = 10^4 replay: a third of its instructions are x**2) */
static inline double pt_pow(double a, double b)
{
    return b == 2.0 ? a * a : pow(a, b);
}

static inline double pt_pow_da(double a, double b)
{
    if (b == 2.0)  /* x**2: no pow() call in the sweep (Rosenbrock: 10.4 -> 5.5 ns/op) */
        return 2.0 * a;
    return b == 0.0 ? 0.0 : b * pow(a, b - 1.0);
}

static inline double pt_pow_db(double a, double b, double y)
{
    return (a == 0.0 && b >= 0.0) ? 0.0 : y * log(a);
}

/* second derivatives ------------------------------------------------------ */

/* u ** -1.5, for the second derivatives of asin, acos, asinh, acosh */
static inline double pt_pow3_rsqrt(double u) { return 1.0 / (u * sqrt(u)); }

static inline double pt_pow_daa(double a, double b)
{
    if (b == 2.0)
        return 2.0;
    return (b == 0.0 || b == 1.0) ? 0.0 : b * (b - 1.0) * pow(a, b - 2.0);
}

/* d/db (b a**(b-1)) = a**(b-1) (1 + b ln a); 0 at a == 0 for b > 1 (its limit) */
static inline double pt_pow_dab(double a, double b)
{
    if (a == 0.0 && b > 1.0)
        return 0.0;
    return pow(a, b - 1.0) * (1.0 + b * log(a));
}

static inline double pt_pow_dbb(double a, double b, double y)
{
    if (a == 0.0 && b >= 0.0)
        return 0.0;
    const double l = log(a);
    return y * l * l;
}

/* atan2(a, b): d2/da2 = -2ab / r^4, d2/dadb = (a^2 - b^2) / r^4, d2/db2 = 2ab / r^4;
 * 0 at the origin, like the first derivatives there */
static inline double pt_atan2_daa(double a, double b)
{
    const double r2 = a * a + b * b;
    return pt_safe_div(-2.0 * a * b, r2 * r2);
}

static inline double pt_atan2_dab(double a, double b)
{
    const double r2 = a * a + b * b;
    return pt_safe_div(a * a - b * b, r2 * r2);
}

#endif