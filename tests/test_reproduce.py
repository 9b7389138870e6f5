"""memat.reproduce: resumable notebook runs on tiny fake notebooks in a temporary project.

Most tests inject an in-process executor (the code cells run with ``exec``, parameters injected after the
``parameters`` cell, as papermill does); one test runs papermill for real (a kernel start is ~2 s).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from memat import cli
from memat.reproduce import (ConfigError, NotebookFailed, format_plan, load_config, notebook_hashes, plan,
                             reproduce)

ROOT = Path(__file__).resolve().parents[1]

WRITE = """
import json
from pathlib import Path
inputs = sorted(p.name for p in Path("../results").glob("*.json") if p.stem < RESULTS_NAME)
Path("../results").mkdir(exist_ok=True)
Path(f"../results/{RESULTS_NAME}.json").write_text(json.dumps({"value": VALUE, "saw": inputs}))
"""


def make_notebook(path: Path, value=1, extra_code: str = "", markdown: str = "A fake notebook.") -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'VALUE = {value!r}  # what it writes\nRESULTS_NAME = "{path.stem}"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), params, nbformat.v4.new_code_cell(WRITE + extra_code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def edit_cell(path: Path, index: int, source: str) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[index].source = source
    nbformat.write(nb, str(path))


class Exec:
    """An in-process executor: records the notebooks it runs; the output notebook is written first, as
    papermill leaves a failed notebook behind."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, notebook: Path, output: Path, parameters: dict, cwd: Path, kernel: str) -> None:
        self.calls.append(notebook.stem)
        shutil.copy(notebook, output)
        nb = json.loads(notebook.read_text())
        ns: dict = {}
        old = os.getcwd()
        os.chdir(cwd)
        try:
            for cell in nb["cells"]:
                if cell["cell_type"] != "code":
                    continue
                exec("".join(cell["source"]), ns)
                if "parameters" in cell["metadata"].get("tags", []):
                    ns.update(parameters)
        finally:
            os.chdir(old)


@pytest.fixture
def project(tmp_path):
    for name in ("01_a", "02_b", "03_c"):
        make_notebook(tmp_path / "notebooks" / f"{name}.ipynb")
    (tmp_path / "src" / "memat").mkdir(parents=True)
    (tmp_path / "src" / "memat" / "core.py").write_text("X = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'fake'\n")
    return tmp_path


def config(root: Path, **over):
    data = {"report": False, "notebooks": [{"name": "01_a"}, {"name": "02_b"}, {"name": "03_c"}]}
    data.update(over)
    return load_config(data, root=root)


def run(root: Path, cfg=None, **kw) -> list[str]:
    ex = Exec()
    reproduce(cfg or config(root), executor=ex, log=lambda s: None, **kw)
    return ex.calls


def reasons(root: Path, cfg=None, **kw) -> dict[str, tuple[str, str]]:
    return {it.name: (it.action, "; ".join(it.reasons + it.notes)) for it in plan(cfg or config(root), **kw)}


# --------------------------------------------------------------------------- resuming
def test_first_run_runs_all_then_nothing(project):
    assert reasons(project)["01_a"] == ("run", "no successful run")
    assert run(project) == ["01_a", "02_b", "03_c"]
    for name in ("01_a", "02_b", "03_c"):
        assert (project / "runs" / ".stamps" / f"{name}.json").exists()
        assert (project / "runs" / f"{name}.ipynb").exists()
    saw = json.loads((project / "results" / "03_c.json").read_text())["saw"]
    assert saw == ["01_a.json", "02_b.json"]
    assert run(project) == []
    assert {a for a, _ in reasons(project).values()} == {"skip"}
    assert reasons(project)["02_b"] == ("skip", "up to date")


def test_code_change_reruns_it_and_the_notebooks_reading_its_results(project):
    run(project)
    edit_cell(project / "notebooks" / "02_b.ipynb", 2, WRITE + "\nVALUE = 2  # changed\n"
              'Path(f"../results/{RESULTS_NAME}.json").write_text(json.dumps({"value": VALUE}))')
    r = reasons(project)
    assert r["01_a"] == ("skip", "up to date")
    assert r["02_b"] == ("run", "code changed")
    assert r["03_c"] == ("run", "inputs re-made first by 02_b")
    assert run(project) == ["02_b", "03_c"]
    assert run(project) == []


