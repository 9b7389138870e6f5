"""memat.dryrun: the paper configuration derived into a dry run (fast), and run end to end on a tiny random
Falcon (slow: every notebook of configs/reproduce/paper.yaml through papermill)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from memat.dryrun import DRY_RUN_SPEC, dry_run_config, load_dry_run_spec
from memat.reproduce import ConfigError, load_config, plan

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "reproduce" / "paper.yaml"


def _flat(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _flat(v)
    elif isinstance(x, list):
        for v in x:
            yield from _flat(v)
    else:
        yield x


def test_the_paper_config_as_a_dry_run_keeps_its_choices_and_scales_its_sizes():
    paper = load_config(PAPER, root=ROOT)
    spec = load_dry_run_spec(DRY_RUN_SPEC, ROOT)
    dry = dry_run_config(paper, spec, "/models/tiny")
    assert [n.name for n in dry.notebooks] == [n.name for n in paper.notebooks]
    base = Path("build/dry-run/paper")
    assert (dry.runs_dir, dry.figures_dir, dry.results_dir_name) == tuple(
        (base / d).as_posix() for d in ("runs", "figures", "results"))
    assert dry.report == {"out": (base / "paper_aguila.md").as_posix(), "suffix": "_dry_run"}
    by = {n.name: n.parameters for n in dry.notebooks}
    orig = {n.name: n.parameters for n in paper.notebooks}
    for name, params in by.items():
        assert params["MODEL"] == "/models/tiny", name
        assert not any(isinstance(v, str) and "_aguila" in v for v in _flat(params)), name
    # the sizes of the one override where the notebook has them, the config's choices elsewhere
    assert by["01_dataset_translation"]["N_CASES"] == 160 and orig["01_dataset_translation"]["N_CASES"] is None
    assert by["01_dataset_translation"]["NAME"] == by["02_crosslingual_memit"]["DATASET"] == "counterfact_en_ca_dry_run"
    assert by["04_memat"]["N_EDITS"] == by["04_memat"]["N_TEST"] == 8
    assert by["04_memat"]["K_SWEEP"] == [8, 16, 32, 48] and by["04_memat"]["PAPER_ROW"] == ["CC", "CE", "EC", "EE"]
    assert by["04_memat"]["HEADS_RESULTS"] == "03_head_localization_dry_run"
    assert by["05_scaling"]["I_RANGE"] == [2, 3] and "N_CASES" not in by["05_scaling"]
    assert by["07_learning_rate"]["MEMIT_LRS"] == orig["07_learning_rate"]["MEMIT_LRS"]
    # the presets are scaled copies of the config's (Aguila's layers), not the embedded model's
    memit = yaml.safe_load(Path(by["02_crosslingual_memit"]["HPARAMS"]).read_text())
    assert memit["layers"] == [4, 5, 6, 7, 8] and memit["mom2_n_samples"] == 64 and memit["v_lr"] == 0.2
    memat = yaml.safe_load(Path(by["04_memat"]["MEMAT_HPARAMS"]).read_text())
    assert memat["n_epochs"] == 1 and memat["clamp_norm_factor"] == 0.75 and memat["k"] == 16
    pmet = yaml.safe_load(Path(by["04_memat"]["PMET_HPARAMS"]).read_text())
    assert pmet["v_num_grad_steps"] == 3 and pmet["residual_spread"] == "sqrt"
    # results are read and written under build/, and the plan of the derived config is valid
    items = plan(dry)
    assert all(r.startswith("build/dry-run/paper/results/") for it in items for r in it.results + it.inputs)


def test_a_bad_dry_run_spec_names_what_is_wrong(tmp_path):
    paper = load_config(PAPER, root=ROOT)
    good = yaml.safe_load((ROOT / DRY_RUN_SPEC).read_text())
    with pytest.raises(ConfigError, match="unknown key.*'sizes'"):
        load_dry_run_spec({**good, "sizes": {}}, ROOT)
    with pytest.raises(ConfigError, match="'arch' one of \\['falcon'\\]"):
        load_dry_run_spec({**good, "model": {"arch": "mamba"}}, ROOT)
    with pytest.raises(ConfigError, match="'hparams' maps"):
        load_dry_run_spec({**good, "hparams": {"rome": {}}}, ROOT)
    with pytest.raises(ConfigError, match="no dry-run spec"):
        load_dry_run_spec(tmp_path / "absent.yaml", ROOT)
    spec = load_dry_run_spec({**good, "hparams": {"memit": {"v_lrr": 1.0}}}, ROOT)
    with pytest.raises(ConfigError, match="notebook 02_crosslingual_memit: the memit preset 'aguila-7b'.*v_lrr"):
        dry_run_config(paper, spec, "/models/tiny")


@pytest.mark.slow
@pytest.mark.dryrun
def test_the_paper_config_runs_end_to_end_on_a_tiny_falcon(tmp_path):
    """`memat reproduce --config configs/reproduce/paper.yaml --dry-run-model tiny-falcon`: every notebook runs,
    in order, on a tiny random model of Aguila-7B's architecture and writes its results under build/ only."""
    import shutil

    from transformers import AutoConfig

    from memat import cli
    from memat.dryrun import resolve_model

    spec = load_dry_run_spec(DRY_RUN_SPEC, ROOT)
    model = Path(resolve_model("tiny-falcon", spec))
    cfg = AutoConfig.from_pretrained(model)
    assert cfg.model_type == "falcon" and cfg.multi_query and cfg.parallel_attn and not cfg.new_decoder_architecture
    assert cfg.num_hidden_layers * cfg.num_attention_heads == 80
    assert resolve_model("tiny-falcon", spec) == str(model)  # built once, then cached
    base = ROOT / "build" / "dry-run" / "paper"
    shutil.rmtree(base, ignore_errors=True)
    committed = {p: p.stat().st_mtime_ns for p in (ROOT / "results").glob("*.json")}
    rc = cli.main(["reproduce", "--config", str(PAPER), "--dry-run-model", "tiny-falcon"])
    assert rc == 0
    names = [n.name for n in load_config(PAPER, root=ROOT).notebooks]
    for name in names:
        stamp = json.loads((base / "runs" / ".stamps" / f"{name}.json").read_text())
        (result,) = stamp["results"]
        assert result.startswith("build/dry-run/paper/results/") and (ROOT / result).exists()
    r04 = json.loads((base / "results" / "04_memat_dry_run.json").read_text())
    assert r04["model"]["model_type"] == "falcon" and r04["model"]["n_heads"] == 8
    assert (base / "paper_aguila.md").exists()
    # nothing of the real results was touched
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "results").glob("*.json")} == committed
    assert os.environ.get("MEMAT_RESULTS_DIR") is None


def test_memat_reproduce_plans_a_dry_run_and_python_m_refuses_it(capsys):
    from memat import cli
    from memat import reproduce as rp

    assert cli.main(["reproduce", "--config", str(PAPER), "--dry-run-model", "/models/tiny", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "(dry run: configs/reproduce/dry-run.yaml)" in out and "build/dry-run/paper/paper_aguila.md" in out
    assert rp.main(["--config", str(PAPER), "--dry-run-model", "/models/tiny", "--plan"]) == 2
    assert "run it as `memat reproduce`" in capsys.readouterr().err
    assert cli.main(["reproduce", "--config", str(PAPER), "--dry-run-model", "tiny-gpt2", "--plan"]) == 2
    assert "describes a tiny 'falcon' model" in capsys.readouterr().err
