"""Summaries of a learning-rate grid (MEMAT paper, appendix B, Figs. 5 and 6).

For each learning rate, the per-case evaluation rows (:func:`memat.evaluate.evaluate_cases`) are reduced to
ES / PS / NS per language with :func:`memat.evaluate.summarize`, and to their harmonic mean HM.

HM, and its interval:
    * point estimate: the harmonic mean of the three *means* (ES, PS, NS over cases, in percent), the
      number one would compute from the table of means;
    * interval: a seeded case-level bootstrap: resample the language's cases with replacement (a case
      keeps its rewrite, paraphrase and neighbourhood results together, so the correlation between the
      three metrics is kept), recompute the three means and their HM; the half-width is
      ``z_level * std(bootstrap HMs)``, the same normal approximation :func:`memat.evaluate.mean_ci` uses
      for the other metrics (``z = 1.96`` at 95%, ``0.994`` at 68%).
    * NaN rule: HM is NaN when one of ES/PS/NS is NaN or missing (e.g. no paraphrase prompts in that
      language); a bootstrap replicate in which a metric has no case (a kind present in few cases) is
      left out of the interval, and the number left out is reported as ``n_boot_dropped``.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from statistics import NormalDist

import numpy as np
import pandas as pd

from .evaluate import METRIC_NAMES, summarize

__all__ = ["HM_METRICS", "harmonic_mean", "hm_bootstrap", "summarize_grid", "with_learning_rate"]

#: the metrics whose harmonic mean is HM, and the prompt kind of each
HM_METRICS = {"ES": "rewrite", "PS": "paraphrase", "NS": "neighborhood"}
_REQUIRED = ("case_id", "lang", "kind", "success", "magnitude", "accuracy")
_SUMMARIZED = {m for names in METRIC_NAMES.values() for m in names}


def harmonic_mean(values: Iterable[float]) -> float:
    """``n / sum(1 / v)`` of non-negative values.

    0 if any value is 0 (the limit); NaN if any value is NaN (a metric that could not be computed makes
    the harmonic mean undefined; no exception); ValueError for an empty input or a negative value.
    """
    x = np.asarray(list(values), dtype=float).reshape(-1)
    if x.size == 0:
        raise ValueError("harmonic_mean of no values")
    if np.isnan(x).any():
        return float("nan")
    if (x < 0).any():
        raise ValueError(f"harmonic_mean needs values >= 0, got {x.tolist()}")
    if (x == 0).any():
        return 0.0
    return float(x.size / np.sum(1.0 / x))


def _check_frame(df: pd.DataFrame, where: str) -> None:
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: per-case frame lacks columns {missing} (expected evaluate_cases' output)")


def _case_matrix(df: pd.DataFrame) -> np.ndarray:
    """``[n_cases, 3]`` per-case success rates of ES, PS, NS (averaged over the case's prompts of that kind),
    NaN where a case has no prompt of a kind."""
    per = df.groupby(["case_id", "kind"])["success"].mean().astype(float).unstack("kind")
    per = per.reindex(columns=list(HM_METRICS.values()))
    return per.to_numpy(dtype=float)


def hm_bootstrap(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, scale: float = 100.0,
                 chunk: int = 200) -> tuple[float, np.ndarray]:
    """HM of the ES/PS/NS means of one language's per-case rows, and ``n_boot`` case-level bootstrap
    replicates of it (NaN where a replicate lacks a metric). Seeded (``numpy.random.default_rng(seed)``)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    M = _case_matrix(df)
    n = len(M)
    if n == 0:
        return float("nan"), np.full(n_boot, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = harmonic_mean(np.nanmean(M, axis=0) * scale)
    present = ~np.isnan(M)
    filled = np.where(present, M, 0.0)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for s in range(0, n_boot, chunk):
        b = min(chunk, n_boot - s)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)  # [b, n] resampling counts
        num, den = w @ filled, w @ present
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan) * scale  # [b, 3]
        with np.errstate(divide="ignore"):
            inv = np.where(means > 0, 1.0 / np.where(means > 0, means, 1.0), np.inf)
        hm = 3.0 / inv.sum(1)  # a zero mean gives inf in the sum and HM 0, as harmonic_mean
        hm[np.isnan(means).any(1)] = np.nan
        reps[s : s + b] = hm
    return point, reps