def test_results_remade_identically_do_not_rerun_the_next(project):
    run(project)
    edit_cell(project / "notebooks" / "02_b.ipynb", 2, WRITE + "\n# a comment: same results\n")
    assert reasons(project)["03_c"][0] == "run"  # the plan cannot know yet
    assert run(project) == ["02_b"]  # 02_b's results came out byte for byte the same


def test_parameter_change_reruns(project):
    run(project)
    cfg = config(project, notebooks=[{"name": "01_a", "parameters": {"VALUE": 7}}, "02_b", "03_c"])
    r = reasons(project, cfg)
    assert r["01_a"] == ("run", 'parameters changed (VALUE: "<default>" -> 7)')
    assert run(project, cfg) == ["01_a", "02_b", "03_c"]
    assert json.loads((project / "results" / "01_a.json").read_text())["value"] == 7
    assert run(project, cfg) == []


def test_declared_inputs_limit_what_reruns(project):
    cfg = config(project, notebooks=["01_a", {"name": "02_b", "inputs": ["01_a"]}, {"name": "03_c", "inputs": ["01_a"]}])
    run(project, cfg)
    edit_cell(project / "notebooks" / "02_b.ipynb", 2, WRITE + "\nVALUE = 3\n"
              'Path(f"../results/{RESULTS_NAME}.json").write_text(json.dumps({"value": VALUE}))')
    assert run(project, cfg) == ["02_b"]  # 03_c does not read 02_b's results
    (project / "data.txt").write_text("v1")
    cfg = config(project, notebooks=["01_a", {"name": "02_b", "inputs": ["01_a"]},
                                     {"name": "03_c", "inputs": ["01_a", "data.txt"]}])
    assert run(project, cfg) == ["03_c"]
    (project / "data.txt").write_text("v2")
    assert reasons(project, cfg)["03_c"] == ("run", "inputs changed: data.txt")


def test_markdown_only_change_does_not_rerun_and_outputs_do_not_count(project):
    run(project)
    path = project / "notebooks" / "01_a.ipynb"
    edit_cell(path, 0, "New narration.")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="noise")]
    nb.cells[1].execution_count = 42
    nbformat.write(nb, str(path))
    assert reasons(project)["01_a"] == ("skip", "up to date; markdown changed only: not re-run "
                                                "(--force refreshes the executed copy)")
    assert run(project) == []
    h = notebook_hashes(path)
    make_notebook(path, markdown="New narration.")
    assert notebook_hashes(path) == h


def test_package_change_reruns_everything_but_runner_configs_do_not(project):
    run(project)
    (project / "configs" / "reproduce").mkdir(parents=True)
    (project / "configs" / "reproduce" / "other.yaml").write_text("notebooks: [01_a]\n")
    assert run(project) == []
    (project / "src" / "memat" / "core.py").write_text("X = 2\n")
    assert reasons(project)["01_a"] == ("run", "memat package changed")
    assert run(project) == ["01_a", "02_b", "03_c"]


def test_missing_results_rerun(project):
    run(project)
    (project / "results" / "02_b.json").unlink()
    assert reasons(project)["02_b"] == ("run", "results missing: results/02_b.json")


def test_force_and_only(project):
    run(project)
    assert run(project, only=["02_b"]) == []
    assert run(project, only=["02_b"], force=True) == ["02_b"]
    r = reasons(project, only=["02_b"], force=True)
    assert r["01_a"] == ("skip", "not selected (--only)") and r["02_b"] == ("run", "--force")
    assert run(project, force=True) == ["01_a", "02_b", "03_c"]
    with pytest.raises(ConfigError, match="--only 09_x"):
        plan(config(project), only=["09_x"])


