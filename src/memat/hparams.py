"""Typed hyperparameters loaded from YAML with type checks (after MEMIT's ``HyperParams``).

YAML 1.1 reads ``5e-1`` as a *string*; a float field given a string is an error that says so, rather
than a silent ``TypeError`` deep inside the optimiser.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from .paths import find_project_root, source_checkout

__all__ = ["HparamsError", "MemitHparams", "load_hparams", "find_config", "check_types"]


class HparamsError(ValueError):
    pass


def _check(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise HparamsError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        errors = []
        for a in args:
            try:
                return _check(value, a, where)
            except HparamsError as e:
                errors.append(str(e))
        raise HparamsError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is not None:
            raise HparamsError(f"{where}: expected null, got {value!r}")
        return None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise HparamsError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise HparamsError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        return origin(_check(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise HparamsError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_check(k, kt, where): _check(v, vt, f"{where}[{k!r}]") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (YAML 1.1 reads '5e-1' as a string: write 5.0e-1 or 0.5)" if isinstance(value, str) else ""
            raise HparamsError(f"{where}: expected a number, got {type(value).__name__} {value!r}{hint}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HparamsError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise HparamsError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise HparamsError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    return value


def check_types(cls, data: dict, source: str):
    """Build dataclass ``cls`` from ``data``: unknown keys and wrong types raise, naming ``source`` and the field."""
    if not isinstance(data, dict):
        raise HparamsError(f"{source}: expected a mapping of hyperparameters, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise HparamsError(f"{source}: unknown field(s) {unknown}; known: {sorted(names)}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise HparamsError(f"{source}: missing required field(s) {missing}")
    kwargs = {k: _check(v, hints[k], f"{source}: field '{k}'") for k, v in data.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(source)
    return obj


@dataclass
class MemitHparams:
    """MEMIT hyperparameters (names follow the reference implementation)."""

    layers: list[int]
    v_num_grad_steps: int = 20
    v_lr: float = 0.5
    v_weight_decay: float = 0.5
    clamp_norm_factor: float = 0.75
    kl_factor: float = 0.0625
    early_stop_loss: float = 0.05
    fact_token: Literal["subject_last"] = "subject_last"
    mom2_adjustment: bool = True
    mom2_update_weight: float = 15000.0
    # corpus of the key statistics for each editing language ("wikitext2", "globalvoices",
    # "catalan_cc0", a text file path, or "hf:<dataset>")
    mom2_corpus: dict[str, str] = field(default_factory=lambda: {"en": "wikitext2", "ca": "globalvoices"})
    mom2_n_samples: int = 10000
    mom2_max_len: int = 128
    mom2_dtype: Literal["float32", "float64"] = "float32"
    # where the closed-form solve (memat.memit.closed_form_update) runs and in what precision: "cpu" moves one
    # layer's keys, residuals and E[k k^T] to the host (the statistics are stored there: d_ff^2 per layer, 2.6 GB
    # in float64 for Falcon-7B) and keeps the solve off the accelerator; "model" solves on the model's device.
    # The update is added to the weights in float32 and cast once, whatever these are.
    solve_device: Literal["cpu", "model"] = "cpu"
    solve_dtype: Literal["float64", "float32"] = "float64"
    # random-prefix context templates: [[n_tokens, count], ...]; "{}" alone is always included
    context_templates: list[list[int]] = field(default_factory=lambda: [[10, 5]])
    batch_size: int = 32
    description: str = ""

    def validate(self, source: str = "hparams") -> None:
        if not self.layers:
            raise HparamsError(f"{source}: field 'layers' must name at least one layer")
        if sorted(self.layers) != list(self.layers) or len(set(self.layers)) != len(self.layers):
            raise HparamsError(f"{source}: field 'layers' must be strictly increasing, got {self.layers}")
        for name in ("v_lr", "clamp_norm_factor", "mom2_update_weight"):
            if getattr(self, name) <= 0:
                raise HparamsError(f"{source}: field '{name}' must be > 0, got {getattr(self, name)}")
        for pair in self.context_templates:
            if len(pair) != 2 or min(pair) < 1:
                raise HparamsError(f"{source}: field 'context_templates' items are [n_tokens, count] >= 1, got {pair}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Where an installed package keeps its presets: ``memat/presets/<kind>/<name>.yaml`` (the wheel maps the
#: checkout's ``configs/`` there, see ``pyproject.toml``).
PACKAGED_PRESETS = "presets"


def _project_roots() -> list[Path]:
    """The project roots whose ``configs/`` folder holds presets, in lookup order: the memat checkout at or
    above the working directory (:func:`memat.paths.find_project_root`; notebooks run in ``notebooks/``),
    then the checkout this package was imported from (:func:`memat.paths.source_checkout`; an editable
    install used from elsewhere). A wheel install has neither: see :func:`_packaged_presets`."""
    roots: list[Path] = []
    for root in (find_project_root(), source_checkout()):
        if root is not None and (root / "configs").is_dir() and root.resolve() not in roots:
            roots.append(root.resolve())
    return roots


def _packaged_presets() -> Path | None:
    """``memat/presets`` inside the installed package (a wheel ships the presets there), or ``None`` (a
    source checkout, whose presets are its ``configs/``, or a package that is not on the file system)."""
    try:
        folder = resources.files(__package__ or "memat") / PACKAGED_PRESETS
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - hparams loaded outside its package
        return None
    return folder if isinstance(folder, Path) and folder.is_dir() else None


def _preset_dirs(kind: str) -> list[Path]:
    """The folders searched for ``<name>.yaml`` presets of ``kind``, in order: ``configs/<kind>`` of each of
    :func:`_project_roots`, then the installed package's ``presets/<kind>``."""
    dirs = [root / "configs" / kind for root in _project_roots()]
    packaged = _packaged_presets()
    if packaged is not None:
        dirs.append(packaged / kind)
    return dirs


def find_config(name: str | Path, kind: str = "memit") -> Path:
    """A YAML path as given, or the preset ``<name>.yaml`` of ``kind``: ``configs/<kind>/`` of the project
    (:func:`_project_roots`), else the presets shipped inside the installed package."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    dirs = _preset_dirs(kind)
    for d in dirs:
        cand = d / f"{name}.yaml"
        if cand.exists():
            return cand
    avail = sorted({c.stem for d in dirs for c in d.glob("*.yaml")})
    raise FileNotFoundError(f"no {kind} config {str(name)!r}: not a YAML file, and not one of {avail}")


def load_hparams(name: str | Path | dict, cls=MemitHparams, kind: str = "memit", **overrides):
    """Load a typed hparams dataclass from a preset name, a YAML path or a dict; ``overrides`` win."""
    if isinstance(name, dict):
        data, source = dict(name), "hparams dict"
    else:
        path = find_config(name, kind)
        source = str(path)
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):  # e.g. a YAML list: report it as check_types would, not as AttributeError
        raise HparamsError(f"{source}: expected a mapping of hyperparameters, got {type(data).__name__}")
    data.update(overrides)
    return check_types(cls, data, source)
