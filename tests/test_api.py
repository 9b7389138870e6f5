"""The public interface (memat/__init__.py and memat.api) on tiny models: lazy exports, the request formats
and their errors, MEMIT / PMET / MEMAT as thin wrappers (the same results as the functions they call), the
model never left edited, and the README's "Edit your own model" code run as written."""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tiny_models import make_tiny_model

import memat
from memat import api
from memat import memit as memit_mod
from memat.data.records import EditCase, LangView, RecordError
from memat.hparams import HparamsError, load_hparams
from memat.memat import HeadCorrections, MematHparams, cached_corrections
from memat.memit import EditRequest, MemitDelta, cached_memit, requests_from_cases
from memat.pmet import PmetHparams
from memat.stats import layer_stats

ROOT = Path(__file__).resolve().parents[1]

RECORDS = [
    {"prompt": "{} lives in", "subject": "Michael Jordan", "target_new": {"str": "Tokyo"}, "target_true": "America"},
    {"prompt": "The capital of {} is", "subject": "France", "target_new": "Rome", "target_true": {"str": "Paris"}},
    {"prompt": "{} plays", "subject": "Lionel Messi", "target_new": "basketball", "target_true": "football",
     "kl_prompts": ["{} is a", "The name of {} is"]},
]
REQUESTS = [
    EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo"),
    EditRequest(1, "The capital of {} is", "France", "Rome"),
    EditRequest(2, "{} plays", "Lionel Messi", "basketball", ("{} is a", "The name of {} is")),
]
_WORDS = ("city country capital language people history music football team company river mountain "
          "president king queen school university church family house world government war peace").split()
CORPUS_LINES = [f"The {a} of the {b} is in the {c} and the {a} was there" for a in _WORDS[:8] for b in _WORDS[8:16]
                for c in _WORDS[16:18]]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(CORPUS_LINES) + "\n", encoding="utf-8")
    return p


def _memit_hp(corpus: Path, **kw) -> dict:
    hp = dict(layers=[1, 2], v_num_grad_steps=4, v_lr=0.5, mom2_update_weight=1.0, mom2_n_samples=20,
              mom2_max_len=16, context_templates=[[4, 2]], batch_size=8, mom2_corpus={"en": str(corpus)})
    hp.update(kw)
    return hp


MEMAT_HP = dict(k=2, lr=0.05, n_epochs=1, batch_size=4, n_prefixes=2, prefix_len=4)


def _state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def _assert_unchanged(lm, ref):
    now = lm.model.state_dict()
    changed = [k for k in ref if not torch.equal(now[k], ref[k])]
    assert not changed, f"parameters changed: {changed}"


def _n_hooks(lm) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in lm.model.modules())