# --------------------------------------------------------------------------- failures
def test_failure_stops_keeps_earlier_stamps_and_resumes(project):
    run(project)
    nb2 = project / "notebooks" / "02_b.ipynb"
    edit_cell(nb2, 2, WRITE + "\nraise ValueError('boom in 02')")
    make_notebook(project / "notebooks" / "01_a.ipynb", value=9)  # new results: 02_b and 03_c must re-run
    ex = Exec()
    with pytest.raises(NotebookFailed) as err:
        reproduce(config(project), executor=ex, log=lambda s: None)
    msg = str(err.value)
    assert "notebook 02_b failed: ValueError: boom in 02" in msg and str(project / "runs" / "02_b.ipynb") in msg
    assert err.value.name == "02_b" and err.value.output.exists()
    assert ex.calls == ["01_a", "02_b"]
    stamps = project / "runs" / ".stamps"
    assert (stamps / "01_a.json").exists() and not (stamps / "02_b.json").exists()
    assert (stamps / "03_c.json").exists()  # untouched, but out of date
    edit_cell(nb2, 2, WRITE)
    assert run(project) == ["02_b", "03_c"]


def test_a_notebook_that_writes_no_results_fails(project):
    edit_cell(project / "notebooks" / "01_a.ipynb", 2, "x = 1")
    with pytest.raises(NotebookFailed, match="did not write results/01_a.json"):
        run(project)
    assert not (project / "runs" / ".stamps" / "01_a.json").exists()


# --------------------------------------------------------------------------- validation
def test_config_errors_name_the_culprit(project):
    with pytest.raises(ConfigError, match="unknown notebook '09_nope'"):
        plan(config(project, notebooks=["01_a", "09_nope"]))
    with pytest.raises(ConfigError, match="notebook 02_b: unknown parameter 'N_EDIT'.*VALUE"):
        plan(config(project, notebooks=["01_a", {"name": "02_b", "parameters": {"N_EDIT": 3}}]))
    with pytest.raises(ConfigError, match="notebook 01_a: input '02_b' runs after it"):
        plan(config(project, notebooks=[{"name": "01_a", "inputs": ["02_b"]}, "02_b"]))
    with pytest.raises(ConfigError, match="unknown key"):
        config(project, notebook=[])
    with pytest.raises(ConfigError, match="unknown key"):
        config(project, notebooks=[{"name": "01_a", "params": {}}])
    with pytest.raises(ConfigError, match="listed twice"):
        config(project, notebooks=["01_a", "01_a"])


def test_planned_notebooks_not_written_yet_are_skipped_with_a_warning(project):
    cfg = config(project, notebooks=["01_a", {"name": "04_memat", "parameters": {"K": 16}}, "02_b"])
    r = reasons(project, cfg)
    assert r["04_memat"] == ("missing", "warning: notebooks/04_memat.ipynb does not exist yet")
    logs: list[str] = []
    ex = Exec()
    reproduce(cfg, executor=ex, log=logs.append)
    assert ex.calls == ["01_a", "02_b"] and any("04_memat: skipped" in s for s in logs)
    with pytest.raises(ConfigError, match="notebook 04_memat: unknown parameter 'KK'"):
        plan(config(project, notebooks=[{"name": "04_memat", "parameters": {"KK": 16}}]))


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(ROOT / "configs" / "reproduce" / f"{name}.yaml", root=ROOT)
    items = plan(cfg)
    # notebook 08 (many languages) runs on the CPU defaults only, after 03 whose heads it reads
    assert [i.name for i in items] == ["01_dataset_translation", "02_crosslingual_memit", "03_head_localization",
                                       "04_memat", "05_scaling", "06_iti_ablation", "07_learning_rate"] + (
        ["08_many_languages"] if name == "cpu" else [])
    if name == "cpu":
        assert all(not i.parameters for i in items) and cfg.report["out"] == "paper.md"
    else:
        assert all(i.parameters["RESULTS_NAME"].endswith("_aguila") for i in items)
        assert all(i.parameters["MODEL"] == "projecte-aina/aguila-7b" for i in items)
        assert all(r.endswith("_aguila.json") for i in items for r in i.results)
        scaling = next(i for i in items if i.name == "05_scaling").parameters
        import math
        # the largest size, plus the facts the corrections train on, fits the full build's cases
        kept = json.loads((ROOT / "results" / "01_dataset_translation_full.json").read_text())["report"]["n_kept"]
        largest = round(math.exp(math.log(10000) * max(scaling["I_RANGE"]) / 16))
        assert largest >= 5000 and largest + scaling["N_TRAIN"] <= kept
    assert "then" in format_plan(items, cfg)


