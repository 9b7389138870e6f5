"""A dry run of a reproduce config: every notebook of it, end to end and in order, on a tiny random model of
the config's architecture, with the sizes scaled down by one override (``memat reproduce --config
configs/reproduce/paper.yaml --dry-run-model tiny-falcon``; issue 15, part 1).

What it proves: the config is complete (every notebook gets the parameters it needs, and they fit the
notebooks' parameters cells), each notebook runs from the results of the ones before it, and the code path
of the config's architecture (Falcon, multi-query attention, Aguila-7B's layout) works through MEMIT, PMET,
the probes, MEMAT, the scaling and the learning-rate sweeps. What it does not: any number. The model is
random, so nothing it writes is a result; everything goes under ``build/dry-run/<config>/`` (git-ignored):
the executed notebooks and stamps, the results files, the figures and the report.

The override (``configs/reproduce/dry-run.yaml``, :class:`DryRunSpec`) has four parts:

* ``model``: the tiny model, built from a config of the named architecture (``tiny-falcon``: Falcon-7B's
  layout, 10 layers of 8 heads, hidden 64) with random weights (seed 0) and the embedded model's
  tokenizer (no hub here), saved once to ``<cache>/models/tiny-<arch>-<hash>``. ``--dry-run-model`` also
  takes a model path or id, used as it is.
* ``parameters``: notebook parameter -> value, applied to every notebook that has the parameter (sizes:
  ``N_EDITS``, ``N_CASES``, ``I_RANGE``, ...); what the config sets otherwise stays, so the config's
  choices (``K_SWEEP``, the settings, the presets' layers) are what runs.
* ``hparams``: field overrides of the presets the config names (``memit``, ``pmet``, ``memat``): the
  notebooks get scaled copies (``build/dry-run/<config>/presets/``) of the config's presets, not the
  embedded model's.
* ``rename``: substring replacements in the config's string parameters (``_aguila`` -> ``_dry_run``), so the
  data build and result names of the dry run never collide with a real run's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .io import atomic_dir, atomic_write_text
from .reproduce import ConfigError, NotebookSpec, ReproduceConfig, _defaults, read_mapping

__all__ = ["DryRunSpec", "DRY_RUN_SPEC", "TINY_ARCHITECTURES", "load_dry_run_spec", "tiny_model", "dry_run_config"]

#: The override of ``memat reproduce --dry-run-model`` (relative to the project root).
DRY_RUN_SPEC = "configs/reproduce/dry-run.yaml"

#: Tiny architectures ``--dry-run-model tiny-<arch>`` builds: the transformers config class and the fixed
#: fields of the paper's model of that family (Falcon-7B / Aguila-7B: parallel attention and MLP, one shared
#: KV head, no biases, rotary positions).
TINY_ARCHITECTURES: dict[str, tuple[str, dict]] = {
    "falcon": ("FalconConfig", {"multi_query": True, "new_decoder_architecture": False, "parallel_attn": True,
                                "bias": False, "alibi": False}),
}

#: Which preset kind each notebook parameter names, and how the notebooks load it.
PRESET_PARAMETERS: dict[str, str] = {"HPARAMS": "memit", "PMET_HPARAMS": "pmet", "MEMAT_HPARAMS": "memat"}
_SPEC_KEYS = {"description", "model", "parameters", "hparams", "rename"}


@dataclass
class DryRunSpec:
    model: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str = "dry-run spec"


def load_dry_run_spec(source: str | Path | Mapping, root: Path) -> DryRunSpec:
    """The override from a YAML path (relative to ``root`` if not found as given) or a mapping; its structure
    is checked here (the message names the file and key)."""
    data, where = read_mapping(source, root, "dry-run spec", _SPEC_KEYS,
                               "a mapping with 'model', 'parameters', 'hparams', 'rename'")
    model = data.get("model")
    if not isinstance(model, dict) or model.get("arch") not in TINY_ARCHITECTURES:
        raise ConfigError(f"{where}: 'model' must be a mapping with 'arch' one of {sorted(TINY_ARCHITECTURES)}, "
                          f"got {model!r}")
    for key in ("parameters", "hparams", "rename"):
        if not isinstance(data.get(key) or {}, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping")
    hparams = data.get("hparams") or {}
    bad = sorted(set(hparams) - set(PRESET_PARAMETERS.values()))
    if bad or not all(isinstance(v, dict) for v in hparams.values()):
        raise ConfigError(f"{where}: 'hparams' maps {sorted(set(PRESET_PARAMETERS.values()))} to field overrides, "
                          f"got {hparams!r}")
    rename = data.get("rename") or {}
    if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in rename.items()):
        raise ConfigError(f"{where}: 'rename' maps non-empty strings to strings, got {rename!r}")
    return DryRunSpec(model=dict(model), parameters=dict(data.get("parameters") or {}), hparams=dict(hparams),
                      rename=dict(rename), description=str(data.get("description", "")), source=where)


# --------------------------------------------------------------------------- the tiny model
def _tiny_config(model: Mapping[str, Any], tokenizer):
    import transformers

    arch = model["arch"]
    cls_name, fixed = TINY_ARCHITECTURES[arch]
    sizes = {k: v for k, v in model.items() if k != "arch"}
    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    try:
        return getattr(transformers, cls_name)(**{**fixed, **sizes, **ids})
    except TypeError as e:
        raise ConfigError(f"dry-run model {arch}: {e}") from e


def tiny_model(model: Mapping[str, Any], refresh: bool = False) -> Path:
    """The tiny random model of ``model`` (``{"arch": "falcon", "hidden_size": 64, ...}``: the architecture
    and the config fields that size it), with the embedded model's tokenizer, saved once under the cache
    (``<cache>/models/tiny-<arch>-<sha256 of the spec and tokenizer, 12>``, written to a temporary folder
    and renamed into place). Its weights are transformers' initialisation under ``torch.manual_seed(0)``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import embedded_checkpoint
    from .paths import cache_dir

    tok_dir = embedded_checkpoint()
    tok_hash = hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps({"model": dict(model), "tokenizer": tok_hash, "seed": 0},
                                    sort_keys=True).encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"tiny-{model['arch']}-{key}"
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists() and not refresh:
        return target
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    cfg = _tiny_config(model, tokenizer)
    torch.manual_seed(0)
    net = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with atomic_dir(target) as tmp:
        net.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


