"""Per-attention-head probes (MEMAT, Tamayo et al. 2025, Sec. 4 and Fig. 2).

After a MEMIT edit in language L1, the output of every attention head is read at the last token of
``prompt + " " + target`` sentences in language L2, once with the true target (label 0) and once with
the new target (label 1), and a logistic probe per (layer, head) is trained to tell them apart. The
heads whose probes separate the two best are the ones MEMAT later intervenes on.

* :func:`head_outputs` reads the *input* of the attention output projection (``lm.spec.attn_out``):
  the concatenation of the head outputs, ``n_heads * head_dim`` wide for multi-head, grouped-query and
  multi-query attention alike (the key/value sharing happens before it), split per head.
* :func:`collect_probe_data` builds the sentences of a set of cases in one language, optionally under a
  :class:`~memat.memit.MemitDelta`, with the paper's appendix-D refinement (keep only the cases whose
  edit already transfers to that language).
* :func:`train_probes` fits one standardised logistic regression per head with a train/validation split
  *by case* (the two sentences of a case are always on the same side).
* :func:`plot_probe_map` draws the validation accuracies as the heat map of Fig. 2.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.records import EditCase, target_continuation
from .forward import encode, token_ids
from .hooks import StopForward
from .models import LoadedModel

__all__ = [
    "ProbeData",
    "ProbeResult",
    "collect_probe_data",
    "edit_transfers",
    "head_outputs",
    "plot_probe_map",
    "probe_map",
    "sentence_tokens",
    "split_by_case",
    "train_probes",
]


# --------------------------------------------------------------------------------------------------
# reading the heads
# --------------------------------------------------------------------------------------------------


def sentence_tokens(tokenizer, prompt: str, target: str) -> list[int]:
    """Token ids of ``prompt + " " + target`` exactly as :func:`memat.evaluate.score_continuations`
    builds a scored continuation: the prompt's tokens (with BOS) followed by ``" " + target`` (no space
    after an elided Catalan ``d'``/``l'``, :func:`memat.data.records.target_continuation`) tokenised
    without special tokens. The last id is the target's last token."""
    t = token_ids(tokenizer, target_continuation(prompt, target), bos=False)
    if not t:
        raise ValueError(f"target {target!r} tokenises to nothing (prompt {prompt!r})")
    return token_ids(tokenizer, prompt) + t


def _resolve_layers(lm: LoadedModel, layers) -> list[int]:
    if layers is None:
        return list(range(lm.n_layers))
    layers = [int(l) for l in layers]
    if not layers:
        raise ValueError("layers is empty")
    bad = [l for l in layers if not 0 <= l < lm.n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: {lm.name} has {lm.n_layers} layers (0..{lm.n_layers - 1})")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers contains duplicates: {layers}")
    return layers


