"""memat's public interface, shaped like the editing libraries people know (EasyEdit's editors, the MEMIT
reference code's request dicts)::

    import memat

    lm = memat.load_model("gemma3-270m")                 # or any Hugging Face id / directory of a supported family
    memit = memat.MEMIT.from_hparams("gemma3-270m")      # configs/memit/<name>.yaml, or a YAML path
    delta = memit.edit(lm, prompts=["{} plays"], subjects=["Lionel Messi"], targets=["basketball"])
    with delta.applied(lm):                              # the model is edited inside the block only
        ...
    corrections = memat.MEMAT.from_hparams("gemma3-270m").fit(lm, delta, requests, heads=[(10, 1), (12, 3)])
    with delta.applied(lm), corrections.applied(lm):
        ...

This module composes the tested functions and adds nothing to the algorithms: :class:`MEMIT` and
:class:`PMET` call :func:`memat.stats.layer_stats` (the key statistics, with the preset's corpus and
sample count) and :func:`memat.memit.cached_memit` (which runs :func:`memat.memit.compute_memit` or
:func:`memat.pmet.compute_pmet`); :class:`MEMAT` calls :func:`memat.memat.cached_corrections` (which runs
:func:`memat.memat.train_corrections`) and, to choose heads, :func:`memat.heads.collect_probe_data`,
:func:`memat.heads.train_probes` and :func:`memat.memat.select_heads`. Their results are on disk under
:func:`memat.paths.cache_dir` unless ``cache=False``, keyed by everything they depend on.

The model is never left edited: an edit is returned as a :class:`~memat.memit.WeightDelta` with the
model's weights as they were (also when an exception interrupts the computation), and MEMAT's training
removes the delta and its hooks on the way out, exceptions included. Apply an edit with
``with delta.applied(lm):`` (or ``delta.apply(lm)`` / ``delta.remove(lm)``) and corrections with
``with corrections.applied(lm):``.

Edit requests (:func:`as_requests`) may be given as

* three lists, ``prompts=[...], subjects=[...], targets=[...]``;
* dicts in the MEMIT reference format, ``{"prompt": "{} plays", "subject": "Lionel Messi",
  "target_new": {"str": "basketball"}}`` (``target_new`` may be a plain string; ``case_id`` and
  ``kl_prompts`` are optional), or whole CounterFact records with a ``requested_rewrite``;
* :class:`~memat.requests.EditRequest` or :class:`~memat.data.records.EditCase` (the view of ``lang``).

(:func:`as_requests` and :func:`as_cases` are :mod:`memat.requests`' parsers, re-exported here.)

A prompt marks the subject with ``{}`` (MEMIT's convention) or contains the subject once, as in EasyEdit
(``"Lionel Messi plays"``). A malformed record is a :class:`~memat.data.records.RecordError` (a
``ValueError``) naming the record's index, its case_id and the field.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .data.records import RecordError
from .heads import collect_probe_data, train_probes
from .hparams import MemitHparams, load_hparams
from .memat import HeadCorrections, MematHparams, cached_corrections, load_memat_hparams, select_heads
from .memit import WeightDelta, cached_memit
from .models import LoadedModel
from .pmet import PmetHparams
from .requests import as_cases, as_requests  # the record parsers live with the request type
from .stats import layer_stats_for

__all__ = ["MEMAT", "MEMIT", "PMET", "as_cases", "as_requests"]

DEFAULT_PRESET = "gemma3-270m"


def _check_lm(lm) -> None:
    if not isinstance(lm, LoadedModel):
        raise TypeError(f"expected a memat LoadedModel (memat.load_model(name), or memat.wrap_model(model, "
                        f"tokenizer) for a model already built), got {type(lm).__name__}")


# --------------------------------------------------------------------------------------------------
# MEMIT and PMET
# --------------------------------------------------------------------------------------------------


class MEMIT:
    """MEMIT edits of the MLP output matrices of ``hparams.layers`` (:mod:`memat.memit`).

    Args:
        hparams: a :class:`~memat.hparams.MemitHparams` (:meth:`from_hparams` loads a preset).
        lang: the language of the edits: which view of an :class:`EditCase` is edited, in which language the
            random prefixes are generated and which corpus of ``hparams.mom2_corpus`` gives the key
            statistics.
        cache: keep statistics, target vectors and edits on disk (:func:`memat.paths.cache_dir`).
        progress: progress bars.
    """

    hparams_class = MemitHparams
    kind = "memit"

    def __init__(self, hparams: MemitHparams, *, lang: str = "en", cache: bool = True, progress: bool = False):
        if type(hparams) is not self.hparams_class:
            other = "memat.PMET" if isinstance(hparams, PmetHparams) else f"{self.hparams_class.__name__}"
            raise TypeError(f"{type(self).__name__} needs {self.hparams_class.__name__}, got {type(hparams).__name__}"
                            f" (use {other})")
        self.hparams = hparams
        self.lang = lang
        self.cache = cache
        self.progress = progress

    @classmethod
    def from_hparams(cls, preset: Any = DEFAULT_PRESET, *, lang: str = "en", cache: bool = True, progress: bool = False,
                     **overrides):
        """From a preset name (``configs/<kind>/<name>.yaml``, or the presets shipped in the package), a YAML
        path, a dict or a hyperparameter object; ``overrides`` replace fields (checked like the YAML)."""
        if isinstance(preset, cls.hparams_class):
            preset = preset.to_dict()
        hp = load_hparams(preset, cls=cls.hparams_class, kind=cls.kind, **overrides)
        return cls(hp, lang=lang, cache=cache, progress=progress)

    def __repr__(self) -> str:
        hp = self.hparams
        return f"{type(self).__name__}(layers={hp.layers}, lang={self.lang!r}, {hp.description or 'no description'!r})"

    def key_stats(self, lm: LoadedModel, lang: str | None = None, *, n_samples: int | None = None,
                  corpus: str | None = None, source_dir=None) -> dict[int, torch.Tensor]:
        """E[k k^T] of the edited layers' keys (:func:`memat.stats.layer_stats`) over ``n_samples`` lines
        (default ``hparams.mom2_n_samples``) of ``corpus`` (default ``hparams.mom2_corpus[lang]``: a
        registered corpus, fetched on first use; or a text file, or ``hf:<dataset>``)."""
        _check_lm(lm)
        return layer_stats_for(lm, self.hparams, lang or self.lang, corpus=corpus, n_samples=n_samples,
                               source_dir=source_dir, use_cache=self.cache, progress=self.progress)

    def edit(self, lm: LoadedModel, requests=None, *, prompts=None, subjects=None, targets=None, lang: str | None = None,
             stats: dict[int, torch.Tensor] | None = None, n_samples: int | None = None, corpus: str | None = None,
             source_dir=None, cache: bool | None = None, progress: bool | None = None) -> WeightDelta:
        """The edit of ``requests`` (see :func:`as_requests`) as a :class:`~memat.memit.WeightDelta`; ``lm`` is
        left as it was. ``stats`` (``{layer: E[k k^T]}``) skips the key statistics, else they are computed
        by :meth:`key_stats` (``n_samples``, ``corpus``, ``source_dir``)."""
        _check_lm(lm)
        lang = lang or self.lang
        reqs = as_requests(requests, prompts=prompts, subjects=subjects, targets=targets, lang=lang)
        if not reqs:
            raise ValueError("no edit requests")
        hp = self.hparams
        bad = [l for l in hp.layers if not 0 <= l < lm.n_layers]
        if bad:
            raise ValueError(f"hparams layers {bad} out of range for {lm.name} ({lm.n_layers} layers): "
                             f"pass layers= to from_hparams, or a preset for this model")
        if stats is not None and (n_samples is not None or corpus is not None):
            raise ValueError("pass stats= or n_samples=/corpus= (to compute them), not both")
        if stats is None and hp.mom2_adjustment:
            stats = self.key_stats(lm, lang, n_samples=n_samples, corpus=corpus, source_dir=source_dir)
        return cached_memit(lm, reqs, hp, stats, lang, progress=self.progress if progress is None else progress,
                            cache=self.cache if cache is None else cache)


class PMET(MEMIT):
    """PMET edits (:mod:`memat.pmet`): the same interface as :class:`MEMIT`, with
    :class:`~memat.pmet.PmetHparams` (presets in ``configs/pmet/``)."""

    hparams_class = PmetHparams
    kind = "pmet"


# --------------------------------------------------------------------------------------------------
# MEMAT
# --------------------------------------------------------------------------------------------------


class MEMAT:
    """MEMAT's per-head corrections (:mod:`memat.memat`), trained on top of an edit.

    Args:
        hparams: a :class:`~memat.memat.MematHparams` (:meth:`from_hparams` loads a preset).
        langs: the languages whose prompts the corrections are trained on.
        cache: keep trained corrections on disk (:func:`memat.paths.cache_dir`).
        progress: progress bars.

    After :meth:`fit`, ``last_log`` holds the training log; after :meth:`locate_heads`, ``last_probes``
    the probe accuracies (:class:`~memat.heads.ProbeResult`).
    """

    def __init__(self, hparams: MematHparams, *, langs: Sequence[str] = ("en",), cache: bool = True,
                 progress: bool = False):
        if not isinstance(hparams, MematHparams):
            raise TypeError(f"MEMAT needs MematHparams, got {type(hparams).__name__}")
        self.hparams = hparams
        self.langs = _langs(langs)
        self.cache = cache
        self.progress = progress
        self.last_log: dict | None = None
        self.last_probes = None

    @classmethod
    def from_hparams(cls, preset: Any = DEFAULT_PRESET, *, langs: Sequence[str] = ("en",), cache: bool = True,
                     progress: bool = False, **overrides) -> MEMAT:
        """From a preset name (``configs/memat/<name>.yaml`` or the package's presets), a YAML path, a dict or
        a :class:`MematHparams`; ``overrides`` replace fields."""
        if isinstance(preset, MematHparams):
            preset = preset.to_dict()
        return cls(load_memat_hparams(preset, **overrides), langs=langs, cache=cache, progress=progress)

    def __repr__(self) -> str:
        hp = self.hparams
        return f"MEMAT(k={hp.k}, lr={hp.lr}, langs={self.langs}, {hp.description or 'no description'!r})"

    def fit(self, lm: LoadedModel, delta: WeightDelta | None, requests=None, *, heads: Sequence[tuple[int, int]],
            prompts=None, subjects=None, targets=None, langs: Sequence[str] | None = None, contexts=None,
            cache: bool | None = None, progress: bool | None = None) -> HeadCorrections:
        """Train one correction per head of ``heads`` (``(layer, head)`` pairs, e.g. from
        :meth:`locate_heads`) on ``requests`` (see :func:`as_requests`; requests other than
        :class:`EditCase` carry one language, ``langs[0]``) with ``delta`` applied (None: the model as it
        is). Returns :class:`~memat.memat.HeadCorrections`; apply them with ``corrections.applied(lm)``."""
        _check_lm(lm)
        if delta is not None and not isinstance(delta, WeightDelta):
            raise TypeError(f"delta: expected a MemitDelta (MEMIT.edit) or None, got {type(delta).__name__}")
        langs = self.langs if langs is None else _langs(langs)
        cases = as_cases(requests, prompts=prompts, subjects=subjects, targets=targets, lang=langs[0])
        if not cases:
            raise ValueError("no training requests")
        for i, c in enumerate(cases):
            missing = [lg for lg in langs if lg not in c.langs]
            if missing:
                raise RecordError(f"record {i}", c.case_id, "langs",
                                  f"no language {missing} (has: {sorted(c.langs)}); training languages {list(langs)}")
        corr, log = cached_corrections(lm, cases, heads, self.hparams, delta=delta, langs=langs,
                                       progress=self.progress if progress is None else progress, contexts=contexts,
                                       cache=self.cache if cache is None else cache)
        self.last_log = log
        return corr

    def locate_heads(self, lm: LoadedModel, delta: WeightDelta | None, cases, lang: str, *, k: int | None = None,
                     refine: bool = True, kinds: Sequence[str] = ("rewrite",), seed: int = 0) -> list[tuple[int, int]]:
        """The ``k`` heads (default ``hparams.k``) whose outputs best tell the new target from the true one in
        ``lang`` with ``delta`` applied (the paper's per-head probes: :func:`memat.heads.collect_probe_data`,
        :func:`memat.heads.train_probes`, :func:`memat.memat.select_heads`). ``cases`` need ``target_true``
        in ``lang`` (:func:`as_cases`); ``refine`` keeps only the cases whose edit transfers to ``lang``
        (appendix D)."""
        _check_lm(lm)
        cases = as_cases(cases, lang=lang)
        for i, c in enumerate(cases):
            if not c[lang].target_true.strip():
                raise RecordError(f"record {i}", c.case_id, "target_true", "missing: the probes compare the new target "
                                  "with the true one")
        data = collect_probe_data(lm, cases, lang, kinds=kinds, refine=refine, delta=delta, progress=self.progress)
        self.last_probes = train_probes(data, seed=seed)
        return select_heads(self.last_probes, self.hparams.k if k is None else k)


def _langs(langs) -> tuple[str, ...]:
    out = (langs,) if isinstance(langs, str) else tuple(langs)
    if not out or not all(isinstance(l, str) and l for l in out):
        raise ValueError(f"langs: expected language codes such as ('en',), got {langs!r}")
    return out
