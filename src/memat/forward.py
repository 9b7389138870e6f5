"""Batched forward-pass utilities shared by MEMIT, evaluation and head collection.

* :func:`encode` builds right-padded batches from token-id lists (BOS kept as the tokenizer adds it).
* :func:`subject_last_index` finds the last token of the subject in a prompt template (MEMIT's
  ``subject_last`` fact token).
* :func:`hidden_at_final_norm` runs the model up to its final norm and stops there, so logits are
  computed only at the positions a loss or a metric reads (the unembedding of a 262k vocabulary is
  the most expensive matrix of a small model).
* :class:`TailRunner` records the inputs of the blocks after a given layer during one full pass and
  replays only those blocks afterwards: what does not change between optimisation steps (every block
  up to the edited layer) is computed once.
* :class:`SuffixRunner` goes further for an intervention at one position per row (MEMIT's target vector
  at the subject's last token): nothing before that position depends on it, at any layer, so the
  positions before it are run once into the model's own key/value cache, and each replay runs only the
  blocks after the layer, over the positions from the intervention on.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from typing import Sequence

import torch

from .hooks import Trace
from .models import LoadedModel

__all__ = ["Batch", "encode", "token_ids", "subject_last_index", "hidden_at_final_norm", "TailRunner", "SplitRows",
           "SuffixRunner", "SuffixUnsupported", "cache_kwarg", "run_with_cache", "sliding_window"]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T] right-padded
    attention_mask: torch.Tensor  # [B, T]
    lengths: torch.Tensor  # [B] number of real tokens

    def to_model_kwargs(self) -> dict:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def token_ids(tokenizer, text: str, bos: bool = True) -> list[int]:
    """Token ids of ``text``; with ``bos`` the tokenizer's special tokens (BOS) are added as it does."""
    return list(tokenizer(text, add_special_tokens=bos)["input_ids"])


def encode(tokenizer, seqs: Sequence[Sequence[int]], device) -> Batch:
    if len(seqs) == 0:
        raise ValueError("encode: empty batch")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    lengths = mask.sum(1)
    return Batch(ids.to(device), mask.to(device), lengths.to(device))


def subject_last_index(tokenizer, template: str, subject: str) -> tuple[list[int], int]:
    """Token ids of ``template.format(subject)`` and the index of the subject's last token.

    The index is the length of the tokenised text up to the end of the subject, minus one (as in
    MEMIT). A template without exactly one ``{}`` is an error naming the template.
    """
    if template.count("{}") != 1:
        raise ValueError(f"prompt template must contain '{{}}' exactly once: {template!r}")
    pre = template[: template.index("{}")]
    full = token_ids(tokenizer, template.format(subject))
    head = token_ids(tokenizer, pre + subject)
    idx = len(head) - 1
    if idx >= len(full):
        raise ValueError(f"subject {subject!r} is not found in the tokens of {template!r}")
    return full, idx


def hidden_at_final_norm(lm: LoadedModel, batch: Batch) -> torch.Tensor:
    """Outputs of the final norm [B, T, d]; the unembedding is never run."""
    with Trace(lm.model, lm.spec.final_norm, stop=True) as tr:
        lm.model(**batch.to_model_kwargs(), use_cache=False)
    return tr.output[0] if isinstance(tr.output, tuple) else tr.output


@contextlib.contextmanager
def record_block_calls(blocks: Sequence[torch.nn.Module], calls: list):
    """While active, append ``(args without the hidden state, kwargs without it, positional?)`` of every call
    of ``blocks`` to ``calls``: what :class:`TailRunner` and :class:`SuffixRunner` replay."""

    def pre(m, args, kwargs):
        if args:
            calls.append((tuple(args[1:]), dict(kwargs), True))
        else:
            kw = dict(kwargs)
            kw.pop("hidden_states")
            calls.append(((), kw, False))

    handles = []
    try:
        for b in blocks:
            handles.append(b.register_forward_pre_hook(pre, with_kwargs=True))
        yield calls
    finally:
        for h in handles:
            h.remove()


