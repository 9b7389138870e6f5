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
* two independent groups (J=1 and J<=0.5 cases): ``se = sqrt(se1^2 + se2^2)``; the difference's interval at
  level ``L`` is ``(m1 - m2) +- z_L * se``.

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

    def cannot_tell(self, effect: float) -> bool:
        """Whether this comparison cannot tell an effect of size ``effect`` (see :func:`cannot_tell`)."""
        return cannot_tell(self.lo, self.hi, self.mde, effect)


def two_group_comparison(mean1: float, ci1: float, mean2: float, ci2: float, level: float = 0.95,
                         alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """``mean1 - mean2`` of two independent groups reported as ``mean +- ci`` at ``level``: the difference,
    its normal interval at ``level`` and its detectable difference (``alpha``, ``power``)."""
    se = two_group_se(se_from_ci(ci1, level), se_from_ci(ci2, level))
    d = mean1 - mean2
    half = z_level(level) * se
    return Comparison(d, d - half, d + half, float(detectable_difference(se, alpha, power)))


def paired_comparison(mean: float, ci: float, level: float = 0.95, mde: float | None = None,
                      alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """A paired difference reported as ``mean +- ci`` at ``level``; ``mde`` as recorded, else from ``ci``."""
    if mde is None or (isinstance(mde, float) and math.isnan(mde)):
        mde = float(detectable_from_ci(ci, level, alpha, power))
    return Comparison(mean, mean - ci, mean + ci, float(mde))


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
