"""The architecture table (memat.models) and the hooks (memat.hooks), checked on a tiny model of every family.

The ``check_*`` helpers compute, by hand from traced tensors, what each intervention site must satisfy;
``tests/test_embedded_model.py`` reuses them on the real Gemma 3 270M.
"""
from __future__ import annotations

import pytest
import torch

from memat.hooks import StopForward, Trace, TraceDict
from memat.models import ARCHITECTURES, UnsupportedArchitecture, arch_spec, wrap_model
from tiny_models import FAMILIES, make_tiny_model, make_tokenizer

PROMPTS = ["The capital of France is Paris", "La capital de França és"]

# (n_layers, n_heads, n_kv_heads, head_dim) of the tiny configs, written out independently of models._head_counts
EXPECTED_GEOMETRY = {
    "llama": (4, 4, 2, 8),
    "mistral": (4, 4, 2, 8),
    "qwen2": (4, 4, 2, 8),
    "qwen3": (4, 4, 2, 16),
    "gemma": (4, 4, 1, 16),
    "gemma2": (4, 4, 2, 16),
    "gemma3_text": (4, 4, 1, 16),
    "gemma3": (4, 4, 1, 16),
    "falcon": (4, 4, 1, 8),
    "gpt2": (4, 4, 4, 8),
    "gptj": (4, 4, 4, 8),
    "gpt_neox": (4, 4, 4, 8),
}


# --------------------------------------------------------------------------------------------------
# reusable checks (also imported by test_embedded_model.py)
# --------------------------------------------------------------------------------------------------


