"""``memat reproduce`` (``make reproduce``): run the numbered notebooks in order with papermill, resumably,
then rebuild ``paper.md``.

A config (``configs/reproduce/cpu.yaml``, the default; ``configs/reproduce/paper.yaml``, the paper's
scale on a GPU) lists the notebooks in run order with the parameters to pass::

    description: free text
    runs_dir: runs                  # executed notebooks and their stamps (relative to the project root)
    kernel: python3                 # Jupyter kernel name
    figures_dir: figures            # where the notebooks save figures ($MEMAT_FIGURES_DIR while they run);
                                    # cpu-full.yaml: figures/full, beside the CI figures
    results_dir: results            # where they write and read results ($MEMAT_RESULTS_DIR while they run);
                                    # a dry run (memat.dryrun): build/dry-run/<config>/results
    report: {out: paper.md, suffix: ""}   # the report rebuilt at the end; `report: false` skips it. A
                                          # report of suffix `_full` (configs/reproduce/cpu-full.yaml, a
                                          # larger run of the CPU defaults) is followed by paper.md, which
                                          # shows the `_full` results beside the defaults (memat.report)
    notebooks:
      - name: 01_dataset_translation        # notebooks/<name>.ipynb
      - name: 02_crosslingual_memit
        parameters: {N_EDITS: 24}           # papermill -p, checked against the notebook's parameters cell
        inputs: [01_dataset_translation]    # earlier notebooks (their results files) or paths (files or
                                            # folders, relative to the project root); default: the results
                                            # files of every earlier notebook of the config

A notebook is run again only when its fingerprint changed since its last successful run. The fingerprint,
kept in ``<runs_dir>/.stamps/<name>.json`` (written atomically after a successful run only), holds:

* ``code``: the sha256 of the notebook's code cells (source and tags, not outputs);
* ``parameters``: the parameters passed;
* ``package``: the sha256 of the package sources, ``src/memat/**/*.py`` and ``configs/**/*.yaml`` (the
  runner's own files, :data:`PACKAGE_EXCLUDE`, are left out: they do not change what a notebook computes);
* ``inputs``: the sha256 of each declared input;
* ``markdown``: the sha256 of the markdown cells. **A markdown-only change does not re-run a notebook**
  (it cannot change a result; ``--plan`` reports it, and ``--force`` refreshes the executed copy in runs/).

The results file a notebook must write is ``results/<RESULTS_NAME>.json`` (the parameter, else the default
of its parameters cell, else its name); a missing one re-runs the notebook. Notebooks the paper needs but
not written yet (:data:`PLANNED`, 04-07) are skipped with a warning and their config checked against the
parameter names they will have, so the runner is usable now. A failing notebook stops the run: the
executed notebook with the error stays in ``runs/``, the stamps of the notebooks before it are kept, and
:class:`NotebookFailed` names it; ``make reproduce`` then resumes from it.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import fnmatch
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from .io import atomic_write_text
from .paths import project_root  # re-exported: memat.reproduce.project_root

__all__ = [
    "MODEL_SPECIFIC",
    "model_specific_gaps",
    "PLANNED",
    "PACKAGE_EXCLUDE",
    "ConfigError",
    "NotebookFailed",
    "NotebookSpec",
    "ReproduceConfig",
    "PlanItem",
    "load_config",
    "notebook_hashes",
    "package_hash",
    "plan",
    "format_plan",
    "needs_apertium",
    "papermill_executor",
    "verbose_executor",
    "reproduce",
    "papermill_executor",
    "project_root",
]

#: The paper's notebooks in order, with the parameter names each has (or will have). A notebook on this
#: list whose file does not exist yet is skipped with a warning; its config is checked against these names.
PLANNED: dict[str, tuple[str, ...]] = {
    "01_dataset_translation": ("MODEL", "TRANSLATOR", "N_CASES", "NAME", "RESULTS_NAME"),
    "02_crosslingual_memit": ("MODEL", "DATASET", "L1", "L2", "N_EDITS", "SEED", "HPARAMS", "RESULTS_NAME"),
    "03_head_localization": ("MODEL", "DATASET", "N_EDITS", "K", "HPARAMS", "RESULTS_NAME"),
    "04_memat": ("MODEL", "DATASET", "N_EDITS", "K", "K_SWEEP", "HPARAMS", "PMET_HPARAMS", "MEMAT_HPARAMS",
                 "HEADS_RESULTS", "RESULTS_NAME"),
    "05_scaling": ("MODEL", "I_RANGE", "N_TRAIN", "HPARAMS", "RESULTS_NAME"),
    "06_iti_ablation": ("MODEL", "N_EDITS", "ALPHAS", "KS", "L1", "L2", "RESULTS_NAME"),
    "07_learning_rate": ("MODEL", "N_EDITS", "MEMIT_LRS", "PMET_LRS", "RESULTS_NAME"),
    "08_many_languages": ("MODEL", "LANGS", "EDIT_LANG", "N_EDITS", "K", "RESULTS_NAME"),
}

#: Files of the package hash that do not change what a notebook computes (paths relative to the root).
PACKAGE_EXCLUDE: tuple[str, ...] = ("configs/reproduce/*", "src/memat/reproduce.py", "src/memat/report.py",
                                    "src/memat/cli.py", "src/memat/published.py", "src/memat/dryrun.py")

#: The default report (``memat report``), which shows ``results/<name>_full.json`` beside ``results/<name>.json``.
DEFAULT_REPORT = "paper.md"

STAMP_VERSION = 1
Executor = Callable[[Path, Path, dict, Path, str], None]
"""``executor(notebook, output, parameters, cwd, kernel)``: execute and write ``output``; raise on failure."""


class ConfigError(ValueError):
    """A reproduce config that cannot be run (the message names the config, notebook and key)."""


class NotebookFailed(RuntimeError):
    def __init__(self, name: str, output: Path, reason: str):
        self.name, self.output, self.reason = name, output, reason
        super().__init__(
            f"notebook {name} failed: {reason}\n"
            f"  the executed notebook with the error: {output}\n"
            f"  the stamps of the notebooks before it are kept: fix it and run `make reproduce` again "
            f"to resume from {name}")


# --------------------------------------------------------------------------- config
@dataclass
class NotebookSpec:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] | None = None  # None: the results of every earlier notebook


@dataclass
class ReproduceConfig:
    notebooks: list[NotebookSpec]
    root: Path
    source: str = "config"
    description: str = ""
    runs_dir: str = "runs"
    kernel: str = "python3"
    report: dict | None = field(default_factory=lambda: {"out": "paper.md", "suffix": ""})
    #: where the notebooks write their figures (``$MEMAT_FIGURES_DIR`` while they run), relative to the root
    figures_dir: str = "figures"
    #: where the notebooks write and read their results files (``$MEMAT_RESULTS_DIR`` while they run),
    #: relative to the root: ``results`` but for a dry run (:mod:`memat.dryrun`), whose files are no results
    results_dir_name: str = "results"

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def results_dir(self) -> Path:
        return self.root / self.results_dir_name

    @property
    def runs(self) -> Path:
        return self.root / self.runs_dir

    @property
    def stamps_dir(self) -> Path:
        return self.runs / ".stamps"

    def notebook_path(self, name: str) -> Path:
        return self.notebooks_dir / f"{name}.ipynb"


_TOP_KEYS = {"description", "runs_dir", "kernel", "report", "notebooks", "figures_dir", "results_dir"}
_NB_KEYS = {"name", "parameters", "inputs"}


def load_config(source: str | Path | Mapping, root: str | Path | None = None) -> ReproduceConfig:
    """A config from a YAML path or a mapping; its structure is checked here, the notebooks and their
    parameters by :func:`plan`."""
    root = Path(root) if root is not None else project_root()
    data, where = read_mapping(source, root, "reproduce config", _TOP_KEYS, "a mapping with a 'notebooks' list")
    items = data.get("notebooks")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: 'notebooks' must be a non-empty list")
    specs, seen = [], set()
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where}: notebooks[{i}] must be a name or a mapping with 'name'")
        bad = sorted(set(item) - _NB_KEYS)
        if bad:
            raise ConfigError(f"{where}: notebook {item['name']}: unknown key(s) {bad}; known: {sorted(_NB_KEYS)}")
        name = item["name"].removesuffix(".ipynb")
        if name in seen:
            raise ConfigError(f"{where}: notebook {name} is listed twice")
        seen.add(name)
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: notebook {name}: 'parameters' must be a mapping")
        inputs = item.get("inputs")
        if inputs is not None and not (isinstance(inputs, list) and all(isinstance(x, str) for x in inputs)):
            raise ConfigError(f"{where}: notebook {name}: 'inputs' must be a list of notebook names or paths")
        specs.append(NotebookSpec(name, dict(params), None if inputs is None else list(inputs)))
    report = data.get("report", {"out": "paper.md", "suffix": ""})
    if report is False or report is None:
        report = None
    elif not isinstance(report, dict) or set(report) - {"out", "suffix"}:
        raise ConfigError(f"{where}: 'report' must be false or a mapping with 'out' and 'suffix'")
    else:
        report = {"out": report.get("out", "paper.md"), "suffix": report.get("suffix", "") or ""}
    return ReproduceConfig(notebooks=specs, root=root, source=where, description=str(data.get("description", "")),
                           runs_dir=str(data.get("runs_dir", "runs")), kernel=str(data.get("kernel", "python3")),
                           report=report, figures_dir=_relative_dir(data.get("figures_dir", "figures"), where),
                           results_dir_name=_relative_dir(data.get("results_dir", "results"), where, "results_dir"))


def read_mapping(source: str | Path | Mapping, root: Path, kind: str, keys: set[str], expected: str
                 ) -> tuple[dict, str]:
    """``(data, where)`` of a YAML file (a path as given, else relative to ``root``) or a mapping, whose top
    keys must be among ``keys``; :class:`ConfigError` naming the file (``kind`` for a mapping) otherwise."""
    if isinstance(source, Mapping):
        data, where = dict(source), kind
    else:
        path = Path(source)
        if not path.is_absolute() and not path.exists():
            path = root / path
        if not path.exists():
            raise ConfigError(f"no {kind} {source}")
        data, where = yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected {expected}")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(keys)}")
    return data, where


def _relative_dir(value: Any, where: str, key: str = "figures_dir") -> str:
    if not isinstance(value, str) or not value.strip() or Path(value).is_absolute() or ".." in Path(value).parts:
        raise ConfigError(f"{where}: '{key}' must be a folder inside the project (e.g. {key.split('_')[0]}/full), "
                          f"got {value!r}")
    return Path(value).as_posix()


# --------------------------------------------------------------------------- fingerprints
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canon(x: Any) -> bytes:
    return json.dumps(x, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def notebook_hashes(path: Path) -> dict[str, str]:
    """``{"code": sha256 of the code cells' sources and tags, "markdown": sha256 of the markdown cells}``;
    outputs, execution counts and other metadata do not count."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    code, md = [], []
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if cell.get("cell_type") == "code":
            code.append({"source": src, "tags": sorted(cell.get("metadata", {}).get("tags", []))})
        elif cell.get("cell_type") == "markdown":
            md.append(src)
    return {"code": _sha(_canon(code)), "markdown": _sha(_canon(md))}


def package_hash(root: Path) -> str:
    """sha256 over (path, sha256) of ``src/memat/**/*.py`` and ``configs/**/*.yaml`` under ``root``,
    without :data:`PACKAGE_EXCLUDE`."""
    files = sorted([*root.glob("src/memat/**/*.py"), *root.glob("configs/**/*.yaml")])
    entries = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, pat) for pat in PACKAGE_EXCLUDE):
            continue
        entries.append([rel, _sha(f.read_bytes())])
    return _sha(_canon(entries))


