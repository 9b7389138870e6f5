"""Data layer of ``memat``: raw data set registry and fetching, loaders to :class:`EditCase`.

Typical use::

    from memat.data import load_dataset, select_cases
    res = load_dataset("bmike53_counterfact")          # fetched/verified into the data dir
    print(res.summary())                               # counterfact_test_ca.json: 977 cases loaded, 54 skipped (...)
    cases = select_cases(res, 100, seed=0)
    he = load_dataset("bmike53_counterfact", langs=("en", "he"))  # counterfact_test_he.json (BMIKE53_LANGS)
    print(he.skipped)                                  # {'missing_language': 17, 'subject_not_in_prompt': 64}

Layering: ``memat.data`` is the bottom of the package. Its modules import, from memat, only each other
and *leaf* modules, those that import nothing from memat (it uses :mod:`memat.io`, :mod:`memat.paths`
and :mod:`memat.devices`), whether at module level, inside functions or for type checking, so that nothing
above the data layer (models, editing, experiments, report) is ever imported from it and no import circle
can pass through it. Within the layer, :mod:`~memat.data.dataset` (:func:`load_dataset`) is on top: the
loaders never import the builder, which reads and writes through them. ``tests/test_imports.py`` checks
these rules.
"""
from .fetch import (
    ChecksumError,
    FetchError,
    FetchReport,
    data_dir,
    ensure_all,
    ensure_dataset,
    fetch_dataset,
)
from .dataset import load_dataset
from .loaders import (
    BMIKE53_CI_LANGS,
    BMIKE53_LANGS,
    FALLBACK_QUESTION_TEMPLATE,
    KL_PROMPTS,
    QUESTION_TEMPLATES,
    DataFileError,
    LoadResult,
    bmike53_file,
    detect_format,
    dump_memat,
    load_bmike53,
    load_counterfact_easyedit,
    load_counterfact_rome,
    load_memat,
    select_cases,
    subject_jaccard,
)
from .records import EditCase, LangView, RecordError
from .sources import REGISTRY, DataSource, SourceFile, get_source

__all__ = [
    "EditCase",
    "LangView",
    "RecordError",
    "DataFileError",
    "LoadResult",
    "QUESTION_TEMPLATES",
    "FALLBACK_QUESTION_TEMPLATE",
    "KL_PROMPTS",
    "BMIKE53_LANGS",
    "BMIKE53_CI_LANGS",
    "bmike53_file",
    "load_counterfact_easyedit",
    "load_bmike53",
    "load_counterfact_rome",
    "load_memat",
    "dump_memat",
    "load_dataset",
    "detect_format",
    "select_cases",
    "subject_jaccard",
    "ChecksumError",
    "FetchError",
    "FetchReport",
    "data_dir",
    "ensure_dataset",
    "ensure_all",
    "fetch_dataset",
    "REGISTRY",
    "DataSource",
    "SourceFile",
    "get_source",
]
