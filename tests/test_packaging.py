"""Packaging: environment.yml (conda, GPU machines), pyproject.toml (pip) and `make setup` list the same
dependencies; the wheel ships every module and the presets; presets are found in a checkout and in an
installed package."""
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from memat import hparams

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}
PRESET_KINDS = ("memit", "pmet", "memat")


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pyproject() -> dict[str, str]:
    """Every dependency of the core and of every extra (what `make setup`'s ``.[dev]`` installs, see
    :func:`test_make_setup_installs_every_extra`), without the extras' references to memat itself."""
    project = _project()
    specs = project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]
    return {_name(s): s.replace(" ", "") for s in specs if _name(s) != "memat"}


def _conda() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for s in items:
            n = _name(s)
            if n in ("python", "pip", "-e"):
                continue
            n = CONDA_NAMES.get(n, n)
            out[n] = n + s.replace(" ", "")[len(_name(s)):]
    return out


def test_same_dependencies():
    py, conda = _pyproject(), _conda()
    assert sorted(py) == sorted(conda), f"only in pyproject: {set(py) - set(conda)}; only in environment.yml: {set(conda) - set(py)}"


def test_same_version_bounds():
    py, conda = _pyproject(), _conda()
    diff = {n: (py[n], conda[n]) for n in py if py[n] != conda.get(n)}
    assert not diff, f"version bounds differ (pyproject, environment.yml): {diff}"


def _extras_closure(extras: set[str]) -> set[str]:
    """The extras that installing ``memat[extras]`` pulls in, following the extras' ``memat[...]`` entries."""
    table = _project()["optional-dependencies"]
    todo, seen = list(extras), set()
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        assert e in table, f"memat[{e}] names no extra of pyproject.toml ({sorted(table)})"
        seen.add(e)
        for spec in table[e]:
            if _name(spec) == "memat":
                todo += [x.strip() for x in spec[spec.index("[") + 1: spec.index("]")].split(",")]
    return seen


def test_extras():
    table = _project()["optional-dependencies"]
    assert {"gguf", "notebooks", "dev"} <= set(table)
    names = {e: {_name(s) for s in specs} for e, specs in table.items()}
    assert {"gguf", "sentencepiece", "accelerate"} <= names["gguf"]
    assert {"jupyter", "papermill", "matplotlib", "seaborn"} <= names["notebooks"]
    assert {"pytest", "nbval"} <= names["dev"]
    core = {_name(s) for s in _project()["dependencies"]}
    assert "torch" in core and not core & {"jupyter", "papermill", "matplotlib", "seaborn", "pytest", "gguf"}


def test_make_setup_installs_every_extra():
    """`make setup` installs ``.[dev]``: that must still bring every extra (the notebooks, the embedded
    model), as it did when they were all core dependencies."""
    makefile = (ROOT / "Makefile").read_text()

    def rule(target: str) -> str:
        return re.search(rf"^{target}:.*?(?=^\S|\Z)", makefile, re.M | re.S).group(0)

    head = rule("setup")
    prereqs = head.splitlines()[0].split(":", 1)[1].split()  # setup: system python
    setup = "\n".join([head, *(rule(t) for t in prereqs)])
    installed = re.findall(r'pip install -e "\.\[([^\]]*)\]"', setup)
    assert installed, f"no `pip install -e \".[...]\"` in the Makefile's setup:\n{setup}"
    extras = {x.strip() for group in installed for x in group.split(",")}
    assert _extras_closure(extras) == set(_project()["optional-dependencies"])
    assert re.search(r'pip install "torch==\$\(TORCH_VERSION\)"', setup), "torch is installed pinned"


