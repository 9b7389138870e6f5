"""MEMIT (Meng et al., 2023): mass-editing the MLP output weights of a few layers in closed form.

For a batch of requests (subject, prompt, new target):

1. **Target vectors.** For every edit, a shift ``z_shift`` is added to the residual stream at the
   subject's last token at the last edited layer ``L``, and optimised so the model predicts the new
   target after the prompt preceded by random prefixes (NLL), while keeping the next-token
   distribution after "{subject} is a" close to the original (KL), with a weight decay and a norm clamp.
   All edits of a batch are optimised together (one shift row per edit; the summed loss gives each
   row exactly the gradient of its own loss, and an edit that reaches the early-stopping loss is frozen,
   as if it were optimised alone). Blocks up to ``L`` never change during this optimisation, so their
   output is computed once and only the blocks after ``L`` are replayed (:class:`~memat.forward.TailRunner`);
   logits are computed only at the positions the losses read.
2. **Keys** are the inputs of the MLP output projection at the subject's last token, averaged over the
   prefixes. **Residuals** ``z - h_L`` are spread over the edited layers, updated one after the other
   (keys and residuals recomputed after each layer's update), each by
   ``dW = R K^T (lambda E[k k^T] + K K^T)^{-1}``.
3. For families whose MLP output passes through a norm before joining the residual stream (Gemma 2/3's
   ``post_feedforward_layernorm``), the residual target of a layer is mapped through that RMS norm
   exactly: the new MLP output is the vector closest to the current one whose normalised image is the
   nearest reachable point to the target (an RMS norm's image has a fixed scale, so only its direction
   can be steered).

The edit is returned as a :class:`WeightDelta` (``delta``, here and everywhere in memat, is a weight edit;
``MemitDelta`` is its former name), and the model is left exactly as it was (also when an exception
interrupts the computation); apply it with ``delta.apply(lm)`` or ``with delta.applied(lm):``.

Requests, their contexts and the token rows the losses read are :mod:`memat.requests` (shared with PMET
and MEMAT); each request is tokenised once per edit, and the keys of every layer are read at those tokens.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cache import cached, check_key, content_key, edit_method, entry_path, read, register_edit_method, tensors_key, write
from .data.records import EditCase
from .forward import SuffixRunner, SuffixUnsupported, TailRunner, encode
from .hooks import TraceDict
from .hparams import MemitHparams
from .io import atomic_path
from .models import LoadedModel
from .requests import (  # noqa: F401 - CONTEXT_SEEDS, requests_from_cases: memat.memit's names, as before
    CONTEXT_SEEDS,
    EditRequest,
    RequestTokens,
    Rows,
    context_templates,
    per_request_contexts,
    requests_from_cases,
    resolve_requests,
    tokenize_requests,
)

__all__ = [
    "EditRequest",
    "MemitDelta",
    "WeightDelta",
    "CONTEXT_SEEDS",
    "compute_memit",
    "compute_targets",
    "context_templates",
    "per_request_contexts",
    "requests_from_cases",
    "stats_key",
]

TARGET_METHODS = ("suffix", "full")


def compute_targets(
    lm: LoadedModel, reqs: Sequence[EditRequest], hp: MemitHparams, contexts: Sequence[str] | Sequence[Sequence[str]],
    progress: bool = True, method: str = "suffix", tokens: Sequence[RequestTokens] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Target vectors ``z`` [n, d] at the last edited layer, their starting points, and per-edit logs.
    ``contexts``: shared templates or one list per request (:func:`per_request_contexts`); ``tokens``: the
    requests already tokenised in them (:func:`memat.requests.tokenize_requests`; default: tokenised here).

    ``method="suffix"`` (default) computes the positions before each row's subject-last token once, in
    the model's key/value cache, and each optimisation step runs only the blocks after the last edited
    layer over the positions from that token on (:class:`~memat.forward.SuffixRunner`); a request that
    reaches ``early_stop_loss`` leaves the batch. ``method="full"`` replays the blocks after that layer
    over every position at every step, every request to the end (the implementation before 2026-12;
    kept as the reference the tests and ``benchmarks/bench_memit.py`` compare with). Both give the same
    gradients and target vectors up to rounding."""
    if method not in TARGET_METHODS:
        raise ValueError(f"compute_targets: method must be one of {TARGET_METHODS}, got {method!r}")
    z_layer = hp.layers[-1]
    ctxs = per_request_contexts(contexts, reqs)
    tokens = _tokens(lm, reqs, ctxs, tokens)
    zs, inits, logs = [], [], []
    chunks = range(0, len(reqs), hp.batch_size)
    chunk_fn = _targets_chunk_suffix if method == "suffix" else _targets_chunk
    for s in tqdm(chunks, desc="target vectors", disable=not progress, leave=False):
        z, init, log = chunk_fn(lm, reqs[s : s + hp.batch_size], hp, Rows.join(tokens[s : s + hp.batch_size]), z_layer)
        zs.append(z)
        inits.append(init)
        logs.extend(log)
    return torch.cat(zs), torch.cat(inits), logs


def _tokens(lm, reqs, ctxs, tokens: Sequence[RequestTokens] | None) -> list[RequestTokens]:
    """``tokens`` if given (checked against ``reqs``), else ``reqs`` tokenised in ``ctxs`` (MEMIT's rows)."""
    if tokens is None:
        return tokenize_requests(lm.tokenizer, reqs, ctxs)
    tokens = list(tokens)
    if [t.request for t in tokens] != list(reqs):
        raise ValueError(f"tokens are of other requests than the {len(reqs)} requests given")
    return tokens


