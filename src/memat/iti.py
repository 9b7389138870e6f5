"""Inference-Time Intervention (Li et al., 2023), the "mass mean shift" the MEMAT paper compares with in
its appendix I (Fig. 10).

For each of the top-K heads ``(l, h)`` picked by the per-head probes (:mod:`memat.heads`):

* direction ``theta_{l,h}``: the difference of the class means of the head's outputs,
  ``mean(new-target sentences) - mean(true-target sentences)``, normalised to unit norm. In a
  :class:`~memat.heads.ProbeData` label **1** is the sentence with the *new* target and label **0** the one
  with the *true* target, so ``theta`` points from the true target towards the new one: adding it pushes
  the head towards the edited fact.
* scale ``sigma_{l,h}``: the standard deviation (population, ``ddof=0``, as ITI's reference code uses
  ``np.std``) of the projections ``<x, theta>`` of *all* the head's outputs in the data (both classes).
* shift ``alpha * sigma_{l,h} * theta_{l,h}``, added to the head's output at every position of every
  sequence at inference, exactly like MEMAT's correction (eq. 6).

The head outputs are the ones :func:`memat.heads.collect_probe_data` reads (the input of the attention
output projection at the last token of ``prompt + " " + target``); with ``refine=True`` these are the
refined cases (appendix D), as the paper uses them. Application, several heads per layer, saving and
loading are :class:`memat.corrections.HeadCorrections`'s: :meth:`ItiDirections.corrections` returns one.

Example::

    data = collect_probe_data(lm, cases, "en", delta=delta)          # refined cases, edited model
    heads = select_heads(train_probes(data), k=16)
    iti = iti_directions(data, heads)
    with delta.applied(lm), iti.corrections(alpha=15, k=8).applied(lm):
        df = evaluate_cases(lm, test_cases, ["en", "ca"])
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .corrections import HeadCorrections, check_heads
from .heads import ProbeData

__all__ = ["LABEL_NEW", "LABEL_TRUE", "ItiDirections", "iti_directions"]

LABEL_TRUE = 0  # ProbeData.y of a sentence ending with the true target
LABEL_NEW = 1  # ProbeData.y of a sentence ending with the new target


@dataclass(eq=False)
class ItiDirections:
    """ITI directions of K heads, in the order given (normally by descending probe accuracy).

    Attributes:
        heads: ``[(layer, head), ...]``.
        directions: float64 ``[K, head_dim]``, unit rows ``theta`` (new-target mean minus true-target mean).
        sigmas: float64 ``[K]``, std of the projections of all rows onto ``theta`` (``ddof=0``).
        mean_new, mean_true: float64 ``[K, head_dim]``, the class means.
        n_new, n_true: number of sentences of each class the means were computed on.
        n_heads: the model's heads per layer (for :meth:`HeadCorrections.check_compatible`).
        meta: free description (language, number of cases, ...).
    """

    heads: list[tuple[int, int]]
    directions: np.ndarray
    sigmas: np.ndarray
    mean_new: np.ndarray
    mean_true: np.ndarray
    n_new: int
    n_true: int
    n_heads: int
    model_name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.heads = [(int(l), int(h)) for l, h in self.heads]
        self.directions = np.asarray(self.directions, dtype=np.float64)
        self.sigmas = np.asarray(self.sigmas, dtype=np.float64).reshape(-1)
        self.mean_new = np.asarray(self.mean_new, dtype=np.float64)
        self.mean_true = np.asarray(self.mean_true, dtype=np.float64)
        K = len(self.heads)
        if self.directions.ndim != 2 or self.directions.shape[0] != K:
            raise ValueError(f"directions must be [K={K}, head_dim], got shape {self.directions.shape}")
        for name in ("mean_new", "mean_true"):
            if getattr(self, name).shape != self.directions.shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, directions {self.directions.shape}")
        if self.sigmas.shape != (K,):
            raise ValueError(f"sigmas has shape {self.sigmas.shape}, expected ({K},)")

    @property
    def k(self) -> int:
        return len(self.heads)

    @property
    def head_dim(self) -> int:
        return int(self.directions.shape[1])

    def vectors(self, alpha: float, k: int | None = None) -> np.ndarray:
        """``alpha * sigma * theta`` of the first ``k`` heads (default all): float64 ``[k, head_dim]``."""
        alpha = _check_alpha(alpha)
        k = self._check_k(k)
        return alpha * self.sigmas[:k, None] * self.directions[:k]

    def corrections(self, alpha: float, k: int | None = None, apply_positions: str = "all"):
        """The shift of the first ``k`` heads (default all) as :class:`memat.corrections.HeadCorrections`
        (float32 vectors ``alpha * sigma * theta``); ``with corr.applied(lm):`` adds them at every position
        (ITI), or where ``apply_positions`` says (:data:`memat.corrections.APPLY_POSITIONS`)."""
        k = self._check_k(k)
        vec = torch.from_numpy(self.vectors(alpha, k)).to(torch.float32)
        return HeadCorrections(
            heads=self.heads[:k],
            vectors=vec,
            model_name=self.model_name,
            langs=tuple([self.meta["lang"]] if self.meta.get("lang") else []),
            hparams={"method": "ITI", "alpha": float(alpha), "k": int(k)},
            meta={"n_heads": int(self.n_heads), "head_dim": self.head_dim, "n_new": int(self.n_new),
                  "n_true": int(self.n_true), "sigmas": self.sigmas[:k].tolist(), **{f"iti_{kk}": v for kk, v in self.meta.items()}},
            apply_positions=apply_positions,
        )

    def _check_k(self, k) -> int:
        if k is None:
            return self.k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int or None, got {k!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got k={k}")
        if k > self.k:
            raise ValueError(f"k={k} is larger than the {self.k} heads given ({self.heads})")
        return int(k)

    # ---- persistence ----
    def to_dict(self) -> dict:
        return {
            "heads": [[l, h] for l, h in self.heads],
            "directions": self.directions.tolist(),
            "sigmas": self.sigmas.tolist(),
            "mean_new": self.mean_new.tolist(),
            "mean_true": self.mean_true.tolist(),
            "n_new": int(self.n_new),
            "n_true": int(self.n_true),
            "n_heads": int(self.n_heads),
            "model_name": self.model_name,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ItiDirections:
        return cls(
            heads=[tuple(x) for x in d["heads"]],
            directions=np.asarray(d["directions"], dtype=np.float64),
            sigmas=np.asarray(d["sigmas"], dtype=np.float64),
            mean_new=np.asarray(d["mean_new"], dtype=np.float64),
            mean_true=np.asarray(d["mean_true"], dtype=np.float64),
            n_new=int(d["n_new"]),
            n_true=int(d["n_true"]),
            n_heads=int(d["n_heads"]),
            model_name=d.get("model_name", ""),
            meta=dict(d.get("meta", {})),
        )

    def __repr__(self) -> str:
        s = ", ".join(f"L{l}H{h}:{sg:.3g}" for (l, h), sg in zip(self.heads, self.sigmas))
        return f"ItiDirections(K={self.k}, head_dim={self.head_dim}, n_new={self.n_new}, n_true={self.n_true}, sigma={{{s}}})"


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"alpha must be a number, got {alpha!r}")
    a = float(alpha)
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got alpha={alpha}")
    return a


def iti_directions(
    data: ProbeData,
    heads: Sequence[tuple[int, int]],
    rows: Sequence[int] | np.ndarray | None = None,
    model_name: str = "",
) -> ItiDirections:
    """Mass-mean-shift directions and scales of ``heads`` from the head outputs in ``data``.

    Args:
        data: :func:`memat.heads.collect_probe_data`'s output (label 1 = new target, 0 = true target).
        heads: ``[(layer, head), ...]``, e.g. :func:`memat.corrections.select_heads`; the order is kept
            (:meth:`ItiDirections.corrections` with ``k`` takes the first ``k``).
        rows: restrict to these sentence rows (e.g. the probes' training split); default all.
        model_name: recorded in the corrections.

    Raises ValueError if a head is not in the data (layer not read or head index out of range), if a
    class has no sentences, or if the two class means coincide for a head (no direction).
    """
    X = np.asarray(data.X)
    y = np.asarray(data.y)
    if X.ndim != 4:
        raise ValueError(f"data.X must be [n, layers, heads, head_dim], got shape {X.shape}")
    if len(X) != len(y):
        raise ValueError(f"data.X has {len(X)} rows but data.y {len(y)}")
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < -len(X) or rows.max() >= len(X)):
            raise ValueError(f"rows out of range for {len(X)} sentences")
        X, y = X[rows], y[rows]
    bad_labels = sorted(set(np.unique(y).tolist()) - {LABEL_TRUE, LABEL_NEW})
    if bad_labels:
        raise ValueError(f"data.y has labels {bad_labels}; expected {LABEL_TRUE} (true target) and {LABEL_NEW} (new target)")
    is_new = y == LABEL_NEW
    n_new, n_true = int(is_new.sum()), int((~is_new).sum())
    if n_new == 0 or n_true == 0:
        raise ValueError(
            f"ITI needs sentences of both classes: {n_new} with the new target (label {LABEL_NEW}) and "
            f"{n_true} with the true target (label {LABEL_TRUE})"
        )
    heads = check_heads(heads)  # pairs of non-negative ints, non-empty, no duplicates (as MEMAT's)
    layers = [int(l) for l in data.layers]
    n_heads = X.shape[2]
    missing = [(l, h) for l, h in heads if l not in layers or not 0 <= h < n_heads]
    if missing:
        raise ValueError(f"heads {missing} are not in the probe data (layers {layers}, heads 0..{n_heads - 1})")

    dirs, sig, mn, mt = [], [], [], []
    for l, h in heads:
        A = X[:, layers.index(l), h].astype(np.float64)  # [n, head_dim]
        m_new, m_true = A[is_new].mean(0), A[~is_new].mean(0)
        diff = m_new - m_true
        norm = float(np.linalg.norm(diff))
        if not norm > 0:
            raise ValueError(f"head (layer {l}, head {h}): the new- and true-target means coincide, no ITI direction")
        theta = diff / norm
        dirs.append(theta)
        sig.append(float((A @ theta).std()))
        mn.append(m_new)
        mt.append(m_true)
    meta = {"lang": data.lang, "n_cases": len(np.unique(np.asarray(data.groups)[rows] if rows is not None else data.groups)),
            "refined": bool(data.refined), "kinds": list(data.kinds)}
    return ItiDirections(heads, np.stack(dirs), np.asarray(sig), np.stack(mn), np.stack(mt), n_new, n_true,
                         int(n_heads), model_name, meta)
