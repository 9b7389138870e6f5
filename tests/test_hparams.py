"""Typed hyperparameters (memat.hparams): presets, YAML pitfalls and clear errors."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from memat.hparams import HparamsError, MemitHparams, find_config, load_hparams

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "memit"
PRESETS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_there_are_presets():
    assert PRESETS, f"no presets in {CONFIG_DIR}"


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_loads(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    by_path = load_hparams(path)
    by_name = load_hparams(path.stem)
    assert find_config(path.stem).resolve() == path.resolve()
    assert by_path == by_name
    assert isinstance(by_path, MemitHparams)
    # every value in the file arrives typed as written (numbers as numbers)
    for k, v in raw.items():
        got = getattr(by_path, k)
        assert got == v, k
        if isinstance(v, float):
            assert isinstance(got, float)


def test_aguila_preset_values():
    hp = load_hparams("aguila-7b")
    assert hp.layers == [4, 5, 6, 7, 8]
    assert hp.v_lr == 0.2 and isinstance(hp.v_lr, float)
    assert hp.mom2_update_weight == 15000.0
    assert hp.mom2_corpus == {"en": "wikitext2", "ca": "globalvoices"}
    assert hp.context_templates == [[10, 5]]


def _write(tmp_path, text, name="h.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_yaml11_exponent_without_dot_is_reported(tmp_path):
    p = _write(tmp_path, "layers: [1, 2]\nv_lr: 5e-1\n")
    assert yaml.safe_load(p.read_text())["v_lr"] == "5e-1"  # the pitfall itself: PyYAML reads a string
    with pytest.raises(HparamsError) as e:
        load_hparams(p)
    msg = str(e.value)
    assert str(p) in msg and "'v_lr'" in msg and "YAML 1.1" in msg and "'5e-1'" in msg
    assert load_hparams(_write(tmp_path, "layers: [1, 2]\nv_lr: 5.0e-1\n", "ok.yaml")).v_lr == 0.5


@pytest.mark.parametrize(
    "text, needles",
    [
        ("layers: [1, 2]\nv_lrr: 0.5\n", ["unknown field", "v_lrr", "v_lr"]),
        ("layers: [1, 2]\nfact_token: subject_first\n", ["'fact_token'", "subject_first", "subject_last"]),
        ("layers: [1, 2]\nsolve_device: cuda\n", ["'solve_device'", "cuda", "model"]),
        ("layers: [1, 2]\nsolve_dtype: bfloat16\n", ["'solve_dtype'", "bfloat16", "float64"]),
        ("layers: [1, 2]\nmom2_dtype: float16\n", ["'mom2_dtype'", "float16", "float32"]),
        ("layers: [3, 2]\n", ["'layers'", "strictly increasing", "[3, 2]"]),
        ("layers: [2, 2]\n", ["'layers'", "strictly increasing"]),
        ("layers: []\n", ["'layers'", "at least one"]),
        ("layers: 3\n", ["'layers'", "expected a list"]),
        ("layers: [1, 2.5]\n", ["'layers'", "integer"]),
        ("layers: [1]\nv_num_grad_steps: 2.0\n", ["'v_num_grad_steps'", "integer"]),
        ("layers: [1]\nmom2_adjustment: 'yes'\n", ["'mom2_adjustment'", "true/false"]),
        ("layers: [1]\nv_lr: true\n", ["'v_lr'", "expected a number"]),
        ("layers: [1]\nv_lr: 0\n", ["'v_lr'", "> 0"]),
        ("layers: [1]\ncontext_templates: [[10]]\n", ["'context_templates'", "[10]"]),
        ("layers: [1]\nmom2_corpus: {en: 3}\n", ["'mom2_corpus'", "string"]),
        ("v_lr: 0.5\n", ["missing", "layers"]),
        ("- 1\n- 2\n", ["mapping"]),
    ],
)
def test_bad_values_fail_clearly(tmp_path, text, needles):
    p = _write(tmp_path, text)
    with pytest.raises(HparamsError) as e:
        load_hparams(p)
    msg = str(e.value)
    assert str(p) in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_overrides_win_and_are_checked(tmp_path):
    base = load_hparams("aguila-7b")
    hp = load_hparams("aguila-7b", v_lr=0.1, layers=[2, 3], mom2_n_samples=100)
    assert (hp.v_lr, hp.layers, hp.mom2_n_samples) == (0.1, [2, 3], 100)
    assert dataclasses.replace(hp, v_lr=base.v_lr, layers=base.layers, mom2_n_samples=base.mom2_n_samples) == base
    assert isinstance(load_hparams("aguila-7b", v_lr=1).v_lr, float)  # an int is accepted as a float
    with pytest.raises(HparamsError, match="'v_lr'.*YAML 1.1"):
        load_hparams("aguila-7b", v_lr="5e-1")
    with pytest.raises(HparamsError, match="unknown field"):
        load_hparams("aguila-7b", learning_rate=0.1)
    with pytest.raises(HparamsError, match="strictly increasing"):
        load_hparams("aguila-7b", layers=[5, 4])


def test_dict_source_and_defaults():
    hp = load_hparams({"layers": [0]})
    assert hp == MemitHparams(layers=[0])
    assert hp.to_dict()["layers"] == [0]
    with pytest.raises(HparamsError, match="hparams dict: field 'v_lr'"):
        load_hparams({"layers": [0], "v_lr": "fast"})


def test_missing_preset_lists_available():
    with pytest.raises(FileNotFoundError) as e:
        find_config("no-such-preset")
    assert "no-such-preset" in str(e.value)
    for p in PRESETS:
        assert p.stem in str(e.value)