def _path_hash(path: Path) -> str | None:
    if path.is_file():
        return _sha(path.read_bytes())
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return _sha(_canon([[p.relative_to(path).as_posix(), _sha(p.read_bytes())] for p in files]))
    return None


# --------------------------------------------------------------------------- the plan
@dataclass
class PlanItem:
    name: str
    action: str  # "run", "skip" or "missing"
    reasons: list[str]
    notebook: Path
    output: Path
    parameters: dict
    results: list[str]  # paths relative to the root the notebook must write
    inputs: list[str]  # paths relative to the root
    fingerprint: dict | None = None
    notes: list[str] = field(default_factory=list)


def _defaults(path: Path) -> dict[str, Any]:
    """The parameters cell of ``path`` as papermill reads it: name -> default (a literal, or its source text)."""
    import papermill

    out = {}
    for name, info in papermill.inspect_notebook(str(path)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def _results_name(spec: NotebookSpec, defaults: Mapping[str, Any] | None) -> str:
    if "RESULTS_NAME" in spec.parameters:
        return str(spec.parameters["RESULTS_NAME"])
    if defaults and isinstance(defaults.get("RESULTS_NAME"), str):
        return defaults["RESULTS_NAME"]
    return spec.name


#: Parameters whose notebook defaults belong to the embedded CPU model and its CI data (its presets, the
#: 233-case build, notebook 03's CI results, learning-rate grids around its presets' rates). An entry that
#: sets ``MODEL`` to another model must set each of these that its notebook has (the same value explicitly
#: if that is meant): left out, the notebook would edit the other model with Gemma's layers and heads.
MODEL_SPECIFIC: tuple[str, ...] = ("DATASET", "HPARAMS", "PMET_HPARAMS", "MEMAT_HPARAMS", "HEADS_RESULTS",
                                   "MEMIT_LRS", "PMET_LRS")


def model_specific_gaps(spec: NotebookSpec, defaults: Mapping[str, Any]) -> list[str]:
    """The :data:`MODEL_SPECIFIC` parameters of a notebook whose entry sets ``MODEL`` to another model than the
    notebook's default but leaves them at their CPU defaults (empty when ``MODEL`` is not changed)."""
    model = spec.parameters.get("MODEL")
    if model is None or model == defaults.get("MODEL"):
        return []
    return [p for p in MODEL_SPECIFIC if p in defaults and p not in spec.parameters]


def _validate(config: ReproduceConfig) -> tuple[dict[str, dict | None], list[tuple[str, str]]]:
    """Per notebook: its parameter defaults (None when its file is missing); (name, warning) pairs.
    Raises ConfigError."""
    defaults: dict[str, dict | None] = {}
    warnings = []
    for spec in config.notebooks:
        path = config.notebook_path(spec.name)
        rel = path.relative_to(config.root).as_posix() if path.is_relative_to(config.root) else str(path)
        if path.exists():
            defaults[spec.name] = _defaults(path)
            known = list(defaults[spec.name])
            where = "its parameters cell defines"
        elif spec.name in PLANNED:
            defaults[spec.name] = None
            known = list(PLANNED[spec.name])
            where = "it will define"
            warnings.append((spec.name, f"warning: {rel} does not exist yet"))
        else:
            raise ConfigError(f"{config.source}: unknown notebook {spec.name!r}: there is no {rel}, and it is not one "
                              f"of the paper's notebooks {list(PLANNED)}")
        for p in spec.parameters:
            if p not in known:
                raise ConfigError(f"{config.source}: notebook {spec.name}: unknown parameter {p!r}; {where} {known}")
        gaps = model_specific_gaps(spec, defaults[spec.name] or {})
        if gaps:
            raise ConfigError(f"{config.source}: notebook {spec.name}: MODEL={spec.parameters['MODEL']!r} but "
                              f"{', '.join(gaps)} keep the embedded model's CPU defaults "
                              f"({', '.join(f'{p}={defaults[spec.name][p]!r}' for p in gaps)}); set each of them "
                              "(the same value explicitly if that is meant)")
    return defaults, warnings


def _stamp_path(config: ReproduceConfig, name: str) -> Path:
    return config.stamps_dir / f"{name}.json"


def _read_stamp(config: ReproduceConfig, name: str) -> dict | None:
    p = _stamp_path(config, name)
    try:
        stamp = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("version") == STAMP_VERSION else None


def _fingerprint(config: ReproduceConfig, item: PlanItem, pkg: str) -> dict:
    return {
        **notebook_hashes(item.notebook),
        "parameters": item.parameters,
        "package": pkg,
        "inputs": {rel: _path_hash(config.root / rel) for rel in item.inputs},
    }


def _reasons(old: dict | None, new: dict, results: Sequence[str], root: Path) -> tuple[list[str], list[str]]:
    """(reasons to run, notes) comparing the stamp's fingerprint ``old`` with ``new``."""
    if old is None:
        return ["no successful run"], []
    reasons, notes = [], []
    if old.get("code") != new["code"]:
        reasons.append("code changed")
    if old.get("parameters") != new["parameters"]:
        was, now = old.get("parameters") or {}, new["parameters"]
        keys = sorted(k for k in set(was) | set(now) if was.get(k, "<default>") != now.get(k, "<default>"))
        reasons.append("parameters changed (" + ", ".join(
            f"{k}: {json.dumps(was.get(k, '<default>'))} -> {json.dumps(now.get(k, '<default>'))}" for k in keys) + ")")
    if old.get("package") != new["package"]:
        reasons.append("memat package changed")
    was_in, now_in = old.get("inputs") or {}, new["inputs"]
    changed = sorted(k for k in set(was_in) | set(now_in) if was_in.get(k, "<absent>") != now_in.get(k, "<absent>"))
    if changed:
        reasons.append("inputs changed: " + ", ".join(changed))
    missing = [r for r in results if not (root / r).exists()]
    if missing:
        reasons.append("results missing: " + ", ".join(missing))
    if not reasons and old.get("markdown") != new["markdown"]:
        notes.append("markdown changed only: not re-run (--force refreshes the executed copy)")
    return reasons, notes


def plan(config: ReproduceConfig, *, force: bool = False, only: Sequence[str] | None = None) -> list[PlanItem]:
    """What :func:`reproduce` would do now, notebook by notebook, and why. Raises ConfigError for an
    unknown notebook, parameter, input or ``only`` name."""
    defaults, warnings = _validate(config)
    names = [s.name for s in config.notebooks]
    for n in only or ():
        if n not in names:
            raise ConfigError(f"--only {n}: not a notebook of {config.source} ({', '.join(names)})")
    pkg = package_hash(config.root)
    items: list[PlanItem] = []
    results_of: dict[str, list[str]] = {}
    for i, spec in enumerate(config.notebooks):
        nb_path = config.notebook_path(spec.name)
        results = [f"{config.results_dir_name}/{_results_name(spec, defaults[spec.name])}.json"]
        results_of[spec.name] = results
        if spec.inputs is None:
            inputs = [r for s in config.notebooks[:i] for r in results_of[s.name]]
        else:
            inputs = []
            for x in spec.inputs:
                if x in results_of:
                    inputs += results_of[x]
                elif x in names:
                    raise ConfigError(f"{config.source}: notebook {spec.name}: input {x!r} runs after it")
                else:
                    inputs.append(Path(x).as_posix())
        output = config.runs / f"{spec.name}.ipynb"
        item = PlanItem(spec.name, "run", [], nb_path, output, dict(spec.parameters), results, inputs)
        if defaults[spec.name] is None:
            item.action, item.reasons = "missing", [w for n, w in warnings if n == spec.name]
            items.append(item)
            continue
        item.fingerprint = _fingerprint(config, item, pkg)
        stamp = _read_stamp(config, spec.name)
        reasons, item.notes = _reasons(stamp and stamp.get("fingerprint"), item.fingerprint, results, config.root)
        upstream = [p.name for p in items if p.action == "run" and set(p.results) & set(inputs)]
        if upstream and not reasons:
            reasons = [f"inputs re-made first by {', '.join(upstream)}"]
        if only and spec.name not in only:
            item.action, item.reasons = "skip", ["not selected (--only)"]
        elif force:
            item.reasons = ["--force"] + reasons
        elif reasons:
            item.reasons = reasons
        else:
            item.action, item.reasons = "skip", ["up to date"]
        items.append(item)
    return items


def format_plan(items: Sequence[PlanItem], config: ReproduceConfig | None = None) -> str:
    width = max(len(i.name) for i in items)
    lines = [f"reproduce plan ({config.source}):" if config else "reproduce plan:"]
    for it in items:
        action = {"missing": "skip"}.get(it.action, it.action)
        why = "; ".join(it.reasons + it.notes)
        lines.append(f"  {action:<4}  {it.name:<{width}}  {why}")
    if config and config.report:
        lines.append(f"  then  {config.report['out']} from {config.results_dir_name}/*{config.report['suffix']}.json "
                     "(memat report)")
        if _also_default_report(config.report):
            lines.append(f"  then  {DEFAULT_REPORT} from results/*.json, the {config.report['suffix']} results beside "
                         "the defaults (memat report)")
    return "\n".join(lines)


def _also_default_report(report: Mapping | None) -> bool:
    """Whether a run of this config also rebuilds :data:`DEFAULT_REPORT`: its results are the larger run of the
    CPU defaults (suffix ``_full``), which that report shows beside them, and it writes another file."""
    from .report import FULL_SUFFIX

    return bool(report) and report["suffix"] == FULL_SUFFIX and Path(report["out"]).as_posix() != DEFAULT_REPORT


# --------------------------------------------------------------------------- running
def papermill_executor(notebook: Path, output: Path, parameters: dict, cwd: Path, kernel: str,
                       log_output: bool = False) -> None:
    """Execute ``notebook`` into ``output`` with papermill (which leaves the failed notebook in ``output``);
    ``log_output`` streams the cells' output to the log as they run (``memat reproduce --verbose``)."""
    import papermill

    papermill.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(cwd),
                               kernel_name=kernel, progress_bar=sys.stderr.isatty(), log_output=log_output)


