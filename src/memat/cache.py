"""The disk caches of what memat computes once: one content key and one read-or-compute.

Six kinds of results are kept under :func:`memat.paths.cache_dir` (each with its own key, built by the
module that computes it; the digests and file names below are those of every earlier release):

========================  =====================================================  ===============================
kind                      file                                                   key
========================  =====================================================  ===============================
key statistics            ``stats/<model>/<fp>_<corpus>_<lang>_L<l>_n<n>_len<m>_  metadata checked field by field
                          <dtype>.safetensors``                                  (:func:`memat.stats.layer_stats`)
target vectors            ``targets/<model>/<key[:32]>.safetensors``             :func:`memat.memit.target_cache_keys`
edits (MEMIT, PMET)       ``deltas/<model>/<key[:32]>.safetensors``              :func:`memat.memit.memit_cache_key`
MEMAT corrections         ``corrections/<model>/<key[:32]>.safetensors``         :func:`memat.memat.corrections_cache_key`
scaling measurements      ``measured/<name>/<key[:32]>.safetensors`` + ``.json`` :func:`memat.scaling.measured_cache`
context templates         ``contexts/<model>/<key[:32]>.json``                   :func:`memat.requests.context_templates`
========================  =====================================================  ===============================

* :func:`content_key`: sha256 of canonical JSON (``sort_keys``, ``default=str``); :func:`tensors_key`:
  sha256 of named tensors' float32 bytes.
* :func:`cached` (one entry) and :func:`read` / :func:`write` (entries computed in one batch): an entry
  that exists is loaded; one that cannot be used (unreadable, truncated, another key, a failed check) is
  reported with ``warnings.warn`` naming the file and the error, computed again and rewritten. Errors of
  the computation (and of writing) are never caught. Writes are atomic (:func:`memat.io.atomic_path`).
* :func:`register_edit_method` / :func:`edit_method`: which function computes an edit for a
  hyperparameters class (MEMIT for :class:`~memat.hparams.MemitHparams`, PMET for
  :class:`~memat.pmet.PmetHparams`), filled by :mod:`memat.memit` and :mod:`memat.pmet` when imported, so
  that :func:`memat.memit.cached_memit` dispatches without importing :mod:`memat.pmet`.

This module imports nothing of memat but :mod:`memat.io` and :mod:`memat.paths`.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from .io import atomic_path
from .paths import cache_dir

__all__ = [
    "CacheEntryError",
    "UnreadableFile",
    "cached",
    "canonical_json",
    "check_key",
    "content_key",
    "edit_method",
    "entry_path",
    "read",
    "register_edit_method",
    "tensors_key",
    "write",
]

#: The noun of each kind in warnings ("target cache <file> is unreadable ...").
LABELS = {"stats": "statistics", "targets": "target", "deltas": "edit", "corrections": "corrections",
          "contexts": "context templates"}


class CacheEntryError(ValueError):
    """A cache entry that was read but cannot be used: written for another key, or a failed check."""


class UnreadableFile(Exception):
    """Raised by a ``load`` for another file of the entry than its main one (a sidecar record): the
    warning then names ``path`` and reports ``error``."""

    def __init__(self, path: str | os.PathLike, error: BaseException):
        super().__init__(f"{path}: {type(error).__name__}: {error}")
        self.path = Path(path)
        self.error = error


# ------------------------------------------------------------------------------------------ keys


def canonical_json(obj: Any) -> str:
    """``json.dumps(obj, sort_keys=True, default=str)``: the text every content key hashes."""
    return json.dumps(obj, sort_keys=True, default=str)


def content_key(*parts: Any) -> str:
    """sha256 (hex) of the concatenated :func:`canonical_json` of ``parts``. One part is the usual key (a
    payload dict); the target-vector keys hash a shared part and a per-request part."""
    return hashlib.sha256("".join(canonical_json(p) for p in parts).encode()).hexdigest()


def tensors_key(named: Iterable[tuple[Any, Any]]) -> str:
    """sha256 (hex) of ``str(name)`` and the float32 bytes of each tensor, in the order given."""
    h = hashlib.sha256()
    for name, t in named:
        h.update(str(name).encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ entries


def entry_path(kind: str, key: str = "", model: str | None = None, *, name: str | None = None,
               root: str | os.PathLike | None = None, suffix: str = ".safetensors") -> Path:
    """``<root>/<kind>/[<model>/]<name or key[:32]><suffix>``; ``root`` defaults to
    :func:`memat.paths.cache_dir`, a model name's ``/`` becomes ``__``."""
    folder = (Path(root) if root is not None else cache_dir()) / kind
    if model is not None:
        folder = folder / model.replace("/", "__")
    return folder / f"{name if name is not None else key[:32]}{suffix}"


