"""CounterFact-style metrics per language, with 95% confidence intervals and per-case results.

For every case and language, three prompt types are scored: the rewrite prompt (efficacy), the
paraphrases (paraphrase) and the neighbourhood prompts (neighbourhood). A target's probability is
``p = exp(-mean token NLL)`` of the target after its prompt (token-averaged, as the paper), each target
scored with its own prompt variant (Catalan articles agree with the target).

* success: ES/PS = P(p_new > p_true); NS = P(p_true > p_new) on neighbourhood prompts
* magnitude: EM/PM = mean(p_new - p_true); NM = mean(p_true - p_new)
* accuracy: EA/PA = greedy decoding reproduces every token of the new target; NA = of the neighbourhood's
  expected (true) target

Per-case values are averaged over the case's prompts of that type first, then over cases. ``ci`` is the
half-width of the normal approximation ``mean ± 1.96 s / sqrt(n)`` over cases (``level`` changes it, e.g.
0.68 for the scaling figure); ``lo``/``hi`` are Wilson bounds for the success and accuracy rates (inside
[0, 100], of non-zero width at 0 and 100 %) and the normal bounds for magnitudes. Paired differences also
carry ``mde``, the smallest difference detectable with 80 % power at the 5 % level (:mod:`memat.power`).

Scoring (:func:`score_continuations`) runs every token prefix that several (prompt, target) pairs share
once (a token tree packed into rows with an ancestor mask), and keeps the scores of a model without hooks
on disk (keyed by its weights).
"""
from __future__ import annotations

import hashlib
import json
import math
import weakref
from statistics import NormalDist
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cache import CacheEntryError, check_key, read, write
from .data.records import EditCase, target_continuation
from .forward import encode, hidden_at_final_norm, token_ids
from .hooks import Trace
from .corrections import PositionMarks, needs_position_marks, position_marks
from .interventions import Intervention, applied_all
from .interventions import _check as _check_interventions
from .models import LoadedModel
from .power import detectable_difference, paired_se, wilson_interval

__all__ = ["score_continuations", "evaluate_cases", "weights_fingerprint", "has_hooks", "summarize", "paired_difference", "heldout_nll", "METRIC_NAMES", "mean_ci"]

KINDS = ("rewrite", "paraphrase", "neighborhood")
METRIC_NAMES = {
    "rewrite": ("ES", "EM", "EA"),
    "paraphrase": ("PS", "PM", "PA"),
    "neighborhood": ("NS", "NM", "NA"),
}


SCORE_METHODS = ("shared", "separate")
_SCORES_VERSION = 2  # 2: the weights fingerprint no longer reads the checkpoint path nor the transformers version


def _encode_pairs(tok, pairs):
    encoded = []
    for prompt, target in pairs:
        p = token_ids(tok, prompt)
        t = token_ids(tok, target_continuation(prompt, target), bos=False)
        if not t:
            raise ValueError(f"target {target!r} tokenises to nothing (prompt {prompt!r})")
        encoded.append((p, t))
    return encoded


def _mark_starts(tok, pairs, encoded, subjects) -> list[tuple[int, int]]:
    """Per pair, the first position a position-restricted correction changes (:class:`memat.corrections.PositionMarks`):
    (after the subject's last token, the prompt's last token). The subject is located in the prompt text (its
    first occurrence) and its last token is the last token of the prompt's text up to its end (as
    :func:`memat.forward.subject_last_index`); a prompt without it starts at its last token."""
    if len(subjects) != len(pairs):
        raise ValueError(f"score_continuations: {len(subjects)} subjects for {len(pairs)} pairs")
    out = []
    for (prompt, _), (p, _), subject in zip(pairs, encoded, subjects):
        last = len(p) - 1
        at = prompt.find(subject) if subject else -1
        if at < 0:
            out.append((last, last))
            continue
        sub_last = len(token_ids(tok, prompt[: at + len(subject)])) - 1
        out.append((min(sub_last + 1, last), last))
    return out