# --------------------------------------------------------------------------- the derived config
def _renamed(value: Any, rename: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for a, b in rename.items():
            value = value.replace(a, b)
    return value


def _scaled_preset(kind: str, name: Any, overrides: Mapping[str, Any], out_dir: Path, where: str) -> str:
    """A copy of the ``kind`` preset ``name`` with ``overrides``, type-checked by the loader, written as YAML to
    ``out_dir``; its path, relative to the notebooks' folder's parent (the project root)."""
    from .hparams import HparamsError, MemitHparams, load_hparams

    cls = MemitHparams
    if kind == "pmet":
        from .pmet import PmetHparams as cls
    elif kind == "memat":
        from .memat import MematHparams as cls
    try:
        hp = load_hparams(name, cls=cls, kind=kind, **dict(overrides))
    except (HparamsError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: the {kind} preset {name!r} with the dry run's overrides: {e}") from e
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}-{Path(str(name)).stem}.yaml"
    text = f"# {kind} preset {name!r} scaled down for a dry run (memat.dryrun); not a result setting\n"
    text += yaml.safe_dump(hp.to_dict(), sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)
    return str(path.resolve())


def dry_run_config(config: ReproduceConfig, spec: DryRunSpec, model: str | Path) -> ReproduceConfig:
    """``config`` as a dry run: each notebook's ``MODEL`` is ``model``; the spec's ``parameters`` replace the
    config's values in every notebook that has them; the presets it names are scaled copies; string
    parameters renamed; runs, results, figures and report under ``build/dry-run/<config name>/``.
    Raises :class:`ConfigError` naming the notebook for a config the dry run cannot derive."""
    stem = Path(config.source).stem if config.source not in ("config", "reproduce config") else "config"
    base = Path("build") / "dry-run" / stem
    presets = config.root / base / "presets"
    scaled: dict[tuple[str, str], str] = {}  # (kind, preset) -> the scaled copy, written once for all notebooks
    notebooks = []
    for nb in config.notebooks:
        path = config.notebook_path(nb.name)
        if not path.exists():
            raise ConfigError(f"{config.source}: notebook {nb.name}: no {path.name} to dry-run")
        defaults = _defaults(path)
        params = {k: _renamed(v, spec.rename) for k, v in nb.parameters.items()}
        params.update({k: v for k, v in spec.parameters.items() if k in defaults})
        if "MODEL" in defaults:
            params["MODEL"] = str(model)
        for p, kind in PRESET_PARAMETERS.items():
            if p in defaults:
                name = nb.parameters.get(p, defaults[p])
                if (kind, str(name)) not in scaled:
                    scaled[kind, str(name)] = _scaled_preset(kind, name, spec.hparams.get(kind, {}), presets,
                                                             f"{config.source}: notebook {nb.name}")
                params[p] = scaled[kind, str(name)]
        notebooks.append(NotebookSpec(nb.name, params, None if nb.inputs is None else
                                      [_renamed(x, spec.rename) for x in nb.inputs]))
    report = None if config.report is None else {
        "out": (base / Path(config.report["out"]).name).as_posix(), "suffix": _renamed(config.report["suffix"], spec.rename)}
    return dataclasses.replace(
        config, notebooks=notebooks, source=f"{config.source} (dry run: {spec.source})",
        description=f"dry run of {config.source}: {spec.description}".strip(),
        runs_dir=(base / "runs").as_posix(), figures_dir=(base / "figures").as_posix(),
        results_dir_name=(base / "results").as_posix(), report=report)


def resolve_model(name: str, spec: DryRunSpec) -> str:
    """``--dry-run-model``: ``tiny-<arch>`` of the spec's architecture (built once, :func:`tiny_model`), or a
    model path or id used as given."""
    if name.startswith("tiny-"):
        arch = name.removeprefix("tiny-")
        if arch != spec.model["arch"]:
            raise ConfigError(f"--dry-run-model {name}: {spec.source} describes a tiny {spec.model['arch']!r} model "
                              f"(known: {', '.join('tiny-' + a for a in TINY_ARCHITECTURES)})")
        return str(tiny_model(spec.model))
    return name


def derive_from_args(args) -> "Callable[[ReproduceConfig], ReproduceConfig]":
    """The ``derive`` of :func:`memat.reproduce.run_command` for ``memat reproduce --dry-run-model M
    [--dry-run-spec YAML]``: the config as a dry run on ``M`` with the spec's override."""

    def derive(config: ReproduceConfig) -> ReproduceConfig:
        spec = load_dry_run_spec(args.dry_run_spec or DRY_RUN_SPEC, config.root)
        return dry_run_config(config, spec, resolve_model(args.dry_run_model, spec))

    return derive