def _parameters_cell(name: str) -> dict:
    """The names and defaults of notebooks/<name>.ipynb's cell tagged `parameters` (read, not executed)."""
    import ast

    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged parameters"
    out = {}
    for node in ast.parse("".join(cells[0]["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_cpu_full_config():
    """configs/reproduce/cpu-full.yaml: the full data set, 128 edits with every neighbourhood prompt in 02-04,
    every result under a `_full` name, parameters the notebooks have, its own runs dir and report."""
    cfg = load_config(ROOT / "configs" / "reproduce" / "cpu-full.yaml", root=ROOT)
    names = ["01_dataset_translation", "02_crosslingual_memit", "03_head_localization", "04_memat", "05_scaling",
             "06_iti_ablation", "07_learning_rate", "08_many_languages"]
    assert [s.name for s in cfg.notebooks] == names
    specs = {s.name: s for s in cfg.notebooks}
    for name, spec in specs.items():
        params = spec.parameters
        assert params["RESULTS_NAME"] == f"{name}_full", name
        cell = _parameters_cell(name)
        assert not set(params) - set(cell), f"{name}: {sorted(set(params) - set(cell))} not in its parameters cell"
        if name != "01_dataset_translation" and "DATASET" in cell:  # 08 reads BMIKE-53, not the build
            assert params["DATASET"] == specs["01_dataset_translation"].parameters["NAME"] == "counterfact_en_ca_full"
        if "HEADS_RESULTS" in cell:  # 04-06 read the heads of the full run of 03
            assert params["HEADS_RESULTS"] == "03_head_localization_full", name
            assert "03_head_localization" in spec.inputs, name
    assert specs["01_dataset_translation"].parameters["N_CASES"] is None  # all of CounterFact
    for name in ("02_crosslingual_memit", "03_head_localization", "04_memat"):
        assert specs[name].parameters["N_EDITS"] == 128, name
    assert "N_NEIGHBORHOOD" not in _parameters_cell("02_crosslingual_memit")  # 02 scores all ten always
    assert specs["04_memat"].parameters["N_NEIGHBORHOOD"] is None  # all ten
    assert specs["04_memat"].parameters["N_TEST"] == 128  # the test set of issue 13, disjoint from set A
    assert specs["08_many_languages"].parameters["LANGS"] == "all"  # every BMIKE-53 language
    assert cfg.report == {"out": "paper_full.md", "suffix": "_full"}
    assert cfg.figures_dir == "figures/full"  # beside the CI figures, where the report looks for them
    assert cfg.runs_dir != load_config(ROOT / "configs" / "reproduce" / "cpu.yaml", root=ROOT).runs_dir  # own stamps
    items = plan(cfg)  # papermill's inspection of the parameters cells agrees
    assert all(r == f"results/{i.name}_full.json" for i in items for r in i.results)
    text = format_plan(items, cfg)
    assert "then  paper_full.md from results/*_full.json" in text and "then  paper.md from results/*.json" in text


def test_figures_dir_is_the_notebooks_environment_while_they_run(project, monkeypatch):
    """`figures_dir` reaches each kernel as $MEMAT_FIGURES_DIR (memat.experiments.figures_dir reads it) and
    the runner's environment is restored afterwards; a folder outside the project is refused."""
    monkeypatch.delenv("MEMAT_FIGURES_DIR", raising=False)
    seen, ex = [], Exec()

    def executor(*args):
        seen.append(os.environ.get("MEMAT_FIGURES_DIR"))
        ex(*args)

    reproduce(config(project, figures_dir="figures/full"), executor=executor, log=lambda s: None)
    assert seen == ["figures/full"] * 3
    assert "MEMAT_FIGURES_DIR" not in os.environ
    reproduce(config(project), executor=executor, log=lambda s: None, force=True)
    assert seen[3:] == ["figures"] * 3
    for bad in ("/tmp/figs", "../figs", "", 3):
        with pytest.raises(ConfigError, match="figures_dir"):
            config(project, figures_dir=bad)


def test_figures_dir_moves_save_figure(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memat import experiments

    (tmp_path / "src" / "memat").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'fake'\n")
    monkeypatch.chdir(tmp_path)
    fig = plt.figure()
    monkeypatch.setenv("MEMAT_FIGURES_DIR", "figures/full")
    assert [p.relative_to(tmp_path).as_posix() for p in experiments.save_figure(fig, "f", formats=("png",))] == \
        ["figures/full/f.png"]
    monkeypatch.delenv("MEMAT_FIGURES_DIR")
    assert [p.relative_to(tmp_path).as_posix() for p in experiments.save_figure(fig, "f", formats=("png",))] == \
        ["figures/f.png"]
    plt.close(fig)


# --------------------------------------------------------------------------- the report and the CLI
def test_report_is_rebuilt_at_the_end(project):
    cfg = config(project, report={"out": "paper.md", "suffix": ""})
    run(project, cfg)
    text = (project / "paper.md").read_text()
    assert text.startswith("_Generated by `memat report`") and "not run yet" in text
    assert not (project / "paper.md.part").exists()


def test_a_full_run_also_rebuilds_the_default_report(project):
    """A config of `_full` results writes its own report, then paper.md, which shows them beside the defaults."""
    cfg = config(project, report={"out": "paper_full.md", "suffix": "_full"})
    logs: list[str] = []
    reproduce(cfg, executor=Exec(), log=logs.append)
    assert "`results/02_crosslingual_memit_full.json`" in (project / "paper_full.md").read_text()
    assert "`results/02_crosslingual_memit.json`" in (project / "paper.md").read_text()
    assert [s for s in logs if s.startswith("report:")] == ["report: paper_full.md", "report: paper.md"]
    for report in ({"out": "paper_x.md", "suffix": "_x"}, {"out": "paper.md", "suffix": "_full"}):
        (project / "paper.md").unlink(missing_ok=True)
        logs.clear()
        reproduce(config(project, report=report), executor=Exec(), log=logs.append)
        assert [s for s in logs if s.startswith("report:")] == [f"report: {report['out']}"]
        assert (project / "paper.md").exists() == (report["out"] == "paper.md")


def test_cli_plan_and_exit_codes(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    (project / "cfg.yaml").write_text("report: false\nnotebooks: [01_a, 02_b]\n")
    assert cli.main(["reproduce", "--config", "cfg.yaml", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "run   01_a  no successful run" in out
    (project / "bad.yaml").write_text("notebooks: [01_a, 09_zz]\n")
    assert cli.main(["reproduce", "--config", "bad.yaml"]) == 2
    assert "unknown notebook '09_zz'" in capsys.readouterr().err


# --------------------------------------------------------------------------- papermill, for real
def test_papermill_for_real(project):
    """Two real kernel runs: 01 succeeds (parameters injected), 02 fails and is left executed in runs/."""
    pytest.importorskip("papermill")
    edit_cell(project / "notebooks" / "02_b.ipynb", 2, "raise RuntimeError('real failure')")
    cfg = config(project, notebooks=[{"name": "01_a", "parameters": {"VALUE": 5}}, "02_b"])
    with pytest.raises(NotebookFailed, match="notebook 02_b failed: RuntimeError: real failure"):
        reproduce(cfg, log=lambda s: None)
    assert json.loads((project / "results" / "01_a.json").read_text())["value"] == 5
    executed = nbformat.read(str(project / "runs" / "01_a.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    failed = nbformat.read(str(project / "runs" / "02_b.ipynb"), as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in failed.cells if c.cell_type == "code" for o in c.outputs)
    assert (project / "runs" / ".stamps" / "01_a.json").exists()
    assert not (project / "runs" / ".stamps" / "02_b.json").exists()
    assert reasons(project, cfg)["01_a"] == ("skip", "up to date")


def test_an_entry_for_another_model_must_set_every_model_specific_parameter():
    """A config entry that changes MODEL but leaves a preset, the data set or notebook 03's results at the
    embedded model's CPU default is refused, naming what is missing; setting them (or no MODEL) is fine.
    Read against the project's own notebooks (their parameters cells)."""
    from memat.reproduce import MODEL_SPECIFIC, model_specific_gaps

    def cfg(params):
        return load_config({"report": False, "runs_dir": "runs/never", "notebooks": [{"name": "04_memat", "parameters": params}]},
                           root=ROOT)

    other = {"MODEL": "org/other-7b", "HPARAMS": "other"}
    with pytest.raises(ConfigError, match=r"notebook 04_memat: MODEL='org/other-7b' but DATASET, PMET_HPARAMS, "
                                          r"MEMAT_HPARAMS, HEADS_RESULTS keep the embedded model's CPU defaults"):
        plan(cfg(other))
    plan(cfg({**other, **{p: "x" for p in ("DATASET", "PMET_HPARAMS", "MEMAT_HPARAMS", "HEADS_RESULTS")}}))
    plan(cfg({"N_EDITS": 8}))  # the embedded model: nothing to check
    plan(cfg({"MODEL": "gemma3-270m"}))  # its default, written out
    assert "MEMIT_LRS" in MODEL_SPECIFIC
    spec = load_config({"notebooks": [{"name": "07_learning_rate", "parameters": {"MODEL": "m"}}]}, root=ROOT).notebooks[0]
    assert model_specific_gaps(spec, _parameters_cell("07_learning_rate")) == ["DATASET", "HPARAMS", "PMET_HPARAMS",
                                                                               "MEMIT_LRS", "PMET_LRS"]


def test_the_paper_config_sets_every_model_specific_parameter():
    """Each notebook of configs/reproduce/paper.yaml that has a model-specific parameter sets it, read from the
    notebook's own parameters cell, so a GPU run never falls back to Gemma's presets or the CI data set."""
    from memat.reproduce import MODEL_SPECIFIC

    cfg = load_config(ROOT / "configs" / "reproduce" / "paper.yaml", root=ROOT)
    for spec in cfg.notebooks:
        cell = _parameters_cell(spec.name)
        missing = [p for p in MODEL_SPECIFIC if p in cell and p not in spec.parameters]
        assert not missing, f"{spec.name}: {missing} left at the CPU defaults"
        for p in ("HEADS_RESULTS", "DATASET"):
            if p in spec.parameters:
                assert spec.parameters[p].endswith("_aguila"), (spec.name, p)


def test_apertium_is_needed_only_when_the_translating_notebook_runs_with_it(tmp_path):
    """`make reproduce` installs Apertium (apt) only when notebook 01 will run with an Apertium translator:
    not with another translator, not when 01 is not run (up to date, or not selected)."""
    from memat.reproduce import needs_apertium

    def cfg(params=None, **kw):
        data = {"report": False, "runs_dir": str((tmp_path / "runs").relative_to(tmp_path)),
                "notebooks": [{"name": "01_dataset_translation", "parameters": params or {}}, {"name": "02_crosslingual_memit"}]}
        return load_config(data, root=ROOT)

    assert needs_apertium(cfg())  # no stamp in a new runs dir: 01 runs with its default translator, apertium
    assert needs_apertium(cfg({"TRANSLATOR": "apertium:eng-cat"}))
    assert not needs_apertium(cfg({"TRANSLATOR": "ctranslate2:/models/mt-aina-en-ca"}))
    c = cfg()
    assert not needs_apertium(c, plan(c, only=["02_crosslingual_memit"]))


def test_verbose_streams_the_notebook_output(monkeypatch, tmp_path):
    import papermill

    from memat import reproduce as rp

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: seen.update(kw))
    rp.verbose_executor(tmp_path / "a.ipynb", tmp_path / "b.ipynb", {}, tmp_path, "python3")
    assert seen["log_output"] is True
    rp.papermill_executor(tmp_path / "a.ipynb", tmp_path / "b.ipynb", {}, tmp_path, "python3")
    assert seen["log_output"] is False
