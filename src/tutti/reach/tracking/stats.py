"""Statistics for campaign reports, without scipy: two-proportion tests, Welch's t for revenue per person,
Student's t quantiles (via the regularised incomplete beta function), and confidence intervals.

All intervals are 95%. Formulas:
- difference of proportions: p1 − p0 ± z·√(p1(1−p1)/n1 + p0(1−p0)/n0) (Wald, unpooled); the test uses the
  pooled standard error √(p(1−p)(1/n1 + 1/n0)), p = (x1 + x0)/(n1 + n0);
- relative lift p1/p0 − 1: the interval of log(p1/p0) ± z·√((1−p1)/x1 + (1−p0)/x0), back-transformed;
- difference of means (Welch): m1 − m0 ± t(df)·√(v1/n1 + v0/n0), df by Welch–Satterthwaite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Z95 = 1.959963984540054


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Numerical Recipes, Lentz's method)."""
    tiny, eps = 1e-300, 3e-14
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    if math.isinf(df) or df > 1e7:
        return normal_cdf(t)
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (bisection on the CDF)."""
    if math.isinf(df) or df > 1e7:
        low, high = -40.0, 40.0
        for _ in range(200):
            mid = (low + high) / 2
            low, high = (mid, high) if normal_cdf(mid) < p else (low, mid)
        return (low + high) / 2
    low, high = -1e4, 1e4
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass
class ProportionTest:
    rate_treated: float
    rate_control: float
    difference: float  # absolute, in proportion points
    ci_low: float
    ci_high: float
    relative: float | None  # p1/p0 − 1
    relative_ci_low: float | None
    relative_ci_high: float | None
    z: float | None
    p_value: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def two_proportions(x1: int, n1: int, x0: int, n0: int) -> ProportionTest | None:
    """Compare x1/n1 (treated, or variant A) with x0/n0 (hold-out, or variant B)."""
    if n1 <= 0 or n0 <= 0:
        return None
    p1, p0 = x1 / n1, x0 / n0
    difference = p1 - p0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    pooled = (x1 + x0) / (n1 + n0)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    z = difference / se0 if se0 > 0 else None
    p_value = 2 * (1 - normal_cdf(abs(z))) if z is not None else None
    relative = relative_low = relative_high = None
    if x0 > 0:
        relative = p1 / p0 - 1
        if x1 > 0:
            se_log = math.sqrt(max(0.0, (1 - p1) / x1 + (1 - p0) / x0))
            centre = math.log(p1 / p0)
            relative_low, relative_high = math.exp(centre - Z95 * se_log) - 1, math.exp(centre + Z95 * se_log) - 1
    return ProportionTest(p1, p0, difference, difference - Z95 * se, difference + Z95 * se, relative, relative_low, relative_high,
                          z, p_value)


@dataclass
class MeanTest:
    mean_treated: float
    mean_control: float
    difference: float
    ci_low: float
    ci_high: float
    relative: float | None
    t: float | None
    df: float | None
    p_value: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def welch(n1: int, sum1: float, sumsq1: float, n0: int, sum0: float, sumsq0: float) -> MeanTest | None:
    """Welch's t-test from sums (n, Σx, Σx²) so callers can aggregate in SQL: everyone who bought nothing
    counts as a 0."""
    if n1 < 2 or n0 < 2:
        return None
    m1, m0 = sum1 / n1, sum0 / n0
    v1 = max(0.0, (sumsq1 - n1 * m1 * m1) / (n1 - 1))
    v0 = max(0.0, (sumsq0 - n0 * m0 * m0) / (n0 - 1))
    difference = m1 - m0
    se2 = v1 / n1 + v0 / n0
    relative = difference / m0 if m0 else None
    if se2 <= 0:
        return MeanTest(m1, m0, difference, difference, difference, relative, None, None, None)
    se = math.sqrt(se2)
    df = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1)) if (v1 or v0) else float(n1 + n0 - 2)
    t = difference / se
    quantile = t_quantile(0.975, df)
    p_value = 2 * (1 - t_cdf(abs(t), df))
    return MeanTest(m1, m0, difference, difference - quantile * se, difference + quantile * se, relative, t, df, p_value)


def welch_from_values(treated: list[float], control: list[float]) -> MeanTest | None:
    return welch(len(treated), sum(treated), sum(x * x for x in treated), len(control), sum(control), sum(x * x for x in control))
