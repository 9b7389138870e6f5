"""Second-moment statistics of MEMIT keys, E[k k^T], per edited layer, from a text corpus.

* One forward pass serves every requested layer, and it stops after the deepest of them.
* Keys of all real (non-padding) tokens are accumulated in float64, so summing 10^5..10^7 outer
  products does not drift; the result is returned in ``dtype``.
* Results are cached on disk (safetensors, written atomically) under a key of model fingerprint,
  layer, corpus (a text file by its content, :func:`corpus_id`), language, sample count, max length and
  dtype, none of which depends on the machine or the directories; a file whose metadata or checksum
  does not match is reported and recomputed, never silently used.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import weakref
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .cache import CacheEntryError, entry_path, read, write
from .forward import encode, token_ids
from .hooks import TraceDict
from .models import LoadedModel
from .paths import cache_dir  # noqa: F401 - memat.stats.cache_dir, as before

__all__ = ["config_fingerprint_json", "corpus_id", "corpus_lines", "heldout_lines", "layer_stats", "layer_stats_for", "model_fingerprint",
           "model_fingerprints", "StatsCacheError"]

HELDOUT_LINES = 200  # the last lines of each corpus are never used for statistics


class StatsCacheError(RuntimeError):
    pass


def _corpus_file(corpus: str, lang: str, source_dir=None) -> Path:
    from .data.fetch import ensure_dataset

    if corpus == "wikitext2":
        if lang != "en":
            raise ValueError(f"corpus 'wikitext2' is English; no {lang!r} text (use 'globalvoices' or a file)")
        return ensure_dataset("wikitext2_raw_test", source_dir=source_dir) / "wiki.test.raw"
    if corpus == "globalvoices":
        if lang not in ("en", "ca"):
            raise ValueError(f"corpus 'globalvoices' has en and ca text, not {lang!r}")
        return ensure_dataset("globalvoices_en_ca", source_dir=source_dir) / f"globalvoices.en-ca.{lang}"
    if corpus == "catalan_cc0":
        if lang != "ca":
            raise ValueError("corpus 'catalan_cc0' is Catalan only")
        return ensure_dataset("catalan_cc0_sentences", source_dir=source_dir) / "translated_wiki.es-ca.txt"
    p = Path(corpus)
    if p.is_file():
        return p
    raise ValueError(
        f"unknown corpus {corpus!r} for language {lang!r}: use 'wikitext2' (en), 'globalvoices' (en/ca), "
        "'catalan_cc0' (ca), 'hf:<dataset>[:<config>]' (needs the datasets package and a hub), or a text file path"
    )


def _read_lines(corpus: str, lang: str, source_dir=None) -> list[str]:
    if corpus.startswith("hf:"):
        try:
            import datasets  # noqa: F401
        except ImportError as e:
            raise ImportError(f"corpus {corpus!r} needs the 'datasets' package and access to the hub") from e
        parts = corpus[3:].split(":")
        ds = datasets.load_dataset(parts[0], parts[1] if len(parts) > 1 else None, split="train")
        return [t.strip() for t in ds["text"] if t and t.strip()]
    path = _corpus_file(corpus, lang, source_dir)
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    # WikiText headings (" = Title = ") and empty lines carry no prose
    return [ln for ln in lines if len(ln) > 20 and not (ln.startswith("=") and ln.endswith("="))]


def corpus_lines(corpus: str, lang: str, n: int | None = None, source_dir=None) -> list[str]:
    """The statistics sample: the first ``n`` usable lines, never any of the held-out tail."""
    lines = _read_lines(corpus, lang, source_dir)
    usable = lines[:-HELDOUT_LINES] if len(lines) > 2 * HELDOUT_LINES else lines[: len(lines) // 2]
    return usable if n is None else usable[:n]


def heldout_lines(corpus: str, lang: str, n: int = 100, source_dir=None) -> list[str]:
    """Held-out text for a fluency check (the corpus tail, disjoint from :func:`corpus_lines`)."""
    lines = _read_lines(corpus, lang, source_dir)
    tail = lines[-HELDOUT_LINES:] if len(lines) > 2 * HELDOUT_LINES else lines[len(lines) // 2 :]
    return tail[:n]


def tensor_hash_bytes(t: torch.Tensor) -> bytes:
    """The bytes a fingerprint hashes for one tensor: its float32 values, or for tensors above 4M elements
    (large embeddings) a strided sample of 1M plus their exact sum and sum of squares."""
    t = t.detach()
    if t.numel() > 4_000_000:
        t = torch.cat([t.flatten()[:: max(1, t.numel() // 1_000_000)].float(), t.double().sum().reshape(1).float(),
                       t.double().square().sum().reshape(1).float()])
    return t.float().cpu().contiguous().numpy().tobytes()


#: Config fields that say where a model was loaded from and by which library, not what it computes; no
#: fingerprint (and so no cache key) reads them. ``_name_or_path`` is the checkpoint's path: for the embedded
#: model ``<cache dir>/models/gemma3-270m-q4km-<sha>``, so it changes with $HOME, $XDG_CACHE_HOME or
#: $MEMAT_CACHE; ``transformers_version`` is the *running* transformers version (``to_dict()`` writes it);
#: ``_commit_hash`` a hub revision (the weights are hashed themselves).
MACHINE_CONFIG_FIELDS = frozenset({"_name_or_path", "name_or_path", "_commit_hash", "transformers_version"})


def _without_machine_fields(x):
    if isinstance(x, dict):
        return {k: _without_machine_fields(v) for k, v in x.items() if k not in MACHINE_CONFIG_FIELDS}
    if isinstance(x, (list, tuple)):
        return [_without_machine_fields(v) for v in x]
    return x


def config_fingerprint_json(config) -> str:
    """The model config as fingerprints hash it: ``config.to_dict()`` without :data:`MACHINE_CONFIG_FIELDS`
    (in nested configs too), as sorted JSON. The same model loaded from two directories or on two
    machines gives the same text."""
    return json.dumps(_without_machine_fields(config.to_dict()), sort_keys=True, default=str)


#: model -> memo of :func:`model_fingerprints`: the hash state of the config and the non-block parameters, and
#: each block's digest, each with the (weak reference, version counter) of every tensor it read
_FINGERPRINT_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _same_tensors(seen, tensors) -> bool:
    return len(seen) == len(tensors) and all(r() is t and v == t._version for (r, v), t in zip(seen, tensors))


def _stamp(tensors) -> list:
    return [(weakref.ref(t), t._version) for t in tensors]


def model_fingerprints(lm: LoadedModel, layers: Sequence[int]) -> dict[int, str]:
    """For each layer, a hash of the model's config (:func:`config_fingerprint_json`: not where it was loaded
    from) and of every parameter that feeds its keys (embeddings and blocks up to that layer). Every
    parameter is read once, whatever the number of layers.

    Reading every weight takes about 2 s for the embedded model, and the cache keys of statistics, targets,
    edits and corrections all ask for it, so the hash of each block (and of the config with the non-block
    parameters) is remembered while every tensor it read is the same object (a weak reference) at the same
    version counter: an edit applied or removed re-reads only the blocks it touched. The values are those of
    hashing everything afresh."""
    prefix = lm.spec.layers + "."
    deepest = max(layers)
    base_params, blocks = [], {}
    for name, p in lm.model.named_parameters():
        if name.startswith(lm.spec.unembed) or name.startswith(lm.spec.final_norm):
            continue
        if name.startswith(prefix):
            j = int(name[len(prefix):].split(".", 1)[0])
            if j <= deepest:
                blocks.setdefault(j, []).append((name, p))
        else:
            base_params.append((name, p))
    memo = _FINGERPRINT_MEMO.setdefault(lm.model, {})
    config = config_fingerprint_json(lm.model.config)
    got = memo.get("base")
    tensors = [p for _, p in base_params]
    if got is not None and got[0] == config and _same_tensors(got[1], tensors):
        base = got[2]
    else:
        base = hashlib.sha256(config.encode())
        for name, p in base_params:
            base.update(name.encode())
            base.update(tensor_hash_bytes(p))
        memo["base"] = (config, _stamp(tensors), base.copy())
    per_block: dict[int, bytes] = {}
    for j, named in blocks.items():
        tensors = [p for _, p in named]
        got = memo.get(("block", j))
        if got is not None and _same_tensors(got[0], tensors):
            per_block[j] = got[1]
            continue
        h = hashlib.sha256()
        for name, p in named:
            h.update(name.encode())
            h.update(tensor_hash_bytes(p))
        per_block[j] = h.digest()
        memo[("block", j)] = (_stamp(tensors), per_block[j])
    out = {}
    for l in layers:
        h = base.copy()
        for j in range(l + 1):
            if j in per_block:
                h.update(per_block[j])
        out[l] = h.hexdigest()[:16]
    return out


def model_fingerprint(lm: LoadedModel, upto_layer: int) -> str:
    """A hash of the model's config and of every parameter that feeds the keys of ``upto_layer``."""
    return model_fingerprints(lm, [upto_layer])[upto_layer]


