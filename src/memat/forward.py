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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .hooks import Trace
from .models import LoadedModel

__all__ = ["Batch", "encode", "token_ids", "subject_last_index", "hidden_at_final_norm", "TailRunner"]


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
        handles = []

        def pre(m, args, kwargs):
            if args:
                self.calls.append((tuple(args[1:]), dict(kwargs), True))
            else:
                kw = dict(kwargs)
                kw.pop("hidden_states")
                self.calls.append(((), kw, False))

        try:
            for b in self.blocks:
                handles.append(b.register_forward_pre_hook(pre, with_kwargs=True))
            with Trace(self.lm.model, self.lm.name_of("layer", self.layer)) as tl, Trace(
                self.lm.model, self.lm.spec.final_norm, stop=True
            ) as tf:
                self.lm.model(**batch.to_model_kwargs(), use_cache=False)
        finally:
            for h in handles:
                h.remove()
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