# --------------------------------------------------------------------------------------------------
# the package's names
# --------------------------------------------------------------------------------------------------
def test_import_memat_is_cheap():
    """`import memat` imports no submodule and not torch; the first use of a name imports its module."""
    code = ("import sys, memat\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('memat.', 'torch', 'transformers')))\n"
            "assert not loaded, loaded\n"
            "assert 'MEMIT' in dir(memat) and 'MEMIT' not in vars(memat)\n"
            "memat.MEMIT\n"
            "assert 'memat.api' in sys.modules and 'MEMIT' in vars(memat)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


def test_exports_are_the_objects_of_their_modules():
    assert len(memat.__all__) >= 12 and set(memat.__all__) <= set(dir(memat))
    for name, module in memat._EXPORTS.items():
        assert getattr(memat, name) is getattr(importlib.import_module(module), name), name
    from memat import MEMAT, MEMIT, PMET, EditCase as EC, HeadCorrections as HC, load_model

    assert (MEMIT, PMET, MEMAT) == (api.MEMIT, api.PMET, api.MEMAT)
    assert EC is EditCase and HC is HeadCorrections and load_model is memat.models.load_model
    namespace: dict = {}
    exec("from memat import *", namespace)
    assert set(memat.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        memat.no_such_name  # noqa: B018
    from memat import memit  # submodules are found as before

    assert memit is memit_mod


# --------------------------------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------------------------------
def test_every_request_format_gives_the_same_requests():
    assert api.as_requests(RECORDS) == REQUESTS
    lists = api.as_requests(prompts=[r["prompt"] for r in RECORDS], subjects=[r["subject"] for r in RECORDS],
                            targets=["Tokyo", "Rome", "basketball"])
    assert lists == [EditRequest(q.case_id, q.prompt, q.subject, q.target_new) for q in REQUESTS]  # default KL prompt
    # EasyEdit's prompts hold the subject itself
    easy = api.as_requests(prompts=["Michael Jordan lives in"], subjects=["Michael Jordan"], targets=["Tokyo"])
    assert easy == [REQUESTS[0]]
    assert api.as_requests(REQUESTS) == REQUESTS
    assert api.as_requests(RECORDS[0]) == [REQUESTS[0]]  # one record alone
    # a whole CounterFact record (the MEMIT reference's data format)
    cf = {"case_id": 7, "requested_rewrite": {"prompt": "{} lives in", "subject": "Michael Jordan",
                                              "target_new": {"str": "Tokyo", "id": "Q1490"},
                                              "target_true": {"str": "America", "id": "Q30"}},
          "paraphrase_prompts": ["Michael Jordan is a man. Michael Jordan lives in"],
          "neighborhood_prompts": ["Danielle Darrieux lives in"]}
    assert api.as_requests([cf]) == [EditRequest(7, "{} lives in", "Michael Jordan", "Tokyo")]
    (case,) = api.as_cases([cf])
    assert case.case_id == 7 and case["en"].target_true == "America"
    assert case["en"].paraphrase_prompts == tuple(cf["paraphrase_prompts"])
    assert case["en"].neighborhood_prompts == tuple(cf["neighborhood_prompts"])
    # EditCase: the view of lang, as requests_from_cases
    ec = EditCase(5, {"en": LangView("Toyota", "Japan", "Germany", "{} is located in"),
                      "ca": LangView("Toyota", "Japó", "Alemanya", "{} és situada a", kl_prompts=("{} és un",))})
    assert api.as_requests([ec], lang="ca") == requests_from_cases([ec], "ca")
    assert api.as_cases([ec, RECORDS[1]], lang="en")[0] is ec
    cases = api.as_cases(RECORDS)
    assert [c["en"].target_true for c in cases] == ["America", "Paris", "football"]
    assert cases[2]["en"].kl_prompts == ("{} is a", "The name of {} is")


OK = {"prompt": "{} plays", "subject": "Lionel Messi", "target_new": "basketball"}


@pytest.mark.parametrize("records, needles", [
    ([{"prompt": "{} plays", "subject": "Lionel Messi"}], ["record 0", "'target_new'", "missing"]),
    ([OK, {"prompt": "{} plays", "subject": " ", "target_new": "a"}], ["record 1", "'subject'", "empty"]),
    ([OK, OK, dict(OK, target_new=3)], ["record 2", "'target_new'", "expected a string", "3"]),
    ([dict(OK, target_new={"id": "Q1"})], ["record 0", "'target_new'", "'str'"]),
    ([dict(OK, prompt="plays the")], ["record 0", "'prompt'", "does not contain the subject", "'{}'"]),
    ([dict(OK, prompt="Lionel Messi and Lionel Messi play")], ["'prompt'", "2 times"]),
    ([dict(OK, prompt="{} and {} play")], ["'prompt'", "exactly once"]),
    ([dict(OK, prompt="{} plays {0}")], ["'prompt'", "braces"]),
    ([dict(OK, kl_prompts=["no placeholder"])], ["'kl_prompts[0]'", "exactly once"]),
    ([OK, 5], ["record 1", "expected a dict, EditRequest or EditCase"]),
    ([OK, {"case_id": 9, "requested_rewrite": "x"}], ["record 1", "case_id=9", "'requested_rewrite'"]),
    ([EditCase(4, {"ca": LangView("Toyota", "Japó", "Alemanya", "{} és a")})], ["record 0", "case_id=4", "'langs'", "'en'"]),
    ([EditRequest(3, "{} plays", "Lionel Messi", "")], ["record 0", "case_id=3", "'target_new'", "empty"]),
])
def test_bad_records_name_their_index_and_field(records, needles):
    with pytest.raises(RecordError) as e:
        api.as_requests(records)
    assert isinstance(e.value, ValueError)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_bad_request_lists():
    with pytest.raises(ValueError, match="lengths"):
        api.as_requests(prompts=["{} a", "{} b"], subjects=["x"], targets=["y", "z"])
    with pytest.raises(ValueError, match="missing \\['targets'\\]"):
        api.as_requests(prompts=["{} a"], subjects=["x"])
    with pytest.raises(ValueError, match="not both"):
        api.as_requests(RECORDS, prompts=["{} a"], subjects=["x"], targets=["y"])
    with pytest.raises(TypeError, match="prompts: expected a list"):
        api.as_requests(prompts="{} a", subjects=["x"], targets=["y"])
    with pytest.raises(TypeError, match="expected a list of dicts"):
        api.as_requests("{} plays")
    with pytest.raises(ValueError, match="no edit requests"):
        api.as_requests()


# --------------------------------------------------------------------------------------------------
# MEMIT and PMET
# --------------------------------------------------------------------------------------------------
def test_from_hparams_reads_names_paths_dicts_and_objects(tmp_path, corpus):
    path = ROOT / "configs" / "memit" / "gemma3-270m.yaml"
    by_name = api.MEMIT.from_hparams("gemma3-270m")
    assert by_name.hparams == load_hparams(path) == api.MEMIT.from_hparams().hparams
    assert api.MEMIT.from_hparams(path).hparams == by_name.hparams
    assert api.MEMIT.from_hparams(by_name.hparams, v_lr=1).hparams.v_lr == 1.0
    assert by_name.hparams.v_lr == 5.0  # an object is copied, not changed
    assert api.MEMIT.from_hparams(_memit_hp(corpus)).hparams.layers == [1, 2]
    with pytest.raises(HparamsError, match="'v_lr'"):
        api.MEMIT.from_hparams("gemma3-270m", v_lr="fast")
    pmet = api.PMET.from_hparams("gemma3-270m")
    assert type(pmet.hparams) is PmetHparams and pmet.hparams.attn_v_lr == 0.2
    with pytest.raises(TypeError, match="use memat.PMET"):
        api.MEMIT(pmet.hparams)
    with pytest.raises(TypeError, match="PMET needs PmetHparams"):
        api.PMET(by_name.hparams)
    corrector = api.MEMAT.from_hparams("gemma3-270m", lr=0.01, langs="ca")
    assert isinstance(corrector.hparams, MematHparams) and corrector.hparams.lr == 0.01 and corrector.langs == ("ca",)
    assert api.MEMAT.from_hparams(corrector.hparams, k=4).hparams.k == 4 and corrector.hparams.k == 16
    with pytest.raises(HparamsError):
        api.MEMAT.from_hparams("gemma3-270m", k=0)


def test_memit_edit_is_cached_memit_with_the_presets_statistics(cache, corpus):
    lm = make_tiny_model("llama")
    before = _state(lm)
    editor = api.MEMIT.from_hparams(_memit_hp(corpus))
    hp = editor.hparams
    delta = editor.edit(lm, RECORDS)
    assert isinstance(delta, MemitDelta) and not delta.is_applied
    _assert_unchanged(lm, before)
    assert sorted(delta.deltas) == [lm.name_of("mlp_out", l) + ".weight" for l in hp.layers]
    assert delta.meta["case_ids"] == [0, 1, 2] and delta.meta["lang"] == "en"

    stats = layer_stats(lm, hp.layers, str(corpus), "en", 20, max_len=16, dtype="float32", progress=False)
    assert all(torch.equal(stats[l], s) for l, s in editor.key_stats(lm).items())
    ref = cached_memit(lm, REQUESTS, hp, stats, "en", progress=False, cache=False)
    for k in ref.deltas:
        assert torch.equal(delta.deltas[k], ref.deltas[k]), k
    # the same edit from lists and from given statistics (the cache returns it)
    again = editor.edit(lm, prompts=["Michael Jordan lives in", "The capital of {} is", "{} plays"],
                        subjects=["Michael Jordan", "France", "Lionel Messi"], targets=["Tokyo", "Rome", "basketball"],
                        stats=stats)
    assert again.meta["cache_key"] != delta.meta["cache_key"]  # the third request's KL prompts differ
    exact = editor.edit(lm, REQUESTS, stats=stats, cache=False)
    assert all(torch.equal(exact.deltas[k], ref.deltas[k]) for k in ref.deltas)
    _assert_unchanged(lm, before)
    with delta.applied(lm):
        assert not torch.equal(lm.mlp_out_weight(1), before[lm.name_of("mlp_out", 1) + ".weight"])
    _assert_unchanged(lm, before)


def test_memit_edit_errors(cache, corpus):
    lm = make_tiny_model("llama")
    before = _state(lm)
    editor = api.MEMIT.from_hparams(_memit_hp(corpus))
    with pytest.raises(RecordError, match="record 1: case_id=1: field 'target_new'"):
        editor.edit(lm, [OK, dict(OK, target_new="")])
    with pytest.raises(ValueError, match="stats= or n_samples="):
        editor.edit(lm, [OK], stats={}, n_samples=10)
    with pytest.raises(ValueError, match="no key-statistics corpus for language 'de'.*\\['en'\\]"):
        editor.edit(lm, [OK], lang="de")
    with pytest.raises(ValueError, match=r"layers \[4, 5, 6, 7, 8\] out of range for llama \(4 layers\)"):
        api.MEMIT.from_hparams("gemma3-270m").edit(lm, [OK])
    with pytest.raises(TypeError, match="LoadedModel.*wrap_model"):
        editor.edit(lm.model, [OK])
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        editor.edit(lm, [OK], n_samples=0)
    _assert_unchanged(lm, before)


def test_an_edit_interrupted_leaves_the_model_as_it_was(cache, corpus, monkeypatch):
    lm = make_tiny_model("llama")
    before = _state(lm)
    editor = api.MEMIT.from_hparams(_memit_hp(corpus), cache=False)
    real, calls = memit_mod.layer_update, []

    def second_layer_fails(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # after the first layer's update was written into the weights
            raise RuntimeError("interrupted")
        return real(*a, **k)

    monkeypatch.setattr(memit_mod, "layer_update", second_layer_fails)
    with pytest.raises(RuntimeError, match="interrupted"):
        editor.edit(lm, RECORDS)
    assert len(calls) == 2
    _assert_unchanged(lm, before)


def test_pmet_edit_is_cached_memit_with_pmet_hparams(cache, corpus):
    lm = make_tiny_model("llama")
    before = _state(lm)
    editor = api.PMET.from_hparams(_memit_hp(corpus, v_lr=0.1, attn_v_lr=0.1))
    delta = editor.edit(lm, RECORDS[:2], cache=False)
    _assert_unchanged(lm, before)
    assert delta.meta["method"] == "PMET"
    stats = editor.key_stats(lm)
    ref = cached_memit(lm, REQUESTS[:2], editor.hparams, stats, "en", progress=False, cache=False)
    assert all(torch.equal(delta.deltas[k], ref.deltas[k]) for k in ref.deltas)


# --------------------------------------------------------------------------------------------------
# MEMAT
# --------------------------------------------------------------------------------------------------
def test_memat_fit_is_cached_corrections(cache, corpus):
    lm = make_tiny_model("llama")
    delta = api.MEMIT.from_hparams(_memit_hp(corpus)).edit(lm, RECORDS)
    before, hooks = _state(lm), _n_hooks(lm)
    corrector = api.MEMAT.from_hparams(MEMAT_HP)
    heads = [(1, 0), (3, 2)]
    corr = corrector.fit(lm, delta, RECORDS, heads=heads)
    assert isinstance(corr, HeadCorrections) and corr.heads == heads and corr.langs == ("en",)
    assert corrector.last_log["n_cases"] == 3
    _assert_unchanged(lm, before)
    assert _n_hooks(lm) == hooks and not delta.is_applied
    ref, _ = cached_corrections(lm, api.as_cases(RECORDS), heads, corrector.hparams, delta=delta, langs=("en",),
                                cache=False)
    assert torch.equal(corr.vectors, ref.vectors)
    assert float(corr.vectors.norm()) > 0
    ids = torch.tensor([lm.tokenizer("Lionel Messi plays")["input_ids"]])
    with torch.no_grad(), delta.applied(lm):
        plain = lm.model(input_ids=ids).logits
        with corr.applied(lm):
            corrected = lm.model(input_ids=ids).logits
    assert not torch.allclose(plain, corrected)
    _assert_unchanged(lm, before)
    assert _n_hooks(lm) == hooks


def test_memat_fit_errors(cache, corpus):
    lm = make_tiny_model("llama")
    corrector = api.MEMAT.from_hparams(MEMAT_HP)
    with pytest.raises(RecordError, match=r"record 0: case_id=0: field 'langs': no language \['ca'\]"):
        corrector.fit(lm, None, RECORDS, heads=[(1, 0)], langs=("en", "ca"))
    with pytest.raises(RecordError, match="record 2: case_id=2: field 'prompt'"):
        corrector.fit(lm, None, [OK, OK, dict(OK, prompt="plays")], heads=[(1, 0)])
    with pytest.raises(TypeError, match="delta: expected a MemitDelta"):
        corrector.fit(lm, {"w": 1}, RECORDS, heads=[(1, 0)])
    with pytest.raises(ValueError, match=r"heads \[\(9, 0\)\] do not exist"):
        corrector.fit(lm, None, RECORDS, heads=[(9, 0)], cache=False)
    with pytest.raises(TypeError):
        corrector.fit(lm, None, RECORDS)  # heads= is required
    with pytest.raises(ValueError, match="langs"):
        api.MEMAT.from_hparams(MEMAT_HP, langs=())


def test_locate_heads_selects_k_heads_with_the_probes(cache, corpus):
    lm = make_tiny_model("llama")
    delta = api.MEMIT.from_hparams(_memit_hp(corpus)).edit(lm, RECORDS)
    before = _state(lm)
    corrector = api.MEMAT.from_hparams(MEMAT_HP)
    heads = corrector.locate_heads(lm, delta, RECORDS, "en", refine=False)
    assert len(heads) == MEMAT_HP["k"] == len(set(heads))
    assert all(0 <= l < lm.n_layers and 0 <= h < lm.n_heads for l, h in heads)
    assert heads == [tuple(x) for x in corrector.last_probes.top_k(2)]
    _assert_unchanged(lm, before)
    assert not delta.is_applied
    with pytest.raises(RecordError, match="record 0: case_id=0: field 'target_true'"):
        corrector.locate_heads(lm, delta, [OK], "en", refine=False)


# --------------------------------------------------------------------------------------------------
# the README's "Edit your own model"
# --------------------------------------------------------------------------------------------------
README_START, README_END = "<!-- readme-test: edit-your-own-model -->", "<!-- /readme-test -->"


def _readme_code() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(README_START) == 1 and text.count(README_END) == 1
    section = text[text.index(README_START): text.index(README_END)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "no ```python block between the README markers"
    return "\n".join(blocks)


def _with_settings(code: str, settings: dict) -> ast.Module:
    """The code with the values of its top-level ``NAME = ...`` settings replaced; each must be there."""
    tree = ast.parse(code)
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in settings:
                node.value = ast.parse(repr(settings[name]), mode="eval").body
                found.add(name)
    assert found == set(settings), f"the README's code has no top-level {sorted(set(settings) - found)}"
    return ast.fix_missing_locations(tree)


def test_readme_edit_your_own_model_runs(tmp_path, monkeypatch, corpus, capsys):
    """The README's code on a tiny Llama saved to disk (loaded by memat.load_model as any local model) with
    presets written for it, in a scratch directory with its own cache."""
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    tiny = make_tiny_model("llama")
    model_dir = tmp_path / "tiny-llama"
    tiny.model.save_pretrained(model_dir)
    tiny.tokenizer.save_pretrained(model_dir)
    memit_yaml, memat_yaml = tmp_path / "memit.yaml", tmp_path / "memat.yaml"
    memit_yaml.write_text(yaml.safe_dump(_memit_hp(corpus)))
    memat_yaml.write_text(yaml.safe_dump(MEMAT_HP))
    settings = {"MODEL": str(model_dir), "MEMIT_PRESET": str(memit_yaml), "MEMAT_PRESET": str(memat_yaml),
                "HEADS": [(1, 0), (3, 3)]}
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(_with_settings(_readme_code(), settings), "README.md", "exec"), namespace)

    lm, delta, corrections = namespace["lm"], namespace["delta"], namespace["corrections"]
    assert isinstance(delta, MemitDelta) and not delta.is_applied
    assert torch.equal(lm.mlp_out_weight(1), tiny.mlp_out_weight(1))  # the loaded model is left as it was
    assert all(torch.equal(namespace["same"].deltas[k], delta.deltas[k]) for k in delta.deltas)
    assert isinstance(corrections, HeadCorrections) and corrections.heads == [(1, 0), (3, 3)]
    assert _n_hooks(lm) == 0
    edited = namespace["edited"]
    assert set(edited["kind"]) == {"rewrite"} and len(edited) == 3
    out = capsys.readouterr().out
    assert "ES" in out and "EM" in out
    assert MemitDelta.load(tmp_path / "edit.safetensors").deltas.keys() == delta.deltas.keys()
    assert HeadCorrections.load(tmp_path / "corrections.safetensors").heads == [(1, 0), (3, 3)]


def test_readme_site_table_names_the_real_sites():
    """The site table's module paths are the Llama entry of the architecture table."""
    from memat.models import ARCHITECTURES

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Edit your own model"): text.index("## Data")]
    spec = ARCHITECTURES["llama"]
    for site in ("mlp_out", "attn_out"):
        assert f"`{getattr(spec, site).format('{l}')}`" in section, site
    for path in (spec.final_norm, spec.unembed, spec.layers + ".{l}",
                 ARCHITECTURES["gemma3_text"].post_mlp_norm.format("{l}")):
        assert f"`{path}`" in section, path
    for hook in ("blocks.{l}.attn.hook_z", "blocks.{l}.mlp.hook_post", "blocks.{l}.hook_resid_post",
                 "rewrite_module_tmp", "layer_module_tmp"):
        assert hook in section
