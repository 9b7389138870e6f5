"""Where memat's files are (memat.paths): the project root, its fallbacks, the cache directory, and that the
module stays at the bottom of the import graph."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import memat
from memat import paths
from memat.paths import cache_dir, find_project_root, project_root, source_checkout


def _project(where: Path) -> Path:
    """A fake memat project: ``pyproject.toml`` and ``src/memat`` (and ``notebooks/``, where notebooks run)."""
    (where / "src" / "memat").mkdir(parents=True)
    (where / "notebooks" / "deeper").mkdir(parents=True)
    (where / "pyproject.toml").write_text("[project]\nname = 'fake'\n")
    return where.resolve()


# --------------------------------------------------------------------------- the project root
def test_project_root_is_found_from_a_nested_working_directory(tmp_path, monkeypatch):
    proj = _project(tmp_path / "proj")
    monkeypatch.chdir(proj / "notebooks" / "deeper")
    assert find_project_root() == proj
    assert project_root() == proj
    monkeypatch.chdir(proj)  # the directory itself counts
    assert project_root() == proj
    # from an explicit start, whatever the working directory
    monkeypatch.chdir(tmp_path)
    assert project_root(proj / "notebooks") == proj
    assert find_project_root(str(proj / "notebooks" / "deeper")) == proj


def test_a_pyproject_without_src_memat_is_another_project(tmp_path, monkeypatch):
    """A nested pyproject.toml without src/memat (a vendored tool, a data folder) is passed over by default;
    with ``require_src=False`` (the data layer's rule) it is the root."""
    proj = _project(tmp_path / "proj")
    other = proj / "notebooks" / "deeper"
    (other / "pyproject.toml").write_text("[project]\nname = 'other'\n")
    monkeypatch.chdir(other)
    assert find_project_root() == proj and project_root() == proj
    assert find_project_root(require_src=False) == other
    from memat.data import fetch

    assert fetch.project_root() == other  # memat.data.fetch keeps its rule: any pyproject.toml


def test_fallbacks_when_no_project_is_above(tmp_path, monkeypatch):
    lone = tmp_path / "lone"
    lone.mkdir()
    monkeypatch.chdir(lone)
    assert find_project_root() is None
    from memat.data import fetch

    assert fetch.project_root() is None  # then data_dir() is the user cache
    # the source checkout this package was imported from ...
    monkeypatch.setattr(paths, "source_checkout", lambda: tmp_path / "checkout")
    assert project_root() == tmp_path / "checkout"
    # ... else the start, else the working directory (a wheel install)
    monkeypatch.setattr(paths, "source_checkout", lambda: None)
    assert project_root() == lone.resolve()
    assert project_root(tmp_path) == tmp_path.resolve()


def test_source_checkout_is_the_tree_memat_was_imported_from():
    here = Path(memat.__file__).resolve().parents[2]
    if not (here / "pyproject.toml").is_file():
        pytest.skip("memat is installed from a wheel, not imported from a source checkout")
    assert source_checkout() == here


def test_the_old_names_are_this_one_function():
    """Notebooks and tests use the old names: they are re-exports, not copies."""
    from memat import experiments, models, reproduce, stats

    assert experiments.project_root is project_root and reproduce.project_root is project_root
    assert models.cache_dir is cache_dir and stats.cache_dir is cache_dir


# --------------------------------------------------------------------------- the cache directory
def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEMAT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "memat"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "memat"
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"  # $MEMAT_CACHE wins over $XDG_CACHE_HOME, and is used as is
    monkeypatch.setenv("MEMAT_CACHE", "")  # empty: not set
    assert cache_dir() == tmp_path / "xdg" / "memat"
    assert not (tmp_path / "xdg").exists()  # nothing is created


# --------------------------------------------------------------------------- the bottom of the import graph
def test_paths_imports_nothing_from_memat():
    """memat.paths is imported by every layer (data/ included), so it must import no memat module (no
    circle can go through it); it needs the standard library only."""
    tree = ast.parse(Path(paths.__file__).read_text(encoding="utf-8"))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in memat/paths.py: from {'.' * node.level}{node.module or ''}"
            imported.append(node.module or "")
    assert imported, "no import parsed: the test would pass for the wrong reason"
    tops = {name.split(".")[0] for name in imported}
    assert "memat" not in tops
    assert tops <= set(sys.stdlib_module_names) | {"__future__"}, f"not standard library: {tops - set(sys.stdlib_module_names)}"