def read(path: Path, load: Callable[[Path], Any], label: str) -> Any | None:
    """``load(path)`` if the file exists, else ``None``. Any error of ``load`` (it only reads) is reported
    with ``warnings.warn`` naming the file and the error ("<label> cache <file> is unreadable (<error>);
    recomputing", or "cannot be used" for a :class:`CacheEntryError`: another key, a failed check), and
    gives ``None``: the entry is computed again. ``load`` must not return ``None``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        value = load(path)
    except Exception as e:  # noqa: BLE001 - reading only (compute is never called here): reported, recomputed
        file, error = (e.path, e.error) if isinstance(e, UnreadableFile) else (path, e)
        what = "cannot be used" if isinstance(error, CacheEntryError) else "is unreadable"
        warnings.warn(f"{label} cache {file} {what} ({type(error).__name__}: {error}); recomputing")
        return None
    if value is None:
        raise TypeError(f"the load function of {label} cache {path} returned None")
    return value


def write(path: Path, value: Any, save: Callable[[Any, Path], Any]) -> None:
    """``save(value, tmp)`` to a temporary file beside ``path``, renamed to ``path`` when it returns; an
    error of ``save`` propagates and leaves ``path`` as it was."""
    with atomic_path(path) as tmp:
        save(value, tmp)


def cached(
    kind: str,
    key: str,
    compute: Callable[[], Any],
    save: Callable[[Any, Path], Any],
    load: Callable[[Path], Any],
    *,
    model: str | None = None,
    name: str | None = None,
    root: str | os.PathLike | None = None,
    refresh: bool = False,
    label: str | None = None,
    suffix: str = ".safetensors",
) -> tuple[Any, bool]:
    """The entry of ``kind`` for ``key`` (file :func:`entry_path`), computed once.

    If the file exists (and not ``refresh``), ``load(path)`` is returned; ``load`` checks that the entry
    is ``key``'s (raising, e.g. :class:`CacheEntryError`, if not). An entry that cannot be used is
    reported (:func:`read`) and recomputed. Otherwise ``compute()`` runs (its errors propagate) and its
    result is written atomically with ``save(result, tmp)`` (:func:`write`). Returns ``(result, fresh)``,
    ``fresh`` True when computed by this call."""
    path = entry_path(kind, key, model, name=name, root=root, suffix=suffix)
    label = label or LABELS.get(kind, kind)
    if not refresh:
        value = read(path, load, label)
        if value is not None:
            return value, False
    value = compute()
    write(path, value, save)
    return value, True


def check_key(stored: Any, key: str) -> None:
    """Raise :class:`CacheEntryError` unless an entry's ``stored`` key is ``key`` (the file name holds only
    its first 32 characters)."""
    if stored != key:
        raise CacheEntryError(f"written for key {stored!r}, not {key!r}")


# ------------------------------------------------------------------------------------------ edit methods

_EDIT_METHODS: dict[type, Callable[..., Any]] = {}


def register_edit_method(hparams_cls: type, edit: Callable[..., Any]) -> None:
    """Make ``edit`` compute the edits of ``hparams_cls`` (and of its subclasses without their own).

    ``edit(lm, requests, hp, stats, lang, contexts, progress, cache)`` returns a
    :class:`~memat.memit.MemitDelta`; ``cache`` says whether intermediate results (MEMIT's target
    vectors) may be read from and written to the cache. The module defining a hyperparameters class
    registers its method at import, so a method is known whenever one of its hyperparameters exists."""
    _EDIT_METHODS[hparams_cls] = edit


def edit_method(hp: Any) -> Callable[..., Any]:
    """The edit function registered for the most specific class of ``hp`` (its MRO)."""
    for cls in type(hp).__mro__:
        if cls in _EDIT_METHODS:
            return _EDIT_METHODS[cls]
    raise TypeError(f"no edit method for hyperparameters of type {type(hp).__name__} "
                    f"(registered: {sorted(c.__name__ for c in _EDIT_METHODS)})")