class TailRunner:
    """Run a model once, then re-run only the blocks after ``layer`` from a modified hidden state.

    ``capture`` runs the full model (up to the final norm) and records, for every block after ``layer``,
    the positional and keyword arguments it was called with (attention masks, rotary embeddings, ...),
    and the output of block ``layer``. ``run(h)`` feeds ``h`` (same shape as that output) through the
    recorded blocks and the final norm. The arguments are replayed as the model itself built them,
    so no model code is copied; tests check the replay against a full forward for every family.
    """

    def __init__(self, lm: LoadedModel, layer: int):
        self.lm = lm
        self.layer = layer
        self.blocks = [lm.model.get_submodule(lm.name_of("layer", j)) for j in range(layer + 1, lm.n_layers)]
        self.calls: list[tuple[tuple, dict, bool]] = []
        self.h_layer: torch.Tensor | None = None
        self.final: torch.Tensor | None = None

    def capture(self, batch: Batch) -> torch.Tensor:
        self.calls = []
        with record_block_calls(self.blocks, self.calls), Trace(self.lm.model, self.lm.name_of("layer", self.layer)) as tl, \
                Trace(self.lm.model, self.lm.spec.final_norm, stop=True) as tf:
            self.lm.model(**batch.to_model_kwargs(), use_cache=False)
        out = tl.output
        self.h_layer = (out[0] if isinstance(out, tuple) else out).detach()
        fo = tf.output
        self.final = (fo[0] if isinstance(fo, tuple) else fo).detach()
        if len(self.calls) != len(self.blocks):
            raise RuntimeError(f"TailRunner: recorded {len(self.calls)} block calls, expected {len(self.blocks)}")
        return self.h_layer

    def run(self, h: torch.Tensor) -> torch.Tensor:
        for block, (args, kwargs, positional) in zip(self.blocks, self.calls):
            out = block(h, *args, **kwargs) if positional else block(hidden_states=h, **kwargs)
            h = out[0] if isinstance(out, tuple) else out
        norm = self.lm.model.get_submodule(self.lm.spec.final_norm)
        return norm(h)


def cache_kwarg(model: torch.nn.Module) -> str:
    """The name under which ``model.forward`` takes a key/value cache: ``cache`` (transformers >= 5.x) or
    ``past_key_values`` (earlier)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _is_cache(x) -> bool:
    try:
        from transformers.cache_utils import Cache
    except ImportError:  # pragma: no cover - transformers always has it in the supported range
        return False
    return isinstance(x, Cache)


def _select_rows(x, rows: torch.Tensor, batch: int):
    """``x`` with its batch dimension reduced to ``rows`` (tensors of at least 2 dims whose first dim is the
    batch, inside tuples/lists/dicts); broadcast tensors (first dim 1) and everything else unchanged."""
    if isinstance(x, torch.Tensor):
        return x.index_select(0, rows.to(x.device)) if x.dim() >= 2 and x.shape[0] == batch and batch > 1 else x
    if isinstance(x, (tuple, list)):
        return type(x)(_select_rows(v, rows, batch) for v in x)
    if isinstance(x, dict):
        return {k: _select_rows(v, rows, batch) for k, v in x.items()}
    return x


def run_with_cache(lm: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                   cache=None, traces: Sequence = ()):
    """Run the model up to its final norm (no unembedding) with a key/value cache: ``cache`` continues an
    earlier one (it is extended in place), ``None`` lets the model create it. ``traces`` are extra
    :class:`~memat.hooks.Trace` objects active during the pass. Returns ``(final-norm output, cache)``,
    the cache as the model's blocks received it."""
    found: list = []

    def grab(m, args, kwargs):
        found.extend(v for v in list(args) + list(kwargs.values()) if _is_cache(v))

    extra = {cache_kwarg(lm.model): cache} if cache is not None else {}
    first = lm.model.get_submodule(lm.name_of("layer", 0))
    handle = first.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with contextlib.ExitStack() as stack:
            for t in traces:
                stack.enter_context(t)
            tf = stack.enter_context(Trace(lm.model, lm.spec.final_norm, stop=True))
            lm.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True, **extra)
    finally:
        handle.remove()
    if not found:
        raise RuntimeError(f"{type(lm.model).__name__} passed no key/value cache to its blocks")
    out = tf.output
    return (out[0] if isinstance(out, tuple) else out), found[0]