def batch_for(lm, prompts=PROMPTS):
    """Right-padded batch of ``prompts`` on the model's device."""
    enc = lm.tokenizer(list(prompts), return_tensors="pt", padding=True)
    return {k: v.to(lm.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def assert_close(actual, expected, rtol=1e-4, atol_rel=1e-5, msg=""):
    """allclose with an absolute tolerance relative to the largest |expected| (float32 rounding)."""
    atol = atol_rel * max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{msg}\n{m}")


def _as_out_in(lm, module) -> torch.Tensor:
    w = module.weight
    return w if lm.spec.weight_layout == "out_in" else w.T


def _bias(module):
    b = getattr(module, "bias", None)
    return b if b is not None else 0.0


@torch.no_grad()
def check_mlp_out(lm, batch, layer: int):
    """(a) mlp_out(x) == mlp_out_weight(l) @ x + b, computed by hand from the traced input."""
    name = lm.name_of("mlp_out", layer)
    with TraceDict(lm.model, [name], retain_input=True, retain_output=True) as td:
        lm.model(**batch)
    x, y = td[name].input, td[name].output
    w = lm.mlp_out_weight(layer)
    assert w.shape == (lm.hidden_size, x.shape[-1]), f"{name}: weight as [d_out, d_in] is {tuple(w.shape)}"
    assert y.shape[-1] == lm.hidden_size
    by_hand = torch.einsum("oi,bsi->bso", w, x) + _bias(lm.module("mlp_out", layer))
    assert_close(by_hand, y, msg=f"{lm.name} layer {layer}: mlp_out by hand != module output ({lm.spec.weight_layout})")


@torch.no_grad()
def check_attn_heads(lm, batch, layer: int):
    """(b) the attn_out input is [batch, seq, n_heads*head_dim]; per-head products through the output weight sum
    to the module output minus bias; at position 0 (which attends only to itself) heads sharing a KV head
    have identical outputs and the others differ, which pins down head_dim, n_kv_heads and the head order."""
    name = lm.name_of("attn_out", layer)
    with TraceDict(lm.model, [name], retain_input=True, retain_output=True) as td:
        lm.model(**batch)
    x, y = td[name].input, td[name].output
    b, s = batch["input_ids"].shape
    assert x.shape == (b, s, lm.n_heads * lm.head_dim), f"{name} input {tuple(x.shape)}"
    w = _as_out_in(lm, lm.module("attn_out", layer))
    assert w.shape == (lm.hidden_size, lm.n_heads * lm.head_dim)
    xh = x.reshape(b, s, lm.n_heads, lm.head_dim)
    wh = w.reshape(lm.hidden_size, lm.n_heads, lm.head_dim)
    per_head = torch.einsum("bshd,ohd->bsho", xh, wh)  # contribution of each head to the output
    assert_close(per_head.sum(2), y - _bias(lm.module("attn_out", layer)),
                 msg=f"{lm.name} layer {layer}: per-head contributions don't sum to attn_out")
    # position 0: softmax over one key -> the head output is that token's value vector of its KV group
    first = xh[:, 0]  # [batch, heads, head_dim]
    group = lm.n_heads // lm.n_kv_heads
    for h in range(lm.n_heads):
        for g in range(h + 1, lm.n_heads):
            same = torch.allclose(first[:, h], first[:, g], rtol=1e-5, atol=1e-6)
            assert same == (h // group == g // group), (
                f"{lm.name} layer {layer}: heads {h},{g} at position 0 {'differ' if not same else 'coincide'} "
                f"but n_kv_heads={lm.n_kv_heads} says they {'share' if h // group == g // group else 'do not share'} a KV head"
            )


@torch.no_grad()
def check_post_mlp_norm(lm, batch, layer: int):
    """(c) the traced post-MLP norm output == that norm applied to the traced mlp_out output."""
    if lm.spec.post_mlp_norm is None:
        return False
    mlp, post = lm.name_of("mlp_out", layer), lm.name_of("post_mlp_norm", layer)
    with TraceDict(lm.model, [mlp, post], retain_input=True, retain_output=True) as td:
        lm.model(**batch)
    torch.testing.assert_close(td[post].input, td[mlp].output, rtol=0, atol=0)
    assert_close(lm.module("post_mlp_norm", layer)(td[mlp].output), td[post].output,
                 msg=f"{lm.name} layer {layer}: post_mlp_norm(mlp_out) != traced post-norm output")
    return True


@torch.no_grad()
def check_final_logits(lm, batch):
    """(d) LoadedModel.logits(final_norm output) == model(...).logits (soft-cap included)."""
    name = lm.spec.final_norm
    with TraceDict(lm.model, [name]) as td:
        ref = lm.model(**batch).logits
    h = td[name].output
    assert h.shape[-1] == lm.hidden_size
    assert_close(lm.logits(h), ref, msg=f"{lm.name}: logits(final_norm output) != model logits")
    return h


# --------------------------------------------------------------------------------------------------
# the tokenizer helper
# --------------------------------------------------------------------------------------------------


def test_tokenizer_word_level_with_bos():
    tok = make_tokenizer(extra_words=["Zorglub"])
    assert tok("Paris").input_ids == [tok.bos_token_id, tok.convert_tokens_to_ids("Paris")]
    assert tok(" Paris", add_special_tokens=False).input_ids == tok("Paris", add_special_tokens=False).input_ids
    assert tok.convert_tokens_to_ids("Zorglub") == len(tok) - 1
    assert tok("París Zorglub qwertyuiop", add_special_tokens=False).input_ids[-1] == tok.unk_token_id
    assert [tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert tok.get_vocab() == make_tokenizer(extra_words=["Zorglub"]).get_vocab()  # deterministic
    assert tok.decode(tok("La capital de França és París").input_ids, skip_special_tokens=True) == "La capital de França és París"


def test_families_cover_the_table():
    assert set(FAMILIES) == set(ARCHITECTURES) == set(EXPECTED_GEOMETRY)


# --------------------------------------------------------------------------------------------------
# the architecture table
# --------------------------------------------------------------------------------------------------


def test_spec_paths_resolve_and_geometry(tiny_lm, family):
    lm = tiny_lm
    assert lm.config.model_type == family
    assert lm.spec is arch_spec(family)
    assert (lm.n_layers, lm.n_heads, lm.n_kv_heads, lm.head_dim) == EXPECTED_GEOMETRY[family]
    assert lm.hidden_size == 32
    text = lm.config.get_text_config()
    assert (lm.n_layers, lm.n_heads) == (text.num_hidden_layers, text.num_attention_heads)
    assert isinstance(lm.model.get_submodule(lm.spec.layers), torch.nn.ModuleList)
    for site in ("final_norm", "unembed"):
        assert isinstance(lm.module(site), torch.nn.Module)
    assert lm.module("unembed").weight.shape[0] == len(lm.tokenizer)
    for layer in range(lm.n_layers):
        assert lm.name_of("layer", layer) == f"{lm.spec.layers}.{layer}"
        for site in ("mlp_out", "attn_out") + (("post_mlp_norm",) if lm.spec.post_mlp_norm else ()):
            name = lm.name_of(site, layer)
            assert name.startswith(f"{lm.spec.layers}.{layer}."), name
            assert lm.model.get_submodule(name) is lm.module(site, layer)
        assert lm.mlp_out_weight(layer).shape[0] == lm.hidden_size
    if lm.spec.post_mlp_norm is None:
        with pytest.raises(ValueError):
            lm.name_of("post_mlp_norm", 0)
    assert all(not p.requires_grad for p in lm.model.parameters())
    assert not lm.model.training
    assert lm.dtype == torch.float32


def test_mlp_out_by_hand(tiny_lm):
    batch = batch_for(tiny_lm)
    for layer in (0, tiny_lm.n_layers - 1):
        check_mlp_out(tiny_lm, batch, layer)


def test_attn_out_heads_by_hand(tiny_lm):
    batch = batch_for(tiny_lm)
    for layer in (0, tiny_lm.n_layers - 1):
        check_attn_heads(tiny_lm, batch, layer)


def test_post_mlp_norm(tiny_lm, family):
    batch = batch_for(tiny_lm)
    checked = [check_post_mlp_norm(tiny_lm, batch, layer) for layer in range(tiny_lm.n_layers)]
    assert all(checked) == (family in ("gemma2", "gemma3_text", "gemma3"))


def test_final_norm_and_logits(tiny_lm, family):
    lm = tiny_lm
    h = check_final_logits(lm, batch_for(lm))
    if family == "gemma2":  # the soft-cap is live, and LoadedModel.logits must apply it
        assert lm.logit_softcap == 2.0
        raw = lm.module("unembed")(h)
        assert raw.abs().max() > 2.0 and not torch.allclose(raw, lm.logits(h))
        assert lm.logits(h).abs().max() <= 2.0


def test_gemma2_without_softcap():
    lm = make_tiny_model("gemma2", final_logit_softcapping=None)
    assert lm.logit_softcap is None
    check_final_logits(lm, batch_for(lm))


def test_padding_right_matches_one_at_a_time(tiny_lm):
    lm = tiny_lm
    prompts = ["The capital of France is", "Paris is the capital of which country ?", "La"]
    batch = batch_for(lm, prompts)
    assert batch["attention_mask"].sum(1).tolist() != [batch["input_ids"].shape[1]] * len(prompts)  # really padded
    with torch.no_grad():
        logits = lm.model(**batch).logits
        for i, p in enumerate(prompts):
            last = int(batch["attention_mask"][i].sum()) - 1
            single = lm.model(**batch_for(lm, [p])).logits[0, -1]
            assert_close(logits[i, last], single, msg=f"{lm.name}: padded batch row {i} != alone")


# --------------------------------------------------------------------------------------------------
# hooks
# --------------------------------------------------------------------------------------------------


def _hook_counts(model):
    return {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()}


def _all_sites(lm):
    names = [lm.name_of(s, l) for l in range(lm.n_layers) for s in ("mlp_out", "attn_out")]
    return names + [lm.spec.final_norm]


def test_edit_output_changes_logits_then_reverts(tiny_lm):
    lm = tiny_lm
    batch = batch_for(lm)
    name = lm.name_of("mlp_out", 1)
    with torch.no_grad():
        before = lm.model(**batch).logits

        def add(out, layer):
            assert layer == name
            return out + 1.0

        with Trace(lm.model, name, edit_output=add) as tr:
            edited = lm.model(**batch).logits
        assert not torch.allclose(edited, before)
        assert_close(tr.output, _plain_output(lm, batch, name) + 1.0)  # retained output is the edited one
        after = lm.model(**batch).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert not lm.module("mlp_out", 1)._forward_hooks and not lm.module("mlp_out", 1)._forward_pre_hooks


def _plain_output(lm, batch, name):
    with torch.no_grad(), Trace(lm.model, name) as tr:
        lm.model(**batch)
    return tr.output


def test_edit_input_changes_logits(tiny_lm):
    lm = tiny_lm
    batch = batch_for(lm)
    name = lm.name_of("attn_out", 0)
    with torch.no_grad():
        before = lm.model(**batch).logits
        with TraceDict(lm.model, [name], edit_input=lambda x, _: torch.zeros_like(x), retain_input=True) as td:
            ablated = lm.model(**batch).logits
        assert float(td[name].input.abs().max()) == 0.0
        assert not torch.allclose(ablated, before)
        torch.testing.assert_close(lm.model(**batch).logits, before, rtol=0, atol=0)


def test_exception_in_block_removes_every_hook(tiny_lm):
    lm = tiny_lm
    batch = batch_for(lm)
    snapshot = _hook_counts(lm.model)
    names = _all_sites(lm)
    with pytest.raises(RuntimeError, match="boom"):
        with TraceDict(lm.model, names, retain_input=True, edit_output=lambda o, _: o):
            assert all(len(lm.model.get_submodule(n)._forward_hooks) == 1 for n in names)
            with torch.no_grad():
                lm.model(**batch)
            raise RuntimeError("boom")
    for n in names:
        m = lm.model.get_submodule(n)
        assert not m._forward_hooks and not m._forward_pre_hooks, n
    assert _hook_counts(lm.model) == snapshot


def test_exception_in_hook_removes_every_hook(tiny_lm):
    lm = tiny_lm
    snapshot = _hook_counts(lm.model)

    def bad(out, layer):
        raise ValueError(f"bad edit at {layer}")

    with pytest.raises(ValueError, match="bad edit"):
        with torch.no_grad(), TraceDict(lm.model, _all_sites(lm), edit_output=bad):
            lm.model(**batch_for(lm))
    assert _hook_counts(lm.model) == snapshot


def test_stop_forward(tiny_lm):
    lm = tiny_lm
    batch = batch_for(lm)
    snapshot = _hook_counts(lm.model)
    early = lm.name_of("mlp_out", 0)
    later = [lm.name_of("mlp_out", lm.n_layers - 1), lm.spec.final_norm]
    ran_past = False
    with torch.no_grad():
        with TraceDict(lm.model, later) as outer:
            with Trace(lm.model, early, stop=True) as inner:
                lm.model(**batch)
                ran_past = True  # never reached: the forward raised StopForward, swallowed by the inner `with`
    assert not ran_past
    assert inner.output is not None
    assert all(outer[n].output is None for n in later)
    # TraceDict(stop=True) stops after the last listed module in execution order
    mid = [lm.name_of("attn_out", 0), lm.name_of("mlp_out", 1)]
    with torch.no_grad():
        with Trace(lm.model, lm.name_of("mlp_out", 2)) as after:
            with TraceDict(lm.model, list(reversed(mid)), stop=True) as td:
                lm.model(**batch)
    assert all(td[n].output is not None for n in mid)
    assert after.output is None
    assert _hook_counts(lm.model) == snapshot
    # outside a `with`, the stop surfaces as StopForward from the forward call itself
    tr = Trace(lm.model, early, stop=True).__enter__()
    try:
        with pytest.raises(StopForward), torch.no_grad():
            lm.model(**batch)
    finally:
        tr.close()
    assert _hook_counts(lm.model) == snapshot
    # and the model runs normally afterwards
    with torch.no_grad():
        assert lm.model(**batch).logits.shape[:2] == batch["input_ids"].shape


def test_missing_module_raises_lookup_error(tiny_lm):
    lm = tiny_lm
    snapshot = _hook_counts(lm.model)
    bad = f"{lm.spec.layers}.{lm.n_layers + 5}.mlp.nope"
    with pytest.raises(LookupError, match=bad.replace(".", r"\.")):
        TraceDict(lm.model, [lm.name_of("mlp_out", 0), bad])
    with pytest.raises(LookupError, match="no_such_module"):
        Trace(lm.model, "no_such_module")
    assert _hook_counts(lm.model) == snapshot


# --------------------------------------------------------------------------------------------------
# unsupported architectures
# --------------------------------------------------------------------------------------------------


def test_unsupported_architecture_message():
    with pytest.raises(UnsupportedArchitecture) as e:
        arch_spec("bert")
    msg = str(e.value)
    assert "'bert'" in msg
    for fam in ARCHITECTURES:
        assert fam in msg
    assert "ARCHITECTURES[model_type] = ArchSpec(" in msg and "tests/test_models.py" in msg
    assert isinstance(e.value, KeyError)  # callers catching KeyError keep working


def test_wrap_model_unknown_model_type():
    from transformers import OPTConfig, OPTForCausalLM

    tok = make_tokenizer()
    cfg = OPTConfig(vocab_size=len(tok), hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                    word_embed_proj_dim=16, max_position_embeddings=32)
    model = OPTForCausalLM(cfg).eval()
    with pytest.raises(UnsupportedArchitecture, match="'opt'.*supported: .*gemma3_text.*llama"):
        wrap_model(model, tok)


# --------------------------------------------------------------------------- MODEL_KWARGS (from_pretrained pass-through)


def _saved_tiny(tmp_path):
    src = make_tiny_model("llama")
    src.model.save_pretrained(tmp_path / "m")
    src.tokenizer.save_pretrained(tmp_path / "m")
    return src, str(tmp_path / "m")


def test_load_model_passes_model_kwargs_to_the_model_and_tokenizer_kwargs_to_both(tmp_path, monkeypatch):
    """A notebook's MODEL_KWARGS reach ``from_pretrained``: ``revision`` and ``trust_remote_code`` choose the
    tokenizer as well (a pinned revision pins both), ``attn_implementation`` only the model; the model loads
    as without them (same weights, same logits)."""
    import transformers

    from memat.models import load_model

    src, path = _saved_tiny(tmp_path)
    seen = {}
    real_tok, real_model = transformers.AutoTokenizer.from_pretrained, transformers.AutoModelForCausalLM.from_pretrained

    def tok(p, **kw):
        seen["tokenizer"] = dict(kw)
        kw.pop("revision", None)  # a local folder has no revisions: record, then load as usual
        return real_tok(p, **kw)

    def model(p, **kw):
        seen["model"] = dict(kw)
        kw.pop("revision", None)
        return real_model(p, **kw)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tok)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model)
    kwargs = {"revision": "0123abc", "trust_remote_code": False, "attn_implementation": "eager"}
    lm = load_model(path, device="cpu", **kwargs)
    assert seen["tokenizer"] == {"revision": "0123abc", "trust_remote_code": False}
    assert {k: seen["model"][k] for k in kwargs} == kwargs
    assert seen["model"]["dtype"] == torch.float32 and seen["model"]["device_map"] is None
    assert lm.model.config._attn_implementation == "eager"
    ids = torch.tensor([[1, 5, 7, 9]])
    torch.testing.assert_close(lm.model(ids).logits, src.model(ids).logits, rtol=0, atol=1e-6)


def test_model_kwargs_that_load_model_sets_itself_are_refused(tmp_path):
    from memat.models import check_model_kwargs, load_model

    _, path = _saved_tiny(tmp_path)
    with pytest.raises(ValueError, match=r"MODEL_KWARGS may not set 'torch_dtype'.*DTYPE"):
        load_model(path, device="cpu", torch_dtype="float16")
    with pytest.raises(ValueError, match=r"MODEL_KWARGS must be a mapping.*list"):
        check_model_kwargs(["revision", "x"])
    with pytest.raises(ValueError, match=r"key 'not a name' is not an argument name"):
        check_model_kwargs({"not a name": 1})
    assert check_model_kwargs(None) == {} and check_model_kwargs({"revision": "v1"}) == {"revision": "v1"}


def test_every_notebook_takes_model_kwargs_and_loads_its_model_with_them():
    """Each numbered notebook has ``MODEL_KWARGS = {}`` in its parameters cell (papermill:
    ``-y 'MODEL_KWARGS: {revision: <sha>}'``) and passes it to its one ``load_model`` call."""
    import json
    import re
    from pathlib import Path

    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))
    assert len(notebooks) >= 8
    for nb_path in notebooks:
        cells = [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
        params = "".join(cells[0]["source"])
        assert "parameters" in cells[0]["metadata"].get("tags", []), nb_path.name
        assert re.search(r"^MODEL_KWARGS = \{\}", params, re.M), f"{nb_path.name}: no MODEL_KWARGS = {{}} parameter"
        calls = [m for c in cells[1:] for m in re.findall(r"load_model\(MODEL[^\n]*\)", "".join(c["source"]))]
        assert len(calls) == 1 and calls[0].endswith("**MODEL_KWARGS)"), f"{nb_path.name}: {calls}"


def test_cli_model_loads_on_the_device_asked_with_revision(tmp_path, monkeypatch, capsys):
    """``memat model NAME`` loads where asked (no longer always on the CPU) and passes ``--revision`` and
    ``--trust-remote-code`` through."""
    import memat.models as models_mod
    from memat import cli

    calls = []
    real = models_mod.load_model

    def spy(name, dtype=None, device=None, **kw):
        calls.append({"dtype": dtype, "device": device, **kw})
        return real(name, dtype=dtype, device="cpu")

    _, path = _saved_tiny(tmp_path)
    monkeypatch.setattr(models_mod, "load_model", spy)
    assert cli.main(["model", path, "--device", "meta-or-gpu", "--dtype", "float32", "--revision", "v2",
                     "--trust-remote-code"]) == 0
    assert calls == [{"dtype": "float32", "device": "meta-or-gpu", "revision": "v2", "trust_remote_code": True}]
    assert cli.main(["model", path]) == 0
    assert calls[-1] == {"dtype": None, "device": None}  # the default device: CUDA if available, else CPU
    out = capsys.readouterr().out
    assert "device / dtype" in out and "cpu / float32" in out and "model_type" in out