def verbose_executor(notebook: Path, output: Path, parameters: dict, cwd: Path, kernel: str) -> None:
    """:func:`papermill_executor` streaming each notebook's output (papermill's ``log_output``)."""
    papermill_executor(notebook, output, parameters, cwd, kernel, log_output=True)


#: The notebook that translates, and the translator prefix that needs Debian's apertium packages.
TRANSLATING_NOTEBOOK, APERTIUM = "01_dataset_translation", "apertium"


def needs_apertium(config: ReproduceConfig, items: Sequence[PlanItem] | None = None) -> bool:
    """Whether a run of ``config`` needs Apertium: its translating notebook will run (not up to date, see
    :func:`plan`) with a ``TRANSLATOR`` (its entry's, else the notebook's default) starting with "apertium".
    ``make reproduce`` installs the Debian packages only then, so a cached build, or another translator
    (``ctranslate2:...``, ``hf:...``), needs neither apt nor root."""
    items = plan(config) if items is None else items
    for item in items:
        if item.name != TRANSLATING_NOTEBOOK or item.action != "run":
            continue
        translator = item.parameters.get("TRANSLATOR")
        if translator is None:
            translator = (_defaults(item.notebook) if item.notebook.exists() else {}).get("TRANSLATOR", APERTIUM)
        if str(translator).split(":", 1)[0] == APERTIUM:
            return True
    return False