class SuffixUnsupported(RuntimeError):
    """The model cannot run this batch split into prefix and suffix (see :class:`SuffixRunner`)."""


def sliding_window(lm: LoadedModel) -> int | None:
    """The model's attention sliding window in tokens, or None (full attention everywhere)."""
    cfg = lm.model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    w = getattr(cfg, "sliding_window", None)
    if not w or getattr(cfg, "use_sliding_window", True) is False:
        return None
    return int(w)


class SplitRows:
    """Rows split at one position each (``splits[i]`` in row ``i``), the positions before it run once.

    For an intervention at position ``splits[i]`` of row ``i`` and at no position before it (at any layer),
    the hidden states and key/value entries of the positions before ``splits[i]`` do not depend on it
    (causal attention). The constructor runs those positions through the whole model into its own
    key/value cache, without gradient (the prefix pass); :meth:`run` then runs the positions from
    ``splits[i]`` on (the suffix pass, with that cache), where hooks may intervene and gradients flow.

    Rows are right-padded in both passes, with explicit position ids (``splits[i] + j`` for the ``j``-th
    suffix token), and the suffix pass's attention mask covers prefix and suffix, so each real token attends
    to exactly the real tokens before it, as in one unpadded pass; nothing of the model's code is copied. A
    row with an empty prefix (``split = 0``) gets a placeholder prefix column that is visible only to itself
    in the prefix pass (finite values) and masked in the suffix pass. Outputs are indexed ``[row, j]`` with
    ``j = position - splits[row]``.

    Sliding-window attention masks by cache column, not by position, so a model whose window is shorter
    than the padded prefix plus suffix raises :class:`SuffixUnsupported` (callers run every position).
    """

    def __init__(self, lm: LoadedModel, seqs: Sequence[Sequence[int]], splits: Sequence[int]):
        if len(seqs) != len(splits) or not seqs:
            raise ValueError(f"SplitRows: {len(seqs)} sequences for {len(splits)} splits")
        for i, (s, k) in enumerate(zip(seqs, splits)):
            if not 0 <= k < len(s):
                raise ValueError(f"SplitRows: row {i}: split {k} outside its {len(s)} tokens")
        self.lm = lm
        tok = lm.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        B = self.batch = len(seqs)
        P = max(1, max(splits))
        S = max(len(s) - k for s, k in zip(seqs, splits))
        window = sliding_window(lm)
        if window is not None and P + S >= window:
            raise SuffixUnsupported(f"sliding window {window} <= padded prefix {P} + suffix {S}")
        pre_ids = torch.full((B, P), pad, dtype=torch.long)
        self.pre_mask = torch.zeros((B, P), dtype=torch.long)
        self.suf_ids = torch.full((B, S), pad, dtype=torch.long)
        self.suf_mask = torch.zeros((B, S), dtype=torch.long)
        self.suf_pos = torch.zeros((B, S), dtype=torch.long)
        for i, (s, k) in enumerate(zip(seqs, splits)):
            s = torch.as_tensor(list(s), dtype=torch.long)
            pre_ids[i, :k] = s[:k]
            self.pre_mask[i, :k] = 1
            self.suf_ids[i, : len(s) - k] = s[k:]
            self.suf_mask[i, : len(s) - k] = 1
            self.suf_pos[i] = torch.arange(k, k + S)
        pre_run_mask = self.pre_mask.clone()
        pre_run_mask[:, 0] = 1  # an empty prefix attends to a placeholder, never to nothing (no NaN)
        pre_pos = torch.arange(P).expand(B, P)
        dev = lm.device
        with torch.no_grad():
            _, self.cache = run_with_cache(lm, pre_ids.to(dev), pre_run_mask.to(dev), pre_pos.to(dev))
        self._used = False

    def run(self, traces: Sequence = ()) -> torch.Tensor:
        """Final-norm outputs [B, S, d] of the suffix positions (hooks active meanwhile apply to them; the
        ``j``-th suffix token of row ``i`` is position ``splits[i] + j``). Once per instance: the suffix pass
        extends the prefix cache in place."""
        if self._used:
            raise RuntimeError("SplitRows.run: the prefix cache was consumed by an earlier run")
        self._used = True
        dev = self.lm.device
        out, _ = run_with_cache(self.lm, self.suf_ids.to(dev), torch.cat([self.pre_mask, self.suf_mask], 1).to(dev),
                                self.suf_pos.to(dev), cache=self.cache, traces=traces)
        return out