def _row_counts(rows: Rows, n: int, tgt_rows: torch.Tensor, edit_all: torch.Tensor, dev):
    """Target tokens per row, which rows are rewrite rows, rewrite rows per edit, the KL rows' edits and
    KL rows per edit: the denominators of the per-edit NLL and KL averages."""
    n_rows = len(rows.seqs)
    tok_per_row = torch.zeros(n_rows, device=dev).index_add_(0, tgt_rows, torch.ones_like(tgt_rows, dtype=torch.float))
    is_rw = tok_per_row > 0
    rows_per_edit = torch.zeros(n, device=dev).index_add_(0, edit_all[is_rw], torch.ones(int(is_rw.sum()), device=dev))
    kl_edit = torch.tensor(rows.kl_item, device=dev, dtype=torch.long)
    kl_per_edit = torch.zeros(n, device=dev).index_add_(0, kl_edit, torch.ones_like(kl_edit, dtype=torch.float))
    return tok_per_row, is_rw, rows_per_edit, kl_edit, kl_per_edit


def _frozen_step(opt, shift: torch.Tensor, loss: torch.Tensor, done: torch.Tensor, max_norm: torch.Tensor) -> None:
    """One Adam step on the edits not done (their summed loss: each row gets its own gradient), the done
    rows restored exactly (Adam's momentum would move them), then every row clamped to ``max_norm``."""
    opt.zero_grad()
    loss[~done].sum().backward()
    frozen = shift.detach()[done].clone()
    opt.step()
    with torch.no_grad():
        shift[done] = frozen
        scale = (max_norm / shift.norm(dim=-1).clamp(min=1e-12)).clamp(max=1.0)
        shift.mul_(scale[:, None])


def _targets_chunk(lm, reqs, hp: MemitHparams, rows: Rows, z_layer):
    """The target vectors of one batch of requests (their rows): ``h + z_shift`` at the subject's last token,
    the shift optimised with every position replayed."""
    batch = encode(lm.tokenizer, rows.seqs, lm.device)
    runner = TailRunner(lm, z_layer)
    n = len(reqs)
    with torch.no_grad():
        h0 = runner.capture(batch).float()
        dev = h0.device  # the edited layer's: the losses are gathered here (device_map: the model spans devices)
        kl_idx = torch.tensor([rows.positions[r] for r in rows.kl_rows], device=dev)
        kl_rows = torch.tensor(rows.kl_rows, device=dev)
        kl_init = F.log_softmax(lm.logits(runner.final.to(dev)[kl_rows, kl_idx]).float(), -1)
    ctx0 = torch.tensor(rows.first_row, device=dev)
    look = torch.tensor(rows.positions, device=dev)
    target_init = h0[ctx0, look[ctx0]].clone()
    init_norm = target_init.norm(dim=-1)
    row_all = torch.arange(len(rows.seqs), device=dev)
    edit_all = torch.tensor(rows.item_of_row, device=dev)
    tgt_rows = torch.tensor(rows.tgt_row, device=dev)
    tgt_pos = torch.tensor(rows.tgt_pos, device=dev)
    tgt_ids = torch.tensor(rows.tgt_id, device=dev)
    n_rows = len(rows.seqs)
    tok_per_row, is_rw, rows_per_edit, kl_edit, kl_per_edit = _row_counts(rows, n, tgt_rows, edit_all, dev)

    z_shift = torch.zeros(n, h0.shape[-1], device=dev, requires_grad=True)
    opt = torch.optim.Adam([z_shift], lr=hp.v_lr)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    steps = torch.zeros(n, dtype=torch.long)  # loss evaluations of each edit until it stopped
    hist = []
    for it in range(hp.v_num_grad_steps):
        h = h0.index_put((row_all, look), z_shift[edit_all], accumulate=True).to(h0.dtype)
        out = runner.run(h.to(lm.dtype)).to(dev)
        lp = F.log_softmax(lm.logits(out[tgt_rows, tgt_pos]).float(), -1)
        tok_lp = lp.gather(-1, tgt_ids[:, None].to(lp.device))[:, 0].to(dev)
        row_nll = -torch.zeros(n_rows, device=dev).index_add(0, tgt_rows, tok_lp) / tok_per_row.clamp(min=1)
        nll = torch.zeros(n, device=dev).index_add(0, edit_all, row_nll * is_rw) / rows_per_edit
        kl_lp = F.log_softmax(lm.logits(out[kl_rows, kl_idx]).float(), -1)
        # as MEMIT's kl_div(init, current, log_target=True): KL(current || init)
        kl_row = (kl_lp.exp() * (kl_lp - kl_init)).sum(-1).to(dev)
        kl = torch.zeros(n, device=dev).index_add(0, kl_edit, kl_row) / kl_per_edit.clamp(min=1)
        wd = hp.v_weight_decay * z_shift.norm(dim=-1) / init_norm**2
        loss = nll + hp.kl_factor * kl + wd
        hist.append({"nll": nll.detach().cpu(), "kl": kl.detach().cpu()})
        steps += (~done).long().cpu()
        done |= loss.detach() < hp.early_stop_loss
        if bool(done.all()) or it == hp.v_num_grad_steps - 1:
            break
        _frozen_step(opt, z_shift, loss, done, hp.clamp_norm_factor * init_norm)
    z_shift = z_shift.detach()
    logs = []
    for e, q in enumerate(reqs):
        logs.append({
            "case_id": q.case_id,
            "steps": int(steps[e]),
            "nll_start": float(hist[0]["nll"][e]),
            "nll_end": float(hist[-1]["nll"][e]),
            "kl_end": float(hist[-1]["kl"][e]),
            "delta_norm_ratio": float(z_shift[e].norm() / init_norm[e]),  # |z_shift| / |h|: the stored logs' name
        })
    return target_init + z_shift, target_init, logs


