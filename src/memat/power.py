"""Intervals that say what they can detect: Wilson intervals for rates, and the smallest difference a test
at a given sample size could detect.

Notation: ``z(q)`` is the standard normal quantile Phi^-1(q) (:class:`statistics.NormalDist`, no scipy);
``z_L = z((1 + L) / 2)`` is the multiplier of a two-sided interval at level ``L`` (1.95996 at 95%).

**Wilson score interval** of a proportion ``p = s / n`` at level ``L`` (``z = z_L``)::

    centre = (p + z^2 / (2 n)) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    [centre - half, centre + half]

It lies in [0, 1] and has a non-zero width at ``s = 0`` and ``s = n``, where the normal approximation
``p +- z sqrt(p (1 - p) / n)`` collapses to a point (0 of 10 at 95%: [0, 0.2775]; 10 of 10: [0.7225, 1]).
Success and accuracy rates here are averaged over a case's prompts before they are averaged over cases, so
``s = mean * n`` need not be an integer; the formula is used as it is. A variable in [0, 1] with mean ``p`` has
a variance of at most ``p (1 - p)`` (the Bernoulli one), so for such averaged rates the interval errs on the
wide side.

**Detectable difference** (minimum detectable effect) of a two-sided z test at level ``alpha`` with power
``power``, for an estimated difference whose standard error is ``se``::

    mde = (z(1 - alpha / 2) + z(power)) * se          # alpha 0.05, power 0.8: 2.80158 * se

A true difference of that size is declared significant in ``power`` of repeated experiments (the chance of
rejecting in the wrong tail, below ``alpha / 2``, is neglected as usual). The standard error, in the cases of
this project:

* from a normal-approximation half-width ``ci`` at level ``L``: ``se = ci / z_L`` (``ci = 1.96 se`` at 95%);
* paired differences ``d_i`` (the same ``n`` cases under two methods): ``se = sd(d) / sqrt(n)`` (``ddof=1``);
* two independent groups (J=1 and J<=0.5 cases) of a magnitude: ``se = sqrt(se1^2 + se2^2)``; the
  difference's interval at level ``L`` is ``(m1 - m2) +- z_L * se``;
* two independent groups of a *rate* (success or accuracy, a proportion): the normal approximation collapses
  when a group is at 0 or 1 in every case (``ci = 0``, hence ``se = 0``, an interval [0, 0] and a detectable
  difference of 0, although 12 of 12 is compatible with a true rate of 0.76). Instead each group's standard
  error is read off its Wilson interval ``[l_i, u_i]``, ``se_i = (u_i - l_i) / (2 z_L)``, and
  ``se = sqrt(se1^2 + se2^2)`` as above (:func:`two_proportion_se`). At ``p = 1`` it is ``z_L / (2 (n + z_L^2))``
  (0.0619 at n = 12, 95%), never 0; at ``p = 1/2`` it is ``sqrt(p (1 - p) / n)`` shrunk by a factor
  ``sqrt(1 + z^2 / n) / (1 + z^2 / n)`` (0.87 at n = 12, tending to 1 as n grows). The difference's interval is
  Newcombe's hybrid score interval (method 10 of Newcombe 1998, *Stat. Med.* 17:873), built from the two
  Wilson intervals (:func:`newcombe_interval`)::

      d  = p1 - p2
      lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)
      hi = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)

  It lies in [-1, 1] and has a non-zero width when both groups are at 0 or 1 (12/12 against 12/12 at 95%:
  [-0.2425, 0.2425]).

**Verdict.** A comparison *cannot tell at this n* when its interval contains 0 and its detectable difference
exceeds the effect the paper reports (in absolute value): a null result then says nothing about the claim.
Otherwise (the interval excludes 0, or the test could have detected the paper's effect and did not) the
claim's verdict stands.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

__all__ = [
    "chance_positives",
    "count_reading",
    "CANNOT_TELL",
    "Comparison",
    "z_level",
    "wilson_interval",
    "detectable_difference",
    "se_from_ci",
    "detectable_from_ci",
    "paired_se",
    "paired_detectable",
    "two_group_se",
    "two_group_comparison",
    "newcombe_interval",
    "two_proportion_se",
    "two_proportion_detectable",
    "two_proportion_comparison",
    "paired_comparison",
    "straddles_zero",
    "cannot_tell",
    "power_verdict",
]

CANNOT_TELL = "cannot tell at this n"
_N = NormalDist()


def _check_prob(x: float, name: str) -> None:
    if not 0 < x < 1:
        raise ValueError(f"{name} must be in (0, 1), got {x!r}")


def z_level(level: float = 0.95) -> float:
    """The two-sided multiplier ``z((1 + level) / 2)`` of an interval at ``level`` (1.95996 at 0.95)."""
    _check_prob(level, "level")
    return _N.inv_cdf(0.5 + level / 2)


def wilson_interval(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(lo, hi)`` in [0, 1] for ``successes`` of ``n`` at ``level``.

    ``successes`` may be fractional (``mean * n`` of rates averaged per case). ``n == 0`` gives ``(nan, nan)``;
    ``successes`` outside ``[0, n]`` is an error."""
    if n == 0:
        return float("nan"), float("nan")
    if n < 0 or not (-1e-9 * n <= successes <= n * (1 + 1e-9)):
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes!r} of {n!r}")
    z = z_level(level)
    p = min(max(successes / n, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if p == 0 else max(0.0, centre - half)  # exact at the edges (centre == half there, up to rounding)
    hi = 1.0 if p == 1 else min(1.0, centre + half)
    return lo, hi


def detectable_difference(se, alpha: float = 0.05, power: float = 0.8):
    """``(z(1 - alpha/2) + z(power)) * se``: the smallest true difference a two-sided z test at level
    ``alpha`` detects with probability ``power``, given the standard error ``se`` of the estimated
    difference (a float, or an array of them)."""
    _check_prob(alpha, "alpha")
    _check_prob(power, "power")
    k = _N.inv_cdf(1 - alpha / 2) + _N.inv_cdf(power)
    return k * se if np.ndim(se) == 0 else k * np.asarray(se, dtype=float)


def se_from_ci(ci, level: float = 0.95):
    """The standard error behind a normal-approximation half-width ``ci`` at ``level``: ``ci / z_level``."""
    z = z_level(level)
    return ci / z if np.ndim(ci) == 0 else np.asarray(ci, dtype=float) / z


def detectable_from_ci(ci, level: float = 0.95, alpha: float = 0.05, power: float = 0.8):
    """:func:`detectable_difference` of a difference reported as ``mean +- ci`` at ``level`` (paired results
    written before ``mde`` was recorded: ``se = ci / 1.96`` at 95%)."""
    return detectable_difference(se_from_ci(ci, level), alpha, power)


def paired_se(differences: Sequence[float]) -> float:
    """Standard error of the mean of per-case differences, ``sd(d, ddof=1) / sqrt(n)``; nan below 2 cases."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float("nan")
    return float(d.std(ddof=1) / math.sqrt(len(d)))


def paired_detectable(differences: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """Detectable difference of a paired comparison from its per-case differences (observed variance)."""
    return float(detectable_difference(paired_se(differences), alpha, power))


def two_group_se(se1: float, se2: float) -> float:
    """Standard error of the difference of two independent means: ``sqrt(se1^2 + se2^2)``."""
    return math.hypot(se1, se2)


@dataclass(frozen=True)
class Comparison:
    """An estimated difference with its interval (``lo``, ``hi``) and detectable difference ``mde``."""

    diff: float
    lo: float
    hi: float
    mde: float
    #: A paired difference whose per-case differences are all equal (``ci == 0`` at ``n > 0``): its test has
    #: no variance to size a detectable difference from, and it is never judged *cannot tell*.
    no_variance: bool = False

    def cannot_tell(self, effect: float) -> bool:
        """Whether this comparison cannot tell an effect of size ``effect`` (see :func:`cannot_tell`); never
        for a comparison without variance (:attr:`no_variance`)."""
        return not self.no_variance and cannot_tell(self.lo, self.hi, self.mde, effect)


def two_group_comparison(mean1: float, ci1: float, mean2: float, ci2: float, level: float = 0.95,
                         alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """``mean1 - mean2`` of two independent groups reported as ``mean +- ci`` at ``level``: the difference,
    its normal interval at ``level`` and its detectable difference (``alpha``, ``power``)."""
    se = two_group_se(se_from_ci(ci1, level), se_from_ci(ci2, level))
    d = mean1 - mean2
    half = z_level(level) * se
    return Comparison(d, d - half, d + half, float(detectable_difference(se, alpha, power)))


def paired_comparison(mean: float, ci: float, level: float = 0.95, mde: float | None = None,
                      alpha: float = 0.05, power: float = 0.8, n: float | None = None) -> Comparison:
    """A paired difference reported as ``mean +- ci`` at ``level``; ``mde`` as recorded, else from ``ci``.
    With its number of cases ``n``, a ``ci`` of 0 at ``n > 0`` marks it :attr:`Comparison.no_variance`."""
    if mde is None or (isinstance(mde, float) and math.isnan(mde)):
        mde = float(detectable_from_ci(ci, level, alpha, power))
    flat = n is not None and not math.isnan(float(n)) and n > 0 and ci == 0
    return Comparison(mean, mean - ci, mean + ci, float(mde), flat)


def _wilson_of_rate(p: float, n: float, level: float) -> tuple[float, float]:
    return wilson_interval(p * n, n, level)


def _nan_rates(p1: float, n1: float, p2: float, n2: float) -> bool:
    return any(x is None or math.isnan(float(x)) for x in (p1, n1, p2, n2)) or n1 <= 0 or n2 <= 0


def newcombe_interval(p1: float, n1: float, p2: float, n2: float, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) at ``level`` for ``p1 - p2``, the difference of two
    independent proportions ``p1`` (of ``n1``) and ``p2`` (of ``n2``), proportions in [0, 1]:
    ``lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)``, ``hi = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)`` with ``d = p1 - p2``
    and ``[l_i, u_i]`` the Wilson interval of group ``i`` (:func:`wilson_interval`, ``successes = p_i n_i``).
    ``(nan, nan)`` when an input is nan or an ``n`` is not positive."""
    if _nan_rates(p1, n1, p2, n2):
        return float("nan"), float("nan")
    l1, u1 = _wilson_of_rate(p1, n1, level)
    l2, u2 = _wilson_of_rate(p2, n2, level)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def two_proportion_se(p1: float, n1: float, p2: float, n2: float, level: float = 0.95) -> float:
    """Standard error of ``p1 - p2`` (two independent proportions) that does not collapse at 0 or 1: each
    group's ``se_i = (u_i - l_i) / (2 z_level)`` from its Wilson interval ``[l_i, u_i]`` at ``level`` (the
    half-width a normal interval of the same width would have, divided by ``z``), then
    ``sqrt(se1^2 + se2^2)``. At ``p = 1`` (or 0) ``se_i = z / (2 (n + z^2))``, positive (0.0619 at n = 12, 95%);
    near ``p = 1/2`` it is a little below the normal ``sqrt(p (1 - p) / n)`` (by 13% at n = 12, less as n
    grows). nan when an input is nan or an ``n`` is not positive."""
    if _nan_rates(p1, n1, p2, n2):
        return float("nan")
    z = z_level(level)
    l1, u1 = _wilson_of_rate(p1, n1, level)
    l2, u2 = _wilson_of_rate(p2, n2, level)
    return two_group_se((u1 - l1) / (2 * z), (u2 - l2) / (2 * z))


def two_proportion_detectable(p1: float, n1: float, p2: float, n2: float, level: float = 0.95,
                              alpha: float = 0.05, power: float = 0.8) -> float:
    """:func:`detectable_difference` of ``p1 - p2`` with the Wilson-based :func:`two_proportion_se`: positive
    even when both groups are at 0 or 1 (12/12 against 12/12: 0.245 at 80% power, 5% level)."""
    return float(detectable_difference(two_proportion_se(p1, n1, p2, n2, level), alpha, power))


def two_proportion_comparison(rate1: float, n1: float, rate2: float, n2: float, level: float = 0.95,
                              alpha: float = 0.05, power: float = 0.8, scale: float = 1.0) -> Comparison:
    """``rate1 - rate2`` of two independent groups of a rate given on ``scale`` (1 for proportions, 100 for
    percent), with ``n1``, ``n2`` cases: the difference, Newcombe's interval (:func:`newcombe_interval`) and
    the detectable difference (:func:`two_proportion_detectable`), all on ``scale``."""
    p1, p2 = rate1 / scale, rate2 / scale
    lo, hi = newcombe_interval(p1, n1, p2, n2, level)
    mde = two_proportion_detectable(p1, n1, p2, n2, level, alpha, power)
    return Comparison(float(rate1 - rate2), scale * lo, scale * hi, scale * mde)


def straddles_zero(lo: float, hi: float) -> bool:
    """Whether the interval ``[lo, hi]`` contains 0 (False when either bound is nan)."""
    return bool(lo <= 0 <= hi)


def cannot_tell(lo: float, hi: float, mde: float, effect: float) -> bool:
    """True when the interval contains 0 and the detectable difference exceeds ``|effect|``: the test at this
    n could not have detected the paper's effect, so its null result decides nothing. False when any input
    is nan (nothing to judge)."""
    return straddles_zero(lo, hi) and bool(mde > abs(effect))


def power_verdict(status: str, lo: float, hi: float, mde: float, effect: float) -> str:
    """:data:`CANNOT_TELL` when :func:`cannot_tell`, else ``status`` unchanged."""
    return CANNOT_TELL if cannot_tell(lo, hi, mde, effect) else status


def chance_positives(n_tests: int, level: float = 0.95) -> int:
    """How many of ``n_tests`` independent two-sided intervals at ``level`` lie above 0 by chance alone when
    every true difference is 0, rounded up: ``ceil(n_tests * (1 - level) / 2)`` (one of 24 at 95%). A count
    of significantly positive cells no larger than this is no evidence of a gain."""
    if isinstance(n_tests, bool) or not isinstance(n_tests, int) or n_tests < 0:
        raise ValueError(f"chance_positives: n_tests must be an int >= 0, got {n_tests!r}")
    _check_prob(level, "level")
    return math.ceil(n_tests * (1 - level) / 2 - 1e-12)


def count_reading(n_up: int, n_down: int, n_cells: int, level: float | None = None) -> str:
    """The package's one reading of a claim over many cells from its counts of significantly positive
    (``n_up``) and negative (``n_down``) cells: "holds" when at least half are positive and none negative,
    "fails" when no more are positive than negative (with ``level``, than :func:`chance_positives` gives
    either), "partly" otherwise."""
    if n_cells and 2 * n_up >= n_cells and n_down == 0:
        return "holds"
    floor = max(n_down, chance_positives(n_cells, level)) if level is not None else n_down
    return "fails" if n_up <= floor else "partly"