def _reduce(tok_nll: torch.Tensor, hit: torch.Tensor, owner: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-owner mean NLL and all-tokens-hit from per-token values."""
    cnt = torch.zeros(n, dtype=torch.float64).index_add_(0, owner, torch.ones(len(owner), dtype=torch.float64))
    tot = torch.zeros(n, dtype=torch.float64).index_add_(0, owner, tok_nll.double().cpu())
    miss = torch.zeros(n, dtype=torch.float64).index_add_(0, owner, (~hit.cpu()).double())
    return (tot / cnt).numpy(), (miss == 0).numpy()


def _token_scores(lm, h: torch.Tensor, tgt: list[int], src: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL and greedy hit of token ``tgt[k]`` read at final-norm vector ``h[src[k]]`` (default ``src[k] = k``).
    Several targets may share a vector (the first token of a prompt's true and new target): its logits,
    the costliest step on a large vocabulary, are computed once."""
    logits = lm.logits(h).float()
    lse = torch.logsumexp(logits, -1)
    best = logits.argmax(-1)
    s = torch.arange(len(tgt), device=logits.device) if src is None else torch.tensor(src, device=logits.device)
    tgt_t = torch.tensor(tgt, device=logits.device)
    return lse[s] - logits[s, tgt_t], best[s] == tgt_t


def _target_positions(encoded, idx):
    """For rows ``prompt + target[:-1]`` of the pairs ``idx``: (row, position, target token, owner row) of
    every target token, the position being the one whose logits predict it."""
    rows, pos, tgt, owner = [], [], [], []
    for r, i in enumerate(idx):
        p, t = encoded[i]
        for j, tid in enumerate(t):
            rows.append(r)
            pos.append(len(p) - 1 + j)
            tgt.append(tid)
            owner.append(r)
    return rows, pos, tgt, owner


def _score_separate(lm, encoded, order, batch_size, progress, starts=None):
    """Today's path: each (prompt, target) its own sequence. ``starts`` (per pair, see :func:`_mark_starts`):
    set position marks for restricted corrections around each forward."""
    tok = lm.tokenizer
    nll = np.zeros(len(encoded))
    acc = np.zeros(len(encoded), dtype=bool)
    for s in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not progress, leave=False):
        idx = order[s : s + batch_size]
        seqs = [encoded[i][0] + encoded[i][1][:-1] for i in idx]
        b = encode(tok, seqs, lm.device)
        marks = None if starts is None else PositionMarks.from_starts(
            [len(q) for q in seqs], [starts[i][0] for i in idx], [starts[i][1] for i in idx], b.input_ids.shape[1], lm.device)
        with position_marks(marks):
            h = hidden_at_final_norm(lm, b)
        rows, pos, tgt, owner = _target_positions(encoded, idx)
        tok_nll, hit = _token_scores(lm, h[torch.tensor(rows), torch.tensor(pos)], tgt)
        n_b, a_b = _reduce(tok_nll, hit, torch.tensor(owner), len(idx))
        nll[idx], acc[idx] = n_b, a_b
    return nll, acc


#: nodes per packed row of the shared scorer: attention over a row costs its length squared, the linear layers
#: its length; 256 keeps attention under a tenth of a row's cost on the embedded model
ROW_TOKENS = 256


def _tree_unsupported(lm) -> str | None:
    """Why the token-tree scorer cannot run on ``lm`` (None when it can): it needs an attention that takes a
    custom 4-D additive mask (eager or sdpa) and position ids, and no ALiBi (built from a 2-D mask)."""
    cfg = lm.model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    impl = getattr(text, "_attn_implementation", None) or getattr(cfg, "_attn_implementation", None)
    if impl not in ("eager", "sdpa"):
        return f"attention implementation {impl!r} (the tree scorer needs eager or sdpa)"
    if getattr(text, "alibi", False):
        return "ALiBi position bias (built from a 2-D mask)"
    return None