@contextlib.contextmanager
def _run_env(figures_dir: str, results_dir: str = "results"):
    """``$MEMAT_FIGURES_DIR``, ``$MEMAT_RESULTS_DIR`` and the pinned CPU instruction set
    (:data:`memat.cpuenv.PINNED`, unless already set) for the notebook's kernel (it inherits the environment),
    restored afterwards."""
    from .cpuenv import PINNED

    new = {"MEMAT_FIGURES_DIR": figures_dir, "MEMAT_RESULTS_DIR": results_dir,
           **{k: v for k, v in PINNED.items() if k not in os.environ}}
    old = {k: os.environ.get(k) for k in new}
    os.environ.update(new)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failure_reason(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"


def reproduce(config: ReproduceConfig, *, force: bool = False, only: Sequence[str] | None = None,
              plan_only: bool = False, executor: Executor | None = None, report: bool = True,
              log: Callable[[str], None] = print) -> list[PlanItem]:
    """Run the notebooks that need it, in order; rebuild the report. Returns the final plan items (their
    ``action`` is "ran", "skip" or "missing" afterwards). Raises :class:`NotebookFailed` on a failure."""
    items = plan(config, force=force, only=only)
    log(format_plan(items, config))
    if plan_only:
        return items
    executor = executor or papermill_executor
    pkg = package_hash(config.root)
    done: list[PlanItem] = []
    for item in items:
        if item.action != "run":
            done.append(item)
            continue
        # re-check against the inputs as they are now: an upstream notebook may have re-made them identically
        item.fingerprint = _fingerprint(config, item, pkg)
        stamp = _read_stamp(config, item.name)
        reasons, _ = _reasons(stamp and stamp.get("fingerprint"), item.fingerprint, item.results, config.root)
        if not reasons and not force:
            item.action, item.reasons = "skip", ["up to date (its inputs were re-made identically)"]
            log(f"skip  {item.name}: {item.reasons[0]}")
            done.append(item)
            continue
        config.runs.mkdir(parents=True, exist_ok=True)
        log(f"run   {item.name} -> {item.output.relative_to(config.root) if item.output.is_relative_to(config.root) else item.output}")
        t0 = time.perf_counter()
        _stamp_path(config, item.name).unlink(missing_ok=True)  # the stamp means "this version succeeded"
        try:
            with _run_env(config.figures_dir, config.results_dir_name):
                executor(item.notebook, item.output, item.parameters, config.notebooks_dir, config.kernel)
        except Exception as exc:  # any failure of the notebook stops the run
            raise NotebookFailed(item.name, item.output, _failure_reason(exc)) from exc
        missing = [r for r in item.results if not (config.root / r).exists()]
        if missing:
            raise NotebookFailed(item.name, item.output, f"it ran but did not write {', '.join(missing)}")
        seconds = time.perf_counter() - t0
        stamp = {"version": STAMP_VERSION, "notebook": item.name, "fingerprint": item.fingerprint,
                 "output": item.output.relative_to(config.root).as_posix() if item.output.is_relative_to(config.root)
                 else str(item.output), "results": item.results, "seconds": round(seconds, 1)}
        atomic_write_text(_stamp_path(config, item.name), json.dumps(stamp, indent=1, sort_keys=True) + "\n")
        log(f"done  {item.name} in {seconds:.0f} s")
        item.action = "ran"
        done.append(item)
    for item in done:
        if item.action == "missing":
            log(f"{item.name}: skipped, {'; '.join(item.reasons)}")
    if report and config.report:
        from .report import write_report

        reports = [(config.report["out"], config.report["suffix"])]
        if _also_default_report(config.report):
            reports.append((DEFAULT_REPORT, ""))
        for out_name, suffix in reports:
            # the config's own report shows its figures; paper.md the CI figures (and figures/full for _full)
            fig_dir = config.root / (config.figures_dir if out_name == config.report["out"] else "figures")
            out = write_report(config.root / out_name, results_dir=config.results_dir, figures_dir=fig_dir,
                               suffix=suffix)
            log(f"report: {out.relative_to(config.root) if out.is_relative_to(config.root) else out}")
    return done


# --------------------------------------------------------------------------- `memat reproduce` (memat.cli registers it)
def add_subcommand(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``memat reproduce`` to the subparsers of the ``memat`` parser (:data:`memat.cli.SUBCOMMANDS`)."""
    p = sub.add_parser(
        "reproduce",
        help="run the notebooks in order with papermill into runs/ (resumable), then rebuild paper.md",
        description=(
            "Run the notebooks of a reproduce config in order, each only if its code, parameters, the memat "
            "package or its inputs changed since its last successful run (stamps in <runs_dir>/.stamps), "
            "then rebuild the report. A failing notebook stops the run and is left executed in runs/."
        ),
    )
    p.add_argument("--config", default="configs/reproduce/cpu.yaml",
                   help="reproduce config (default: configs/reproduce/cpu.yaml; paper scale: configs/reproduce/paper.yaml)")
    p.add_argument("--plan", action="store_true", help="only print which notebooks would run and why")
    p.add_argument("--force", action="store_true", help="run the (selected) notebooks even if up to date")
    p.add_argument("--only", action="append", metavar="NAME", default=None,
                   help="consider only this notebook (repeatable); with --force, re-run just it")
    p.add_argument("--no-report", action="store_true", help="do not rebuild the report at the end")
    p.add_argument("--verbose", action="store_true",
                   help="stream each notebook's output while it runs (papermill's log_output; make reproduce VERBOSE=1)")
    p.add_argument("--dry-run-model", metavar="MODEL", default=None,
                   help="run every notebook of the config on a tiny random model (tiny-falcon: Aguila-7B's architecture; "
                        "or a model path) with the sizes of --dry-run-spec; everything under build/dry-run/ (memat.dryrun)")
    p.add_argument("--dry-run-spec", default=None, metavar="YAML",
                   help="the dry run's override: tiny model, sizes, preset fields, renames (default: configs/reproduce/dry-run.yaml)")
    p.add_argument("--needs-apertium", action="store_true",
                   help="run nothing; exit 0 if a notebook that will run translates with Apertium, 1 if none does "
                        "(make reproduce installs the Debian packages only then)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace, derive: Callable[[ReproduceConfig], ReproduceConfig] | None = None) -> int:
    """The handler of ``memat reproduce``: run it with the parsed ``args``; the exit code. ``derive`` turns the
    loaded config into the one to run (``memat.cli`` passes the dry run's, :mod:`memat.dryrun`, which imports
    this module); without it, ``--dry-run-model`` is refused."""
    try:
        config = load_config(args.config)
        if getattr(args, "dry_run_model", None):
            if derive is None:
                raise ConfigError("--dry-run-model: run it as `memat reproduce` (memat.cli), not `python -m memat.reproduce`")
            config = derive(config)
        if getattr(args, "needs_apertium", False):
            needed = needs_apertium(config, plan(config, force=args.force, only=args.only))
            print(f"apertium: {'needed' if needed else 'not needed'} by {args.config}")
            return 0 if needed else 1
        reproduce(config, force=args.force, only=args.only, plan_only=args.plan, report=not args.no_report,
                  executor=verbose_executor if getattr(args, "verbose", False) else None)
    except ConfigError as exc:
        print(f"memat reproduce: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"memat reproduce: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memat.reproduce [options]``: ``memat reproduce [options]``, parsed by the same subcommand parser."""
    parser = argparse.ArgumentParser(prog="memat")
    add_subcommand(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["reproduce", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