class SuffixRunner:
    """Replay the blocks after ``layer`` over the positions from each row's ``split`` on only.

    For an intervention on the output of block ``layer`` at position ``split[i]`` of row ``i`` (and
    nowhere before it), :meth:`capture` runs the rows split there (:class:`SplitRows`: the prefix once
    into the model's own key/value cache, then the suffix with it), recording the arguments each block
    after ``layer`` is called with, the suffix output of block ``layer`` and the final-norm output.
    :meth:`run` feeds a modified suffix state of block ``layer`` through the recorded blocks, each call
    with a fresh copy of the prefix cache, and the final norm.

    Outputs are indexed ``[row, j]`` with ``j = position - split[row]``; :meth:`select` keeps a subset of
    the rows (a finished request leaves the batch) without running the model again. A model with a
    sliding window shorter than the padded prefix plus suffix raises :class:`SuffixUnsupported` (callers
    fall back to :class:`TailRunner`); Gemma 3's window is 512 tokens, far above these prompts.
    """

    def __init__(self, lm: LoadedModel, layer: int):
        self.lm = lm
        self.layer = layer
        self.blocks = [lm.model.get_submodule(lm.name_of("layer", j)) for j in range(layer + 1, lm.n_layers)]
        self.calls: list[tuple[tuple, dict, bool]] = []
        self.prefix_cache = None
        self._live_cache = None
        self.h_layer: torch.Tensor | None = None
        self.final: torch.Tensor | None = None
        self.suffix_lengths: torch.Tensor | None = None

    @torch.no_grad()
    def capture(self, seqs: Sequence[Sequence[int]], splits: Sequence[int]) -> torch.Tensor:
        lm, dev = self.lm, self.lm.device
        rows = SplitRows(lm, seqs, splits)
        self.prefix_cache = copy.deepcopy(rows.cache)
        self.calls = []
        tl = Trace(lm.model, lm.name_of("layer", self.layer))
        with record_block_calls(self.blocks, self.calls):
            final = rows.run(traces=[tl])
        if len(self.calls) != len(self.blocks):
            raise RuntimeError(f"SuffixRunner: recorded {len(self.calls)} block calls, expected {len(self.blocks)}")
        self._live_cache = rows.cache
        out = tl.output
        self.h_layer = (out[0] if isinstance(out, tuple) else out).detach()
        self.final = final.detach()
        self.suffix_lengths = rows.suf_mask.sum(1).to(dev)
        self.batch = rows.batch
        return self.h_layer

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (indices into the current batch), in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.lm.device)
        B = self.batch
        self.prefix_cache.batch_select_indices(rows)
        live = self._live_cache
        self.calls = [(_select_rows(a, rows, B), {k: (v if v is live else _select_rows(v, rows, B)) for k, v in kw.items()}, p)
                      for a, kw, p in self.calls]
        self.h_layer = self.h_layer.index_select(0, rows)
        self.final = self.final.index_select(0, rows)
        self.suffix_lengths = self.suffix_lengths.index_select(0, rows)
        self.batch = len(rows)

    def run(self, h: torch.Tensor) -> torch.Tensor:
        """Final-norm outputs [B, S, d] of the suffix positions for the suffix state ``h`` of block ``layer``."""
        live = self._live_cache
        fresh = copy.deepcopy(self.prefix_cache)
        for block, (args, kwargs, positional) in zip(self.blocks, self.calls):
            args = tuple(fresh if a is live else a for a in args)
            kwargs = {k: (fresh if v is live else v) for k, v in kwargs.items()}
            out = block(h, *args, **kwargs) if positional else block(hidden_states=h, **kwargs)
            h = out[0] if isinstance(out, tuple) else out
        norm = self.lm.model.get_submodule(self.lm.spec.final_norm)
        return norm(h)