class _Tree:
    """One packed row: a trie of token paths. Node ``k`` has a token, a parent (-1 for a root) and a depth
    (its position id); a path's node at depth ``q`` holds the hidden state of position ``q`` of that path.
    With ``flags`` (per position of a path, the position marks of a restricted correction), a node is
    shared only by paths that mark it alike, so that it holds one hidden state for all of them."""

    def __init__(self):
        self.tokens, self.parent, self.depth, self.flags = [], [], [], []
        self.child: dict[tuple, int] = {}

    def cost(self, seq, flags=None) -> int:
        """Nodes that adding ``seq`` would create."""
        node = -1
        for q, tok in enumerate(seq):
            nxt = self.child.get((node, tok, None if flags is None else flags[q]))
            if nxt is None:
                return len(seq) - q
            node = nxt
        return 0

    def add(self, seq, flags=None) -> list[int]:
        path, node = [], -1
        for q, tok in enumerate(seq):
            key = (node, tok, None if flags is None else flags[q])
            nxt = self.child.get(key)
            if nxt is None:
                nxt = len(self.tokens)
                self.tokens.append(tok)
                self.parent.append(node)
                self.depth.append(len(path))
                self.flags.append(key[2])
                self.child[key] = nxt
            path.append(nxt)
            node = nxt
        return path

    def __len__(self):
        return len(self.tokens)


def _pack(encoded, row_tokens, starts=None):
    """Pairs in lexicographic order of ``prompt + target[:-1]`` (shared prefixes side by side) added to
    tries of at most ``row_tokens`` nodes (a longer path gets a row of its own). Returns the tries and,
    per pair, ``(row, path)``. ``starts`` (per pair, :func:`_mark_starts`) flags every node with its marks."""
    seqs = [p + t[:-1] for p, t in encoded]
    flags = [None] * len(seqs) if starts is None else [
        [(q >= a, q >= b) for q in range(len(seq))] for seq, (a, b) in zip(seqs, starts)]
    trees, where = [_Tree()], [None] * len(encoded)
    for i in sorted(range(len(seqs)), key=lambda i: seqs[i]):
        if len(trees[-1]) and len(trees[-1]) + trees[-1].cost(seqs[i], flags[i]) > row_tokens:
            trees.append(_Tree())
        where[i] = (len(trees) - 1, trees[-1].add(seqs[i], flags[i]))
    return trees, where


def _tree_marks(trees, width: int, device) -> PositionMarks:
    """The position marks of packed tries (padding columns unmarked)."""
    after = torch.zeros((len(trees), width), dtype=torch.bool)
    last = torch.zeros((len(trees), width), dtype=torch.bool)
    for r, t in enumerate(trees):
        if t.flags:
            fl = torch.tensor(t.flags, dtype=torch.bool).reshape(-1, 2)
            after[r, : len(t)], last[r, : len(t)] = fl[:, 0], fl[:, 1]
    return PositionMarks(after.to(device), last.to(device))


def _tree_batch(trees, device, dtype, pad):
    """input ids, 4-D additive mask (each node sees itself and its ancestors; a padding column only
    itself) and position ids (depths) of several tries as rows of one batch."""
    L = max(len(t) for t in trees)
    ids = torch.full((len(trees), L), pad, dtype=torch.long)
    pos = torch.zeros((len(trees), L), dtype=torch.long)
    seen = torch.zeros((len(trees), L, L), dtype=torch.bool)
    for r, t in enumerate(trees):
        n = len(t)
        ids[r, :n] = torch.tensor(t.tokens, dtype=torch.long)
        pos[r, :n] = torch.tensor(t.depth, dtype=torch.long)
        rows = seen[r]
        for k, par in enumerate(t.parent):  # parents come before their children
            if par >= 0:
                rows[k] = rows[par]
            rows[k, k] = True
        idx = torch.arange(n, L)
        rows[idx, idx] = True
    mask = torch.zeros(seen.shape, dtype=dtype).masked_fill_(~seen, torch.finfo(dtype).min)
    return ids.to(device), mask[:, None].to(device), pos.to(device)


