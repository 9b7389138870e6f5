"""PMET (Li et al., AAAI 2024, "PMET: Precise Model Editing in a Transformer"), built on :mod:`memat.memit`.

MEMIT optimises one vector added to the *residual stream* (the transformer-layer hidden state) at the
subject's last token of the last edited layer ``L`` and writes the whole of it into the MLPs. PMET argues
that this state also carries what attention (MHSA) and the residual connection put there, so it
optimises the two *transformer-component* hidden states separately and writes only the FFN one:

1. **Targets.** At layer ``L`` two shifts are added at the subject's last token, in every prompt (the
   rewrite prompt after each random prefix and the KL prompts): ``shift_attn`` on the output of the
   attention output projection (``ArchSpec.attn_out``) and ``shift_ffn`` on the output of the MLP output
   projection (``ArchSpec.mlp_out``), the two modules of the reference code's ``attn_module_tmp`` /
   ``mlp_module_tmp``. They are optimised jointly with Adam on MEMIT's loss (NLL of the new target, KL
   of the "{subject} is a" distribution, weight decay ``|shift| / |init|^2`` for *each* shift, each
   clamped to ``clamp_norm_factor`` times the norm of its own module output), plus PMET's stopping rule:
   once every target token is the model's argmax, the NLL weight drops to ``argmax_nll_decay`` times
   ``nll_loss_factor`` and the optimisation stops as soon as ``kl_factor * KL <= kl_stop_loss``.
   The blocks up to ``L - 1`` never change, so their output is computed once and only blocks ``L..``
   are replayed (:class:`~memat.forward.TailRunner`, started at block ``L``'s input); edits of a batch
   are optimised together, each frozen when it stops, exactly as one at a time (as :mod:`memat.memit`).
2. **Only the FFN part is written.** The attention shift is discarded. The FFN target of each edit is
   the FFN's contribution to the residual stream at ``L`` with ``shift_ffn`` added, ``z = m_L + shift_ffn``
   (for Gemma 2/3, whose MLP output passes through ``post_feedforward_layernorm``:
   ``z = norm(m_L + shift_ffn)``, a point the layer can reach).
3. **Update.** Layer after layer (keys and the current FFN contribution at ``L`` recomputed after each
   update, as PMET's ``execute_pmet``), the FFN residual ``r = z - ffn_L(current)`` is spread with
   PMET's square root, ``r / sqrt(#layers left)`` (``residual_spread: sqrt``; MEMIT divides by the number
   of layers left, ``linear``), and written into the MLP output weights with MEMIT's closed form
   ``dW = R K^T (lambda E[k k^T] + K K^T)^{-1}`` (keys as MEMIT: context-averaged inputs of the output
   projection). For post-norm families the per-layer residual is mapped through that layer's RMS norm
   exactly as :func:`memat.memit.compute_memit` does.

Sources: the paper (arXiv 2308.08742) and the authors' code, github.com/xpq-tech/PMET
(``edit/pmet/compute_zs.py``, ``edit/pmet/pmet_main.py``, ``edit/hparams/PMET/EleutherAI_gpt-j-6B.json``,
commit c9a39ff), as also packaged in EasyEdit (``easyeditor/models/pmet``). As in the reference, the FFN
residual of the earlier layers is measured on the FFN output of layer ``L`` (what those layers change there
is small), so the sum written over the layers exceeds ``r``; that is the method, kept as published.

The edit is a :class:`~memat.memit.WeightDelta` (only ``mlp_out`` weights of ``hp.layers``), so applying,
removing, saving and evaluating it work as for MEMIT. The model is left exactly as it was, also when an
exception interrupts the computation. Requests and their token rows are MEMIT's (:mod:`memat.requests`),
tokenised once per edit.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import memit as _memit
from .cache import register_edit_method
from .data.records import EditCase
from .forward import SuffixRunner, SuffixUnsupported, TailRunner, encode, subject_last_index
from .hooks import TraceDict
from .hparams import HparamsError, MemitHparams
from .memit import WeightDelta
from .models import LoadedModel
from .requests import (
    EditRequest,
    RequestTokens,
    Rows,
    context_templates,
    per_request_contexts,
    resolve_requests,
    tokenize_requests,
)

__all__ = ["PmetHparams", "PmetTargets", "compute_pmet", "compute_pmet_targets"]


@dataclass
class PmetHparams(MemitHparams):
    """MEMIT's hyperparameters plus PMET's (names of the reference implementation where it has them).

    ``v_lr`` is the Adam learning rate of the FFN shift; ``attn_v_lr`` that of the attention shift (None:
    the same, as the reference's single optimiser; 0: the attention shift stays zero, PMET's ablation
    without MHSA optimisation). Separate rates matter where the two module outputs have very different
    scales (Gemma's pre-norm MLP output is ~3 in norm, its attention output ~10-20).
    """

    attn_v_lr: float | None = None
    nll_loss_factor: float = 1.0
    # once every target token is the argmax, the NLL weight is multiplied by this ...
    argmax_nll_decay: float = 0.1
    # ... and the optimisation of that edit stops when kl_factor * KL <= kl_stop_loss (< 0: never)
    kl_stop_loss: float = 0.01
    residual_spread: Literal["sqrt", "linear"] = "sqrt"

    def validate(self, source: str = "hparams") -> None:
        super().validate(source)
        if self.attn_v_lr is not None and self.attn_v_lr < 0:
            raise HparamsError(f"{source}: field 'attn_v_lr' must be >= 0 (or null), got {self.attn_v_lr}")
        for name in ("nll_loss_factor", "argmax_nll_decay"):
            if getattr(self, name) <= 0:
                raise HparamsError(f"{source}: field '{name}' must be > 0, got {getattr(self, name)}")

    @property
    def attn_lr(self) -> float:
        return self.v_lr if self.attn_v_lr is None else self.attn_v_lr


@dataclass
class PmetTargets:
    """Optimised transformer-component states at the last edited layer, one row per edit.

    ``ffn`` / ``ffn_init``: the FFN's contribution to the residual stream with / without ``shift_ffn``
    (after the post-MLP norm where the family has one): what the weight update writes.
    ``attn`` / ``attn_init``: the attention output projection's output with / without ``shift_attn``
    (diagnostics only: PMET discards it).
    """

    ffn: torch.Tensor
    ffn_init: torch.Tensor
    attn: torch.Tensor
    attn_init: torch.Tensor
    logs: list[dict]


class _BlockTail(TailRunner):
    """A :class:`TailRunner` that replays blocks ``first..`` (block ``first`` included) from its input."""

    def __init__(self, lm: LoadedModel, first: int):
        super().__init__(lm, first - 1)

    def capture(self, batch):
        if self.layer >= 0:  # block first-1's output is block first's input
            return super().capture(batch)
        got = {}

        def grab(m, args, kwargs):
            got["h"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

        handle = self.blocks[0].register_forward_pre_hook(grab, with_kwargs=True)
        self.layer = 0  # any traced layer works for super(); block 0's input is what we keep
        try:
            super().capture(batch)
        finally:
            self.layer = -1
            handle.remove()
        self.h_layer = got["h"]
        return self.h_layer


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def compute_pmet_targets(
    lm: LoadedModel, reqs: Sequence[EditRequest], hp: PmetHparams, contexts: Sequence[str], progress: bool = False,
    method: str = "suffix", tokens: Sequence[RequestTokens] | None = None,
) -> PmetTargets:
    """Jointly optimise the attention and FFN shifts at ``hp.layers[-1]`` for every request (batched).
    ``tokens``: the requests already tokenised in ``contexts`` (default: tokenised here).

    ``method="suffix"`` (default) runs the positions before each row's subject-last token once (key/value
    cache) and each step replays block ``hp.layers[-1]`` and the blocks after it over the positions from that
    token on (:class:`~memat.forward.SuffixRunner`); ``"full"`` replays every position (the reference)."""
    if method not in _memit.TARGET_METHODS:
        raise ValueError(f"compute_pmet_targets: method must be one of {_memit.TARGET_METHODS}, got {method!r}")
    z_layer = hp.layers[-1]
    ctxs = per_request_contexts(contexts, reqs)
    tokens = _memit._tokens(lm, reqs, ctxs, tokens)
    parts = []
    chunks = range(0, len(reqs), hp.batch_size)
    for s in tqdm(chunks, desc="PMET targets", disable=not progress, leave=False):
        rows = Rows.join(tokens[s : s + hp.batch_size])
        parts.append(_targets_chunk(lm, reqs[s : s + hp.batch_size], hp, rows, z_layer, method))
    return PmetTargets(
        *(torch.cat([getattr(p, f) for p in parts]) for f in ("ffn", "ffn_init", "attn", "attn_init")),
        logs=[l for p in parts for l in p.logs],
    )


def _ffn_image(lm: LoadedModel, layer: int, m: torch.Tensor) -> torch.Tensor:
    """The residual-stream contribution of MLP outputs ``m`` [n, d] (through the post-MLP norm if any)."""
    if lm.spec.post_mlp_norm is None:
        return m.float()
    with torch.no_grad():
        return lm.module("post_mlp_norm", layer)(m.to(lm.dtype)).float()


def _targets_chunk(lm: LoadedModel, reqs, hp: PmetHparams, rows: Rows, z_layer: int, method: str = "full") -> PmetTargets:
    dev = lm.device_of("layer", z_layer)  # the shifts' and losses' device (device_map: the model spans devices)
    attn_name, mlp_name = lm.name_of("attn_out", z_layer), lm.name_of("mlp_out", z_layer)
    n = len(reqs)
    suffix = method == "suffix" and z_layer > 0
    with torch.no_grad():
        if suffix:  # blocks z_layer.. from the subject's last token on; the suffix pass is the traced one
            runner = SuffixRunner(lm, z_layer - 1)
            try:
                with TraceDict(lm.model, [attn_name, mlp_name]) as td:
                    h0 = runner.capture(rows.seqs, rows.positions)
            except SuffixUnsupported:
                suffix = False
        if not suffix:
            batch = encode(lm.tokenizer, rows.seqs, lm.device)
            runner = _BlockTail(lm, z_layer)
            with TraceDict(lm.model, [attn_name, mlp_name]) as td:  # cloned: Falcon adds attention in place
                h0 = runner.capture(batch)
        a_out, m_out = _first(td[attn_name].output), _first(td[mlp_name].output)
        # positions are relative to the subject's last token in the suffix method (it is position 0)
        offset = torch.tensor(rows.positions, device=dev) if suffix else torch.zeros(len(rows.seqs), dtype=torch.long, device=dev)
        kl_rows = torch.tensor(rows.kl_rows, device=dev, dtype=torch.long)
        kl_idx = torch.tensor([rows.positions[r] for r in rows.kl_rows], device=dev, dtype=torch.long) - offset[kl_rows]
        kl_init = F.log_softmax(lm.logits(runner.final.to(dev)[kl_rows, kl_idx]).float(), -1)
    ctx0 = torch.tensor(rows.first_row, device=dev)
    look = torch.tensor(rows.positions, device=dev) - offset
    m_init = m_out[ctx0, look[ctx0]].float()  # the plain prompt's value, as the reference records it
    a_init = a_out[ctx0, look[ctx0]].float()
    m_norm = m_init.norm(dim=-1).clamp(min=1e-12)
    a_norm = a_init.norm(dim=-1).clamp(min=1e-12)
    row_all = torch.arange(len(rows.seqs), device=dev)
    edit_all = torch.tensor(rows.item_of_row, device=dev)
    tgt_rows = torch.tensor(rows.tgt_row, device=dev)
    tgt_pos = torch.tensor(rows.tgt_pos, device=dev) - offset[tgt_rows]
    tgt_ids = torch.tensor(rows.tgt_id, device=dev)
    n_rows = len(rows.seqs)
    tok_per_row = torch.zeros(n_rows, device=dev).index_add_(0, tgt_rows, torch.ones_like(tgt_rows, dtype=torch.float))
    is_rw = tok_per_row > 0
    rows_per_edit = torch.zeros(n, device=dev).index_add_(0, edit_all[is_rw], torch.ones(int(is_rw.sum()), device=dev))
    tok_edit = edit_all[tgt_rows]
    kl_edit = torch.tensor(rows.kl_item, device=dev)
    kl_per_edit = torch.zeros(n, device=dev).index_add_(0, kl_edit, torch.ones_like(kl_edit, dtype=torch.float))

    shift_ffn = torch.zeros(n, m_out.shape[-1], device=dev, requires_grad=True)
    shift_attn = torch.zeros(n, a_out.shape[-1], device=dev, requires_grad=True)
    groups = [{"params": [shift_ffn], "lr": hp.v_lr}]
    if hp.attn_lr > 0:
        groups.append({"params": [shift_attn], "lr": hp.attn_lr})
    opt = torch.optim.Adam(groups)

    def add_shifts(out, name):
        shift = shift_ffn if name == mlp_name else shift_attn
        return out.index_put((row_all, look), shift[edit_all].to(out.dtype), accumulate=True)

    nll_w = torch.full((n,), hp.nll_loss_factor, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    steps = torch.zeros(n, dtype=torch.long)
    hist = []
    argmax_all = torch.zeros(n, dtype=torch.bool, device=dev)
    with TraceDict(lm.model, [attn_name, mlp_name], retain_output=False, edit_output=add_shifts):
        for it in range(hp.v_num_grad_steps):
            out = runner.run(h0).to(dev)
            lp = F.log_softmax(lm.logits(out[tgt_rows, tgt_pos]).float(), -1)
            tok_lp = lp.gather(-1, tgt_ids[:, None].to(lp.device))[:, 0].to(dev)
            row_nll = -torch.zeros(n_rows, device=dev).index_add(0, tgt_rows, tok_lp) / tok_per_row.clamp(min=1)
            nll = torch.zeros(n, device=dev).index_add(0, edit_all, row_nll * is_rw) / rows_per_edit
            # the reference's "max_prob == prob": every target token of every rewrite prompt is the argmax
            not_max = (tok_lp.detach() < lp.detach().max(-1).values.to(dev)).float()
            argmax_all = torch.zeros(n, device=dev).index_add(0, tok_edit, not_max) == 0
            kl_lp = F.log_softmax(lm.logits(out[kl_rows, kl_idx]).float(), -1)
            kl_row = (kl_lp.exp() * (kl_lp - kl_init)).sum(-1).to(dev)  # KL(current || init), as MEMIT/PMET
            kl = torch.zeros(n, device=dev).index_add(0, kl_edit, kl_row) / kl_per_edit.clamp(min=1)
            wd = hp.v_weight_decay * (shift_ffn.norm(dim=-1) / m_norm**2 + shift_attn.norm(dim=-1) / a_norm**2)
            loss = nll_w * nll + hp.kl_factor * kl + wd
            hist.append({"nll": nll.detach().cpu(), "kl": kl.detach().cpu(), "argmax": argmax_all.cpu()})
            steps += (~done).long().cpu()
            stop = loss.detach() < hp.early_stop_loss
            stop |= argmax_all & (hp.kl_factor * kl.detach() <= hp.kl_stop_loss)
            nll_w = torch.where(argmax_all, hp.nll_loss_factor * hp.argmax_nll_decay, hp.nll_loss_factor)
            done |= stop
            if bool(done.all()) or it == hp.v_num_grad_steps - 1:
                break
            opt.zero_grad()
            loss[~done].sum().backward()
            frozen = (shift_ffn.detach()[done].clone(), shift_attn.detach()[done].clone())
            opt.step()
            with torch.no_grad():
                shift_ffn[done], shift_attn[done] = frozen
                for shift, norm in ((shift_ffn, m_norm), (shift_attn, a_norm)):
                    scale = (hp.clamp_norm_factor * norm / shift.norm(dim=-1).clamp(min=1e-12)).clamp(max=1.0)
                    shift.mul_(scale[:, None])
    shift_ffn, shift_attn = shift_ffn.detach(), shift_attn.detach()
    logs = []
    for e, q in enumerate(reqs):
        logs.append({
            "case_id": q.case_id,
            "steps": int(steps[e]),
            "nll_start": float(hist[0]["nll"][e]),
            "nll_end": float(hist[-1]["nll"][e]),
            "kl_end": float(hist[-1]["kl"][e]),
            "argmax_end": bool(hist[-1]["argmax"][e]),
            "ffn_delta_ratio": float(shift_ffn[e].norm() / m_norm[e]),  # |shift| / |init|: the stored logs' names
            "attn_delta_ratio": float(shift_attn[e].norm() / a_norm[e]),
        })
    return PmetTargets(
        ffn=_ffn_image(lm, z_layer, m_init + shift_ffn),
        ffn_init=_ffn_image(lm, z_layer, m_init),
        attn=a_init + shift_attn,
        attn_init=a_init,
        logs=logs,
    )


def _plain_prompts(lm: LoadedModel, reqs: Sequence[EditRequest]) -> list[tuple[list[int], int]]:
    """Each request's plain rewrite prompt (no context): its token ids and the subject's last index."""
    return [subject_last_index(lm.tokenizer, q.prompt, q.subject) for q in reqs]


@torch.no_grad()
def _ffn_contribution(lm: LoadedModel, reqs: Sequence[EditRequest], layer: int, batch_size: int,
                      plain: Sequence[tuple[list[int], int]] | None = None) -> torch.Tensor:
    """The FFN's current contribution to the residual stream at ``layer`` [n, d], at the subject's last
    token of the plain rewrite prompt (the reference's ``get_module_input_output_at_words`` output);
    ``plain``: those prompts tokenised (:func:`_plain_prompts`; default: tokenised here)."""
    site = lm.name_of("post_mlp_norm" if lm.spec.post_mlp_norm is not None else "mlp_out", layer)
    plain = _plain_prompts(lm, reqs) if plain is None else plain
    out = []
    for s in range(0, len(reqs), batch_size):
        seqs, look = zip(*plain[s : s + batch_size])
        b = encode(lm.tokenizer, seqs, lm.device)
        with TraceDict(lm.model, [site], stop=True) as td:
            lm.model(**b.to_model_kwargs(), use_cache=False)
        o = _first(td[site].output)
        out.append(o[torch.arange(len(seqs), device=o.device), torch.tensor(look, device=o.device)].float())
    return torch.cat(out)


def _spread(kind: str, layers_left: int) -> float:
    return math.sqrt(layers_left) if kind == "sqrt" else float(layers_left)


def compute_pmet(
    lm: LoadedModel,
    requests_or_cases: Sequence[EditRequest] | Sequence[EditCase],
    hp: PmetHparams,
    stats: dict[int, torch.Tensor] | None = None,
    contexts: Sequence[str] | None = None,
    lang: str = "en",
    progress: bool = False,
    targets: PmetTargets | tuple[torch.Tensor, list[dict]] | None = None,
) -> WeightDelta:
    """Compute a PMET edit; the model's weights are the same before and after (exceptions included).

    ``requests_or_cases`` are :class:`EditRequest` or :class:`EditCase` (``lang`` picks the view and the
    language of the random prefixes). ``stats`` maps each layer to E[k k^T] (:func:`memat.stats.layer_stats`);
    without it ``hp.mom2_adjustment`` must be False. ``targets`` (a :class:`PmetTargets` from
    :func:`compute_pmet_targets`, or ``(ffn_targets [n, d], logs)`` in residual-contribution space) skips
    the optimisation.
    """
    requests = resolve_requests(requests_or_cases, lang, "compute_pmet")
    if not requests:
        raise ValueError("compute_pmet: no requests")
    if not isinstance(hp, PmetHparams):
        raise TypeError(f"compute_pmet needs PmetHparams (load_hparams(..., cls=PmetHparams, kind='pmet')), "
                        f"got {type(hp).__name__}")
    bad = [l for l in hp.layers if not 0 <= l < lm.n_layers]
    if bad:
        raise ValueError(f"hparams layers {bad} out of range for {lm.name} ({lm.n_layers} layers)")
    if hp.mom2_adjustment and (stats is None or any(l not in stats for l in hp.layers)):
        raise ValueError("compute_pmet: mom2_adjustment needs stats for every edited layer (memat.stats.layer_stats)")
    if contexts is None:
        contexts = context_templates(lm, lang, hp.context_templates)
    contexts = per_request_contexts(contexts, requests)
    tokens = tokenize_requests(lm.tokenizer, requests, contexts)  # once: the targets' rows and every layer's keys
    z_layer = hp.layers[-1]
    if targets is None:
        targets = compute_pmet_targets(lm, requests, hp, contexts, progress, tokens=tokens)
    if isinstance(targets, PmetTargets):
        zs, logs = targets.ffn, targets.logs
    else:
        zs, logs = targets
    zs = zs.to(lm.device_of("layer", z_layer)).float()  # where _ffn_contribution reads (device_map)
    if zs.shape != (len(requests), lm.hidden_size):
        raise ValueError(f"targets have shape {tuple(zs.shape)}, expected {(len(requests), lm.hidden_size)}")

    plain = _plain_prompts(lm, requests)
    deltas, layer_log = _memit.write_layers(
        lm, requests, hp, stats, contexts,
        lambda i, layer, _cur: (zs - _ffn_contribution(lm, requests, z_layer, hp.batch_size, plain))
        / _spread(hp.residual_spread, len(hp.layers) - i),
        progress, "PMET layers", tokens=tokens)
    meta = {
        "method": "PMET",
        "model": lm.name,
        "hparams": dataclasses.asdict(hp),
        "case_ids": [q.case_id for q in requests],
        "lang": lang,
        "targets": logs,
        "layers": layer_log,
    }
    return WeightDelta(deltas, meta)


def _edit_pmet(lm: LoadedModel, requests: Sequence[EditRequest], hp: PmetHparams, stats, lang: str, contexts,
               progress: bool, cache: bool) -> WeightDelta:
    """The PMET edit of :func:`memat.memit.cached_memit` (registered for :class:`PmetHparams`): computed
    from scratch (PMET's targets are not cached), whatever ``cache``."""
    return compute_pmet(lm, requests, hp, stats=stats, lang=lang, progress=progress, contexts=contexts)


register_edit_method(PmetHparams, _edit_pmet)
