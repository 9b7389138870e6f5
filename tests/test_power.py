"""Intervals that say what they can detect (memat.power): Wilson intervals against hand-computed values, the
detectable difference against its closed form and against simulated tests, and the "cannot tell at this n"
rule on constructed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from memat import power
from memat.power import (CANNOT_TELL, cannot_tell, detectable_difference, detectable_from_ci, paired_comparison,
                         paired_detectable, paired_se, power_verdict, se_from_ci, two_group_comparison, wilson_interval)

Z975, Z80 = 1.959964, 0.841621  # z(0.975), z(0.8)


# --------------------------------------------------------------------------- Wilson
def test_wilson_by_hand():
    # 0 of 10 at 95%: centre = (z^2/20) / (1 + z^2/10) = half, so hi = 2 * 0.192073 / 1.384146
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.277532, abs=1e-6)
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(0.722468, abs=1e-6) and hi == 1.0
    # 3 of 10: centre 0.49207 / 1.384146 = 0.355506, half 1.416010 * sqrt(0.021 + 0.0096037) = 0.247716
    lo, hi = wilson_interval(3, 10)
    assert (lo, hi) == (pytest.approx(0.107791, abs=2e-6), pytest.approx(0.603222, abs=2e-6))
    # at 68%, 10 of 10: z = 0.994458
    z = 0.994458
    assert wilson_interval(10, 10, level=0.68)[0] == pytest.approx(1 / (1 + z * z / 10), abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 5, 12, 24, 1000])
def test_wilson_inside_unit_interval_with_width(n):
    for s in list(range(n + 1)) + [n / 3, n - 0.5]:  # fractional successes: rates averaged per case
        lo, hi = wilson_interval(s, n)
        assert 0.0 <= lo < hi <= 1.0, (s, n)
        assert lo <= s / n <= hi  # the interval holds the observed rate
        lo68, hi68 = wilson_interval(s, n, level=0.68)
        assert lo <= lo68 and hi68 <= hi  # a lower level gives a narrower interval


def test_wilson_edges():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(-1, 10)
    with pytest.raises(ValueError, match="level"):
        wilson_interval(3, 10, level=1.5)


# --------------------------------------------------------------------------- detectable difference
def test_detectable_difference_closed_form():
    assert detectable_difference(1.0) == pytest.approx(Z975 + Z80, rel=1e-6)
    assert detectable_difference(2.5) == pytest.approx((1.96 + 0.8416) * 2.5, rel=1e-4)
    np.testing.assert_allclose(detectable_difference(np.array([1.0, 3.0])), (Z975 + Z80) * np.array([1.0, 3.0]), rtol=1e-6)
    assert detectable_difference(1.0, alpha=0.01, power=0.9) == pytest.approx(2.575829 + 1.281552, rel=1e-6)
    assert math.isnan(detectable_difference(float("nan")))
    with pytest.raises(ValueError, match="power"):
        detectable_difference(1.0, power=1.0)
    with pytest.raises(ValueError, match="alpha"):
        detectable_difference(1.0, alpha=0.0)


def test_from_a_half_width():
    assert se_from_ci(Z975 * 3.0) == pytest.approx(3.0, rel=1e-6)
    assert se_from_ci(0.994458 * 3.0, level=0.68) == pytest.approx(3.0, rel=1e-5)
    # paired results written before mde was recorded: se = ci / 1.96
    assert detectable_from_ci(16.6) == pytest.approx(16.6 / Z975 * (Z975 + Z80), rel=1e-6)
    c = paired_comparison(-20.8, 16.6)
    assert (c.lo, c.hi) == (pytest.approx(-37.4), pytest.approx(-4.2)) and c.mde == pytest.approx(23.73, abs=0.01)
    assert paired_comparison(1.0, 2.0, mde=33.3).mde == 33.3  # a recorded mde is used as it is


def test_paired_by_hand():
    d = [0.2, 0.1, 0.1]
    sd = math.sqrt(((0.2 - 4 / 30) ** 2 + 2 * (0.1 - 4 / 30) ** 2) / 2)  # 0.057735
    assert paired_se(d) == pytest.approx(sd / math.sqrt(3))
    assert paired_detectable(d) == pytest.approx((Z975 + Z80) * 0.057735 / math.sqrt(3), rel=1e-5)  # 0.09339
    assert math.isnan(paired_se([0.3])) and math.isnan(paired_detectable([0.3]))


def test_paired_detectable_has_the_power_it_says():
    """A true paired difference equal to the detectable difference is found significant (two-sided 5%)
    in 80% of simulated experiments; one of half that size far less often."""
    rng = np.random.default_rng(0)
    n, sigma, reps = 200, 0.3, 4000
    mde = detectable_difference(sigma / math.sqrt(n))

    def rejection_rate(delta: float) -> float:
        d = rng.normal(delta, sigma, size=(reps, n))  # per-case differences of each simulated experiment
        se = d.std(axis=1, ddof=1) / math.sqrt(n)  # the observed variance, as paired_difference uses it
        return float(np.mean(np.abs(d.mean(axis=1)) > Z975 * se))

    assert rejection_rate(mde) == pytest.approx(0.8, abs=0.025)
    assert rejection_rate(mde / 2) == pytest.approx(0.29, abs=0.04)  # Phi(1.40 - 1.96) + small
    assert rejection_rate(0.0) == pytest.approx(0.05, abs=0.015)
    # and the mde computed from one observed sample is close to the one of the true sigma
    sample = rng.normal(0.0, sigma, size=n)
    assert paired_detectable(sample) == pytest.approx(mde, rel=0.12)


def test_two_groups():
    c = two_group_comparison(66.7, 27.9, 41.7, 29.1)
    se = math.hypot(27.9, 29.1) / Z975
    assert c.diff == pytest.approx(25.0)
    assert (c.lo, c.hi) == (pytest.approx(25.0 - Z975 * se), pytest.approx(25.0 + Z975 * se))
    assert c.mde == pytest.approx((Z975 + Z80) * se, rel=1e-6)  # 57.6
    assert power.two_group_se(3.0, 4.0) == 5.0
    # simulated: two independent groups of rates with a true difference equal to the mde
    rng = np.random.default_rng(1)
    n, p, reps = 400, 0.5, 4000
    se_true = math.sqrt(2 * p * (1 - p) / n)
    mde = detectable_difference(se_true)
    a = rng.binomial(n, p + mde / 2, reps) / n
    b = rng.binomial(n, p - mde / 2, reps) / n
    se_obs = np.sqrt(a * (1 - a) / n + b * (1 - b) / n)
    assert np.mean(np.abs(a - b) > Z975 * se_obs) == pytest.approx(0.8, abs=0.03)


# --------------------------------------------------------------------------- two independent rates
def _wilson_by_hand(s: int, n: int, z: float = Z975) -> tuple[float, float]:
    p = s / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_newcombe_by_hand():
    # 12 of 12: centre = half = (1 + z^2/24) / (1 + z^2/12) = 0.878753, so l1 = 1 - 2 * (1 - 0.878753) = 0.757506
    l1, u1 = 1 - 2 * (1 - (1 + Z975 ** 2 / 24) / (1 + Z975 ** 2 / 12)), 1.0
    assert l1 == pytest.approx(0.757506, abs=1e-6)
    # 6 of 12: centre 0.5, half = z / (1 + z^2/12) * sqrt(1/48 + z^2/576) = 0.246218
    half2 = Z975 / (1 + Z975 ** 2 / 12) * math.sqrt(1 / 48 + Z975 ** 2 / 576)
    l2, u2 = 0.5 - half2, 0.5 + half2
    assert (l2, u2) == (pytest.approx(0.253782, abs=1e-6), pytest.approx(0.746218, abs=1e-6))
    assert wilson_interval(12, 12) == (pytest.approx(l1), 1.0)
    assert wilson_interval(6, 12) == (pytest.approx(l2), pytest.approx(u2))
    # method 10: lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2), hi = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)
    lo = 0.5 - math.sqrt((1 - l1) ** 2 + (u2 - 0.5) ** 2)  # 0.5 - sqrt(0.242494^2 + 0.246218^2) = 0.154418
    hi = 0.5 + math.sqrt((1 - u1) ** 2 + (0.5 - l2) ** 2)  # 0.5 + 0.246218 = 0.746218
    assert (lo, hi) == (pytest.approx(0.154418, abs=1e-6), pytest.approx(0.746218, abs=1e-6))
    assert power.newcombe_interval(1.0, 12, 0.5, 12) == (pytest.approx(lo, rel=1e-6), pytest.approx(hi, rel=1e-6))
    # antisymmetric: p2 - p1 has the mirrored interval
    assert power.newcombe_interval(0.5, 12, 1.0, 12) == (pytest.approx(-hi, rel=1e-6), pytest.approx(-lo, rel=1e-6))
    # and at 90% it is narrower
    lo90, hi90 = power.newcombe_interval(1.0, 12, 0.5, 12, level=0.90)
    assert lo < lo90 < 0.5 < hi90 < hi


def test_newcombe_does_not_collapse_at_the_edges():
    # 12/12 against 12/12 (and 0/12 against 0/12): the normal approximation gives [0, 0]; Newcombe +- (1 - l1)
    w = 1 - wilson_interval(12, 12)[0]  # 0.242494
    for p in (1.0, 0.0):
        lo, hi = power.newcombe_interval(p, 12, p, 12)
        assert (lo, hi) == (pytest.approx(-w), pytest.approx(w)) and hi - lo > 0.48
    assert two_group_comparison(100.0, 0.0, 100.0, 0.0).mde == 0.0  # what the normal approximation said
    # the Wilson-based se: (u - l) / (2 z) per group, z / (2 (n + z^2)) at p = 1
    se1 = Z975 / (2 * (12 + Z975 ** 2))
    assert se1 == pytest.approx(w / (2 * Z975))
    assert power.two_proportion_se(1.0, 12, 1.0, 12) == pytest.approx(math.hypot(se1, se1), rel=1e-6)  # 0.0875
    mde = power.two_proportion_detectable(1.0, 12, 1.0, 12)
    assert mde == pytest.approx((Z975 + Z80) * math.sqrt(2) * se1, rel=1e-6) and mde > 0.24  # 0.245
    # in percent, as the report uses it: an interval containing 0 and a positive detectable difference
    c = power.two_proportion_comparison(100.0, 12, 100.0, 12, scale=100.0)
    assert c.diff == 0.0 and c.lo == pytest.approx(-100 * w) and c.hi == pytest.approx(100 * w)
    assert c.mde == pytest.approx(100 * mde) and c.cannot_tell(10.0)  # 24.5 points > 10: cannot tell at n = 12
    # the se near p = 1/2: the normal one shrunk by sqrt(1 + z^2/n) / (1 + z^2/n)
    k = 1 + Z975 ** 2 / 12
    assert power.two_proportion_se(0.5, 12, 0.5, 12) == pytest.approx(math.sqrt(2 * 0.25 / 12) * math.sqrt(k) / k,
                                                                      rel=1e-5)
    # nothing to compare
    assert all(math.isnan(x) for x in power.newcombe_interval(float("nan"), 12, 0.5, 12))
    assert math.isnan(power.two_proportion_se(0.5, 0, 0.5, 12))


def test_newcombe_coverage_simulated():
    # the 95% Newcombe interval covers the true difference about 95% of the time, even near the edge
    rng = np.random.default_rng(2)
    n, p1, p2, reps = 12, 0.95, 0.7, 2000
    s1, s2 = rng.binomial(n, p1, reps), rng.binomial(n, p2, reps)
    cover = [lo <= p1 - p2 <= hi for lo, hi in (power.newcombe_interval(a / n, n, b / n, n) for a, b in zip(s1, s2))]
    assert np.mean(cover) == pytest.approx(0.95, abs=0.03)


def test_paired_without_variance():
    c = paired_comparison(0.0, 0.0, mde=0.0, n=24)
    assert c.no_variance and not c.cannot_tell(10.0) and not c.cannot_tell(0.0)
    assert not paired_comparison(0.0, 0.0, mde=0.0).no_variance  # n unknown: as before
    assert not paired_comparison(0.0, 0.0, n=0).no_variance and not paired_comparison(1.0, 2.0, n=24).no_variance


# --------------------------------------------------------------------------- the verdict rule
@pytest.mark.parametrize("lo,hi,mde,effect,blind", [
    (-5.0, 20.0, 30.0, 10.0, True),   # straddles 0, cannot detect 10 points: cannot tell
    (-5.0, 20.0, 30.0, -10.0, True),  # the effect's sign does not matter
    (2.0, 20.0, 30.0, 10.0, False),   # significant (above 0): the verdict stands
    (-20.0, -2.0, 30.0, 10.0, False),  # significant (below 0)
    (-2.0, 5.0, 6.0, 10.0, False),    # straddles, but 10 points would have been detected: stands
    (-2.0, 5.0, 10.0, 10.0, False),   # "exceeds" is strict
    (0.0, 0.0, 0.0, 10.0, False),     # no variance: nothing that cannot be told
    (float("nan"), float("nan"), float("nan"), 10.0, False),  # nothing to judge
])
def test_cannot_tell_rule(lo, hi, mde, effect, blind):
    assert cannot_tell(lo, hi, mde, effect) is blind
    assert power_verdict("holds", lo, hi, mde, effect) == (CANNOT_TELL if blind else "holds")
    assert power.Comparison((lo + hi) / 2, lo, hi, mde).cannot_tell(effect) is blind


def test_the_status_reads_as_the_issue_words_it():
    assert CANNOT_TELL == "cannot tell at this n"


def test_chance_positives():
    from memat.power import chance_positives

    # 2.5% of the intervals lie above 0 when nothing differs: 0.6 of 24 -> 1; 0 of 0; 2.5 of 100 -> 3
    assert [chance_positives(n) for n in (0, 1, 24, 40, 100)] == [0, 1, 1, 1, 3]
    assert chance_positives(24, level=0.5) == 6
    with pytest.raises(ValueError, match="n_tests"):
        chance_positives(-1)


def test_count_reading():
    from memat.power import count_reading

    assert count_reading(12, 0, 24) == "holds" and count_reading(11, 0, 24) == "partly"
    assert count_reading(2, 2, 24) == "fails" and count_reading(12, 1, 24) == "partly"
    assert count_reading(1, 0, 24) == "partly" and count_reading(1, 0, 24, level=0.95) == "fails"  # chance: 1 of 24
    assert count_reading(0, 0, 0) == "fails"
