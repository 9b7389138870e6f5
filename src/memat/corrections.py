"""MEMAT's per-head corrections as an object: :class:`HeadCorrections` (Tamayo et al. 2025, arXiv
2502.02173, eq. 6), the choice of heads (:func:`select_heads`) and the checks of (layer, head) lists.

A correction is one additive vector ``omega_{l,h}`` (``head_dim`` wide) per corrected head, added to that
head's output: the slice ``[h*head_dim:(h+1)*head_dim]`` of the tensor at the model's head-output site
(``lm.spec.head_site``, the *input* of the attention output projection in every family; see
:meth:`memat.models.LoadedModel.split_heads`). The hooks are :class:`memat.hooks.TraceDict` input edits,
one per corrected layer, each adding a ``n_heads * head_dim`` vector holding all of that layer's head
corrections (several heads in one layer all take effect):

* :meth:`HeadCorrections.applied` (inference, ITI style): at the positions its ``apply_positions`` names,
  by default every position of every sequence (eq. 6; the authors' code, through ``o_proj``'s bias);
* :meth:`HeadCorrections.hook_positions` (training): at one position per row, differentiably in
  ``vectors``, optionally reporting each head's output norm there.

Where corrections apply at inference (``apply_positions``, :data:`APPLY_POSITIONS`):

* ``"all"``: every position (eq. 6), including the subject's tokens, whose hidden states at the edited
  layers are the MEMIT keys;
* ``"from_subject_last"``: only the positions *after* the last token of the edited subject in the prompt
  (the key at the subject's last token, and everything before it, is left as it is); a prompt that does
  not contain the subject (a neighbourhood prompt), or that ends with it, is corrected from its last token
  on, as ``"last"`` (that token predicts the target's first token);
* ``"last"``: the prompt's last token and the teacher-forced target tokens after it, i.e. the last token of
  the sequence at every step of greedy decoding.

The last two need to know, for each position of a batch, where the prompt and the subject end: the scorer
(:func:`memat.evaluate.score_continuations` with ``subjects=``, which :func:`memat.evaluate.evaluate_cases`
passes when one of its interventions needs it) sets :class:`PositionMarks` for each forward pass with
:func:`position_marks`; a hook that needs marks and finds none raises instead of guessing.

Training (eq. 12) and the on-disk cache are in :mod:`memat.memat`, which re-exports these names; ITI's
shifts (:meth:`memat.iti.ItiDirections.corrections`) are HeadCorrections too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path
from .models import LoadedModel, merge_heads

__all__ = ["APPLY_POSITIONS", "FORMAT", "HeadCorrections", "PositionMarks", "check_heads", "check_apply_positions",
           "needs_position_marks", "position_marks", "random_heads", "select_heads"]

FORMAT = "memat.HeadCorrections/1"
#: where :meth:`HeadCorrections.applied` adds the corrections (see the module docstring)
APPLY_POSITIONS = ("all", "from_subject_last", "last")


def check_apply_positions(value, where: str = "apply_positions") -> str:
    """``value`` if it is one of :data:`APPLY_POSITIONS`, else a ValueError naming ``where``."""
    if value not in APPLY_POSITIONS:
        raise ValueError(f"{where} must be one of {list(APPLY_POSITIONS)}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# position marks: which positions of the batch being run a position-restricted correction may change
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionMarks:
    """For the batch of one forward pass (``[rows, positions]`` booleans, the positions of the hooked tensor):
    ``after_subject`` marks the positions after the edited subject's last token in the row's prompt (from the
    prompt's last token on where the prompt has no subject), ``from_prompt_last`` the prompt's last token and
    every later one. Padding is False in both."""

    after_subject: torch.Tensor
    from_prompt_last: torch.Tensor

    def mask(self, rule: str) -> torch.Tensor:
        if rule == "from_subject_last":
            return self.after_subject
        if rule == "last":
            return self.from_prompt_last
        raise ValueError(f"no position mask for apply_positions={rule!r}")

    @classmethod
    def from_starts(cls, lengths, subject_starts, prompt_starts, width: int, device=None) -> PositionMarks:
        """Marks of right-padded rows: row ``b`` has ``lengths[b]`` real tokens, the correction starts at
        ``subject_starts[b]`` (after the subject) or ``prompt_starts[b]`` (the prompt's last token)."""
        t = torch.arange(width)[None, :]
        real = t < torch.as_tensor(list(lengths))[:, None]
        sub = torch.as_tensor(list(subject_starts))[:, None]
        pro = torch.as_tensor(list(prompt_starts))[:, None]
        return cls(((t >= sub) & real).to(device), ((t >= pro) & real).to(device))


_MARKS: ContextVar[PositionMarks | None] = ContextVar("memat_position_marks", default=None)


@contextlib.contextmanager
def position_marks(marks: PositionMarks | None):
    """Within the block, corrections whose ``apply_positions`` is not ``"all"`` read ``marks`` (the scorers
    of :mod:`memat.evaluate` set them around each forward pass)."""
    token = _MARKS.set(marks)
    try:
        yield marks
    finally:
        _MARKS.reset(token)


def needs_position_marks(interventions) -> bool:
    """Whether any of ``interventions`` is a correction restricted to some positions."""
    return any(getattr(x, "apply_positions", "all") != "all" for x in interventions if x is not None)


# --------------------------------------------------------------------------------------------------
# head selection
# --------------------------------------------------------------------------------------------------


def select_heads(probe_result, k: int) -> list[tuple[int, int]]:
    """The ``k`` heads with the best probe accuracy (:meth:`memat.heads.ProbeResult.top_k`)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    total = int(np.asarray(probe_result.accuracy).size)
    n_layers = len(probe_result.layers)
    if k < 1:
        raise ValueError(f"k must be >= 1 (MEMAT corrects at least one head), got {k}")
    if k > total:
        raise ValueError(
            f"k={k} heads requested, but the probes cover only {total} heads "
            f"({n_layers} layers x {probe_result.n_heads} heads)"
        )
    return [(int(l), int(h)) for l, h in probe_result.top_k(int(k))]


def random_heads(n_layers: int, n_heads: int, k: int, seed: int = 0) -> list[tuple[int, int]]:
    """``k`` distinct ``(layer, head)`` pairs drawn uniformly without replacement (seeded) from a model's
    ``n_layers x n_heads`` heads, in (layer, head) order: the random-heads control of head selection."""
    total = int(n_layers) * int(n_heads)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= total:
        raise ValueError(f"k must be an int in [1, {total}] ({n_layers} layers x {n_heads} heads), got {k!r}")
    flat = np.random.default_rng(seed).choice(total, size=int(k), replace=False)
    return sorted((int(i) // int(n_heads), int(i) % int(n_heads)) for i in flat)


def check_heads(heads) -> list[tuple[int, int]]:
    """``heads`` as a non-empty list of distinct ``(layer, head)`` int pairs, non-negative; TypeError or
    ValueError otherwise. (Whether they exist in a model is :meth:`HeadCorrections.check_compatible`'s.)"""
    try:
        out = [(int(l), int(h)) for l, h in heads]
    except (TypeError, ValueError):
        raise TypeError(f"heads must be a list of (layer, head) pairs, got {heads!r}") from None
    if not out:
        raise ValueError("heads is empty: MEMAT needs at least one (layer, head) to correct")
    dup = sorted({x for x in out if out.count(x) > 1})
    if dup:
        raise ValueError(f"heads contains duplicates: {dup}")
    neg = [x for x in out if x[0] < 0 or x[1] < 0]
    if neg:
        raise ValueError(f"heads must have non-negative layer and head indices, got {neg}")
    return out


_check_heads = check_heads  # the old private name (memat.memat and memat.iti imported it)


# --------------------------------------------------------------------------------------------------
# the corrections
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class HeadCorrections:
    """One additive vector per (layer, head): ``vectors[i]`` belongs to ``heads[i]``.

    ``meta`` holds the geometry of the model they were trained on (``n_heads``, ``n_layers``,
    ``head_dim``) and a description of the training; nothing in it is needed to apply them.
    ``apply_positions`` says where :meth:`applied` adds them (:data:`APPLY_POSITIONS`; :meth:`at` gives the
    same vectors with another rule).
    """

    heads: list[tuple[int, int]]
    vectors: torch.Tensor  # [K, head_dim]
    model_name: str = ""
    langs: tuple = ()
    hparams: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    apply_positions: str = "all"

    def __post_init__(self):
        self.heads = check_heads(self.heads)
        check_apply_positions(self.apply_positions, "HeadCorrections.apply_positions")
        if not isinstance(self.vectors, torch.Tensor) or self.vectors.ndim != 2:
            raise ValueError(f"vectors must be a [K, head_dim] tensor, got {getattr(self.vectors, 'shape', type(self.vectors))}")
        if self.vectors.shape[0] != len(self.heads):
            raise ValueError(f"{len(self.heads)} heads but {self.vectors.shape[0]} vectors")
        self.langs = tuple(self.langs)

    def at(self, apply_positions: str) -> HeadCorrections:
        """The same corrections (the same tensor) applied at ``apply_positions`` instead."""
        return dataclasses.replace(self, apply_positions=check_apply_positions(apply_positions))

    # ---- geometry ----
    @property
    def k(self) -> int:
        return len(self.heads)

    @property
    def head_dim(self) -> int:
        return int(self.vectors.shape[1])

    def by_layer(self) -> dict[int, list[tuple[int, int]]]:
        """``{layer: [(head, row of vectors), ...]}``, layers ascending."""
        out: dict[int, list[tuple[int, int]]] = {}
        for i, (l, h) in enumerate(self.heads):
            out.setdefault(l, []).append((h, i))
        return dict(sorted(out.items()))

    def layer_vector(self, layer: int, n_heads: int, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """The ``n_heads * head_dim`` vector added to the attention output projection's input at ``layer``
        (zeros outside the corrected heads' slices; every head of the layer in its own slice);
        differentiable in ``vectors`` (default ``self.vectors``)."""
        vectors = self.vectors if vectors is None else vectors
        d = self.head_dim
        entries = self.by_layer().get(layer, [])
        v = vectors.new_zeros((n_heads, d))
        if entries:
            hs = torch.tensor([h for h, _ in entries], device=vectors.device)
            ks = torch.tensor([i for _, i in entries], device=vectors.device)
            v = v.index_put((hs,), vectors[ks])
        return merge_heads(v)

    def check_compatible(self, lm: LoadedModel) -> None:
        """Raise ValueError naming both models if these corrections do not fit ``lm``'s heads."""
        n_heads = self.meta.get("n_heads")
        trained = f"{self.model_name or 'unknown model'} (n_heads={n_heads if n_heads is not None else '?'}, head_dim={self.head_dim})"
        here = f"{lm.name} (n_heads={lm.n_heads}, head_dim={lm.head_dim}, n_layers={lm.n_layers})"
        problems = []
        if self.head_dim != lm.head_dim:
            problems.append(f"head_dim {self.head_dim} != {lm.head_dim}")
        if n_heads is not None and int(n_heads) != lm.n_heads:
            problems.append(f"n_heads {n_heads} != {lm.n_heads}")
        out = [(l, h) for l, h in self.heads if l >= lm.n_layers or h >= lm.n_heads]
        if out:
            problems.append(f"heads {out} do not exist")
        if problems:
            raise ValueError(f"corrections trained on {trained} do not fit {here}: " + "; ".join(problems))

    # ---- hooks ----
    @contextlib.contextmanager
    def _hooks(self, lm: LoadedModel, positions: torch.Tensor | None, norms: dict | None, detach: bool):
        self.check_compatible(lm)
        H, d = lm.n_heads, self.head_dim
        plan = self.by_layer()
        rule = self.apply_positions

        def edit(x: torch.Tensor, layer: int) -> torch.Tensor:
            name = lm.head_site_name(layer)
            if x.shape[-1] != H * d:
                raise RuntimeError(f"{name}: input has {x.shape[-1]} features, expected n_heads * head_dim = {H} * {d} = {H * d}")
            src = self.vectors.detach() if detach else self.vectors
            v = self.layer_vector(layer, H, src).to(device=x.device, dtype=x.dtype)
            if positions is None and rule == "all":
                return x + v
            if positions is None:
                marks = _MARKS.get()
                if marks is None:
                    raise RuntimeError(
                        f"{name}: corrections with apply_positions={rule!r} need to know where each row's prompt and "
                        f"subject end; score with memat.evaluate.evaluate_cases (or score_continuations(..., "
                        f"subjects=...)), or run the model inside memat.corrections.position_marks(...)")
                m = marks.mask(rule)
                if tuple(m.shape) != tuple(x.shape[:2]):
                    raise RuntimeError(f"{name}: position marks of shape {tuple(m.shape)} for an input of shape "
                                       f"{tuple(x.shape[:2])}")
                return x + m.to(device=x.device, dtype=x.dtype)[..., None] * v
            B = x.shape[0]
            if positions.shape != (B,):
                raise RuntimeError(f"{name}: {tuple(positions.shape)} positions for a batch of {B} rows")
            pos = positions.to(x.device)
            if int(pos.min()) < 0 or int(pos.max()) >= x.shape[1]:
                raise RuntimeError(f"{name}: positions {pos.tolist()} outside sequences of length {x.shape[1]}")
            rows = torch.arange(B, device=x.device)
            if norms is not None:
                entries = plan[layer]
                a = lm.split_heads(x[rows, pos].detach().float())[:, [h for h, _ in entries]].norm(dim=-1).mean(0)
                for j, (_, k) in enumerate(entries):
                    norms[k] = a[j]
            return x.index_put((rows, pos), v.expand(B, -1), accumulate=True)

        with lm.trace_heads(list(plan), edit=edit):
            yield self

    def applied(self, lm: LoadedModel):
        """Context manager: the corrections are added at the positions ``apply_positions`` names (default
        every position of every sequence, eq. 6); the hooks are removed on exit, also when an exception is
        raised inside."""
        return self._hooks(lm, None, None, detach=True)

    def hook_positions(self, lm: LoadedModel, positions, norms: dict | None = None):
        """Context manager: the corrections are added at one position per row (``positions[b]`` for row
        ``b``; the training hook). Gradients flow into ``vectors``. If ``norms`` is a dict, it receives
        ``{i: mean over rows of ||a_{heads[i]}||}``: each corrected head's output norm at the corrected
        position before its correction is added, detached."""
        pos = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
        return self._hooks(lm, pos, norms, detach=False)

    # ---- persistence ----
    def _header(self) -> dict:
        return {
            "format": FORMAT,
            "heads": [[l, h] for l, h in self.heads],
            "model_name": self.model_name,
            "langs": list(self.langs),
            "hparams": self.hparams,
            "meta": self.meta,
            "apply_positions": self.apply_positions,
        }

    def save(self, path: str | Path) -> Path:
        """Safetensors file (tensor ``vectors``) with the rest as JSON metadata; written atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        header = json.dumps(self._header())  # fails before anything is written if not JSON-able
        with atomic_path(path) as tmp:
            save_file({"vectors": self.vectors.detach().cpu().contiguous()}, str(tmp), metadata={"memat_corrections": header})
        return path

    @classmethod
    def load(cls, path: str | Path, map_location=None, lm: LoadedModel | None = None) -> HeadCorrections:
        """Load :meth:`save`'s file onto ``map_location`` (default CPU); with ``lm``, check the heads fit it."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no corrections file {path}")
        try:
            with safe_open(str(path), framework="pt", device=str(map_location or "cpu")) as f:
                raw = (f.metadata() or {}).get("memat_corrections")
                keys = list(f.keys())
                vectors = f.get_tensor("vectors") if "vectors" in keys else None
        except SafetensorError as e:
            raise ValueError(f"{path} is not a MEMAT corrections file (not safetensors: {e})") from None
        if raw is None or vectors is None:
            raise ValueError(f"{path} is not a MEMAT corrections file (no 'memat_corrections' metadata / 'vectors' tensor)")
        header = json.loads(raw)
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown corrections format {header.get('format')!r}, expected {FORMAT!r}")
        out = cls(
            heads=[tuple(x) for x in header["heads"]],
            vectors=vectors,
            model_name=header.get("model_name", ""),
            langs=tuple(header.get("langs", ())),
            hparams=header.get("hparams", {}),
            meta=header.get("meta", {}),
            apply_positions=header.get("apply_positions", "all"),
        )
        if lm is not None:
            try:
                out.check_compatible(lm)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
        return out

    def __repr__(self) -> str:
        norms = ", ".join(f"L{l}H{h}:{float(n):.3g}" for (l, h), n in zip(self.heads, self.vectors.detach().float().norm(dim=-1)))
        where = "" if self.apply_positions == "all" else f", apply_positions={self.apply_positions!r}"
        return f"HeadCorrections(model={self.model_name!r}, langs={self.langs}, K={self.k}, head_dim={self.head_dim}{where}, |omega|={{{norms}}})"
