"""One entry point, :func:`load_dataset`: an editing data set by registered name, build name or path.

It sits above the modules it dispatches to (:mod:`~memat.data.loaders` for the file formats,
:mod:`~memat.data.build` for the bilingual builds, :mod:`~memat.data.fetch` for the raw files), so that
none of them imports another one back: the builder reads and writes through the loaders, and only this
module knows that a name can also be a build.
"""
from __future__ import annotations

import os
from typing import Any

from .build import DEFAULT_NAME, ensure_built, load_built, read_build_info
from .fetch import ensure_dataset
from .loaders import EDIT_DATASETS, LoadResult, bmike53_file, load_bmike53, load_counterfact_easyedit, load_path
from .sources import REGISTRY

__all__ = ["load_dataset"]


def load_dataset(name_or_path: str | os.PathLike, **kw: Any) -> LoadResult:
    """Load an editing data set by registered name or by path (format detected from the content).

    Names: ``"counterfact_en_ca"`` (the bilingual CounterFact built by notebook 01 /
    :mod:`memat.data.build`, built with the defaults on first use; any other build name of
    ``data/derived`` works too; kw: ``langs``, ``source_dir`` ...), ``"counterfact_easyedit_full"`` (kw: ``split``, ``lang``, ``kl_prompt``, ``strict``) and
    ``"bmike53_counterfact"`` (kw: ``langs``, which picks the file with :func:`bmike53_file`:
    ``langs=("en", "de")`` reads ``counterfact_test_de.json``, no ``langs`` the default
    ``counterfact_test_ca.json`` with en and ca; or ``file``, a test file of the data set by name;
    ``question_templates``, ``kl_prompts``, ``strict``); they are resolved through
    :func:`memat.data.fetch.ensure_dataset` (BMIKE-53: only the file read), which takes the keywords
    ``source_dir``, ``data_dir`` and ``offline``. Paths: a directory with ``counterfact-*.json``
    (EasyEdit) or ``*_CF.json`` (MEMAT) files, or a JSON file in any supported schema
    (:func:`memat.data.loaders.load_path`). For BMIKE-53 and MEMAT files without ``langs``, every
    language of the first record is kept.
    """
    name = str(name_or_path)
    if name == DEFAULT_NAME or (os.sep not in name and not name.endswith(".json") and _is_build(name)):
        # where the raw files are: used to make the default build on first use (Apertium; a minute or two),
        # and not needed to read any build already made
        raw = {k: kw.pop(k) for k in ("source_dir", "data_dir", "offline") if k in kw}
        if name == DEFAULT_NAME:
            ensure_built(name, **raw)
        return load_built(name, **kw)
    if name in EDIT_DATASETS:
        where = {"source_dir": kw.pop("source_dir", None), "data_dir": kw.pop("data_dir", None),
                 "offline": kw.pop("offline", False)}
        if name == "counterfact_easyedit_full":
            return load_counterfact_easyedit(ensure_dataset(name, **where), **kw)
        file = kw.pop("file", None)
        if file is None:
            file = bmike53_file(kw.get("langs"))
        else:
            test_files = [f.local for f in REGISTRY[name].files if f.local.startswith("counterfact_test")]
            if file not in test_files:
                raise ValueError(
                    f"file={file!r} is not a test file of {name}; its test files: {', '.join(test_files)}"
                )
        return load_bmike53(ensure_dataset(name, files=[file], **where) / file, **kw)
    if name in REGISTRY:
        raise ValueError(f"{name!r} is a registered data set but not an editing data set; editing: {list(EDIT_DATASETS)}")
    return load_path(name_or_path, **kw)


def _is_build(name: str) -> bool:
    try:
        return read_build_info(name) is not None
    except ValueError:  # not a valid build name
        return False
