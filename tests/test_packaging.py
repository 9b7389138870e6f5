"""environment.yml (conda, GPU machines) and pyproject.toml (pip) must list the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    specs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return {_name(s): s.replace(" ", "") for s in specs}


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