@torch.no_grad()
def head_outputs(
    lm: LoadedModel,
    texts_or_token_lists: Sequence[str | Sequence[int]],
    positions: int | Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> torch.Tensor:
    """Per-head attention outputs at one token of each text: float32 CPU ``[n_texts, n_layers, n_heads, head_dim]``.

    The value read is the input of the attention output projection (``lm.spec.attn_out``) of each layer
    in ``layers`` (default: all, in that order), reshaped ``n_heads * head_dim -> (n_heads, head_dim)``.

    Args:
        texts_or_token_lists: strings (tokenised with BOS, as :func:`memat.forward.token_ids`) or lists
            of token ids (used as given), mixed freely.
        positions: index of the token to read in each text (an int for all, or one per text); negative
            values count back from the text's last real token (-1, the default, is the last one).
            Padding positions can never be read.
        batch_size: texts per forward pass (right-padded; texts are grouped by length).

    The forward pass is cut right after the deepest selected layer's heads are read.
    """
    layers = _resolve_layers(lm, layers)
    tok = lm.tokenizer
    seqs = [token_ids(tok, x) if isinstance(x, str) else [int(i) for i in x] for x in texts_or_token_lists]
    n = len(seqs)
    H, d = lm.n_heads, lm.head_dim
    if n == 0:
        return torch.zeros((0, len(layers), H, d), dtype=torch.float32)
    empty = [i for i, s in enumerate(seqs) if not s]
    if empty:
        raise ValueError(f"texts {empty[:10]} tokenise to nothing")
    if positions is None:
        positions = -1
    pos = [int(positions)] * n if isinstance(positions, (int, np.integer)) else [int(p) for p in positions]
    if len(pos) != n:
        raise ValueError(f"positions has {len(pos)} entries for {n} texts")
    abs_pos = []
    for i, (p, s) in enumerate(zip(pos, seqs)):
        q = p + len(s) if p < 0 else p
        if not 0 <= q < len(s):
            raise ValueError(f"position {p} is outside text {i} ({len(s)} tokens)")
        abs_pos.append(q)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    out = torch.zeros((n, len(layers), H, d), dtype=torch.float32)
    order = sorted(range(n), key=lambda i: len(seqs[i]))
    state: dict = {}
    slot = {l: j for j, l in enumerate(layers)}

    def read(x: torch.Tensor, layer: int) -> torch.Tensor:
        if x.shape[-1] != H * d:
            raise RuntimeError(
                f"{lm.head_site_name(layer)}: input has {x.shape[-1]} features, expected n_heads * head_dim = {H} * {d} = {H * d}"
            )
        rows = torch.arange(x.shape[0], device=x.device)
        state["acts"][slot[layer]] = lm.split_heads(x[rows, state["pos"].to(x.device)].detach().float().cpu())
        return x

    # one input-reading hook per layer; the pass stops once the deepest layer's heads have been read
    with lm.trace_heads(layers, edit=read, stop=True):
        for s in tqdm(range(0, n, batch_size), desc="head outputs", disable=not progress, leave=False):
            idx = order[s : s + batch_size]
            b = encode(tok, [seqs[i] for i in idx], lm.device)
            state["acts"] = [None] * len(layers)
            state["pos"] = torch.tensor([abs_pos[i] for i in idx])
            try:
                lm.model(**b.to_model_kwargs(), use_cache=False)
            except StopForward:
                pass
            missing = [layers[j] for j, a in enumerate(state["acts"]) if a is None]
            if missing:
                raise RuntimeError(f"the attention output projection of layers {missing} never ran")
            out[torch.tensor(idx)] = torch.stack(state["acts"], 1)
    return out


# --------------------------------------------------------------------------------------------------
# probe data
# --------------------------------------------------------------------------------------------------


def edit_transfers(lm: LoadedModel, cases: Sequence[EditCase], lang: str, batch_size: int = 16) -> np.ndarray:
    """Boolean per case: on the rewrite prompt in ``lang``, the new target's token-averaged NLL is lower
    than the true target's under the model as it is now (the efficacy success of
    :func:`memat.evaluate.evaluate_cases`, whose scoring this reuses)."""
    from .evaluate import evaluate_cases

    if not cases:
        return np.zeros(0, dtype=bool)
    df = evaluate_cases(lm, cases, [lang], batch_size=batch_size, progress=False, kinds=("rewrite",))
    if len(df) != len(cases):  # one rewrite prompt per case and language
        raise RuntimeError(f"expected one rewrite row per case, got {len(df)} rows for {len(cases)} cases")
    return (df["nll_new"].to_numpy() < df["nll_true"].to_numpy()).astype(bool)


@dataclass
class ProbeData:
    """Head activations of labelled sentences.

    Attributes:
        X: float32 ``[n, n_layers, n_heads, head_dim]`` head outputs at each sentence's last token.
        y: int ``[n]``, 0 = sentence with the true target, 1 = with the new target.
        groups: int ``[n]``, index of the sentence's case in the ``cases`` passed in (``case_ids[g]``
            is its case id); train/validation splits are made over these.
        case_ids: case id of every case passed in, by index.
        layers: the layers of X's second axis.
        kept / dropped: indices of the cases kept / dropped by the refinement (all kept without it).
        texts: the sentences, ``prompt + " " + target``, row by row.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    case_ids: list
    layers: list[int]
    kept: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    lang: str | None = None
    kinds: tuple[str, ...] = ("rewrite",)
    refined: bool = False

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    @property
    def dropped_case_ids(self) -> list:
        return [self.case_ids[i] for i in self.dropped]

    @property
    def kept_case_ids(self) -> list:
        return [self.case_ids[i] for i in self.kept]

    def __len__(self) -> int:
        return len(self.y)


def collect_probe_data(
    lm: LoadedModel,
    cases: Sequence[EditCase],
    lang: str,
    kinds: Sequence[str] = ("rewrite",),
    refine: bool = True,
    delta=None,
    batch_size: int = 16,
    progress: bool = False,
    layers: Sequence[int] | None = None,
    transfers: Callable[[LoadedModel, Sequence[EditCase], str], np.ndarray] | None = None,
) -> ProbeData:
    """Head outputs of the true- and new-target sentences of ``cases`` in ``lang``.

    For each case and each (prompt for new, prompt for true) pair of ``kinds``
    (:meth:`~memat.data.records.LangView.prompt_pairs`), two sentences: ``prompt_true + " " + target_true``
    (label 0) and ``prompt_new + " " + target_new`` (label 1); on neighbourhood prompts the true target is
    the prompt's expected answer, as in :func:`memat.evaluate.evaluate_cases`.

    Args:
        delta: a :class:`~memat.memit.MemitDelta` (the edit made in L1) applied during the refinement and
            the collection, removed afterwards; None reads the model as it is.
        refine: appendix D of the paper: keep only the cases whose edit transfers to ``lang``
            (see :func:`edit_transfers`).
        transfers: the refinement criterion ``fn(lm, cases, lang) -> bool array`` (default
            :func:`edit_transfers`); injectable for tests.
        layers: layers to read (default all).
    """
    cases = list(cases)
    layers = _resolve_layers(lm, layers)
    criterion = transfers or (lambda m, cs, lg: edit_transfers(m, cs, lg, batch_size=batch_size))

    def run() -> ProbeData:
        if refine:
            ok = np.asarray(criterion(lm, cases, lang), dtype=bool)
            if ok.shape != (len(cases),):
                raise ValueError(f"refinement criterion returned shape {ok.shape} for {len(cases)} cases")
        else:
            ok = np.ones(len(cases), dtype=bool)
        kept = [i for i in range(len(cases)) if ok[i]]
        dropped = [i for i in range(len(cases)) if not ok[i]]
        seqs, y, groups, texts = [], [], [], []
        for i in kept:
            v = cases[i][lang]
            for kind in kinds:
                answers = v.neighborhood_answers() if kind == "neighborhood" else None
                for k, (p_new, p_true) in enumerate(v.prompt_pairs(kind)):
                    true_target = answers[k] if answers else v.target_true
                    for prompt, target, label in ((p_true, true_target, 0), (p_new, v.target_new, 1)):
                        seqs.append(sentence_tokens(lm.tokenizer, prompt, target))
                        texts.append(f"{prompt} {target.strip()}")
                        y.append(label)
                        groups.append(i)
        X = head_outputs(lm, seqs, layers=layers, batch_size=batch_size, progress=progress)
        return ProbeData(
            X=X.numpy(),
            y=np.asarray(y, dtype=np.int64),
            groups=np.asarray(groups, dtype=np.int64),
            case_ids=[c.case_id for c in cases],
            layers=layers,
            kept=kept,
            dropped=dropped,
            texts=texts,
            lang=lang,
            kinds=tuple(kinds),
            refined=bool(refine),
        )

    if delta is None:
        return run()
    with delta.applied(lm):
        return run()


# --------------------------------------------------------------------------------------------------
# probes
# --------------------------------------------------------------------------------------------------


def split_by_case(groups: Sequence[int], val_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation) with every group (case) entirely on one side.

    ``ceil(val_fraction * n_cases)`` cases, drawn by a seeded permutation, go to validation (sklearn's
    ``GroupShuffleSplit`` convention); at least one case must remain on each side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    n_cases = len(uniq)
    n_val = int(math.ceil(val_fraction * n_cases - 1e-9))
    n_train = n_cases - n_val
    if n_val < 1 or n_train < 1:
        raise ValueError(
            f"too few cases to split: {n_cases} case(s) ({len(groups)} sentences) with val_fraction={val_fraction} "
            f"gives {n_train} training and {n_val} validation case(s); at least 1 of each is needed"
        )
    rng = np.random.default_rng(seed)
    val_groups = uniq[rng.permutation(n_cases)[:n_val]]
    is_val = np.isin(groups, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@dataclass
class ProbeResult:
    """Accuracy of one logistic probe per (layer, head).

    ``accuracy`` / ``train_accuracy`` are ``[n_layers, n_heads]`` numpy arrays, rows in the order of
    ``layers`` (actual layer indices of the model). ``n_train`` / ``n_val`` count sentences,
    ``n_train_cases`` / ``n_val_cases`` cases; ``val_groups`` are the validation cases' group ids.
    """

    accuracy: np.ndarray
    train_accuracy: np.ndarray
    layers: list[int]
    n_train: int
    n_val: int
    seed: int
    n_train_cases: int = 0
    n_val_cases: int = 0
    val_groups: list = field(default_factory=list)
    C: float = 1.0
    val_fraction: float = 0.3
    val_correct: np.ndarray | None = field(default=None, repr=False, compare=False)
    val_row_groups: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_heads(self) -> int:
        return int(self.accuracy.shape[1])

    def top_k(self, k: int) -> list[tuple[int, int]]:
        """The ``k`` best (layer, head) by validation accuracy, descending; ties by (layer, head) ascending."""
        total = int(self.accuracy.size)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1 or k > total:
            raise ValueError(
                f"k={k} is out of range: there are {total} heads ({len(self.layers)} layers x {self.n_heads} heads); "
                f"k must be between 1 and {total}"
            )
        cells = [
            (float(self.accuracy[i, h]), self.layers[i], h)
            for i in range(len(self.layers))
            for h in range(self.n_heads)
        ]
        # NaN (never expected) sorts last
        cells.sort(key=lambda c: (-(c[0]) if not math.isnan(c[0]) else math.inf, c[1], c[2]))
        return [(l, h) for _, l, h in cells[:k]]

    def best(self) -> tuple[int, int, float]:
        (l, h), = self.top_k(1)
        return l, h, float(self.accuracy[self.layers.index(l), h])

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy.astype(float).tolist(),
            "train_accuracy": self.train_accuracy.astype(float).tolist(),
            "layers": [int(l) for l in self.layers],
            "n_train": int(self.n_train),
            "n_val": int(self.n_val),
            "seed": int(self.seed),
            "n_train_cases": int(self.n_train_cases),
            "n_val_cases": int(self.n_val_cases),
            "val_groups": [int(g) if isinstance(g, (int, np.integer)) else g for g in self.val_groups],
            "C": float(self.C),
            "val_fraction": float(self.val_fraction),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ProbeResult:
        return cls(
            accuracy=np.asarray(d["accuracy"], dtype=float),
            train_accuracy=np.asarray(d["train_accuracy"], dtype=float),
            layers=[int(l) for l in d["layers"]],
            n_train=int(d["n_train"]),
            n_val=int(d["n_val"]),
            seed=int(d["seed"]),
            n_train_cases=int(d.get("n_train_cases", 0)),
            n_val_cases=int(d.get("n_val_cases", 0)),
            val_groups=list(d.get("val_groups", [])),
            C=float(d.get("C", 1.0)),
            val_fraction=float(d.get("val_fraction", 0.3)),
        )


def probe_map(heads_results: dict, edit_lang: str, eval_lang: str, head_set: str = "refined") -> ProbeResult:
    """Notebook 03's probe map for an edit in ``edit_lang`` probed in ``eval_lang`` (its results file's
    ``probes["<edit_lang>-><eval_lang>"][head_set]``, ``head_set`` "all" or "refined"), as a
    :class:`ProbeResult`. A missing map or head set is a :class:`ValueError` listing what the file has."""
    probes = heads_results.get("probes") if isinstance(heads_results, dict) else None
    if not probes:
        raise ValueError("heads results: no 'probes' (expected notebook 03's results file)")
    key = f"{edit_lang}->{eval_lang}"
    if key not in probes:
        raise ValueError(f"heads results: no probe map {key!r} (maps: {sorted(probes)}); "
                         f"run notebook 03 with {edit_lang!r} and {eval_lang!r} among its languages")
    if head_set not in probes[key]:
        raise ValueError(f"HEAD_SET: {head_set!r} is not one of {sorted(probes[key])} (probe map {key!r})")
    return ProbeResult.from_dict(probes[key][head_set])


def train_probes(
    data: ProbeData, val_fraction: float = 0.3, seed: int = 0, C: float = 1.0, max_iter: int = 1000,
    keep_predictions: bool = False,
) -> ProbeResult:
    """One L2-regularised logistic regression per (layer, head) on standardised head outputs.

    Train and validation are split by case (:func:`split_by_case`); the standardisation (per feature mean
    and standard deviation) is fitted on the training rows only. With ``keep_predictions`` the result
    also holds, per validation sentence, whether each head's probe got it right (``val_correct``,
    ``[n_val, n_layers, n_heads]``) and the sentence's case (``val_row_groups``), for
    :func:`bootstrap_accuracy`; they are not written by :meth:`ProbeResult.to_dict`.
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(data.X, dtype=np.float64)
    y = np.asarray(data.y)
    groups = np.asarray(data.groups)
    if X.ndim != 4:
        raise ValueError(f"X must be [n, layers, heads, head_dim], got shape {X.shape}")
    if not (len(X) == len(y) == len(groups)):
        raise ValueError(f"X, y and groups disagree in length: {len(X)}, {len(y)}, {len(groups)}")
    tr, va = split_by_case(groups, val_fraction, seed)
    if len(np.unique(y[tr])) < 2:
        raise ValueError(f"the training split ({len(tr)} sentences) has a single label {np.unique(y[tr]).tolist()}")
    Xtr, Xva = X[tr], X[va]
    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd[sd < 1e-12] = 1.0
    Xtr = (Xtr - mu) / sd
    Xva = (Xva - mu) / sd
    n_l, n_h = X.shape[1], X.shape[2]
    acc = np.zeros((n_l, n_h))
    tr_acc = np.zeros((n_l, n_h))
    correct = np.zeros((len(va), n_l, n_h), dtype=bool)
    for i in range(n_l):
        for h in range(n_h):
            clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
            clf.fit(Xtr[:, i, h], y[tr])
            tr_acc[i, h] = clf.score(Xtr[:, i, h], y[tr])
            correct[:, i, h] = clf.predict(Xva[:, i, h]) == y[va]
            acc[i, h] = correct[:, i, h].mean()
    val_groups = np.unique(groups[va])
    return ProbeResult(
        accuracy=acc,
        train_accuracy=tr_acc,
        layers=[int(l) for l in data.layers],
        n_train=len(tr),
        n_val=len(va),
        seed=int(seed),
        n_train_cases=len(np.unique(groups[tr])),
        n_val_cases=len(val_groups),
        val_groups=val_groups.tolist(),
        C=float(C),
        val_fraction=float(val_fraction),
        val_correct=correct if keep_predictions else None,
        val_row_groups=groups[va].copy() if keep_predictions else None,
    )


