"""The report's statistics against textbook values (computed by hand or published)."""

from __future__ import annotations

import math

import pytest

from tutti.reach.tracking import stats
from tutti.reach.tracking.reports import verdict


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423), (100, 1.9840),
                                          (float("inf"), 1.9600)])
def test_t_quantiles_match_the_tables(df, expected):
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_cdf_is_symmetric_and_matches_the_normal_for_large_df():
    assert stats.t_cdf(0, 7) == pytest.approx(0.5)
    assert stats.t_cdf(-1.5, 7) == pytest.approx(1 - stats.t_cdf(1.5, 7))
    assert stats.t_cdf(1.96, 1e6) == pytest.approx(0.975, abs=1e-4)


def test_two_proportions_by_hand():
    # 60/100 vs 40/100: pooled p = .5, SE0 = sqrt(.25 * .02) = .0707107, z = .2 / .0707107 = 2.8284, p = .00468
    test = stats.two_proportions(60, 100, 40, 100)
    assert test.difference == pytest.approx(0.2)
    assert test.z == pytest.approx(2.828427, abs=1e-6)
    assert test.p_value == pytest.approx(0.004678, abs=1e-5)
    # unpooled SE = sqrt(.24/100 + .24/100) = .069282; CI = .2 ± 1.96 * .069282
    assert test.ci_low == pytest.approx(0.2 - 1.959964 * 0.0692820, abs=1e-6)
    assert test.ci_high == pytest.approx(0.2 + 1.959964 * 0.0692820, abs=1e-6)
    assert test.relative == pytest.approx(0.5)
    se_log = math.sqrt(0.4 / 60 + 0.6 / 40)
    assert test.relative_ci_low == pytest.approx(math.exp(math.log(1.5) - 1.959964 * se_log) - 1, abs=1e-6)


def test_two_proportions_edge_cases():
    assert stats.two_proportions(0, 0, 1, 10) is None
    none = stats.two_proportions(0, 100, 0, 100)
    assert none.difference == 0 and none.z is None and none.p_value is None and none.relative is None


def test_welch_matches_the_published_example():
    # Welch's t-test, Wikipedia example 1: t = -2.46, df ≈ 24.99, p = 0.021
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    test = stats.welch_from_values(a1, a2)
    assert test.t == pytest.approx(-2.4554, abs=1e-3)
    assert test.df == pytest.approx(24.99, abs=0.01)
    assert test.p_value == pytest.approx(0.0214, abs=1e-3)
    assert test.ci_low < test.difference < test.ci_high < 0


def test_welch_from_sums_counts_non_buyers_as_zero():
    values = [0.0] * 95 + [500.0] * 5
    control = [0.0] * 98 + [500.0] * 2
    from_sums = stats.welch(100, 2500.0, 5 * 500.0**2, 100, 1000.0, 2 * 500.0**2)
    assert from_sums == stats.welch_from_values(values, control)
    assert from_sums.difference == pytest.approx(15.0)


def test_verdicts_say_why_in_both_languages():
    small = verdict(treated=20, holdout=3, conversions=2, test=stats.two_proportions(1, 20, 1, 3))
    assert not small["significant"] and small["en"].startswith("Not significant: too few") and "不顯著" in small["zh-TW"]
    clear = verdict(treated=1000, holdout=1000, conversions=150, test=stats.two_proportions(100, 1000, 50, 1000))
    assert clear["significant"] and clear["en"].startswith("Significant at 95%") and "顯著" in clear["zh-TW"]
    unclear = verdict(treated=1000, holdout=1000, conversions=105, test=stats.two_proportions(55, 1000, 50, 1000))
    assert not unclear["significant"] and "includes zero" in unclear["en"]
    assert "No hold-out" in verdict(treated=10, holdout=0, conversions=0, test=None)["en"]
