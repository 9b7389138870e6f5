"""MEMAT attention-head corrections (Tamayo et al. 2025, arXiv 2502.02173, eqs. 6 and 12).

After a MEMIT edit in language L1 (:class:`~memat.memit.MemitDelta`), per-head probes
(:mod:`memat.heads`) pick the K attention heads (layer, head) that best tell the new target from the true
one in L2 (:func:`select_heads`). MEMAT then learns one additive vector ``omega_{l,h}`` (``head_dim``
wide) per selected head, added to that head's output, i.e. to the slice ``[h*head_dim:(h+1)*head_dim]``
of the input of the attention output projection (``lm.spec.attn_out``; that input is the concatenation
of the ``n_heads`` head outputs for multi-head, grouped-query and multi-query attention alike).

Training (:func:`train_corrections`) minimises eq. 12 as written in the paper, on the edited model (the
MEMIT delta applied, base weights frozen)::

    loss(omega) = 1/R sum_j NLL(target_new | prefix_j + prompt(subject))
                + kl_factor * KL( P_corrected(. | "{subject} is a") || P_edited(. | "{subject} is a") )
                + lambda_omega / K * sum_{(l,h)} ( ||omega_{l,h}|| / ||a_{l,h}|| )^2

* NLL: token-averaged over the new target's tokens, averaged over the R random prefixes
  (:func:`memat.memit.context_templates`, generated in each training language; ``bare_prompt`` adds the
  un-prefixed prompt as MEMIT does), then over the (case, language) items of the mini-batch. Prompt and
  target are joined by :func:`memat.data.records.target_continuation`.
* KL: next-token distribution at the last token of each of the view's ``kl_prompts`` (``"{} is a"``,
  ``"{} és un"``, ...), corrected against the *edited model without corrections*, recomputed in every
  mini-batch for that mini-batch's own cases.
* Penalty: ``a_{l,h}`` is the head's own output at the corrected position (before its correction is added,
  in the same forward pass), its norm averaged over the mini-batch's rows and detached; every head is
  divided by its own norm.
* During training each correction is added at one position per sequence: the last real token of the
  training prompt (``train_position="prompt_last"``: the prompt's last token, whose prediction is the
  target's first token; the later target positions see it through attention), or the last real token
  of the whole teacher-forced input (``"input_last"``). Batches are right-padded and the position is
  computed from the real tokens, never a padding slot. On the KL prompts both choices are the prompt's
  last token, where the distribution is read.
* Adam over mini-batches of ``batch_size`` cases (each with all of ``langs``), gradient accumulation over
  ``grad_accum`` mini-batches, ``n_epochs`` passes or exactly ``n_steps`` optimiser steps, seeded shuffling,
  zero initialisation (or a warm start).

Inference (:meth:`HeadCorrections.applied`, eq. 6, ITI style; the class, its hooks and :func:`select_heads` live in
:mod:`memat.corrections` and are re-exported here): by default (``apply_positions="all"``) the corrections are
added at *every* position of every sequence (``"from_subject_last"`` and ``"last"`` restrict them, see
:mod:`memat.corrections`), with one forward pre-hook per layer adding a ``n_heads * head_dim`` vector
that holds all of that layer's head corrections (several heads in one layer all take effect). The
corrections do not depend on the training cases, so they can be applied together with another MEMIT delta
on other facts (the paper's "recycled" CC*/CE* settings).

Differences from the authors' released code
-------------------------------------------
Checked on 2026-12-02 against dtamayo-nlp/MEMAT at commit afca60b (``attention_translation/
multiple_head_optimization.py``, used by ``experiments/experiments_all_in_one.py``; the bilingual copy
``bilingual_multihead_optimization.py`` has the same logic; hyperparameters in ``hparams/MEMIT/aguila.json``).
This implementation does NOT copy the following:

1. **KL without gradient.** Their correction is added at the last slot of every padded row
   (``cur_out[i, -1, head_number, :] += deltas[pair_index]``, lines 82-83), but the KL logits are read at
   the subject's last token of ``"{} is a"`` (``fact_token="subject_last"``, lines 125-145), which comes
   before that slot: with causal attention the KL has exactly zero gradient, whatever the padding (the
   KL row's last slot is also a pad, a second reason). Here the correction sits at the last real token of
   every row of a right-padded batch, where the KL is read.
2. **KL reference never reset**: set once from the first request (``if kl_distr_init is None``, lines
   150-151). Here it is recomputed, without corrections, for every mini-batch's own cases.
3. **Norm penalty**: theirs is ``v_weight_decay * ||delta|| / ||a||**2`` (lines 174-177), linear in the
   correction's norm, with one norm for every head (``target_init_attn`` replaced by the first head's output
   at row 0, position -1, a pad slot, lines 78-79). Here eq. 12 as printed, ``(||omega|| / ||a||)**2``,
   each head divided by its own output norm at the corrected position.
4. **Heads sharing a layer** are all added during their training, but at inference each head's
   ``displacement`` is written into ``dense.bias`` afresh (``experiments_all_in_one.py`` lines 481-487), so
   the last head of a layer wins. Here one hook per layer adds all of that layer's corrections.
5. **Clamp**: after every optimiser step they rescale each correction to at most ``clamp_norm_factor``
   (0.75) times that one shared norm (lines 194-198). Here ``MematHparams.clamp_norm_factor`` (null by
   default, 0.75 in the Aguila preset) rescales each head's correction to that factor times its own output
   norm at the corrected position, measured in the same step.
6. Also theirs: the KL prompt is English ``"{} is a"`` for every language; the training prefixes are
   MEMIT's cached L1 prefixes with the bare prompt; one epoch, one Adam step per 32 requests; lr 0.2,
   KL weight 0.0625, penalty 0.001 (``aguila.json``) against this preset's package defaults. Their Catalan
   scorer (``experiments/py/eval_utils_counterfact.py`` lines 433-435, ``targets[i % 2]`` over the chained
   prompt list) scores each target under the other prompt variant, so their Catalan numbers are not paired
   comparisons; the English scorer is. Inference through ``dense.bias`` adds the corrections at every
   position, as :meth:`HeadCorrections.applied` does here.

:data:`AUTHOR_CODE_DEPARTURES`, which notebook 04 prints and records, says the same in one line per item.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cache import cached, check_key, content_key, tensors_key
from .corrections import APPLY_POSITIONS, FORMAT, HeadCorrections, _check_heads, select_heads  # noqa: F401 - re-exported (moved)
from .data.records import EditCase
from .forward import SplitRows, SuffixUnsupported, encode, hidden_at_final_norm
from .hparams import HparamsError, check_types, load_hparams
from .models import LoadedModel
from .requests import Rows, context_templates, fill, request_of, tokenize_request

__all__ = [
    "AUTHOR_CODE_DEPARTURES",
    "FORMAT",
    "HeadCorrections",
    "MematHparams",
    "TrainRows",
    "cached_corrections",
    "correction_contexts",
    "corrections_cache_key",
    "correction_loss",
    "key_shift",
    "load_memat_hparams",
    "nll_by_epoch",
    "nll_lowered",
    "norm_penalty",
    "select_heads",
    "train_corrections",
    "training_rows",
]

# The differences between eq. 12 / eq. 6 as implemented here and the authors' released code (reported on the
# paper's issue tracker); notebook 04 prints them beside its tables.
AUTHOR_CODE_DEPARTURES: tuple[str, ...] = (
    "KL: the authors' code reads the KL logits at the subject's last token of '{} is a', before the one slot it "
    "corrects (the last of each padded row), so with causal attention the KL term has no gradient at all (and "
    "that slot is a pad in the KL rows); here the correction sits at the last real token, where the KL is read.",
    "KL reference: the authors' code sets the reference distribution once, from the first request, and never "
    "resets it; here it is recomputed, without corrections, for every mini-batch's own cases.",
    "Norm penalty: the authors' code uses ||delta|| / ||a||**2 (linear in the correction's norm) with one head's "
    "norm, read at a pad slot, for every head; here eq. 12 as printed, (||omega|| / ||a||)**2, each head with "
    "its own output norm at the corrected position.",
    "Heads sharing a layer: the authors' code trains them together but at inference writes each head into the "
    "layer's o_proj bias afresh, so the last head of a layer wins; here one hook per layer adds them all.",
    "Clamp: the authors' code rescales every correction after each step to at most 0.75 times that one shared "
    "norm; here clamp_norm_factor (null in the Gemma preset, 0.75 in the Aguila one) uses each head's own norm.",
    "Catalan scorer: the authors' eval_utils_counterfact.py scores targets[i % 2] over the chained list of "
    "new-target and true-target prompt variants, so each Catalan target is scored under the other target's "
    "prompt and their Catalan numbers are not paired; here each target is scored with its own prompt variant.",
)
_NORM_EPS = 1e-8  # floor of a head's output norm in the penalty (a head whose output is exactly zero)


# --------------------------------------------------------------------------------------------------
# hyperparameters
# --------------------------------------------------------------------------------------------------


@dataclass
class MematHparams:
    """MEMAT correction hyperparameters (YAML presets in ``configs/memat/<name>.yaml``, see
    :func:`load_memat_hparams`).

    Attributes:
        k: number of heads to correct (what :func:`select_heads` is called with; the K of the penalty
            is the number of heads actually passed to :func:`train_corrections`).
        lr: Adam learning rate.
        n_epochs: passes over the training cases (ignored when ``n_steps`` is set).
        n_steps: exact number of optimiser steps (the cases are cycled through, reshuffled every pass).
        batch_size: cases per mini-batch (each case contributes all its training languages).
        grad_accum: mini-batches whose gradients are accumulated into one optimiser step.
        n_prefixes, prefix_len: R random prefixes of ``prefix_len`` tokens per language
            (:func:`memat.memit.context_templates`).
        bare_prompt: also train on the prompt without a prefix (MEMIT's ``"{}"`` context); off by
            default, eq. 12 averages over the R prefixes.
        kl_factor: weight of the KL term (1 in eq. 12).
        lambda_omega: weight of the norm penalty.
        train_position: where the correction sits during training (see the module docstring).
        clamp_norm_factor: after every optimiser step, each head's correction is rescaled to at most this
            factor times that head's own output norm at the corrected position (the step's ``head_norms``);
            null (the default) leaves it unclamped. The authors clamp to 0.75 times one norm shared by all
            heads (see the departures below).
        apply_positions: where the trained corrections are added at inference
            (:data:`memat.corrections.APPLY_POSITIONS`: ``"all"``, eq. 6 and the authors' code;
            ``"from_subject_last"``; ``"last"``). Training is not affected.
        seed: shuffling and prefix generation.
    """

    k: int = 16
    lr: float = 1e-2
    n_epochs: int = 5
    n_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    n_prefixes: int = 5
    prefix_len: int = 10
    bare_prompt: bool = False
    kl_factor: float = 1.0
    lambda_omega: float = 0.1
    train_position: Literal["prompt_last", "input_last"] = "prompt_last"
    clamp_norm_factor: float | None = None
    apply_positions: Literal["all", "from_subject_last", "last"] = "all"
    seed: int = 0
    description: str = ""

    def __post_init__(self):
        self.validate("MematHparams")

    def validate(self, source: str = "hparams") -> None:
        for name in ("k", "n_epochs", "batch_size", "grad_accum", "prefix_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise HparamsError(f"{source}: field '{name}' must be an integer >= 1, got {v!r}")
        if self.n_steps is not None and (isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1):
            raise HparamsError(f"{source}: field 'n_steps' must be null or an integer >= 1, got {self.n_steps!r}")
        if isinstance(self.n_prefixes, bool) or not isinstance(self.n_prefixes, int) or self.n_prefixes < 0:
            raise HparamsError(f"{source}: field 'n_prefixes' must be an integer >= 0, got {self.n_prefixes!r}")
        if self.n_prefixes == 0 and not self.bare_prompt:
            raise HparamsError(f"{source}: n_prefixes=0 without bare_prompt leaves no training prompt")
        if not self.lr > 0:
            raise HparamsError(f"{source}: field 'lr' must be > 0, got {self.lr}")
        for name in ("kl_factor", "lambda_omega"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise HparamsError(f"{source}: field '{name}' must be a finite number >= 0, got {v!r}")
        if self.train_position not in ("prompt_last", "input_last"):
            raise HparamsError(f"{source}: field 'train_position' must be 'prompt_last' or 'input_last', got {self.train_position!r}")
        c = self.clamp_norm_factor
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float)) or not (c > 0 and math.isfinite(c))):
            raise HparamsError(f"{source}: field 'clamp_norm_factor' must be null or a finite number > 0, got {c!r}")
        if self.apply_positions not in APPLY_POSITIONS:
            raise HparamsError(f"{source}: field 'apply_positions' must be one of {list(APPLY_POSITIONS)}, got {self.apply_positions!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "MematHparams dict") -> MematHparams:
        return check_types(cls, dict(d), source)


def load_memat_hparams(name: str | Path | dict, **overrides) -> MematHparams:
    """A :class:`MematHparams` from a preset name (``configs/memat/<name>.yaml``), a YAML path or a dict."""
    return load_hparams(name, cls=MematHparams, kind="memat", **overrides)


@torch.no_grad()
def clamp_to_head_norms(vectors: torch.Tensor, head_norms: torch.Tensor, factor: float) -> int:
    """Rescale each row ``vectors[i]`` in place to a norm of at most ``factor * head_norms[i]`` (its direction
    kept); returns how many rows were rescaled."""
    limit = factor * head_norms.to(device=vectors.device, dtype=torch.float32)
    norm = vectors.float().norm(dim=-1)
    over = norm > limit
    if bool(over.any()):
        scale = torch.where(over, limit / norm.clamp(min=_NORM_EPS), torch.ones_like(norm))
        vectors.mul_(scale[:, None].to(vectors.dtype))
    return int(over.sum())


def norm_penalty(vectors: torch.Tensor, head_norms: torch.Tensor, lambda_omega: float) -> torch.Tensor:
    """``lambda_omega / K * sum_i (||vectors[i]|| / head_norms[i])^2``, each head with its own norm."""
    K = vectors.shape[0]
    ratio = vectors.float().norm(dim=-1) / head_norms.float().clamp(min=_NORM_EPS)
    return lambda_omega / K * (ratio**2).sum()


# --------------------------------------------------------------------------------------------------
# training rows
# --------------------------------------------------------------------------------------------------


#: The rows of one mini-batch (:class:`memat.requests.Rows`, built by :func:`training_rows`).
TrainRows = Rows


def training_rows(
    lm: LoadedModel,
    cases: Sequence[EditCase],
    langs: Sequence[str],
    contexts: Mapping[str, Sequence[str]],
    train_position: str = "prompt_last",
) -> TrainRows:
    """Rows of eq. 12 for ``cases`` x ``langs`` (items: the (case_id, lang) pairs, case by case): one rewrite
    row per context of the language (prefix + rewrite prompt + target[:-1], teacher-forced), one row per KL
    prompt; ``positions[r]`` is where the correction is added in row ``r`` (a real token: ``train_position``
    in rewrite rows, the last token in KL rows). Token ids follow :func:`memat.heads.sentence_tokens`
    (prompt with BOS, then the target continuation of the full text without special tokens).

    These are MEMIT's rows (:func:`memat.requests.build_rows`) of the cases' requests in each language, with
    the correction's position instead of the subject's last token and the target's leading space decided
    by the filled text."""
    items = [(c, lang) for c in cases for lang in langs]
    tokens = [tokenize_request(lm.tokenizer, request_of(c, lang), contexts[lang], train_position, "text",
                               name=f"case_id={c.case_id} ({lang})") for c, lang in items]
    return Rows.join(tokens, [(c.case_id, lang) for c, lang in items])


def correction_contexts(lm: LoadedModel, langs: Sequence[str], hp: MematHparams) -> dict[str, list[str]]:
    """The training contexts of each language: R generated prefixes ``"<text>. {}"`` (seeded,
    :func:`memat.memit.context_templates` on the model as it is), plus ``"{}"`` if ``hp.bare_prompt``."""
    out = {}
    for lang in langs:
        gen = context_templates(lm, lang, ((hp.prefix_len, hp.n_prefixes),), seed=hp.seed)[1:] if hp.n_prefixes else []
        out[lang] = (["{}"] if hp.bare_prompt else []) + list(gen)
    return out


#: How :func:`train_corrections` runs a mini-batch: ``"split"`` (default) runs each row's positions before its
#: corrected one once, without gradient, and the forward and backward pass only over the positions from the
#: corrected one on (:class:`~memat.forward.SplitRows`); ``"full"`` runs every position (the reference).
TRAIN_METHODS = ("split", "full")


def _split_rows(lm: LoadedModel, rows: TrainRows, method: str) -> SplitRows | None:
    """The mini-batch split at each row's corrected position, when ``method`` is ``"split"`` and that is
    exact: nothing before a row's corrected position depends on the correction (the training hook adds it
    there only), so only the positions the losses read, all at or after it, need gradients. None (run every
    position) for ``"full"``, a loss read before the corrected position, or a sliding window shorter than
    the rows."""
    if method not in TRAIN_METHODS:
        raise ValueError(f"method must be one of {TRAIN_METHODS}, got {method!r}")
    if method == "full":
        return None
    if any(p < rows.positions[r] for r, p in zip(rows.tgt_row, rows.tgt_pos)):
        return None
    try:
        return SplitRows(lm, rows.seqs, rows.positions)
    except SuffixUnsupported:
        return None


def _loss_parts(lm: LoadedModel, corr: HeadCorrections, rows: TrainRows, hp: MematHparams, method: str = "split") -> dict:
    """Eq. 12 on one mini-batch: ``{"loss", "nll", "kl", "penalty"}`` (tensors) and ``head_norms`` [K].
    ``method``: :data:`TRAIN_METHODS` (the same values up to float rounding)."""
    dev = lm.device
    tok = lm.tokenizer
    n_rows, n_items = len(rows.seqs), len(rows.items)
    item = torch.tensor(rows.item_of_row, device=dev)

    # the reference: the edited model WITHOUT corrections, on this mini-batch's own KL prompts
    ref = None
    if rows.kl_rows:
        with torch.no_grad():
            kb = encode(tok, [rows.seqs[i] for i in rows.kl_rows], dev)
            hk = hidden_at_final_norm(lm, kb).to(dev)  # the final norm's device to the inputs' (device_map)
            ref = F.log_softmax(lm.logits(hk[torch.arange(len(rows.kl_rows), device=dev), kb.lengths - 1]).float(), -1)

    norms: dict = {}
    split = _split_rows(lm, rows, method)
    positions = torch.tensor(rows.positions, dtype=torch.long, device=dev)
    if split is not None:  # h[r, j] is position positions[r] + j; the correction goes at j = 0
        with corr.hook_positions(lm, torch.zeros(n_rows, dtype=torch.long), norms=norms):
            h = split.run()
        offset = positions
    else:
        batch = encode(tok, rows.seqs, dev)
        with corr.hook_positions(lm, rows.positions, norms=norms):
            h = hidden_at_final_norm(lm, batch)
        offset = torch.zeros_like(positions)
    h = h.to(dev)

    tgt_row = torch.tensor(rows.tgt_row, device=dev)
    lp = F.log_softmax(lm.logits(h[tgt_row, torch.tensor(rows.tgt_pos, device=dev) - offset[tgt_row]]).float(), -1)
    tok_nll = -lp.gather(-1, torch.tensor(rows.tgt_id, device=lp.device)[:, None])[:, 0].to(dev)
    ones = torch.ones_like(tok_nll)
    row_nll = torch.zeros(n_rows, device=dev).index_add(0, tgt_row, tok_nll)
    row_nll = row_nll / torch.zeros(n_rows, device=dev).index_add(0, tgt_row, ones).clamp(min=1)
    nll_rows = torch.tensor(rows.nll_rows, device=dev)
    item_nll = torch.zeros(n_items, device=dev).index_add(0, item[nll_rows], row_nll[nll_rows])
    item_nll = item_nll / torch.zeros(n_items, device=dev).index_add(0, item[nll_rows], torch.ones(len(nll_rows), device=dev)).clamp(min=1)
    nll = item_nll.mean()

    if ref is not None:
        kl_rows = torch.tensor(rows.kl_rows, device=dev)
        kl_pos = positions[kl_rows] - offset[kl_rows]
        cur = F.log_softmax(lm.logits(h[kl_rows, kl_pos]).float(), -1)
        kl_row = (cur.exp() * (cur - ref)).sum(-1).to(dev)  # KL(corrected || uncorrected edited)
        item_kl = torch.zeros(n_items, device=dev).index_add(0, item[kl_rows], kl_row)
        item_kl = item_kl / torch.zeros(n_items, device=dev).index_add(0, item[kl_rows], torch.ones(len(kl_rows), device=dev)).clamp(min=1)
        kl = item_kl.mean()
    else:
        kl = nll.new_zeros(())

    missing = [corr.heads[i] for i in range(corr.k) if i not in norms]
    if missing:
        raise RuntimeError(f"the attention output projection of heads {missing} never ran")
    head_norms = torch.stack([norms[i] for i in range(corr.k)]).to(dev)
    penalty = norm_penalty(corr.vectors, head_norms.to(corr.vectors.device), hp.lambda_omega).to(dev)
    loss = nll + hp.kl_factor * kl + penalty
    return {"loss": loss, "nll": nll, "kl": kl, "penalty": penalty, "head_norms": head_norms}


def correction_loss(
    lm: LoadedModel,
    corr: HeadCorrections,
    cases: Sequence[EditCase],
    hp: MematHparams,
    contexts: Mapping[str, Sequence[str]],
    langs: Sequence[str] | None = None,
    delta=None,
    batch_size: int | None = None,
    method: str = "split",
) -> dict:
    """Eq. 12 of ``corr`` on ``cases`` (no gradient), with the training hook (one position per row):
    ``{"loss", "nll", "kl", "penalty"}`` averaged over mini-batches of ``batch_size`` cases (default
    ``hp.batch_size``) weighted by their number of cases, and ``head_norms`` likewise.
    ``langs`` defaults to ``corr.langs``; ``delta`` is applied meanwhile as in training; ``method`` as in
    :func:`train_corrections`."""
    langs = tuple(corr.langs if langs is None else ([langs] if isinstance(langs, str) else langs))
    cases = list(cases)
    bs = batch_size or hp.batch_size
    tot = {"loss": 0.0, "nll": 0.0, "kl": 0.0, "penalty": 0.0}
    hn = torch.zeros(corr.k)
    with contextlib.ExitStack() as stack:
        if delta is not None and not delta.is_applied:
            stack.enter_context(delta.applied(lm))
        with torch.no_grad():
            for s in range(0, len(cases), bs):
                chunk = cases[s : s + bs]
                rows = training_rows(lm, chunk, langs, contexts, hp.train_position)
                parts = _loss_parts(lm, corr, rows, hp, method)
                w = len(chunk) / len(cases)
                for key in tot:
                    tot[key] += float(parts[key]) * w
                hn += parts["head_norms"].float().cpu() * w
    return dict(tot, head_norms=hn.tolist())


def _schedule(n_cases: int, hp: MematHparams) -> list[tuple[int, list[list[int]]]]:
    """[(epoch, [mini-batch case indices, ...] accumulated into one step), ...]."""
    rng = np.random.default_rng(hp.seed)
    steps: list[tuple[int, list[list[int]]]] = []
    epoch = 0
    while True:
        order = rng.permutation(n_cases).tolist()
        mbs = [order[s : s + hp.batch_size] for s in range(0, n_cases, hp.batch_size)]
        for s in range(0, len(mbs), hp.grad_accum):
            steps.append((epoch, mbs[s : s + hp.grad_accum]))
            if hp.n_steps is not None and len(steps) == hp.n_steps:
                return steps
        epoch += 1
        if hp.n_steps is None and epoch == hp.n_epochs:
            return steps


def nll_by_epoch(log: dict) -> list[float]:
    """The new target's NLL averaged over each *complete* epoch of a training log (``train_log["steps"]``,
    weighted by each step's ``n_cases``): every complete epoch sees every training case once, so two epochs
    compare the same cases, where the first and the last step (different mini-batches) do not. An epoch cut
    short by ``n_steps`` is left out."""
    steps = log.get("steps") or []
    if any("epoch" not in st or "n_cases" not in st for st in steps):
        raise ValueError("nll_by_epoch: the training log's steps lack 'epoch' or 'n_cases' (a log written before "
                         "they were recorded): retrain, or clear the corrections cache")
    sums: dict[int, list[float]] = {}
    for st in steps:
        acc = sums.setdefault(int(st["epoch"]), [0.0, 0.0])
        acc[0] += float(st["nll"]) * st["n_cases"]
        acc[1] += st["n_cases"]
    if not sums:
        return []
    full = max(n for _, n in sums.values())
    return [tot / n for e, (tot, n) in sorted(sums.items()) if n == full]


def nll_lowered(log: dict) -> bool | None:
    """Whether training lowered the new target's NLL: the last complete epoch's mean below the first's
    (:func:`nll_by_epoch`); ``None`` when there are fewer than two complete epochs to compare."""
    means = nll_by_epoch(log)
    return None if len(means) < 2 else bool(means[-1] < means[0])


def train_corrections(
    lm: LoadedModel,
    cases: Sequence[EditCase],
    heads: Sequence[tuple[int, int]],
    hp: MematHparams,
    delta=None,
    langs: Sequence[str] = ("en",),
    progress: bool = False,
    contexts: Mapping[str, Sequence[str]] | None = None,
    init: HeadCorrections | torch.Tensor | None = None,
    method: str = "split",
) -> tuple[HeadCorrections, dict]:
    """Learn one correction per head of ``heads`` by minimising eq. 12 (see the module docstring).

    Args:
        cases: training cases; each must have every language of ``langs``.
        delta: the MEMIT edit (:class:`~memat.memit.MemitDelta`) applied during training and removed
            afterwards; an already applied delta is left as it is; None trains on the model as it is.
        langs: the languages whose rewrite and KL prompts are trained on.
        contexts: ``{lang: [template with "{}", ...]}`` to use instead of generated prefixes.
        init: warm start (vectors for the same heads); default zeros.
        method: ``"split"`` (default) runs each row's positions before its corrected one once, without
            gradient, and each step's forward and backward pass over the positions from it on only;
            ``"full"`` runs every position (the reference). The same corrections up to float rounding
            (tested), so the cache key (:func:`corrections_cache_key`) does not name the method.

    Returns:
        The corrections (float32, CPU) and a log: ``steps`` (one dict per optimiser step with the loss
        components averaged over its mini-batches, before the update: ``loss nll kl penalty head_norms
        omega_norms``), ``contexts``, ``seconds``, ``n_steps``, ``n_cases``.

    The model's weights and their ``requires_grad`` flags are the same afterwards (exceptions included).
    """
    heads = _check_heads(heads)
    if isinstance(langs, str):
        langs = (langs,)
    langs = tuple(langs)
    if not langs:
        raise ValueError("langs is empty")
    cases = list(cases)
    if not cases:
        raise ValueError("train_corrections: no training cases")
    for c in cases:
        for lg in langs:
            c[lg]  # KeyError naming the case and the language
    K, d = len(heads), lm.head_dim
    probe = HeadCorrections(heads, torch.zeros(K, d), lm.name, meta={"n_heads": lm.n_heads})
    probe.check_compatible(lm)

    if contexts is None:
        contexts = correction_contexts(lm, langs, hp)
    missing = [lg for lg in langs if lg not in contexts or not contexts[lg]]
    if missing:
        raise ValueError(f"no training contexts for languages {missing}")
    contexts = {lg: [str(c) for c in contexts[lg]] for lg in langs}
    for lg, cs in contexts.items():
        for c in cs:
            fill(c, "")

    vec = torch.zeros(K, d, dtype=torch.float32, device=lm.device)
    if init is not None:
        if isinstance(init, HeadCorrections):
            if init.heads != heads:
                raise ValueError(f"init corrections are for heads {init.heads}, not {heads}")
            init = init.vectors
        if tuple(init.shape) != (K, d):
            raise ValueError(f"init has shape {tuple(init.shape)}, expected {(K, d)}")
        vec.copy_(init.detach().to(vec))
    vec.requires_grad_(True)
    meta = {
        "n_heads": lm.n_heads,
        "n_layers": lm.n_layers,
        "head_dim": d,
        "n_train_cases": len(cases),
        "train_case_ids": [c.case_id for c in cases],
        "trained_with_delta": delta is not None,
    }
    corr = HeadCorrections(heads, vec, lm.name, langs, hp.to_dict(), meta)
    opt = torch.optim.Adam([vec], lr=hp.lr)
    schedule = _schedule(len(cases), hp)
    steps_log = []
    flags = {n: p.requires_grad for n, p in lm.model.named_parameters()}
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            for p in lm.model.parameters():
                p.requires_grad_(False)
            if delta is not None and not delta.is_applied:
                stack.enter_context(delta.applied(lm))
            for step, (epoch, mbs) in enumerate(tqdm(schedule, desc="MEMAT corrections", disable=not progress, leave=False)):
                opt.zero_grad(set_to_none=True)
                acc = {"loss": 0.0, "nll": 0.0, "kl": 0.0, "penalty": 0.0}
                hn = torch.zeros(K)
                for mb in mbs:
                    rows = training_rows(lm, [cases[i] for i in mb], langs, contexts, hp.train_position)
                    parts = _loss_parts(lm, corr, rows, hp, method)
                    (parts["loss"] / len(mbs)).backward()
                    for key in acc:
                        acc[key] += float(parts[key].detach()) / len(mbs)
                    hn += parts["head_norms"].detach().float().cpu() / len(mbs)
                steps_log.append({
                    "step": step,
                    "epoch": epoch,
                    "n_cases": sum(len(mb) for mb in mbs),
                    **acc,
                    "head_norms": hn.tolist(),
                    "omega_norms": vec.detach().float().norm(dim=-1).cpu().tolist(),
                })
                opt.step()
                if hp.clamp_norm_factor is not None:
                    steps_log[-1]["clamped"] = clamp_to_head_norms(vec, hn, hp.clamp_norm_factor)
        finally:
            for n, p in lm.model.named_parameters():
                p.requires_grad_(flags[n])
    seconds = time.perf_counter() - t0
    out = HeadCorrections(heads, vec.detach().float().cpu().clone(), lm.name, langs, hp.to_dict(), dict(meta, n_steps=len(schedule)),
                          apply_positions=hp.apply_positions)
    log = {"steps": steps_log, "contexts": contexts, "seconds": seconds, "n_steps": len(schedule), "n_cases": len(cases)}
    return out, log


# --------------------------------------------------------------------------------------------------
# the mechanism: do the corrections move the keys the MEMIT edit was solved for?
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def key_shift(lm: LoadedModel, cases: Sequence[EditCase], corrections: HeadCorrections, layers: Sequence[int],
              lang: str, delta=None, batch_size: int = 16):
    """Relative change ``||k' - k|| / ||k||`` of the MEMIT keys when ``corrections`` are on, per case and layer:
    ``k`` is the input of the MLP output projection of ``layers`` at the subject's last token of the case's
    bare rewrite prompt in ``lang`` (the key of :func:`memat.memit.compute_memit`, without a prefix), on the
    model as it is or with ``delta`` applied, and ``k'`` the same with the corrections applied at their
    ``apply_positions``. Returns a DataFrame ``case_id, lang, layer, rel_change``; "from_subject_last" and
    "last" give exactly 0 (no corrected position comes before the key)."""
    import pandas as pd

    from .corrections import PositionMarks, position_marks
    from .forward import subject_last_index
    from .hooks import TraceDict
    from .interventions import applied_all

    layers = sorted(set(int(l) for l in layers))
    names = [lm.name_of("mlp_out", l) for l in layers]
    rows = []
    for s in range(0, len(cases), batch_size):
        chunk = list(cases[s : s + batch_size])
        enc = [subject_last_index(lm.tokenizer, c[lang].rewrite_prompt, c[lang].subject) for c in chunk]
        batch = encode(lm.tokenizer, [ids for ids, _ in enc], lm.device)
        at = torch.tensor([i for _, i in enc], device=lm.device)
        b = torch.arange(len(chunk), device=lm.device)
        marks = PositionMarks.from_starts([len(ids) for ids, _ in enc], [i + 1 for _, i in enc],
                                          [len(ids) - 1 for ids, _ in enc], batch.input_ids.shape[1], lm.device)
        keys = []
        for extra in ((), (corrections,)):
            with applied_all(lm, [delta, *extra]), position_marks(marks), \
                    TraceDict(lm.model, names, retain_input=True, retain_output=False, stop=True) as td:
                lm.model(**batch.to_model_kwargs(), use_cache=False)
            keys.append(torch.stack([td[n].input[b, at].float() for n in names], 1))  # [B, L, d]
        rel = ((keys[1] - keys[0]).norm(dim=-1) / keys[0].norm(dim=-1).clamp(min=_NORM_EPS)).cpu()
        for i, c in enumerate(chunk):
            rows += [{"case_id": c.case_id, "lang": lang, "layer": l, "rel_change": float(rel[i, j])}
                     for j, l in enumerate(layers)]
    return pd.DataFrame(rows, columns=["case_id", "lang", "layer", "rel_change"])


# --------------------------------------------------------------------------------------------------
# cached training (notebooks 04-06 share corrections)
# --------------------------------------------------------------------------------------------------


def _delta_key(delta) -> str:
    if delta is None:
        return "none"
    key = (delta.meta or {}).get("cache_key")
    if key:
        return str(key)
    return tensors_key((name, delta.deltas[name]) for name in sorted(delta.deltas))


def corrections_cache_key(
    lm: LoadedModel, cases: Sequence[EditCase], heads, hp: MematHparams, delta, langs: Sequence[str],
    contexts: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """sha256 of everything :func:`train_corrections` depends on: the model's weights (all blocks) and config
    (not where it was loaded from), device type and dtype, the heads, the hyperparameters (not the
    description), the training cases' prompts, subjects, new targets and KL prompts in every training
    language (in order), the languages, the MEMIT delta (its own cache key, else a hash of its tensors) and
    the contexts when given."""
    from .stats import model_fingerprints

    top = lm.n_layers - 1
    payload = {
        "model": model_fingerprints(lm, [top])[top],
        "device": lm.device.type,
        "dtype": str(lm.dtype),
        "heads": [list(h) for h in _check_heads(heads)],
        # apply_positions does not change the training; clamp_norm_factor=None is the training before the field
        # existed, so the keys of earlier cache entries still hold
        "hparams": {k: v for k, v in hp.to_dict().items()
                    if k not in ("description", "apply_positions") and not (k == "clamp_norm_factor" and v is None)},
        "cases": [[c.case_id, {lg: [c[lg].rewrite_prompt, c[lg].subject, c[lg].target_new, list(c[lg].kl_prompts)]
                                for lg in langs}] for c in cases],
        "langs": list(langs),
        "delta": _delta_key(delta),
        "contexts": {k: list(v) for k, v in contexts.items()} if contexts is not None else None,
        "version": 2,  # 2: machine-independent model fingerprint (no checkpoint path or transformers version)
    }
    return content_key(payload)


def cached_corrections(
    lm: LoadedModel,
    cases: Sequence[EditCase],
    heads: Sequence[tuple[int, int]],
    hp: MematHparams,
    delta=None,
    langs: Sequence[str] = ("en",),
    progress: bool = False,
    contexts: Mapping[str, Sequence[str]] | None = None,
    cache: bool = True,
) -> tuple[HeadCorrections, dict]:
    """:func:`train_corrections` with an on-disk cache (``<cache dir>/corrections/<model>/<key>.safetensors``,
    the training log inside the file's metadata). Notebooks 04, 05 and 06 train the same corrections;
    the second one loads them. The key (:func:`corrections_cache_key`) covers everything the training
    depends on, so stale corrections are never returned; an unreadable entry (or one that does not fit
    ``lm``) is reported (``warnings.warn`` naming the file) and trained again. ``cache=False`` trains
    without the cache."""
    if isinstance(langs, str):
        langs = (langs,)
    langs = tuple(langs)
    cases = list(cases)
    if not cache:
        return train_corrections(lm, cases, heads, hp, delta=delta, langs=langs, progress=progress, contexts=contexts)
    key = corrections_cache_key(lm, cases, heads, hp, delta, langs, contexts)

    def compute():
        corr, log = train_corrections(lm, cases, heads, hp, delta=delta, langs=langs, progress=progress, contexts=contexts)
        corr.meta["cache_key"] = key
        corr.meta["train_log"] = log
        return corr, log

    def load(path):
        corr = HeadCorrections.load(path, lm=lm)
        check_key(corr.meta.get("cache_key"), key)
        corr.vectors = corr.vectors.to(torch.float32)
        return corr.at(hp.apply_positions), corr.meta.get("train_log", {})

    (corr, log), fresh = cached("corrections", key, compute, lambda r, p: r[0].save(p), load, model=lm.name)
    return corr, dict(log, cached=not fresh)