# --------------------------------------------------------------------------- what the wheel holds
def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    """pyproject.toml lists its packages (memat.presets.* are mapped onto configs/, which find cannot do):
    every folder of src/memat with an __init__.py must be in that list, and every preset kind."""
    found = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src" / "memat").rglob("__init__.py")}
    listed = set(_setuptools()["packages"])
    presets = {f"memat.presets.{k}" for k in PRESET_KINDS}
    assert listed == found | presets, f"not listed: {found - listed}; listed but absent: {listed - found - presets}"
    assert _setuptools()["package-dir"]["memat.presets"] == "configs"
    for kind in PRESET_KINDS:
        assert (ROOT / "configs" / kind).is_dir()
        assert _setuptools()["package-data"][f"memat.presets.{kind}"] == ["*.yaml"]


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the checkout (pyproject.toml, README.md, src/, configs/): building in place
    would leave build/ and src/memat.egg-info in the checkout."""
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    import shutil

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    shutil.copytree(ROOT / "configs", src / "configs", ignore=ignore)
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
                    "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                   check=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    (wheel,) = out.glob("memat-*.whl")
    return wheel


def test_wheel_ships_the_presets_and_loads_them_without_a_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {"memat/" + p.relative_to(ROOT / "src" / "memat").as_posix() for p in (ROOT / "src" / "memat").rglob("*.py")}
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    presets = {f"memat/presets/{p.parent.name}/{p.name}" for k in PRESET_KINDS for p in (ROOT / "configs" / k).glob("*.yaml")}
    assert presets and presets <= names, f"presets missing from the wheel: {sorted(presets - names)}"
    assert not any(n.startswith("memat/presets/reproduce/") for n in names)  # notebook runs, not presets

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"  # no pyproject.toml above it: not a checkout
    elsewhere.mkdir()
    code = f"""
import sys
sys.path.insert(0, {str(site)!r})
import memat
from memat import hparams
assert memat.__file__.startswith({str(site)!r}), memat.__file__
assert hparams._project_roots() == [], hparams._project_roots()
path = hparams.find_config("gemma3-270m")
assert path.is_relative_to({str(site / "memat" / "presets")!r}), path
hp = hparams.load_hparams("gemma3-270m")
print(path.relative_to({str(site)!r}).as_posix(), hp.layers)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEMAT_CACHE")}
    run = subprocess.run([sys.executable, "-I", "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    expected = hparams.load_hparams(ROOT / "configs" / "memit" / "gemma3-270m.yaml").layers
    assert run.stdout.split() == ["memat/presets/memit/gemma3-270m.yaml", *str(expected).split()]


# --------------------------------------------------------------------------- where presets are found
def test_presets_in_a_checkout_come_from_its_configs(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")  # where notebooks run
    assert hparams._project_roots() == [ROOT.resolve()]
    for kind in PRESET_KINDS:
        assert hparams.find_config("gemma3-270m", kind) == ROOT.resolve() / "configs" / kind / "gemma3-270m.yaml"


def test_the_working_directory_checkout_comes_first(tmp_path, monkeypatch):
    """Today's order: the memat checkout above the working directory, then the one memat was imported from."""
    other = tmp_path / "other"
    (other / "src" / "memat").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[project]\nname = 'memat'\n")
    (other / "configs" / "memit").mkdir(parents=True)
    (other / "configs" / "memit" / "only-here.yaml").write_text("layers: [1]\n")
    (other / "configs" / "memit" / "gemma3-270m.yaml").write_text("layers: [2]\n")
    monkeypatch.chdir(other)
    assert hparams._project_roots() == [other.resolve(), ROOT.resolve()]
    assert hparams.load_hparams("only-here").layers == [1]
    assert hparams.load_hparams("gemma3-270m").layers == [2]  # the working directory's checkout wins
    assert hparams.load_hparams("aguila-7b").layers == [4, 5, 6, 7, 8]  # then the imported checkout's
    monkeypatch.chdir(tmp_path)  # no checkout above: only the imported one
    assert hparams._project_roots() == [ROOT.resolve()]


def test_without_a_checkout_the_packaged_presets_are_used(tmp_path, monkeypatch):
    packaged = tmp_path / "presets"
    (packaged / "memit").mkdir(parents=True)
    (packaged / "memit" / "tiny.yaml").write_text("layers: [0, 1]\n")
    monkeypatch.setattr(hparams, "find_project_root", lambda *a, **k: None)
    monkeypatch.setattr(hparams, "source_checkout", lambda: None)
    monkeypatch.setattr(hparams, "_packaged_presets", lambda: packaged)
    assert hparams._project_roots() == []
    assert hparams.find_config("tiny") == packaged / "memit" / "tiny.yaml"
    assert hparams.load_hparams("tiny").layers == [0, 1]
    with pytest.raises(FileNotFoundError, match=r"not one of \['tiny'\]"):
        hparams.find_config("gemma3-270m")
    monkeypatch.setattr(hparams, "_packaged_presets", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"not one of \[\]"):
        hparams.find_config("tiny")


def test_a_checkout_has_no_packaged_presets():
    """In a source checkout the presets are configs/ (src/memat/presets does not exist)."""
    if not (ROOT / "src" / "memat" / "hparams.py").samefile(hparams.__file__):
        pytest.skip("memat is not imported from this checkout")
    assert hparams._packaged_presets() is None