def _targets_chunk_suffix(lm, reqs, hp: MemitHparams, rows: Rows, z_layer):
    """:func:`_targets_chunk` over the suffix positions only (:class:`~memat.forward.SuffixRunner`).

    Every row adds its edit's ``z_shift`` at its subject's last token, and every loss reads positions from
    there on, so each row is split there: the NLL positions become ``pos - split`` and the KL position 0.
    An edit whose loss falls below ``early_stop_loss`` is frozen (as in the full method) and its rows leave
    the batch; its logged NLL/KL are those of its last evaluation."""
    runner = SuffixRunner(lm, z_layer)
    n = len(reqs)
    n_rows = len(rows.seqs)
    try:
        h0 = runner.capture(rows.seqs, rows.positions).float()
    except SuffixUnsupported:  # a sliding window shorter than these rows: replay every position
        return _targets_chunk(lm, reqs, hp, rows, z_layer)  # [rows, S, d]; position 0 is the subject's last token
    dev = h0.device  # the edited layer's: the losses are gathered here (device_map: the model spans devices)
    look = torch.tensor(rows.positions, device=dev)
    with torch.no_grad():
        kl_rows = torch.tensor(rows.kl_rows, device=dev, dtype=torch.long)
        kl_init = F.log_softmax(lm.logits(runner.final.to(dev)[kl_rows, 0]).float(), -1)
    ctx0 = torch.tensor(rows.first_row, device=dev)
    target_init = h0[ctx0, 0].clone()
    init_norm = target_init.norm(dim=-1)
    edit_all = torch.tensor(rows.item_of_row, device=dev)
    tgt_rows = torch.tensor(rows.tgt_row, device=dev, dtype=torch.long)
    tgt_pos = torch.tensor(rows.tgt_pos, device=dev, dtype=torch.long) - look[tgt_rows]
    tgt_ids = torch.tensor(rows.tgt_id, device=dev, dtype=torch.long)
    tok_per_row, is_rw, rows_per_edit, kl_edit, kl_per_edit = _row_counts(rows, n, tgt_rows, edit_all, dev)
    # rows of the current batch (indices into the chunk's rows), and each chunk row's place in the batch
    live = torch.arange(n_rows, device=dev)

    z_shift = torch.zeros(n, h0.shape[-1], device=dev, requires_grad=True)
    opt = torch.optim.Adam([z_shift], lr=hp.v_lr)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    steps = torch.zeros(n, dtype=torch.long)
    nll_start = torch.full((n,), float("nan"))
    nll_last, kl_last = torch.full((n,), float("nan")), torch.full((n,), float("nan"))
    for it in range(hp.v_num_grad_steps):
        pos_of = torch.full((n_rows,), -1, dtype=torch.long, device=dev)
        pos_of[live] = torch.arange(len(live), device=dev)
        h = h0.clone()
        h[:, 0] = h[:, 0] + z_shift[edit_all[live]]
        out = runner.run(h.to(lm.dtype)).to(dev)
        t_sel = (pos_of[tgt_rows] >= 0).nonzero()[:, 0]
        lp = F.log_softmax(lm.logits(out[pos_of[tgt_rows[t_sel]], tgt_pos[t_sel]]).float(), -1)
        tok_lp = lp.gather(-1, tgt_ids[t_sel, None].to(lp.device))[:, 0].to(dev)
        row_nll = -torch.zeros(n_rows, device=dev).index_add(0, tgt_rows[t_sel], tok_lp) / tok_per_row.clamp(min=1)
        nll = torch.zeros(n, device=dev).index_add(0, edit_all, row_nll * is_rw) / rows_per_edit
        k_sel = (pos_of[kl_rows] >= 0).nonzero()[:, 0]
        kl_lp = F.log_softmax(lm.logits(out[pos_of[kl_rows[k_sel]], 0]).float(), -1)
        kl_row = (kl_lp.exp() * (kl_lp - kl_init[k_sel.to(kl_init.device)])).sum(-1).to(dev)  # KL(current || init), as MEMIT
        kl = torch.zeros(n, device=dev).index_add(0, kl_edit[k_sel], kl_row) / kl_per_edit.clamp(min=1)
        wd = hp.v_weight_decay * z_shift.norm(dim=-1) / init_norm**2
        loss = nll + hp.kl_factor * kl + wd
        active = ~done
        if it == 0:
            nll_start = nll.detach().cpu()
        a_cpu = active.cpu()
        nll_last[a_cpu] = nll.detach().cpu()[a_cpu]
        kl_last[a_cpu] = kl.detach().cpu()[a_cpu]
        steps += a_cpu.long()
        done |= loss.detach() < hp.early_stop_loss
        if bool(done.all()) or it == hp.v_num_grad_steps - 1:
            break
        _frozen_step(opt, z_shift, loss, done, hp.clamp_norm_factor * init_norm)
        keep = ~done[edit_all[live]]
        if not bool(keep.all()):  # finished requests leave the batch
            runner.select(keep.nonzero()[:, 0])
            h0 = h0[keep]
            live = live[keep]
    z_shift = z_shift.detach()
    logs = []
    for e, q in enumerate(reqs):
        logs.append({
            "case_id": q.case_id,
            "steps": int(steps[e]),
            "nll_start": float(nll_start[e]),
            "nll_end": float(nll_last[e]),
            "kl_end": float(kl_last[e]),
            "delta_norm_ratio": float(z_shift[e].norm() / init_norm[e]),  # |z_shift| / |h|: the stored logs' name
        })
    return target_init + z_shift, target_init, logs


