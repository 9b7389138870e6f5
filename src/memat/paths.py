"""Where memat's files are: the project root and the user cache directory.

This module is at the bottom of the import graph (it imports nothing from memat), so any module, ``data/``
included, can use it without an import circle.

The project root (:func:`project_root`) is found, in order:

1. the nearest directory at or above ``start`` (default: the working directory; notebooks run in
   ``notebooks/``), itself included, holding a ``pyproject.toml`` file and a ``src/memat`` folder
   (:func:`find_project_root`);
2. else the source checkout this package was imported from (``src/memat/paths.py`` two folders below a
   ``pyproject.toml``: an editable install run from another directory);
3. else ``start`` itself (default: the working directory), e.g. for a wheel install.

:func:`find_project_root` is step 1 alone and returns ``None`` when there is no project above ``start``:
the data layer then falls back to the user cache instead of writing into some other directory. With
``require_src=False`` any ``pyproject.toml`` marks a project, the rule :func:`memat.data.fetch.project_root`
has always followed.

The cache directory (:func:`cache_dir`) is ``$MEMAT_CACHE``, else ``$XDG_CACHE_HOME/memat``, else
``~/.cache/memat``; nothing is created here.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "find_project_root", "project_root", "source_checkout"]


def find_project_root(start: str | os.PathLike | None = None, *, require_src: bool = True) -> Path | None:
    """The nearest directory at or above ``start`` (default: the working directory), itself included, that
    holds a ``pyproject.toml`` file and (unless ``require_src=False``) a ``src/memat`` folder; ``None`` if
    there is none. The path is resolved (absolute, no symlinks)."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (not require_src or (d / "src" / "memat").is_dir()):
            return d
    return None


def source_checkout() -> Path | None:
    """The source checkout this package was imported from (the folder holding ``pyproject.toml`` two levels
    above ``src/memat/``), or ``None`` when it was installed from a wheel."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else None


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The project root: :func:`find_project_root` from ``start`` (default: the working directory), else
    :func:`source_checkout`, else ``start`` (default: the working directory). Never ``None``: notebooks and
    the reproduce runner write their results and figures below it."""
    found = find_project_root(start)
    if found is not None:
        return found
    checkout = source_checkout()
    if checkout is not None:
        return checkout
    return Path(start).resolve() if start is not None else Path.cwd()


def cache_dir() -> Path:
    """``$MEMAT_CACHE`` or ``$XDG_CACHE_HOME/memat`` or ``~/.cache/memat`` (not created here): converted
    models, statistics, target vectors, edits, corrections, scores and measurements live below it."""
    env = os.environ.get("MEMAT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "memat"
