"""CounterFact-style metrics per language, with 95% confidence intervals and per-case results.

For every case and language, three prompt types are scored: the rewrite prompt (efficacy), the
paraphrases (paraphrase) and the neighbourhood prompts (neighbourhood). A target's probability is
``p = exp(-mean token NLL)`` of the target after its prompt (token-averaged, as the paper), each target
scored with its own prompt variant (Catalan articles agree with the target).

* success: ES/PS = P(p_new > p_true); NS = P(p_true > p_new) on neighbourhood prompts
* magnitude: EM/PM = mean(p_new - p_true); NM = mean(p_true - p_new)
* accuracy: EA/PA = greedy decoding reproduces every token of the new target; NA = of the neighbourhood's
  expected (true) target

Per-case values are averaged over the case's prompts of that type first, then over cases; the 95%
interval is the normal approximation ``mean ± 1.96 s / sqrt(n)`` over cases (``level`` changes it, e.g.
0.68 for the scaling figure).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data.records import EditCase, target_continuation
from .forward import encode, hidden_at_final_norm, token_ids
from .models import LoadedModel

__all__ = ["score_continuations", "evaluate_cases", "summarize", "paired_difference", "heldout_nll", "METRIC_NAMES", "mean_ci"]

KINDS = ("rewrite", "paraphrase", "neighborhood")
METRIC_NAMES = {
    "rewrite": ("ES", "EM", "EA"),
    "paraphrase": ("PS", "PM", "PA"),
    "neighborhood": ("NS", "NM", "NA"),
}


@torch.no_grad()
def score_continuations(
    lm: LoadedModel, pairs: Sequence[tuple[str, str]], batch_size: int = 32, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Token-averaged NLL of ``target`` after ``prompt`` for each pair, and whether greedy decoding
    reproduces the whole target. Logits are computed only at the target's positions."""
    tok = lm.tokenizer
    nll = np.zeros(len(pairs))
    acc = np.zeros(len(pairs), dtype=bool)
    encoded = []
    for prompt, target in pairs:
        p = token_ids(tok, prompt)
        t = token_ids(tok, target_continuation(prompt, target), bos=False)
        if not t:
            raise ValueError(f"target {target!r} tokenises to nothing (prompt {prompt!r})")
        encoded.append((p, t))
    order = sorted(range(len(pairs)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    for s in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not progress, leave=False):
        idx = order[s : s + batch_size]
        seqs = [encoded[i][0] + encoded[i][1][:-1] for i in idx]
        b = encode(tok, seqs, lm.device)
        h = hidden_at_final_norm(lm, b)
        rows, pos, tgt, owner = [], [], [], []
        for r, i in enumerate(idx):
            p, t = encoded[i]
            for j, tid in enumerate(t):
                rows.append(r)
                pos.append(len(p) - 1 + j)
                tgt.append(tid)
                owner.append(r)
        logits = lm.logits(h[torch.tensor(rows), torch.tensor(pos)]).float()
        lp = F.log_softmax(logits, -1)
        tgt_t = torch.tensor(tgt, device=lp.device)
        tok_nll = -lp.gather(-1, tgt_t[:, None])[:, 0]
        hit = logits.argmax(-1) == tgt_t
        owner_t = torch.tensor(owner)
        for r, i in enumerate(idx):
            sel = owner_t == r
            nll[i] = float(tok_nll[sel].mean())
            acc[i] = bool(hit[sel].all())
    return nll, acc


def evaluate_cases(
    lm: LoadedModel,
    cases: Sequence[EditCase],
    langs: Sequence[str],
    batch_size: int = 32,
    progress: bool = True,
    kinds: Sequence[str] = KINDS,
    max_neighborhood: int | None = None,
) -> pd.DataFrame:
    """One row per (case, language, prompt type, prompt): NLLs, probabilities, success and accuracy.

    ``max_neighborhood`` keeps only the first that many neighbourhood prompts of each case and language
    (CounterFact has 10; they are most of the scoring time). ``None`` keeps them all."""
    if max_neighborhood is not None and (isinstance(max_neighborhood, bool) or not isinstance(max_neighborhood, int)
                                         or max_neighborhood < 1):
        raise ValueError(f"evaluate_cases: max_neighborhood must be a positive int or None, got {max_neighborhood!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"evaluate_cases: unknown prompt kinds {unknown}; choose among {list(KINDS)}")
    meta, pairs = [], []
    for c in cases:
        for lang in langs:
            v = c[lang]
            for kind in kinds:
                prompt_pairs = v.prompt_pairs(kind)
                if kind == "neighborhood" and max_neighborhood is not None:
                    prompt_pairs = prompt_pairs[:max_neighborhood]
                answers = v.neighborhood_answers() if kind == "neighborhood" else None
                for k, (p_new, p_true) in enumerate(prompt_pairs):
                    true_target = answers[k] if answers else v.target_true
                    meta.append((c.case_id, lang, kind, k))
                    pairs.append((p_new, v.target_new))
                    pairs.append((p_true, true_target))
    nll, acc = score_continuations(lm, pairs, batch_size, progress)
    df = pd.DataFrame(meta, columns=["case_id", "lang", "kind", "prompt_idx"])
    df["nll_new"], df["nll_true"] = nll[0::2], nll[1::2]
    df["acc_new"], df["acc_true"] = acc[0::2], acc[1::2]
    df["p_new"], df["p_true"] = np.exp(-df.nll_new), np.exp(-df.nll_true)
    nb = df.kind == "neighborhood"
    df["success"] = np.where(nb, df.p_true > df.p_new, df.p_new > df.p_true)
    df["magnitude"] = np.where(nb, df.p_true - df.p_new, df.p_new - df.p_true)
    df["accuracy"] = np.where(nb, df.acc_true, df.acc_new)
    return df


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation interval at ``level``."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) == 1:
        return float(x[0]), float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return float(x.mean()), float(z * x.std(ddof=1) / math.sqrt(len(x)))


def summarize(df: pd.DataFrame, level: float = 0.95, scale: float = 100.0, by: Sequence[str] = ("lang",)) -> pd.DataFrame:
    """Metrics (ES, EM, EA, PS, ...) per group with intervals, in percent by default.

    Returns a long table: group columns, ``metric``, ``mean``, ``ci`` (half-width), ``n`` (cases).
    """
    per_case = df.groupby(list(by) + ["kind", "case_id"])[["success", "magnitude", "accuracy"]].mean().reset_index()
    out = []
    for keys, g in per_case.groupby(list(by) + ["kind"]):
        keys = keys if isinstance(keys, tuple) else (keys,)
        kind = keys[-1]
        for col, name in zip(("success", "magnitude", "accuracy"), METRIC_NAMES[kind]):
            m, ci = mean_ci(g[col].astype(float), level)
            out.append(dict(zip(by, keys[:-1]), metric=name, mean=m * scale, ci=ci * scale, n=len(g)))
    order = {n: i for i, n in enumerate(sum((list(v) for v in METRIC_NAMES.values()), []))}
    res = pd.DataFrame(out)
    return res.sort_values(list(by) + ["metric"], key=lambda s: s.map(order) if s.name == "metric" else s).reset_index(drop=True)


def paired_difference(
    df: pd.DataFrame, base: pd.DataFrame, level: float = 0.95, scale: float = 100.0, by: Sequence[str] = ("lang",),
) -> pd.DataFrame:
    """Per-case difference ``df - base`` of every metric (the same cases and prompts scored twice, e.g.
    MEMAT against the MEMIT edit it corrects), averaged over cases with its interval at ``level``.

    Paired: each case's own per-type mean in ``base`` is subtracted from its mean in ``df`` before
    averaging, so the interval is that of the gain, narrower than comparing two unpaired intervals.
    Returns the long table of :func:`summarize` (``metric``, ``mean``, ``ci``, ``n``) of the differences.
    A case or prompt type present in one frame only is an error naming it."""
    keys = list(by) + ["kind", "case_id"]
    cols = ["success", "magnitude", "accuracy"]
    a = df.groupby(keys)[cols].mean().astype(float)
    b = base.groupby(keys)[cols].mean().astype(float)
    only = a.index.symmetric_difference(b.index)
    if len(only):
        raise ValueError(f"paired_difference: {len(only)} (case, prompt type) groups are in one frame only, e.g. {list(only[:3])}")
    d = (a - b.loc[a.index]).reset_index()
    out = []
    for group, g in d.groupby(list(by) + ["kind"]):
        group = group if isinstance(group, tuple) else (group,)
        for col, name in zip(cols, METRIC_NAMES[group[-1]]):
            m, ci = mean_ci(g[col], level)
            out.append(dict(zip(by, group[:-1]), metric=name, mean=m * scale, ci=ci * scale, n=len(g)))
    order = {n: i for i, n in enumerate(sum((list(v) for v in METRIC_NAMES.values()), []))}
    res = pd.DataFrame(out)
    return res.sort_values(list(by) + ["metric"], key=lambda s: s.map(order) if s.name == "metric" else s).reset_index(drop=True)


@torch.no_grad()
def heldout_nll(lm: LoadedModel, texts: Sequence[str], max_len: int = 128, batch_size: int = 8, progress: bool = False) -> float:
    """Mean token NLL (nats) of ``texts``: the fluency cost reported beside every edit."""
    tok = lm.tokenizer
    total, count = 0.0, 0
    seqs = [token_ids(tok, t)[:max_len] for t in texts]
    seqs = [s for s in seqs if len(s) > 1]
    for s in tqdm(range(0, len(seqs), batch_size), desc="held-out NLL", disable=not progress, leave=False):
        b = encode(tok, seqs[s : s + batch_size], lm.device)
        h = hidden_at_final_norm(lm, b)
        m = b.attention_mask[:, 1:].bool()
        hs = h[:, :-1][m]
        tgt = b.input_ids[:, 1:][m]
        for c in range(0, len(hs), 512):  # bounded memory for a large vocabulary
            lp = F.log_softmax(lm.logits(hs[c : c + 512]).float(), -1)
            total += float(-lp.gather(-1, tgt[c : c + 512, None]).sum())
        count += int(m.sum())
    return total / max(count, 1)