_NAMED_CORPORA = ("wikitext2", "globalvoices", "catalan_cc0")


def corpus_id(corpus: str) -> str:
    """What names a corpus in the statistics cache: a registered name (its files are checked against their
    sha256 when fetched) or ``hf:...`` as given; a text file by its content, ``file-<sha256[:16]>``, not by
    its path (the same file in another directory or on another machine is the same corpus, and an edited
    file is a new one)."""
    if corpus in _NAMED_CORPORA or corpus.startswith("hf:"):
        return corpus
    p = Path(corpus)
    if p.is_file():
        from .data.fetch import sha256_file

        return f"file-{sha256_file(p)[:16]}"
    return corpus


def _cache_path(lm, layer, corpus, lang, n, max_len, dtype, fp) -> Path:
    safe_corpus = hashlib.sha256(corpus.encode()).hexdigest()[:8] if ("/" in corpus or "\\" in corpus) else corpus.replace(":", "_")
    return entry_path("stats", model=lm.name, name=f"{fp}_{safe_corpus}_{lang}_L{layer}_n{n}_len{max_len}_{dtype}")


def _checksum(mom2: torch.Tensor) -> str:
    return hashlib.sha256(mom2.contiguous().numpy().tobytes()).hexdigest()


def _load(path: Path, meta_expected: dict) -> torch.Tensor:
    """The statistics at ``path``; raises if the file is unreadable, its metadata are not ``meta_expected``
    or its checksum fails."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        mom2 = f.get_tensor("mom2")
    for k, v in meta_expected.items():
        if meta.get(k) != str(v):
            raise CacheEntryError(f"metadata {k}={meta.get(k)!r}, expected {v!r}")
    if meta.get("sha256") != _checksum(mom2):
        raise CacheEntryError("checksum mismatch (partial or altered file)")
    return mom2


def _save(path: Path, mom2: torch.Tensor, meta: dict) -> None:
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in meta.items()}
    meta["sha256"] = _checksum(mom2)
    save_file({"mom2": mom2.contiguous()}, str(path), metadata=meta)


@torch.no_grad()
def compute_second_moments(
    lm: LoadedModel, layers: Sequence[int], texts: Sequence[str], max_len: int = 128, batch_size: int = 16,
    progress: bool = True, skip_bos: bool = True,
) -> tuple[dict[int, torch.Tensor], int]:
    """E[k k^T] (float64) of the ``mlp_out`` inputs of ``layers`` over every real token of ``texts``
    (the BOS token excluded unless ``skip_bos=False``).

    Each batch's k^T k (at most ``batch_size * max_len`` terms) is a float32 product, summed over batches in
    float64: a float64 product took 40% of the time on a CPU and is slow on most GPUs, and the float32 one
    differs from it by about 1e-7 of the largest entry, the rounding of the float32 file the statistics are
    stored in. (ROME/MEMIT's ``runningstats.SecondMoment`` accumulates in float32 throughout.)"""
    names = {lm.name_of("mlp_out", l): l for l in layers}
    d = lm.mlp_out_weight(layers[0]).shape[1]
    acc = {l: torch.zeros(d, d, dtype=torch.float64, device=lm.device_of("mlp_out", l)) for l in layers}  # each layer's device
    count = 0
    tok = lm.tokenizer
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted batches: little padding
    bar = tqdm(range(0, len(order), batch_size), desc="key statistics", disable=not progress, leave=False)
    for s in bar:
        seqs = [token_ids(tok, texts[i])[:max_len] for i in order[s : s + batch_size]]
        batch = encode(tok, seqs, lm.device)
        with TraceDict(lm.model, list(names), retain_input=True, retain_output=False, stop=True) as td:
            lm.model(**batch.to_model_kwargs(), use_cache=False)
        m = batch.attention_mask.bool()
        if skip_bos and tok.bos_token_id is not None:
            m &= batch.input_ids != tok.bos_token_id  # never a MEMIT key; an outlier in Llama/Gemma
        for name, l in names.items():
            x = td[name].input
            k = x[m.to(x.device)].float()
            acc[l] += k.T @ k
        count += int(m.sum())
    return {l: a / count for l, a in acc.items()}, count


def layer_stats_for(lm: LoadedModel, hp, lang: str, *, corpus: str | None = None, n_samples: int | None = None,
                    source_dir=None, use_cache: bool = True, progress: bool = True) -> dict[int, torch.Tensor]:
    """:func:`layer_stats` of the layers an edit with hyperparameters ``hp`` (MEMIT or PMET) changes, in
    ``lang``: its corpus (``hp.mom2_corpus[lang]``, or ``corpus``), sample count (``hp.mom2_n_samples``, or
    ``n_samples``), length and dtype, as every notebook computes them."""
    if corpus is None:
        if lang not in hp.mom2_corpus:
            raise ValueError(f"no key-statistics corpus for language {lang!r}: hparams.mom2_corpus has "
                             f"{sorted(hp.mom2_corpus)}; pass corpus= (a text file, 'hf:<dataset>')")
        corpus = hp.mom2_corpus[lang]
    n = hp.mom2_n_samples if n_samples is None else n_samples
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_samples must be a positive int, got {n!r}")
    return layer_stats(lm, hp.layers, corpus, lang, n, max_len=hp.mom2_max_len, dtype=hp.mom2_dtype,
                       use_cache=use_cache, source_dir=source_dir, progress=progress)


def layer_stats(
    lm: LoadedModel,
    layers: Sequence[int],
    corpus: str,
    lang: str,
    n_samples: int,
    max_len: int = 128,
    dtype: str = "float32",
    batch_size: int = 16,
    use_cache: bool = True,
    source_dir=None,
    progress: bool = True,
) -> dict[int, torch.Tensor]:
    """Second moments of the MEMIT keys of ``layers`` (cached); one pass for all the layers missing.

    The statistics are accumulated on the model's device (in float64) but returned on the CPU in ``dtype``:
    a d_ff x d_ff matrix per layer is 1.3 GB in float32 for Falcon-7B, so they are not kept on an
    accelerator; the solve (:func:`memat.memit.closed_form_update`) moves one layer's matrix at a time."""
    layers = sorted(set(layers))
    fps = model_fingerprints(lm, layers)
    cid = corpus_id(corpus)
    metas = {l: {"model": lm.name, "fingerprint": fps[l], "layer": l, "corpus": cid, "lang": lang,
                 "n_samples": n_samples, "max_len": max_len, "dtype": dtype, "skip_bos": True} for l in layers}
    paths = {l: _cache_path(lm, l, cid, lang, n_samples, max_len, dtype, fps[l]) for l in layers}
    out, todo = {}, []
    for l in layers:
        got = read(paths[l], lambda p, l=l: _load(p, metas[l]), "statistics") if use_cache else None
        if got is None:
            todo.append(l)
        else:
            out[l] = got
    if todo:
        texts = corpus_lines(corpus, lang, n_samples, source_dir)
        if len(texts) < n_samples:
            warnings.warn(f"corpus {corpus!r} ({lang}) has only {len(texts)} usable lines, fewer than mom2_n_samples={n_samples}")
        moms, count = compute_second_moments(lm, todo, texts, max_len, batch_size, progress)
        for l, m in moms.items():
            m = m.to(getattr(torch, dtype)).cpu()
            if use_cache:
                write(paths[l], m, lambda v, p, l=l: _save(p, v, {**metas[l], "tokens": count}))
            out[l] = m
    return {l: out[l] for l in layers}
