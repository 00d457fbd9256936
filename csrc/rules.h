/* rules.h -- the helpers that rows of ops.def may call, and nothing else.
 *
 * Each helper is a pure function of its arguments.  The conventions at
 * non-differentiable points follow PyTorch and are listed in README.md:
 * relu'(0) = 0, abs'(0) = 0, ties of minimum/maximum split the gradient
 * 0.5/0.5, clamp passes the gradient at its bounds, atan2'(0, 0) = 0,
 * d(a**b)/da = 0 when b == 0 and d(a**b)/db = 0 when a == 0 and b >= 0.
 * One deliberate difference: hypot'(0, 0) = 0 (a subgradient; PyTorch: nan).
 * A nan operand gets PyTorch's gradient too (torch 2.13, checked in
 * tests/test_extreme.py): relu'(nan) = 1, both operands of maximum/minimum
 * get 1 when one is nan, abs'(nan) = 0, clamp's operands get 0.
 *
 * Accuracy: every column is accurate to a few ulps wherever the op's value is
 * finite, from subnormal to huge operands (tests/test_extreme.py, against
 * mpmath): where a textbook formula's intermediate (a*a + b*b, y*y*y, ...)
 * would overflow or underflow, or cancel, the helpers scale or switch
 * formula, on a branch the common case predicts away.
 */
#ifndef PT_RULES_H
#define PT_RULES_H

#include <float.h>
#include <math.h>

#define PT_LN2      0.693147180559945309417232121458176568
#define PT_LOG2E    1.442695040888963407359924681001892137 /* 1/ln 2 */
#define PT_LOG10E   0.434294481903251827651128918916605082 /* 1/ln 10 */
#define PT_2_SQRTPI 1.128379167095512573896158903121545172 /* 2/sqrt(pi) */

static inline double pt_sign(double a) { return (double)((a > 0.0) - (a < 0.0)); }

/* relu's derivative: 0 at and below 0, 1 above and at nan (torch.relu:
 * threshold_backward zeroes only where a <= 0) */
static inline double pt_step(double a) { return a <= 0.0 ? 0.0 : 1.0; }

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
 * 1 if it wins, 0 if it loses, 0.5 on a tie; 1 when either is nan (the
 * result is nan, and torch.maximum / minimum pass the gradient to both) */
static inline double pt_tie(double win, double lose)
{
    return win < lose ? 0.0 : (win == lose ? 0.5 : 1.0);
}

/* the halves of where(c, t, f): -0.0 is the neutral element of + */
static inline double pt_where_t(double c, double t) { return c != 0.0 ? t : -0.0; }
static inline double pt_where_f(double c, double f) { return c != 0.0 ? -0.0 : f; }

/* one term of the chain rule, derivative d times tangent or adjoint g, in
 * every sweep: 0 when either factor is 0.  So a branch that where() did not
 * take, or an op with a zero derivative, passes nothing on even if g is inf
 * or nan, and a zero g passes nothing through an infinite derivative. */
static inline double pt_chain(double d, double g) { return (d == 0.0 || g == 0.0) ? 0.0 : d * g; }

/* a ** b; x**2 is one multiplication, exactly the correctly rounded square
 * (Rosenbrock n = 10^4 replay: a third of its instructions are x**2) */
static inline double pt_pow(double a, double b)
{
    return b == 2.0 ? a * a : pow(a, b);
}

/* c1 * c2 * a**e, also where a**e alone overflows or underflows but the
 * product does not (b * a**(b-1) at a = 5e-324, b = 1e-300 is 2e23, while
 * a**(b-1) is inf): then through logarithms, on a branch rarely taken */
static inline double pt_pow_scaled(double c1, double c2, double a, double e)
{
    const double p = pow(a, e), m = fabs(p);
    if ((m >= DBL_MIN && m <= DBL_MAX) || p != p || c1 == 0.0 || c2 == 0.0 || !(fabs(a) > 0.0 && fabs(a) <= DBL_MAX))
        return c1 * (c2 * p);
    double l = log(fabs(c1)) + log(fabs(c2)) + e * log(fabs(a));
    if (l != l && c1 == c1 && c2 == c2)  /* inf - inf: a factor c = 1 + b ln a overflowed, a**e is below */
        l = -INFINITY;                   /* any double by far more (|e ln a| >> ln |c|): the product is 0 */
    return copysign(1.0, c1) * copysign(1.0, c2) * copysign(exp(l), p);
}

static inline double pt_pow_da(double a, double b)
{
    if (b == 2.0)  /* x**2: no pow() call in the sweep (Rosenbrock: 10.4 -> 5.5 ns/op) */
        return 2.0 * a;
    return b == 0.0 ? 0.0 : pt_pow_scaled(b, 1.0, a, b - 1.0);
}

