"""Token-set Jaccard similarity of a case's two languages, and the groups of the paper's Fig. 1.

:func:`subject_jaccard` and :func:`token_jaccard` are also importable from :mod:`memat.data.loaders`
(where they were first defined) and :func:`jaccard_group` from :mod:`memat.experiments` (the notebooks
call ``experiments.jaccard_group``); they live here, in the data layer, so that :mod:`memat.data.quality`
can use them without importing anything above :mod:`memat.data`.
"""
from __future__ import annotations

from typing import Any, Mapping

from .records import EditCase

__all__ = ["jaccard_group", "subject_jaccard", "token_jaccard"]


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens, from a callable tokenizer or one with ``encode``."""
    if callable(tokenizer):
        out = tokenizer(text, add_special_tokens=False)
        ids = out["input_ids"] if isinstance(out, Mapping) else getattr(out, "input_ids", out)
    elif callable(getattr(tokenizer, "encode", None)):
        ids = tokenizer.encode(text, add_special_tokens=False)
    else:
        raise TypeError(f"tokenizer must be callable or have .encode(), got {type(tokenizer).__name__}")
    if ids and isinstance(ids[0], (list, tuple)):  # batched output of one text
        ids = ids[0]
    return [int(i) for i in ids]


def subject_jaccard(case: EditCase, l1: str, l2: str, tokenizer: Any) -> float:
    """Token-set Jaccard similarity of the case's subject in languages ``l1`` and ``l2``.

    Each subject is tokenised as ``" " + subject`` without special tokens (the form it takes inside a
    prompt, after a space); the result is ``|A & B| / |A | B|`` over the sets of token ids (1.0 when
    both are empty). ``tokenizer`` is a Hugging Face tokenizer or any object that is callable as
    ``tokenizer(text, add_special_tokens=False)["input_ids"]`` or has
    ``encode(text, add_special_tokens=False)``.

    (The authors' ``analysis_data/analysis.py`` used a different overlap, ``|A & B| / max(|A|, |B|)``
    on ``tok.encode(subject)``.)
    """
    return token_jaccard(tokenizer, case[l1].subject, case[l2].subject)


def token_jaccard(tokenizer: Any, a: str, b: str) -> float:
    """Token-set Jaccard of ``" " + a`` and ``" " + b`` (no special tokens); 1.0 when both are empty."""
    sa = set(_token_ids(tokenizer, " " + a))
    sb = set(_token_ids(tokenizer, " " + b))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def jaccard_group(j: float) -> str:
    """The groups of the paper's Fig. 1: identical subject tokens, or at most half shared."""
    if j == 1.0:
        return "J=1"
    if j <= 0.5:
        return "J<=0.5"
    return "0.5<J<1"