def summarize_grid(
    per_case_frames: Mapping[float, pd.DataFrame],
    level: float = 0.68,
    n_boot: int = 1000,
    seed: int = 0,
    scale: float = 100.0,
    metrics: Iterable[str] = ("ES", "PS", "NS"),
) -> pd.DataFrame:
    """Long table of a learning-rate grid: one row per (lr, lang, metric) with ``mean``, ``ci``
    (half-width at ``level``), ``n`` (cases) and ``n_boot_dropped`` (HM rows; 0 elsewhere).

    ``per_case_frames`` maps each learning rate to the :func:`memat.evaluate.evaluate_cases` rows
    obtained with it. ``metrics`` (default ES, PS, NS; any of :func:`memat.evaluate.summarize`'s) come from
    ``summarize(df, level=level, scale=scale)``; HM is added per language (see the module docstring).
    Rows are sorted by lr, lang, then ``metrics`` order with HM last.
    """
    if not per_case_frames:
        raise ValueError("per_case_frames is empty")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in _SUMMARIZED]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: choose from {sorted(_SUMMARIZED)} (HM is always added)")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    rows = []
    for lr, df in per_case_frames.items():
        lr_f = _learning_rate(lr)
        _check_frame(df, f"lr={lr}")
        if df.empty:
            raise ValueError(f"lr={lr}: the per-case frame is empty")
        summ = summarize(df, level=level, scale=scale)
        for _, r in summ[summ.metric.isin(metrics)].iterrows():
            rows.append({"lr": lr_f, "lang": r["lang"], "metric": r["metric"], "mean": float(r["mean"]),
                         "ci": float(r["ci"]), "n": int(r["n"]), "n_boot_dropped": 0})
        for lang, g in df.groupby("lang"):
            point, reps = hm_bootstrap(g, n_boot=n_boot, seed=seed, scale=scale)
            ok = reps[~np.isnan(reps)]
            ci = float(z * ok.std(ddof=1)) if len(ok) >= 2 and not math.isnan(point) else float("nan")
            rows.append({"lr": lr_f, "lang": lang, "metric": "HM", "mean": point, "ci": ci,
                         "n": int(g.case_id.nunique()), "n_boot_dropped": int(len(reps) - len(ok))})
    out = pd.DataFrame(rows, columns=["lr", "lang", "metric", "mean", "ci", "n", "n_boot_dropped"])
    order = {m: i for i, m in enumerate(metrics + ["HM"])}
    out["_o"] = out.metric.map(order)
    return out.sort_values(["lr", "lang", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _learning_rate(lr) -> float:
    """``lr`` as a float; a ValueError naming it unless it is a finite number > 0 (booleans refused)."""
    if isinstance(lr, bool):
        raise ValueError(f"a learning rate must be a number, got {lr!r}")
    try:
        lr_f = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"a learning rate must be a number, got {lr!r}") from None
    if not (math.isfinite(lr_f) and lr_f > 0):
        raise ValueError(f"a learning rate must be finite and > 0, got {lr!r}")
    return lr_f


def with_learning_rate(hp, lr: float):
    """A copy of MEMIT or PMET hyperparameters with the target optimisation's learning rate ``v_lr = lr``.

    For PMET hyperparameters (an ``attn_v_lr`` field) with a separate attention rate, that rate is scaled
    in proportion, keeping the preset's ratio ``attn_v_lr / v_lr``; ``attn_v_lr`` None (the same rate as
    ``v_lr``) and 0 (no attention delta) are kept as they are. ``lr`` is stored as a float, so ``5`` and
    ``5.0`` give the same edit cache keys. The copy is validated (``hp.validate()``); the input is not
    modified. Raises ValueError for an lr that is not a finite number > 0.
    """
    lr_f = _learning_rate(lr)
    if not dataclasses.is_dataclass(hp) or not hasattr(hp, "v_lr"):
        raise TypeError(f"expected MEMIT/PMET hyperparameters with a v_lr field, got {type(hp).__name__}")
    changes = {"v_lr": lr_f}
    attn = getattr(hp, "attn_v_lr", None)
    if attn is not None and attn != 0:
        changes["attn_v_lr"] = float(attn) * lr_f / float(hp.v_lr)
    out = dataclasses.replace(hp, **changes)
    if hasattr(out, "validate"):
        out.validate(f"{type(hp).__name__} with v_lr={lr_f:g}")
    return out