static inline double pt_pow_db(double a, double b, double y)
{
    return (a == 0.0 && b >= 0.0) ? 0.0 : y * log(a);
}

/* atan2(a, b): n / (a*a + b*b) for n = b (d/da) and n = -a (d/db).  Where
 * a*a + b*b under- or overflows (at (1e-160, 1e-160) it is subnormal and 4
 * digits off), through h = hypot(a, b), of operands scaled up by 2**600
 * (exactly) where they are tiny; 0 at the origin, like PyTorch */
static inline double pt_atan2_d(double n, double a, double b)
{
    const double s = a * a + b * b;
    if (s >= DBL_MIN && s <= DBL_MAX)
        return n / s;
    if (s < DBL_MIN) {  /* |a|, |b| < 1.5e-154 */
        const double h = hypot(a * 0x1p600, b * 0x1p600);
        return h == 0.0 ? 0.0 : n * 0x1p600 / h * 0x1p600 / h;
    }
    const double h = hypot(a, b);  /* overflowed, or nan */
    return n / h / h;
}

/* hypot(a, b): n / y for n = a, b; where y is subnormal (few digits), from
 * operands scaled up by 2**600; 0 at the origin (PyTorch: nan) */
static inline double pt_hypot_d(double n, double a, double b, double y)
{
    if (y >= DBL_MIN)
        return n / y;
    return y == 0.0 ? 0.0 : n * 0x1p600 / hypot(a * 0x1p600, b * 0x1p600);
}

/* 1 - tanh(a)**2 from y = tanh(a); where |y| is near 1, 1 - y*y would keep
 * none of y's digits (it is 0 from a = 19 on), so 4e / (1 + e)**2, e = exp(-2|a|) */
static inline double pt_tanh_d(double a, double y)
{
    if (fabs(y) < 0.999)
        return (1.0 - y) * (1.0 + y);
    const double e = exp(-2.0 * fabs(a));
    return 4.0 * e / ((1.0 + e) * (1.0 + e));
}

/* sigmoid'(a) = y (1 - y) from y = sigmoid(a); near y = 1, y sigmoid(-a) */
static inline double pt_sigmoid_d(double a, double y)
{
    return y < 0.999 ? y * (1.0 - y) : y * pt_sigmoid(-a);
}

/* expm1'(a) = y + 1 from y = expm1(a); below -0.5 that cancels, so exp(a) */
static inline double pt_expm1_d(double a, double y)
{
    return a < -0.5 ? exp(a) : y + 1.0;
}

/* acosh'(a) = 1 / sqrt((a - 1)(a + 1)); the product overflows from 1.3e154
 * on, where 1 / a is the derivative to within an ulp (from 1e8 on) */
static inline double pt_acosh_d(double a)
{
    return a > 1e8 ? 1.0 / a : 1.0 / sqrt((a - 1.0) * (a + 1.0));
}

/* d(a / b)/db = -y / b, y = a / b; where y is subnormal (a few digits) or 0,
 * -a / b / b scaled by 2**600, which keeps every digit (|a| < 1 there, or
 * else |b| > 4e307 and the derivative is below any double) */
static inline double pt_div_db(double a, double b, double y)
{
    if (fabs(y) >= DBL_MIN || !(fabs(a) < 1.0))
        return -y / b;
    return -(a * 0x1p600 / b) / b * 0x1p-600;
}

/* second derivatives ------------------------------------------------------ */

/* u ** -1.5, for the second derivatives of asin, acos */
static inline double pt_pow3_rsqrt(double u) { return 1.0 / (u * sqrt(u)); }

static inline double pt_pow_daa(double a, double b)
{
    if (b == 2.0)
        return 2.0;
    return (b == 0.0 || b == 1.0) ? 0.0 : pt_pow_scaled(b, b - 1.0, a, b - 2.0);
}

/* d/db (b a**(b-1)) = a**(b-1) (1 + b ln a); 0 at a == 0 for b > 1 (its limit) */
static inline double pt_pow_dab(double a, double b)
{
    if (a == 0.0 && b > 1.0)
        return 0.0;
    return pt_pow_scaled(1.0, 1.0 + b * log(a), a, b - 1.0);
}

static inline double pt_pow_dbb(double a, double b, double y)
{
    if (a == 0.0 && b >= 0.0)
        return 0.0;
    const double l = log(a);
    return y * l * l;
}

/* asinh''(a) = -a / h**3, h = hypot(a, 1); -a/h is at most 1 in size, so the
 * products never overflow early */
static inline double pt_asinh_daa(double a)
{
    const double r = 1.0 / hypot(a, 1.0);
    return -a * r * r * r;
}

/* acosh''(a) = -a r**3, r = acosh'(a) */
static inline double pt_acosh_daa(double a)
{
    const double r = pt_acosh_d(a);
    return -a * r * r * r;
}