def _context_weights(contexts: Sequence[str]) -> torch.Tensor:
    """MEMIT averages keys within each context type, then over the types: the bare prompt ``"{}"`` is
    one type and the generated prefixes another, so the bare prompt weighs 1/2, not 1/len(contexts)."""
    plain = torch.tensor([c == "{}" for c in contexts], dtype=torch.float)
    n_plain, n_other = float(plain.sum()), float(len(contexts) - plain.sum())
    if n_plain == 0 or n_other == 0:
        return torch.full((len(contexts),), 1.0 / len(contexts))
    return torch.where(plain.bool(), 0.5 / n_plain, 0.5 / n_other)


@torch.no_grad()
def _keys_and_states(lm, reqs, layer: int, z_layer: int, contexts, batch_size: int,
                     tokens: Sequence[RequestTokens] | None = None):
    """Mean key over contexts [n, m] and current z-layer state of the plain prompt [n, d], read at the
    subject's last token of each prompt in each context (``tokens``: the requests' tokens, as the target
    optimisation read them; default: tokenised here)."""
    mlp_name, z_name = lm.name_of("mlp_out", layer), lm.name_of("layer", z_layer)
    ctxs = per_request_contexts(contexts, reqs)
    tokens = _tokens(lm, reqs, ctxs, tokens)
    n_ctx = len(ctxs[0])
    weights = _context_weights(ctxs[0]).to(lm.device)
    keys, zs = [], []
    for s in range(0, len(reqs), batch_size):
        chunk = reqs[s : s + batch_size]
        seqs, look = [], []
        for t in tokens[s : s + batch_size]:
            for ids, idx in t.prompt_rows():
                seqs.append(ids)
                look.append(idx)
        b = encode(lm.tokenizer, seqs, lm.device)
        with TraceDict(lm.model, [mlp_name, z_name], retain_input=True, stop=True) as td:
            lm.model(**b.to_model_kwargs(), use_cache=False)
        rows = torch.arange(len(seqs), device=lm.device)
        li = torch.tensor(look, device=lm.device)
        x = td[mlp_name].input  # on the layer's device (device_map)
        k = x[rows.to(x.device), li.to(x.device)].float().view(len(chunk), n_ctx, -1)
        k = (k * weights.to(k.device)[None, :, None]).sum(1)
        zo = td[z_name].output
        zo = zo[0] if isinstance(zo, tuple) else zo
        z = zo[rows.to(zo.device), li.to(zo.device)].float().view(len(chunk), n_ctx, -1)[:, 0]
        keys.append(k)
        zs.append(z)
    return torch.cat(keys), torch.cat(zs)


def _rms_gain(norm_module: torch.nn.Module, d: int, device, dtype) -> torch.Tensor:
    """Per-channel gain g of an RMS norm (norm(x) = g * x / rms(x)), read off the module itself."""
    c = 1e3
    x = torch.full((1, d), c, device=device, dtype=dtype)
    y = norm_module(x).float()[0]
    # for an RMS norm this is exact up to eps / c^2; check the module really is one
    gen = torch.Generator(device="cpu").manual_seed(0)
    x2 = torch.randn(1, d, generator=gen).to(device=device, dtype=dtype)
    y2 = norm_module(x2).float()
    scale_invariant = torch.allclose(norm_module(x2 * 3.0).float(), y2, rtol=1e-3, atol=1e-4)
    shift_invariant = torch.allclose(norm_module(x2 + 1.0).float(), y2, rtol=1e-3, atol=1e-4)
    if not scale_invariant or shift_invariant:
        raise TypeError(f"{type(norm_module).__name__} is not an RMS norm (scale-invariant, not shift-invariant); "
                        "post_mlp_norm must be one")
    return y