def _score_shared(lm, encoded, batch_size, progress, row_tokens=None, starts=None):
    """Every (prompt, target) as a path in a token tree: a prefix that several pairs share (the prompt of a
    true and a new target, the BOS token of every prompt, a relation's template before its subject) is
    run once. Tries of at most ``row_tokens`` nodes are packed as rows, ``max(1, batch_size // 16)`` rows
    per forward, with a mask that lets each node attend to itself and its ancestors only and its depth as
    position id: each path sees exactly its own tokens, as in one unpadded pass, and no model code is
    copied. The model's own attention takes that mask as given, so a sliding window is not applied: paths
    as long as the window (or a model that cannot take the mask, :func:`_tree_unsupported`) are scored
    one sequence per pair (:func:`_score_separate`). A forward hook active while scoring sees the packed
    rows: one that acts on every position alike (MEMAT's corrections, eq. 6; ITI shifts) gives each path
    what it gives an unpadded pass; one that picks positions by their index in a row needs
    ``method="separate"``. Corrections restricted to some positions read the nodes' marks (``starts``)."""
    from .forward import sliding_window

    row_tokens = row_tokens or ROW_TOKENS
    window = sliding_window(lm)
    longest = max(len(p) + len(t) - 1 for p, t in encoded)
    if _tree_unsupported(lm) is not None or (window is not None and longest >= window):
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
        return _score_separate(lm, encoded, order, batch_size, progress, starts)
    tok, dev = lm.tokenizer, lm.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    trees, where = _pack(encoded, row_tokens, starts)
    members: list[list[int]] = [[] for _ in trees]
    for i, (r, _) in enumerate(where):
        members[r].append(i)
    nll = np.zeros(len(encoded))
    acc = np.zeros(len(encoded), dtype=bool)
    per = max(1, batch_size // 16)
    for s in tqdm(range(0, len(trees), per), desc="scoring", disable=not progress, leave=False):
        rows = list(range(s, min(s + per, len(trees))))
        ids, mask, pos = _tree_batch([trees[r] for r in rows], dev, lm.dtype, pad)
        marks = None if starts is None else _tree_marks([trees[r] for r in rows], ids.shape[1], dev)
        with position_marks(marks), Trace(lm.model, lm.spec.final_norm, stop=True) as tf:
            lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        h = tf.output[0] if isinstance(tf.output, tuple) else tf.output
        vec: dict[tuple[int, int], int] = {}  # (batch row, node) -> index of its final-norm vector
        src, tgt, owner, pairs = [], [], [], []
        for b, r in enumerate(rows):
            for i in members[r]:
                p, t = encoded[i]
                path = where[i][1]
                for j, tid in enumerate(t):  # target token j is predicted at position len(p) - 1 + j
                    src.append(vec.setdefault((b, path[len(p) - 1 + j]), len(vec)))
                    tgt.append(tid)
                    owner.append(len(pairs))
                pairs.append(i)
        keys = torch.tensor(list(vec), dtype=torch.long, device=h.device).reshape(-1, 2)
        tok_nll, hit = _token_scores(lm, h[keys[:, 0], keys[:, 1]], tgt, src)
        n_b, a_b = _reduce(tok_nll, hit, torch.tensor(owner), len(pairs))
        nll[pairs], acc[pairs] = n_b, a_b
    return nll, acc


def weights_fingerprint(lm: LoadedModel) -> str:
    """sha256 of the model's config and of every parameter and buffer (tensors above 4M elements: a
    strided sample plus their exact sum and sum of squares), with device type and dtype: what a score of
    this model depends on, apart from hooks.

    Hashing reads every weight (about 3 s for the embedded model), so each tensor's digest is remembered
    while it is the same object at the same version counter (:func:`_tensor_digest`): an edit applied or
    removed, or a weight replaced, re-reads only the tensors it touched."""
    return _weights_digest(lm)


def _config_json(lm: LoadedModel) -> str:
    from .stats import config_fingerprint_json

    return config_fingerprint_json(lm.model.config)  # not the checkpoint's path nor the transformers version


_TENSOR_DIGESTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {name: (ref, version, digest)}


def _tensor_digest(memo: dict, name: str, t: torch.Tensor) -> bytes:
    """sha256 of :func:`~memat.stats.tensor_hash_bytes` of ``t``, remembered while ``t`` is the same object
    (a weak reference, not an id that a new tensor could reuse) at the same version counter: after an edit
    of five MLP matrices only those five are read again, not the 168M-entry embedding."""
    from .stats import tensor_hash_bytes

    got = memo.get(name)
    if got is not None and got[0]() is t and got[1] == t._version:
        return got[2]
    digest = hashlib.sha256(tensor_hash_bytes(t)).digest()
    memo[name] = (weakref.ref(t), t._version, digest)
    return digest


def _weights_digest(lm: LoadedModel) -> str:
    h = hashlib.sha256(_config_json(lm).encode())
    h.update(f"{lm.device.type}|{lm.dtype}".encode())
    memo = _TENSOR_DIGESTS.setdefault(lm.model, {})
    seen = set()
    for name, t in list(lm.model.named_parameters()) + list(lm.model.named_buffers()):
        if id(t) in seen:  # tied weights
            continue
        seen.add(id(t))
        h.update(name.encode())
        h.update(_tensor_digest(memo, name, t))
    return h.hexdigest()


def has_hooks(model: torch.nn.Module) -> bool:
    """Whether any forward (pre-)hook is registered on the model or globally: its outputs may then differ
    from what its weights say (MEMAT corrections, ITI shifts), so scores are not cached."""
    from torch.nn.modules import module as _m

    if _m._global_forward_hooks or _m._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def _scores_path(lm, encoded, method):
    from .paths import cache_dir

    payload = json.dumps({"weights": weights_fingerprint(lm), "pairs": encoded, "method": method,
                          "version": _SCORES_VERSION}, sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()
    return cache_dir() / "scores" / lm.name.replace("/", "__") / f"{key[:40]}.npz", key


@torch.no_grad()
def score_continuations(
    lm: LoadedModel, pairs: Sequence[tuple[str, str]], batch_size: int = 64, progress: bool = False,
    method: str = "shared", cache: bool | str = "auto", subjects: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Token-averaged NLL of ``target`` after ``prompt`` for each pair, and whether greedy decoding
    reproduces the whole target. Logits are computed only at the target's positions.

    ``subjects`` (one per pair, None for a prompt without the edited subject): each forward pass then sets
    :class:`memat.corrections.PositionMarks`, which corrections with ``apply_positions`` other than
    ``"all"`` need (:func:`memat.evaluate.evaluate_cases` passes them when one of its interventions does).

    ``method="shared"`` (default) runs every token prefix the pairs share once: the prompt of a true and a
    new target, the BOS token, a relation's template before its subject (:func:`_score_shared`: a token
    tree, about a third of the tokens of one sequence per pair on CounterFact);
    ``method="separate"`` runs every (prompt, target) as its own sequence (the implementation before
    2026-12, the reference of the tests and of ``benchmarks/bench_evaluate.py``). They agree to float32
    rounding (~1e-6 in NLL).

    ``cache``: ``"auto"`` keeps scores on disk (``<cache dir>/scores/``) keyed by the model's weights
    (:func:`weights_fingerprint`), device, dtype, the tokenised pairs and the method, unless a forward
    hook is registered (:func:`has_hooks`: the weights then do not say what the model computes); ``True``
    the same but refuses a hooked model; ``False`` neither reads nor writes. Every notebook evaluates the
    unedited model again; the second time its scores are read back."""
    if method not in SCORE_METHODS:
        raise ValueError(f"score_continuations: method must be one of {SCORE_METHODS}, got {method!r}")
    if cache not in ("auto", True, False):
        raise ValueError(f"score_continuations: cache must be 'auto', True or False, got {cache!r}")
    encoded = _encode_pairs(lm.tokenizer, pairs)
    if not encoded:
        return np.zeros(0), np.zeros(0, dtype=bool)
    starts = None if subjects is None else _mark_starts(lm.tokenizer, pairs, encoded, subjects)
    hooked = has_hooks(lm.model) if cache else False
    if cache is True and hooked:
        raise ValueError("score_continuations: cache=True on a model with forward hooks (scores would not follow "
                         "its weights); use cache='auto' or False")
    # weights offloaded to the meta device (device_map with disk offload) cannot be fingerprinted
    use_cache = bool(cache) and not hooked and not any(p.device.type == "meta" for p in lm.model.parameters())
    if use_cache:
        path, key = _scores_path(lm, encoded, method)
        got = read(path, lambda p: _load_scores(p, key, len(encoded)), "score")
        if got is not None:
            return got
    if method == "shared":
        nll, acc = _score_shared(lm, encoded, batch_size, progress, starts=starts)
    else:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
        nll, acc = _score_separate(lm, encoded, order, batch_size, progress, starts)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, (nll, acc), lambda v, tmp: _save_scores(v, tmp, key))
    return nll, acc


def _load_scores(path, key: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        check_key(str(f["key"]), key)
        if len(f["nll"]) != n:
            raise CacheEntryError(f"{len(f['nll'])} scores for {n} pairs")
        return f["nll"].astype(float), f["acc"].astype(bool)


def _save_scores(value, tmp, key: str) -> None:
    nll, acc = value
    with open(tmp, "wb") as fh:
        np.savez(fh, nll=nll, acc=acc, key=np.array(key))


def evaluate_cases(
    lm: LoadedModel,
    cases: Sequence[EditCase],
    langs: Sequence[str],
    batch_size: int = 64,
    progress: bool = True,
    kinds: Sequence[str] = KINDS,
    max_neighborhood: int | None = None,
    method: str = "shared",
    cache: bool | str = "auto",
    interventions: Sequence[Intervention | None] = (),
) -> pd.DataFrame:
    """One row per (case, language, prompt type, prompt): NLLs, probabilities, success and accuracy.

    ``method`` and ``cache``: see :func:`score_continuations` (scores of a model without hooks are kept
    on disk, keyed by its weights and the prompts, so the unedited model is scored once for all notebooks).

    ``interventions``: weight deltas, head corrections, ITI shifts (:class:`memat.interventions.Intervention`)
    applied around the scoring in the order given and removed afterwards (:func:`memat.interventions.applied_all`);
    the same as scoring inside ``with a.applied(lm), b.applied(lm):``. Default none: the model as it is.

    ``max_neighborhood`` keeps only the first that many neighbourhood prompts of each case and language
    (CounterFact has 10; they are most of the scoring time). ``None`` keeps them all.

    Corrections restricted to some positions (``apply_positions``) get the case's subject for the rewrite
    and paraphrase prompts; neighbourhood prompts, of other subjects, are corrected from their last token."""
    if max_neighborhood is not None and (isinstance(max_neighborhood, bool) or not isinstance(max_neighborhood, int)
                                         or max_neighborhood < 1):
        raise ValueError(f"evaluate_cases: max_neighborhood must be a positive int or None, got {max_neighborhood!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"evaluate_cases: unknown prompt kinds {unknown}; choose among {list(KINDS)}")
    meta, pairs, subjects = [], [], []
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
                    subjects += [None if kind == "neighborhood" else v.subject] * 2
    interventions = _check_interventions(interventions)  # one list, checked, whatever was passed
    marks = needs_position_marks(interventions)
    with applied_all(lm, interventions):
        nll, acc = score_continuations(lm, pairs, batch_size, progress, method=method, cache=cache,
                                       subjects=subjects if marks else None)
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


#: Per-case columns that are rates in [0, 1] (Wilson bounds); the others (magnitude) get the normal interval.
RATE_COLUMNS = ("success", "accuracy")


def rate_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Wilson bounds ``(lo, hi)`` of the mean of per-case rates in [0, 1] (``mean * n`` successes of ``n``
    cases, see :func:`memat.power.wilson_interval`): inside [0, 1], never of zero width at 0 or 1."""
    x = np.asarray(values, dtype=float)
    return wilson_interval(float(x.sum()), len(x), level)


def interval_bounds(values: Sequence[float], column: str, level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, ci, lo, hi)`` of per-case ``values`` of ``column``: ``ci`` the normal half-width, ``lo``/``hi``
    the Wilson bounds for a rate column (:data:`RATE_COLUMNS`), ``mean -+ ci`` otherwise."""
    m, ci = mean_ci(values, level)
    lo, hi = rate_interval(values, level) if column in RATE_COLUMNS else (m - ci, m + ci)
    return m, ci, lo, hi


def _sorted_long(out: list[dict], by: Sequence[str]) -> pd.DataFrame:
    order = {n: i for i, n in enumerate(sum((list(v) for v in METRIC_NAMES.values()), []))}
    res = pd.DataFrame(out)
    return res.sort_values(list(by) + ["metric"], key=lambda s: s.map(order) if s.name == "metric" else s).reset_index(drop=True)


def summarize(df: pd.DataFrame, level: float = 0.95, scale: float = 100.0, by: Sequence[str] = ("lang",)) -> pd.DataFrame:
    """Metrics (ES, EM, EA, PS, ...) per group with intervals, in percent by default.

    Returns a long table: group columns, ``metric``, ``mean``, ``ci`` (normal half-width), ``n`` (cases),
    ``lo`` and ``hi`` (the interval's bounds at ``level``: Wilson for the success and accuracy rates ES/PS/NS
    and EA/PA/NA, so never outside [0, 100] nor of zero width at 0 or 100; ``mean -+ ci`` for the
    magnitudes EM/PM/NM). ``mean``, ``ci``, ``lo`` and ``hi`` are multiplied by ``scale``.
    """
    per_case = df.groupby(list(by) + ["kind", "case_id"])[["success", "magnitude", "accuracy"]].mean().reset_index()
    out = []
    for keys, g in per_case.groupby(list(by) + ["kind"]):
        keys = keys if isinstance(keys, tuple) else (keys,)
        kind = keys[-1]
        for col, name in zip(("success", "magnitude", "accuracy"), METRIC_NAMES[kind]):
            m, ci, lo, hi = interval_bounds(g[col].astype(float), col, level)
            out.append(dict(zip(by, keys[:-1]), metric=name, mean=m * scale, ci=ci * scale, n=len(g),
                            lo=lo * scale, hi=hi * scale))
    return _sorted_long(out, by)


def paired_difference(
    df: pd.DataFrame, base: pd.DataFrame, level: float = 0.95, scale: float = 100.0, by: Sequence[str] = ("lang",),
    alpha: float = 0.05, power: float = 0.8,
) -> pd.DataFrame:
    """Per-case difference ``df - base`` of every metric (the same cases and prompts scored twice, e.g.
    MEMAT against the MEMIT edit it corrects), averaged over cases with its interval at ``level``.

    Paired: each case's own per-type mean in ``base`` is subtracted from its mean in ``df`` before
    averaging, so the interval is that of the gain, narrower than comparing two unpaired intervals.
    Returns the long table of :func:`summarize` (``metric``, ``mean``, ``ci``, ``n``, ``lo``, ``hi``; here
    ``lo``/``hi`` are ``mean -+ ci`` for every metric) of the differences, plus ``mde``: the smallest true
    difference a two-sided test at level ``alpha`` detects with probability ``power`` (defaults: 5%, 80%)
    at this n, ``(z(1 - alpha/2) + z(power)) * sd(d) / sqrt(n)`` from the observed variance of the per-case
    differences ``d`` (:func:`memat.power.detectable_difference`), on the same ``scale``.
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
            mde = detectable_difference(paired_se(g[col]), alpha, power)
            out.append(dict(zip(by, group[:-1]), metric=name, mean=m * scale, ci=ci * scale, n=len(g),
                            lo=(m - ci) * scale, hi=(m + ci) * scale, mde=mde * scale))
    return _sorted_long(out, by)


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