# --------------------------------------------------------------------------------------------------
# how well the head map is measured: intervals, a label-shuffled control, stability across splits
# --------------------------------------------------------------------------------------------------


def bootstrap_accuracy(result: ProbeResult, heads: Sequence[tuple[int, int]] | None = None, n_boot: int = 1000,
                       seed: int = 0, level: float = 0.95) -> dict:
    """Validation accuracy of ``heads`` (default: the best head) with a bootstrap interval over *cases*.

    The validation sentences of a case are not independent (a case gives a true and a new sentence per
    prompt), so the bootstrap resamples validation cases with replacement and pools their sentences.
    ``result`` needs ``train_probes(..., keep_predictions=True)``. The accuracy of a set of heads is the
    mean over the heads (each resample scores every head on the same cases). Note that the best head is
    chosen on the same validation cases, so its accuracy is optimistic; compare it with
    :func:`shuffled_label_control`.

    Returns ``{"heads", "accuracy", "lo", "hi", "per_head": [...], "n_val_cases", "n_boot", "level"}``
    (accuracies as fractions)."""
    if result.val_correct is None or result.val_row_groups is None:
        raise ValueError("bootstrap_accuracy needs the per-sentence predictions: train the probes with "
                         "train_probes(..., keep_predictions=True)")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    heads = [tuple(h) for h in (heads if heads is not None else result.top_k(1))]
    idx = []
    for layer, h in heads:
        if layer not in result.layers or not 0 <= h < result.n_heads:
            raise ValueError(f"head {(layer, h)} is not in the probe map (layers {result.layers}, {result.n_heads} heads)")
        idx.append((result.layers.index(layer), h))
    correct = np.stack([result.val_correct[:, i, h] for i, h in idx], axis=1).astype(float)  # [n_val, n_heads]
    g = np.asarray(result.val_row_groups)
    uniq, inv = np.unique(g, return_inverse=True)
    per_case_sum = np.zeros((len(uniq), len(idx)))
    np.add.at(per_case_sum, inv, correct)
    per_case_n = np.bincount(inv, minlength=len(uniq)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    counts = np.stack([np.bincount(d, minlength=len(uniq)) for d in draws]).astype(float)  # [n_boot, n_cases]
    boot = (counts @ per_case_sum) / (counts @ per_case_n)[:, None]  # [n_boot, n_heads]
    a = (1.0 - level) / 2.0
    point = correct.mean(0)
    per_head = [{"head": [int(l), int(h)], "accuracy": float(point[j]), "lo": float(np.quantile(boot[:, j], a)),
                 "hi": float(np.quantile(boot[:, j], 1 - a))} for j, (l, h) in enumerate(heads)]
    mean_boot = boot.mean(1)
    return {"heads": [[int(l), int(h)] for l, h in heads], "accuracy": float(point.mean()),
            "lo": float(np.quantile(mean_boot, a)), "hi": float(np.quantile(mean_boot, 1 - a)),
            "per_head": per_head, "n_val_cases": int(len(uniq)), "n_boot": int(n_boot), "level": float(level)}


def shuffled_label_control(data: ProbeData, n_shuffles: int = 5, val_fraction: float = 0.3, seed: int = 0,
                           C: float = 1.0, k: int = 1) -> dict:
    """The probe map again with the labels permuted *within each case* (so each case keeps its balance of
    true and new sentences), ``n_shuffles`` times, on the same case split as ``train_probes(data,
    val_fraction, seed)``: the validation accuracy that choosing the best of all the heads reaches when
    the heads carry no information about the label. An edited map whose best head (or top-``k`` mean)
    does not beat this control's is not evidence that any head separates the targets.

    Returns ``{"best": [...], "top_k_mean": [...], "mean": [...], "k", "n_shuffles"}``, one value per
    shuffle: the best head's accuracy, the mean accuracy of the top-``k`` heads, the mean over all heads."""
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be at least 1, got {n_shuffles}")
    rng = np.random.default_rng(seed + 7919)
    groups = np.asarray(data.groups)
    best, topk, mean = [], [], []
    for _ in range(n_shuffles):
        y = np.asarray(data.y).copy()
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            y[rows] = y[rng.permutation(rows)]
        shuffled = replace(data, y=y)
        res = train_probes(shuffled, val_fraction, seed, C)
        acc = res.accuracy
        best.append(float(np.nanmax(acc)))
        topk.append(float(np.mean([acc[res.layers.index(l), h] for l, h in res.top_k(k)])))
        mean.append(float(np.nanmean(acc)))
    return {"best": best, "top_k_mean": topk, "mean": mean, "k": int(k), "n_shuffles": int(n_shuffles)}


def topk_overlap_across_seeds(data: ProbeData, k: int, seeds: Sequence[int] = (0, 1, 2), val_fraction: float = 0.3,
                              C: float = 1.0, known: dict[int, ProbeResult] | None = None) -> dict:
    """How stable the top-``k`` heads are when the probes are retrained on other case splits: the probe map
    once per split seed, and the share of the top-``k`` that two seeds have in common, for every pair of
    seeds (``|A & B| / k``). Heads chosen at random would share ``k / n_heads`` on average
    (``"random_expectation"``). ``known``: maps already trained on ``data`` with these settings, by split seed
    (the caller's own ``train_probes(data, val_fraction, seed, C)``), which are not trained again.

    Returns ``{"seeds", "top_k": {seed: [[layer, head], ...]}, "pairwise": [...], "mean_overlap",
    "min_overlap", "random_expectation", "k"}``."""
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if len(seeds) < 2:
        raise ValueError(f"seeds: at least two distinct split seeds are needed, got {seeds}")
    tops = {}
    total = None
    for sd in seeds:
        res = (known or {}).get(sd) or train_probes(data, val_fraction, sd, C)
        total = int(res.accuracy.size)
        tops[sd] = res.top_k(k)
    pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    pairwise = [len(set(tops[a]) & set(tops[b])) / k for a, b in pairs]
    return {"seeds": seeds, "top_k": {str(sd): [list(h) for h in t] for sd, t in tops.items()},
            "pairwise": [float(x) for x in pairwise], "mean_overlap": float(np.mean(pairwise)),
            "min_overlap": float(np.min(pairwise)), "random_expectation": float(k / total), "k": int(k)}


# --------------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------------


def plot_probe_map(result: ProbeResult, ax=None, title: str | None = None):
    """Fig. 2: validation accuracy per head (x) and layer (y, first layer at the bottom), colour scale
    0.5..1, the best head outlined and labelled. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.patches import Rectangle

    acc = np.asarray(result.accuracy, dtype=float)
    n_l, n_h = acc.shape
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * n_h + 2.5), max(3.0, 0.28 * n_l + 1.2)))
    else:
        fig = ax.figure
    sns.heatmap(
        acc,
        ax=ax,
        vmin=0.5,
        vmax=1.0,
        cmap="viridis",
        xticklabels=list(range(n_h)),
        yticklabels=list(result.layers),
        cbar_kws={"label": "validation accuracy"},
        square=False,
    )
    ax.invert_yaxis()
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    l, h, best = result.best()
    i = result.layers.index(l)
    ax.add_patch(Rectangle((h, i), 1, 1, fill=False, edgecolor="red", lw=2))
    ax.text(h + 0.5, i + 0.5, f"{best:.2f}", ha="center", va="center", color="red", fontsize=8, fontweight="bold")
    ax.set_title(title or f"probe accuracy, best L{l} H{h}: {best:.2f}\n(validation: {result.n_val} sentences)", fontsize=9)
    fig.tight_layout()
    return fig