def _nearest_on_rms_image(y: torch.Tensor, g: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """argmin_v ||g * v - y|| subject to rms(v) = 1, row by row (the image of an RMS norm with gain g).

    Lagrange: v_i = g_i y_i / (g_i^2 + mu), with mu > -min g_i^2 found by bisection so that
    mean(v^2) = 1 (the left-hand side decreases in mu). Dividing by g directly would blow up in the
    channels where g is small.
    """
    d = y.shape[-1]
    gy = g * y
    g2 = g * g
    lo = torch.full(y.shape[:-1] + (1,), float(-g2.min()), dtype=y.dtype, device=y.device)
    lo = lo + 1e-9 * (1 + lo.abs())
    hi = (gy.norm(dim=-1, keepdim=True) / d**0.5 + g2.max()).clamp(min=1.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        too_big = ((gy / (g2 + mid)) ** 2).mean(-1, keepdim=True) > 1
        lo = torch.where(too_big, mid, lo)
        hi = torch.where(too_big, hi, mid)
    v = gy / (g2 + hi)
    return v / v.pow(2).mean(-1, keepdim=True).sqrt()


def _through_post_norm(m: torch.Tensor, resid: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Change of the MLP output [n, d] such that the normed output g * m'/rms(m') is the reachable point
    nearest to g * m/rms(m) + resid, with m' (any positive multiple gives the same image) the one
    closest to m."""
    d = m.shape[-1]
    m64, r64, g64 = m.double(), resid.double(), g.double()
    rms = m64.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)
    v = _nearest_on_rms_image(g64 * m64 / rms + r64, g64)
    s = (v * m64).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True)
    s = torch.maximum(s, 0.1 * m64.norm(dim=-1, keepdim=True) / d**0.5)
    return (s * v - m64).to(m.dtype)


def closed_form_update(keys: torch.Tensor, target: torch.Tensor, C: torch.Tensor | None, lam: float,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MEMIT's update ``R K^T (lam C + K K^T)^{-1}`` as [d_out, d_in], computed in ``dtype`` (float64 by
    default) on ``device`` (default: the keys' device), where the result stays.

    ``keys`` [n, m] and ``target`` (the residuals R) [n, d] hold one row per edit; ``C`` is E[k k^T]
    [m, m], or ``None`` for the identity. Only this layer's matrices are moved to ``device``.
    """
    dev = keys.device if device is None else torch.device(device)
    K = keys.to(dev, dtype).T  # [m, n]
    R = target.to(dev, dtype).T  # [d, n]
    A = K @ K.T
    C = torch.eye(A.shape[0], dtype=A.dtype, device=A.device) if C is None else C.to(dev, dtype)
    adj_k = torch.linalg.solve(A + lam * C, K)
    return R @ adj_k.T


def solve_placement(lm: LoadedModel, hp: MemitHparams) -> tuple[torch.device, torch.dtype]:
    """Where and in what precision ``hp`` asks the closed-form solve to run (``solve_device``,
    ``solve_dtype``): the CPU or the device of the model's first parameter."""
    dev = torch.device("cpu") if hp.solve_device == "cpu" else lm.device
    return dev, getattr(torch, hp.solve_dtype)


def layer_update(lm: LoadedModel, layer: int, keys: torch.Tensor, resid: torch.Tensor, C: torch.Tensor | None,
                 lam: float, solve_device: torch.device | str | None = None,
                 solve_dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The update of ``layer``'s MLP output weight that adds ``resid`` [n, d] to the layer's output at
    ``keys`` [n, m] (for Gemma 2/3 through the post-MLP RMS norm, to the nearest reachable point), in the
    parameter's own layout, in float32 whatever the model's dtype: it is added to the weights in float32 and
    the sum cast once (:func:`add_in_float32`), so a bfloat16 model does not round the update before adding.
    The solve runs on ``solve_device`` (default: the keys' device) in ``solve_dtype``, and the update is
    returned there."""
    W = lm.mlp_out_weight(layer)  # [d_out, d_in] view
    resid = resid.to(keys.device)  # the last edited layer's device to the keys' (device_map)
    if lm.spec.post_mlp_norm is not None:
        g = _rms_gain(lm.module("post_mlp_norm", layer), W.shape[0], W.device, lm.dtype)
        m = keys @ W.float().T
        bias = getattr(lm.module("mlp_out", layer), "bias", None)
        if bias is not None:
            m = m + bias.float()
        target = _through_post_norm(m, resid, g)
    else:
        target = resid
    upd = closed_form_update(keys, target, C, lam, solve_device, solve_dtype).to(torch.float32)  # [d_out, d_in]
    return upd if lm.spec.weight_layout == "out_in" else upd.T


@torch.no_grad()
def add_in_float32(param: torch.Tensor, update: torch.Tensor) -> None:
    """``param += update`` computed in float32 and cast to ``param``'s dtype once, on ``param``'s device.

    For a float32 parameter this is exactly ``param.add_(update)``; for bfloat16 or float16 it avoids rounding
    the update to the parameter's precision before the sum (a small update to a large weight would round
    twice, or vanish). Restoring goes through a copy of the original weights, never a subtraction."""
    param.copy_((param.float() + update.to(param.device, torch.float32)).to(param.dtype))


class WeightDelta:
    """Weight updates of one edit (MEMIT's, PMET's): ``{parameter name: dW}`` in each parameter's own layout.

    ``apply`` keeps a copy of the original weights, so ``remove`` restores them bit for bit.
    ``MemitDelta`` is the same class under its former name.
    """

    def __init__(self, deltas: dict[str, torch.Tensor], meta: dict | None = None):
        self.deltas = deltas
        self.meta = meta or {}
        self._backup: dict[str, torch.Tensor] = {}

    @property
    def is_applied(self) -> bool:
        return bool(self._backup)

    def apply(self, lm: LoadedModel) -> "WeightDelta":
        if self._backup:
            raise RuntimeError("this delta is already applied; remove() it first")
        params = dict(lm.model.named_parameters())
        missing = [k for k in self.deltas if k not in params]
        if missing:
            raise KeyError(f"delta names parameters the model lacks: {missing}")
        for k, d in self.deltas.items():
            if params[k].shape != d.shape:
                raise ValueError(f"delta for {k} has shape {tuple(d.shape)}, the parameter {tuple(params[k].shape)}")
        try:
            with torch.no_grad():
                for k, d in self.deltas.items():
                    self._backup[k] = params[k].detach().clone()
                    add_in_float32(params[k], d)
        except BaseException:
            self.remove(lm)
            raise
        return self

    def remove(self, lm: LoadedModel) -> None:
        params = dict(lm.model.named_parameters())
        with torch.no_grad():
            for k, w in self._backup.items():
                params[k].copy_(w)
        self._backup = {}

    @contextlib.contextmanager
    def applied(self, lm: LoadedModel):
        self.apply(lm)
        try:
            yield self
        finally:
            self.remove(lm)

    def __add__(self, other: "WeightDelta") -> "WeightDelta":
        keys = set(self.deltas) | set(other.deltas)
        out = {k: self.deltas.get(k, 0) + other.deltas.get(k, 0) for k in keys}
        return WeightDelta(out, {"sum_of": [self.meta, other.meta]})

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.deltas.items()}, str(tmp),
                      metadata={"memat": json.dumps(self.meta, default=str)})
        return path

    @classmethod
    def load(cls, path: str | Path, device=None) -> "WeightDelta":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(device or "cpu")) as f:
            meta = json.loads((f.metadata() or {}).get("memat", "{}"))
            deltas = {k: f.get_tensor(k) for k in f.keys()}
        return cls(deltas, meta)


MemitDelta = WeightDelta  # the former name (notebooks, tests, memat.api)


def write_layers(
    lm: LoadedModel, requests: Sequence[EditRequest], hp: MemitHparams, stats: dict[int, torch.Tensor] | None,
    contexts: Sequence[str] | Sequence[Sequence[str]], residual, progress: bool = False, desc: str = "layers",
    tokens: Sequence[RequestTokens] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The per-layer write shared by MEMIT and PMET: for each edited layer in order, the keys at the
    subject's last token and the residual ``residual(i, layer, cur)`` (``cur``: the current hidden states at
    the last edited layer, from the model with the earlier layers' updates applied) are solved into an
    update of the MLP output weights (:func:`layer_update`) that is applied before the next layer.
    ``tokens``: the requests tokenised in ``contexts`` (default: tokenised here, once for all layers).

    Returns ``({weight name: update}, per-layer log)``; the weights are restored afterwards, exceptions
    included, so the caller's model is left as it was."""
    z_layer = hp.layers[-1]
    contexts = per_request_contexts(contexts, requests)
    tokens = _tokens(lm, requests, contexts, tokens)
    params = dict(lm.model.named_parameters())
    wnames = {l: lm.name_of("mlp_out", l) + ".weight" for l in hp.layers}
    backup = {l: params[wnames[l]].detach().clone() for l in hp.layers}
    deltas: dict[str, torch.Tensor] = {}
    layer_log = []
    placement = solve_placement(lm, hp)
    try:
        for i, layer in enumerate(tqdm(hp.layers, desc=desc, disable=not progress, leave=False)):
            keys, cur = _keys_and_states(lm, requests, layer, z_layer, contexts, hp.batch_size, tokens=tokens)
            resid = residual(i, layer, cur)  # [n, d]
            # lambda E[k k^T]; without statistics the identity (ROME's mom2_adjustment=False): K K^T alone is
            # singular whenever there are fewer edits than key dimensions
            upd = layer_update(lm, layer, keys, resid, stats[layer] if hp.mom2_adjustment else None,
                               hp.mom2_update_weight, *placement)
            with torch.no_grad():
                add_in_float32(params[wnames[layer]], upd)
            deltas[wnames[layer]] = upd.detach().cpu()
            layer_log.append({"layer": layer, "resid_norm": float(resid.norm(dim=-1).mean()),
                              "update_norm": float(upd.norm())})
    finally:
        with torch.no_grad():
            for l in hp.layers:
                params[wnames[l]].copy_(backup[l])
    return deltas, layer_log


def compute_memit(
    lm: LoadedModel,
    requests: Sequence[EditRequest] | Sequence[EditCase],
    hp: MemitHparams,
    stats: dict[int, torch.Tensor] | None = None,
    contexts: Sequence[str] | None = None,
    lang: str | None = None,
    progress: bool = True,
    targets: tuple[torch.Tensor, list[dict]] | None = None,
) -> WeightDelta:
    """Compute a MEMIT edit; the model's weights are the same before and after (exceptions included).

    ``requests`` may be :class:`EditRequest` or :class:`EditCase` (then ``lang`` picks the view).
    ``stats`` maps each layer to E[k k^T]; without it ``hp.mom2_adjustment`` must be False.
    ``contexts``: the random-prefix templates, shared by all requests or one list per request
    (:func:`per_request_contexts`); default: generated in ``lang``.
    ``targets`` = ``(zs, logs)`` from an earlier :func:`compute_targets` with the same requests, last
    layer and optimisation settings skips that step (hyperparameter sweeps of the solve).
    """
    requests = resolve_requests(requests, lang, "compute_memit")
    if not requests:
        raise ValueError("compute_memit: no requests")
    bad = [l for l in hp.layers if not 0 <= l < lm.n_layers]
    if bad:
        raise ValueError(f"hparams layers {bad} out of range for {lm.name} ({lm.n_layers} layers)")
    if hp.mom2_adjustment and (stats is None or any(l not in stats for l in hp.layers)):
        raise ValueError("compute_memit: mom2_adjustment needs stats for every edited layer (memat.stats.layer_stats)")
    if contexts is None:
        contexts = context_templates(lm, lang or "en", hp.context_templates)
    contexts = per_request_contexts(contexts, requests)
    tokens = tokenize_requests(lm.tokenizer, requests, contexts)  # once: the targets' rows and every layer's keys
    if targets is None:
        zs, _, logs = compute_targets(lm, requests, hp, contexts, progress, tokens=tokens)
    else:
        zs, logs = targets

    deltas, layer_log = write_layers(
        lm, requests, hp, stats, contexts, lambda i, layer, cur: (zs - cur) / (len(hp.layers) - i), progress,
        "MEMIT layers", tokens=tokens)
    meta = {
        "model": lm.name,
        "hparams": hp.to_dict(),
        "case_ids": [q.case_id for q in requests],
        "lang": lang,
        "targets": logs,
        "layers": layer_log,
    }
    return WeightDelta(deltas, meta)


# --------------------------------------------------------------------------- cached edits
_TARGET_FIELDS = ("v_num_grad_steps", "v_lr", "v_weight_decay", "clamp_norm_factor", "kl_factor", "early_stop_loss",
                  "fact_token")


def target_cache_keys(lm: LoadedModel, requests: Sequence[EditRequest], hp: MemitHparams,
                      contexts: Sequence[str] | Sequence[Sequence[str]]) -> list[str]:
    """One sha256 per request of everything its target vector depends on: the model's weights (all
    blocks), device type and dtype, the last edited layer, the optimisation settings, the request (prompt,
    subject, new target, KL prompts) and the contexts. A request's target does not depend on the other
    requests of its batch (its own shift, loss and early stop), so targets are cached one by one."""
    from .stats import model_fingerprints

    top = lm.n_layers - 1
    ctxs = per_request_contexts(contexts, requests)
    fingerprint = model_fingerprints(lm, [top])[top]
    bases = {c: {
        "model": fingerprint,
        "device": lm.device.type,
        "dtype": str(lm.dtype),
        "z_layer": hp.layers[-1],
        "opt": {f: getattr(hp, f) for f in _TARGET_FIELDS},
        "contexts": list(c),  # the request's own contexts
        "method": "suffix",  # compute_targets' default (same values as "full" up to float rounding)
        "version": 3,  # 3: the model fingerprint no longer reads the checkpoint path (machine-independent keys)
    } for c in set(ctxs)}
    return [content_key(bases[c], [q.prompt, q.subject, q.target_new, list(q.kl_prompts)])
            for q, c in zip(requests, ctxs)]


def _load_target(path: Path, key: str) -> tuple[torch.Tensor, dict]:
    """The target vector and optimisation log :func:`cached_targets` wrote to ``path`` for ``key``; raises
    if the file is unreadable (truncated, corrupt, a field missing) or of another key."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        check_key(meta.get("key"), key)
        z = f.get_tensor("z")
    log = json.loads(meta["log"])
    if not isinstance(log, dict):
        raise ValueError(f"the log is a JSON {type(log).__name__}, not an object")
    return z, log


def _save_target(key: str):
    def save(entry: tuple[torch.Tensor, dict], path: Path) -> None:
        from safetensors.torch import save_file

        save_file({"z": entry[0]}, str(path), metadata={"key": key, "log": json.dumps(entry[1])})

    return save


def cached_targets(
    lm: LoadedModel, requests: Sequence[EditRequest], hp: MemitHparams, contexts: Sequence[str] | Sequence[Sequence[str]],
    progress: bool = True,
) -> tuple[torch.Tensor, list[dict]]:
    """:func:`compute_targets` with a per-request disk cache (``<cache dir>/targets/<model>/<key>.safetensors``):
    only the requests never optimised with these settings are computed (in batches of ``hp.batch_size``).
    Returns ``(z [n, d], logs)`` for ``compute_memit(..., targets=...)``. The target optimisation is most of
    a MEMIT edit's time; the solve is cheap, so edits of overlapping request sets (the nested sets of the
    scaling experiment, the joint edit of both languages) share their targets. An unreadable entry is
    reported (``warnings.warn`` naming the file) and its target computed again."""
    requests = list(requests)
    ctxs = per_request_contexts(contexts, requests)
    keys = target_cache_keys(lm, requests, hp, ctxs)
    paths = [entry_path("targets", key, lm.name) for key in keys]
    found: dict[int, tuple[torch.Tensor, dict]] = {}
    for i, key in enumerate(keys):
        got = read(paths[i], lambda p, key=key: _load_target(p, key), "target")
        if got is not None:
            found[i] = got
    missing = [i for i in range(len(requests)) if i not in found]
    if missing:
        zs, _, logs = compute_targets(lm, [requests[i] for i in missing], hp, [ctxs[i] for i in missing], progress)
        for j, i in enumerate(missing):
            found[i] = (zs[j].detach().float().cpu().contiguous(), logs[j])
            write(paths[i], found[i], _save_target(keys[i]))
    z = torch.stack([found[i][0] for i in range(len(requests))]).to(lm.device)
    logs = [dict(found[i][1], case_id=requests[i].case_id) for i in range(len(requests))]
    return z, logs


def stats_key(stats: dict[int, torch.Tensor] | None) -> str:
    """sha256 of key statistics (each layer number and its tensor's float32 bytes, in layer order): the
    ``stats_key`` of :func:`memit_cache_key`."""
    return tensors_key((layer, stats[layer]) for layer in sorted(stats or {}))


#: Hyperparameters an edit computed from given statistics does not read: how the statistics were made (they
#: enter the key through ``stats_key``; ``mom2_corpus`` may be a file path) and the free-text description.
_NOT_IN_EDIT_KEY = ("mom2_corpus", "mom2_n_samples", "mom2_max_len", "mom2_dtype", "description")
#: Hyperparameters that enter an edit's key only when they differ from these defaults, so that the keys of
#: edits made before they existed (solved where the keys were, in float64; on a CPU that is the same) hold.
_IN_EDIT_KEY_UNLESS = {"solve_device": "cpu", "solve_dtype": "float64"}


def memit_cache_key(
    lm: LoadedModel, requests: Sequence[EditRequest], hp: MemitHparams, lang: str, context_seed: int = 0,
    stats_key: str = "", context_langs: Sequence[str] | None = None,
) -> str:
    """sha256 of everything a MEMIT delta depends on: the model's parameters (all blocks) and config
    (:func:`memat.stats.model_fingerprints`), device type and dtype, the hyperparameters (but not
    :data:`_NOT_IN_EDIT_KEY`), the requests (prompt, subject, target, KL prompts, in order), the language
    (or per-request languages) and seed of the generated contexts, and ``stats_key`` (which statistics
    were used). Nothing of the machine: not the cache, data or project directory, nor where the model
    was loaded from."""
    from .stats import model_fingerprints

    top = lm.n_layers - 1
    payload = {
        "model": model_fingerprints(lm, [top])[top],
        "device": lm.device.type,
        "dtype": str(lm.dtype),
        "hparams": {k: v for k, v in hp.to_dict().items()
                    if k not in _NOT_IN_EDIT_KEY and not (k in _IN_EDIT_KEY_UNLESS and v == _IN_EDIT_KEY_UNLESS[k])},
        "requests": [[q.prompt, q.subject, q.target_new, list(q.kl_prompts)] for q in requests],
        "lang": lang,
        "context_seed": context_seed,
        "stats": stats_key,
        "targets_method": "suffix",
        "version": 3,  # 3: machine-independent (no checkpoint path, transformers version or corpus path)
    }
    if type(hp).__name__ != "MemitHparams":  # PMET (MEMIT's own keys are unchanged)
        payload["method"] = type(hp).__name__
    if context_langs is not None:  # per-request prefix languages (keys of shared-language edits unchanged)
        payload["context_langs"] = list(context_langs)
    return content_key(payload)


def _edit_memit(lm: LoadedModel, requests: Sequence[EditRequest], hp: MemitHparams, stats, lang: str,
                contexts, progress: bool, cache: bool) -> WeightDelta:
    """The MEMIT edit of :func:`cached_memit` (registered for :class:`MemitHparams`): its target vectors
    from the per-request cache (:func:`cached_targets`) when ``cache``."""
    targets = cached_targets(lm, requests, hp, contexts, progress) if cache else None
    return compute_memit(lm, requests, hp, stats=stats, lang=lang, progress=progress, contexts=contexts,
                         targets=targets)


register_edit_method(MemitHparams, _edit_memit)


def _load_delta(path: Path, key: str) -> WeightDelta:
    delta = WeightDelta.load(path)
    check_key(delta.meta.get("cache_key"), key)
    return delta


def cached_memit(
    lm: LoadedModel,
    cases: Sequence[EditRequest] | Sequence[EditCase],
    hp: MemitHparams,
    stats: dict[int, torch.Tensor] | None,
    lang: str,
    progress: bool = True,
    cache: bool = True,
    context_seed: int = 0,
    context_langs: Sequence[str] | None = None,
) -> WeightDelta:
    """:func:`compute_memit` (or :func:`memat.pmet.compute_pmet` for PMET hyperparameters: the method
    registered for ``type(hp)``, :func:`memat.cache.edit_method`) with an on-disk cache
    (``<cache dir>/deltas/<model>/<key>.safetensors``).

    Several notebooks edit the same cases with the same model and settings (02, 03 and 04 share their
    Catalan edits); the second one loads the delta instead of recomputing it. The key
    (:func:`memit_cache_key`) covers the model's weights, device, dtype, hyperparameters, requests,
    language, context seed and a hash of the key statistics, so a stale delta is never returned; an
    unreadable entry is reported (``warnings.warn`` naming the file) and computed again.
    ``cache=False`` computes without reading or writing the cache.

    ``context_langs`` (one language per request) gives each request random prefixes generated in its own
    language, for an edit of requests in several languages at once (Table 3's joint edit); by default
    every request gets prefixes in ``lang``.
    """
    requests = resolve_requests(cases, lang, "cached_memit")
    if context_langs is not None:
        context_langs = list(context_langs)
        if len(context_langs) != len(requests) or not all(isinstance(l, str) and l for l in context_langs):
            raise ValueError(f"cached_memit: context_langs needs one language code per request ({len(requests)}), "
                             f"got {len(context_langs)} items")
    edit = edit_method(hp)

    def compute():
        if context_langs is None:
            contexts = context_templates(lm, lang, hp.context_templates, seed=context_seed)
        else:
            by_lang = {l: context_templates(lm, l, hp.context_templates, seed=context_seed) for l in dict.fromkeys(context_langs)}
            contexts = [by_lang[l] for l in context_langs]
        delta = edit(lm, requests, hp, stats, lang, contexts, progress, cache)
        if context_langs is not None:
            delta.meta["context_langs"] = context_langs
        return delta

    if not cache:
        return compute()
    key = memit_cache_key(lm, requests, hp, lang, context_seed, stats_key(stats), context_langs)

    def compute_keyed():
        delta = compute()
        delta.meta["cache_key"] = key
        return delta

    delta, _ = cached("deltas", key, compute_keyed, lambda d, p: d.save(p), lambda p: _load_delta(p, key), model=lm.name)
    return delta