/* p q / h**k, h = hypot(a, b), k = 3 (hypot) or 4 (atan2), for p, q among
 * +-a, +-b, a - b, a + b, so that p/h and q/h are at most 2 in size.
 * Nothing over- or underflows early: a subnormal h is recomputed from
 * operands scaled up by 2**600, a quotient p/h that would be subnormal is
 * formed from p scaled up by 2**600, and the scalings are undone at the end
 * in one ldexp.  0 at the origin, like the first derivatives there. */
static inline double pt_pq_over_h(double p, double q, double a, double b, int k)
{
    double h = hypot(a, b);
    int e = 0;
    if (h == 0.0)
        return 0.0;
    if (k == 4 && h > 0x1p1000)  /* |p q / h**4| < 4 / h**2, below any double */
        return (a == a && b == b) ? 0.0 : NAN;
    if (h < DBL_MIN) {
        p *= 0x1p600;
        q *= 0x1p600;
        h = hypot(a * 0x1p600, b * 0x1p600);
        e = (k - 2) * 600;
    }
    double x = p / h, w = q / h;
    if (fabs(x) < DBL_MIN && p != 0.0) {
        x = p * 0x1p600 / h;
        e -= 600;
    }
    if (fabs(w) < DBL_MIN && q != 0.0) {
        w = q * 0x1p600 / h;
        e -= 600;
    }
    double r = x / h * w;
    if (k == 4)
        r /= h;
    return e ? ldexp(r, e) : r;
}

/* numpy's rounding, remainders and log-sum-exp -------------------------------- */

/* np.sign: -1, 0 or 1, nan at nan (pt_sign gives 0 there: abs'(nan) = 0) */
static inline double pt_signum(double a) { return a != a ? a : pt_sign(a); }

/* numpy's floor_divide(a, b) = Python's a // b: the quotient of a - mod(a, b)
 * by b snapped to an integer (npy_divmod); a / b (inf or nan) at b == 0 */
static inline double pt_floordiv(double a, double b)
{
    if (b == 0.0)
        return a / b;
    const double m = fmod(a, b);
    double q = (a - m) / b;
    if (m != 0.0 && (b < 0.0) != (m < 0.0))
        q -= 1.0;
    if (q == 0.0)
        return copysign(0.0, a / b);
    const double f = floor(q);
    return q - f > 0.5 ? f + 1.0 : f;
}

/* numpy's remainder(a, b) = Python's a % b: fmod moved to the divisor's sign */
static inline double pt_mod(double a, double b)
{
    const double m = fmod(a, b);
    if (b == 0.0)
        return m;
    if (m == 0.0)
        return copysign(0.0, b);
    return (b < 0.0) != (m < 0.0) ? m + b : m;
}

/* the integer n of fmod(a, b) = a - n b, i.e. trunc(a / b) of the exact
 * quotient (trunc of the rounded a / b can be one off: 1 / 0.1 is 10.0, while
 * fmod(1, 0.1) = 1 - 9 * 0.1); a / b at b == 0 */
static inline double pt_truncdiv(double a, double b)
{
    if (b == 0.0)
        return a / b;
    const double q = (a - fmod(a, b)) / b;
    return q == 0.0 ? copysign(0.0, a / b) : nearbyint(q);
}

/* log(e**a + e**b) without overflow (npy_logaddexp); a + ln 2 when a == b,
 * infinities of one sign included */
static inline double pt_logaddexp(double a, double b)
{
    if (a == b)
        return a + PT_LN2;
    const double d = a - b;
    if (d > 0.0)
        return a + log1p(exp(-d));
    if (d <= 0.0)
        return b + log1p(exp(d));
    return d;  /* nan */
}

/* log2(2**a + 2**b) (npy_logaddexp2) */
static inline double pt_logaddexp2(double a, double b)
{
    if (a == b)
        return a + 1.0;
    const double d = a - b;
    if (d > 0.0)
        return a + PT_LOG2E * log1p(exp2(-d));
    if (d <= 0.0)
        return b + PT_LOG2E * log1p(exp2(d));
    return d;
}

/* d/da of logaddexp (k = 1) and logaddexp2 (k = ln 2): the share of a,
 * 1 / (1 + e**(k (b - a))); 0.5 when a == b (also at equal infinities) */
static inline double pt_lse_d(double a, double b, double k)
{
    return a == b ? 0.5 : pt_sigmoid(k * (a - b));
}

/* d2/da2 of the same: k s (1 - s), s the share of a */
static inline double pt_lse_dd(double a, double b, double k)
{
    return a == b ? 0.25 * k : k * pt_sigmoid(k * (a - b)) * pt_sigmoid(k * (b - a));
}

#endif
