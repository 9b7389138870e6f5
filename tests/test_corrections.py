"""memat.corrections (HeadCorrections moved out of memat.memat, its hooks rebuilt on memat.hooks.Trace), the head
site of the architecture table (split_heads / merge_heads), and memat.interventions (one protocol for weight
deltas, head corrections and ITI shifts; applied_all; evaluate_cases(interventions=...)).

The "legacy" references below are the hand-written forward pre-hooks these replaced (copied from
``git show integrate:src/memat/memat.py`` and ``integrate:src/memat/heads.py``), so the rebuilt hooks are
compared with the previous implementation bit for bit.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import make_tiny_model

from memat.data.records import EditCase, LangView
from memat.evaluate import evaluate_cases, has_hooks
from memat.forward import encode
from memat.hooks import StopForward, Trace
from memat.memit import MemitDelta
from memat.models import ARCHITECTURES, merge_heads, split_heads

FAMILIES = ["llama", "gemma3_text", "gpt2", "falcon"]
TEXTS = ["The capital of France is Paris", "Michael Jordan plays basketball for the team of the city of Berlin",
         "Toyota", "La capital de França és"]
HEADS = [(1, 0), (1, 3), (2, 2), (3, 1)]  # two heads in layer 1


def _corr(lm, heads=HEADS, seed=0, scale=0.5, requires_grad=False):
    from memat.corrections import HeadCorrections

    g = torch.Generator().manual_seed(seed)
    vec = (torch.randn(len(heads), lm.head_dim, generator=g) * scale).requires_grad_(requires_grad)
    return HeadCorrections(heads, vec, lm.name, ("en",), meta={"n_heads": lm.n_heads})


def _batch(lm):
    return encode(lm.tokenizer, [lm.tokenizer(t)["input_ids"] for t in TEXTS], lm.device)


def _positions(b):
    return (b.lengths - 1).tolist()


def _delta(lm, seed=0, layer=1, scale=0.1):
    w = lm.name_of("mlp_out", layer) + ".weight"
    g = torch.Generator().manual_seed(seed)
    return MemitDelta({w: torch.randn(lm.model.get_parameter(w).shape, generator=g) * scale})


def _state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def _same_state(lm, ref) -> bool:
    now = lm.model.state_dict()
    return all(torch.equal(now[k], ref[k]) for k in ref)


# --------------------------------------------------------------------------------------------------
# the previous implementation (hand-written pre-hooks), as references
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _legacy_hooks(corr, lm, positions=None, norms=None, detach=True):
    """HeadCorrections._hooks as it was in integrate:src/memat/memat.py."""
    H, d = lm.n_heads, corr.head_dim
    handles = []
    if positions is not None:
        positions = torch.as_tensor(positions, dtype=torch.long).reshape(-1)

    def make(layer, entries):
        hs = [h for h, _ in entries]
        ks = [i for _, i in entries]

        def pre(m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            src = corr.vectors.detach() if detach else corr.vectors
            v = corr.layer_vector(layer, H, src).to(device=x.device, dtype=x.dtype)
            if positions is None:
                x = x + v
            else:
                B = x.shape[0]
                pos = positions.to(x.device)
                rows = torch.arange(B, device=x.device)
                if norms is not None:
                    a = x[rows, pos].detach().float().view(B, H, d)[:, hs].norm(dim=-1).mean(0)
                    for j, k in enumerate(ks):
                        norms[k] = a[j]
                x = x.index_put((rows, pos), v.expand(B, -1), accumulate=True)
            if args:
                return (x,) + tuple(args[1:]), kwargs
            return args, dict(kwargs, hidden_states=x)

        return pre

    try:
        for layer, entries in corr.by_layer().items():
            mod = lm.model.get_submodule(lm.name_of("attn_out", layer))
            handles.append(mod.register_forward_pre_hook(make(layer, entries), with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def _legacy_head_outputs(lm, seqs, positions, layers):
    """heads.head_outputs' reading hook as it was in integrate:src/memat/heads.py (one batch)."""
    H, d = lm.n_heads, lm.head_dim
    deepest = max(range(len(layers)), key=lambda j: layers[j])
    acts = [None] * len(layers)
    pos = torch.tensor(positions)

    def make(j):
        def pre(m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            rows = torch.arange(x.shape[0], device=x.device)
            acts[j] = x[rows, pos.to(x.device)].detach().float().cpu().view(-1, H, d)
            if j == deepest:
                raise StopForward()

        return pre

    handles = [lm.model.get_submodule(lm.name_of("attn_out", l)).register_forward_pre_hook(make(j), with_kwargs=True)
               for j, l in enumerate(layers)]
    try:
        b = encode(lm.tokenizer, seqs, lm.device)
        try:
            lm.model(**b.to_model_kwargs(), use_cache=False)
        except StopForward:
            pass
    finally:
        for h in handles:
            h.remove()
    return torch.stack(acts, 1)


# --------------------------------------------------------------------------------------------------
# moved names
# --------------------------------------------------------------------------------------------------


def test_moved_names_importable_from_both_modules():
    import memat
    import memat.corrections as new
    import memat.iti as iti
    import memat.memat as old
    from memat.corrections import FORMAT, HeadCorrections, check_heads, select_heads
    from memat.memat import FORMAT as F2, HeadCorrections as HC2, _check_heads, select_heads as sh2

    assert HeadCorrections is HC2 is memat.HeadCorrections and select_heads is sh2
    assert FORMAT == F2 == "memat.HeadCorrections/1"
    assert _check_heads is check_heads is new._check_heads
    assert {"FORMAT", "HeadCorrections", "select_heads"} <= set(old.__all__) and set(new.__all__) <= set(dir(new))
    assert iti.HeadCorrections is HeadCorrections  # ITI's shifts are the same class
    assert HeadCorrections.__module__ == "memat.corrections"
    for name in old.__all__:
        getattr(old, name)


# --------------------------------------------------------------------------------------------------
# the head site of the architecture table
# --------------------------------------------------------------------------------------------------


def test_head_site_is_the_input_of_attn_out_in_every_family():
    for family, spec in ARCHITECTURES.items():
        assert (spec.head_site, spec.head_site_direction) == ("attn_out", "input"), family
    lm = make_tiny_model("gpt2")
    assert [lm.head_site_name(l) for l in range(lm.n_layers)] == [lm.name_of("attn_out", l) for l in range(lm.n_layers)]


def test_split_and_merge_heads_are_head_major():
    lm = make_tiny_model("llama")
    H, d = lm.n_heads, lm.head_dim
    x = torch.arange(2 * 3 * H * d, dtype=torch.float32).reshape(2, 3, H * d)
    s = lm.split_heads(x)
    assert s.shape == (2, 3, H, d)
    for h in range(H):
        assert torch.equal(s[:, :, h], x[..., h * d : (h + 1) * d])
    assert torch.equal(lm.merge_heads(s), x) and torch.equal(merge_heads(split_heads(x, H, d)), x)
    assert torch.equal(s, x.view(2, 3, H, d))  # what the callers wrote by hand before
    with pytest.raises(ValueError, match="n_heads \\* head_dim"):
        lm.split_heads(x[..., :-1])
    with pytest.raises(ValueError, match="expected"):
        lm.merge_heads(s[..., :-1])


# --------------------------------------------------------------------------------------------------
# Trace's input edits
# --------------------------------------------------------------------------------------------------


def test_input_editing_trace_is_one_pre_hook():
    lm = make_tiny_model("llama")
    name = lm.name_of("attn_out", 1)
    mod = lm.model.get_submodule(name)
    seen = []
    with Trace(lm.model, name, retain_output=False, edit_input=lambda x, n: seen.append(n) or x) as t:
        assert len(mod._forward_pre_hooks) == 1 and not mod._forward_hooks
        assert not t.fired
        with torch.no_grad():
            lm.model(**_batch(lm).to_model_kwargs())
        assert t.fired and seen == [name] and t.output is None
    assert not mod._forward_pre_hooks and not mod._forward_hooks
    with Trace(lm.model, name):  # the default (retain the output) is one forward hook
        assert not mod._forward_pre_hooks and len(mod._forward_hooks) == 1
    with Trace(lm.model, name, retain_input=True, stop=True):
        assert len(mod._forward_pre_hooks) == 1 and len(mod._forward_hooks) == 1


# --------------------------------------------------------------------------------------------------
# the corrections' hooks, on Trace, against the previous implementation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_applied_is_bit_identical_to_the_previous_hooks(family):
    lm = make_tiny_model(family)
    corr = _corr(lm)
    kw = _batch(lm).to_model_kwargs()
    with torch.no_grad():
        base = lm.model(**kw).logits
        with _legacy_hooks(corr, lm):
            ref = lm.model(**kw).logits
        with corr.applied(lm) as c:
            assert c is corr
            got = lm.model(**kw).logits
    assert not torch.equal(ref, base)
    assert torch.equal(got, ref)
    assert not has_hooks(lm.model)


@pytest.mark.parametrize("family", FAMILIES)
def test_training_hook_bit_identical_with_norms_and_gradients(family):
    lm = make_tiny_model(family)
    b = _batch(lm)
    kw = b.to_model_kwargs()
    pos = _positions(b)
    rows = torch.arange(len(pos))

    def run(cm_of):
        corr = _corr(lm, requires_grad=True)
        norms: dict = {}
        with cm_of(corr, norms):
            logits = lm.model(**kw, use_cache=False).logits
        loss = logits[rows, torch.tensor(pos)].float().log_softmax(-1)[:, 5].sum()
        loss.backward()
        return logits.detach(), norms, corr.vectors.grad

    ref, n_ref, g_ref = run(lambda c, n: _legacy_hooks(c, lm, pos, n, detach=False))
    got, n_got, g_got = run(lambda c, n: c.hook_positions(lm, pos, norms=n))
    assert torch.equal(got, ref)
    assert sorted(n_got) == sorted(n_ref) == list(range(len(HEADS)))
    assert all(torch.equal(n_got[k], n_ref[k]) for k in n_ref)
    assert g_got is not None and torch.equal(g_got, g_ref)
    assert (g_got.norm(dim=-1) > 0).all()  # every head's vector receives a gradient
    assert not has_hooks(lm.model)


def test_applied_detaches_the_vectors():
    lm = make_tiny_model("llama")
    corr = _corr(lm, requires_grad=True)
    with corr.applied(lm):
        out = lm.model(**_batch(lm).to_model_kwargs()).logits
    assert not out.requires_grad  # the model is frozen and the inference hook adds detached vectors


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "falcon"])
def test_head_outputs_bit_identical_to_the_previous_hook(family):
    from memat.heads import head_outputs

    lm = make_tiny_model(family)
    seqs = [lm.tokenizer(t)["input_ids"] for t in TEXTS]
    pos = [len(s) - 2 for s in seqs[:2]] + [0, len(seqs[3]) - 1]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # head_outputs' batches, by length

    def legacy(layers, batch_size):
        out = torch.zeros(len(seqs), len(layers), lm.n_heads, lm.head_dim)
        for s in range(0, len(seqs), batch_size):
            idx = order[s : s + batch_size]
            out[torch.tensor(idx)] = _legacy_head_outputs(lm, [seqs[i] for i in idx], [pos[i] for i in idx], layers)
        return out

    for layers, bs in (([0, 1, 2, 3], 4), ([2, 0], 4), ([3, 1], 3)):
        got = head_outputs(lm, seqs, positions=pos, layers=layers, batch_size=bs)
        assert torch.equal(got, legacy(layers, bs)), (layers, bs)
    # with corrections applied, the reading hook sees the corrected input (registered after them)
    corr = _corr(lm)
    with corr.applied(lm):
        ref = legacy([1, 2], 2)
        got = head_outputs(lm, seqs, positions=pos, layers=[1, 2], batch_size=2)
    assert torch.equal(got, ref)
    assert not torch.equal(got, legacy([1, 2], 2))
    assert not has_hooks(lm.model)


# --------------------------------------------------------------------------------------------------
# interventions
# --------------------------------------------------------------------------------------------------


def _iti(lm):
    from memat.heads import ProbeData
    from memat.iti import iti_directions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, lm.n_layers, lm.n_heads, lm.head_dim)).astype(np.float32)
    data = ProbeData(X=X, y=np.tile([0, 1], 4), groups=np.repeat(np.arange(4), 2), case_ids=list(range(4)),
                     layers=list(range(lm.n_layers)), kept=list(range(4)), lang="en")
    return iti_directions(data, [(1, 0), (2, 3)], model_name=lm.name)


def test_the_three_kinds_are_interventions():
    from memat.interventions import Intervention

    lm = make_tiny_model("llama")
    shift = _iti(lm).corrections(2.0)
    for x in (_delta(lm), _corr(lm), shift):
        assert isinstance(x, Intervention), type(x)
    assert not isinstance(object(), Intervention) and not isinstance([_delta(lm)], Intervention)


class _Recorder:
    def __init__(self, name, log, fail_on_enter=False):
        self.name, self.log, self.fail = name, log, fail_on_enter

    @contextlib.contextmanager
    def applied(self, lm):
        if self.fail:
            raise RuntimeError(f"cannot apply {self.name}")
        self.log.append(("apply", self.name))
        try:
            yield self
        finally:
            self.log.append(("remove", self.name))


def test_applied_all_order_and_values():
    from memat.interventions import applied_all

    lm = make_tiny_model("llama")
    log: list = []
    a, b, c = (_Recorder(n, log) for n in "abc")
    with applied_all(lm, [a, None, b, c]) as got:
        assert got == [a, b, c]
        assert log == [("apply", "a"), ("apply", "b"), ("apply", "c")]
    assert log[3:] == [("remove", "c"), ("remove", "b"), ("remove", "a")]
    log.clear()
    with applied_all(lm, a):  # a single one, or None
        pass
    with applied_all(lm, None) as got:
        assert got == []
    assert log == [("apply", "a"), ("remove", "a")]
    log.clear()
    with pytest.raises(TypeError, match="#1"), applied_all(lm, [a, "not one"]):
        pass
    assert log == []  # checked before anything is applied
    with pytest.raises(RuntimeError, match="cannot apply b"), applied_all(lm, [a, _Recorder("b", log, True), c]):
        pass
    assert log == [("apply", "a"), ("remove", "a")]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_exception_inside_applied_all_leaves_the_model_as_it_was(family):
    from memat.interventions import applied_all

    lm = make_tiny_model(family)
    delta, corr, shift = _delta(lm), _corr(lm), _iti(lm).corrections(3.0)
    kw = _batch(lm).to_model_kwargs()
    state = _state(lm)
    with torch.no_grad():
        before = lm.model(**kw).logits
        with pytest.raises(KeyError, match="boom"), applied_all(lm, [delta, corr, shift]):
            assert delta.is_applied and has_hooks(lm.model)
            inside = lm.model(**kw).logits
            raise KeyError("boom")
        assert not torch.equal(inside, before)
        assert _same_state(lm, state) and not has_hooks(lm.model) and not delta.is_applied
        assert torch.equal(lm.model(**kw).logits, before)
        # applying fails half-way (the delta is already applied): what was applied is undone
        with delta.applied(lm):
            with pytest.raises(RuntimeError, match="already applied"), applied_all(lm, [corr, delta]):
                pass
            assert not has_hooks(lm.model)
        assert _same_state(lm, state)
        # the same logits as applying them by hand, nested in the same order
        with delta.applied(lm), corr.applied(lm), shift.applied(lm):
            manual = lm.model(**kw).logits
        with applied_all(lm, [delta, corr, shift]):
            assert torch.equal(lm.model(**kw).logits, manual)
    assert _same_state(lm, state) and not has_hooks(lm.model)


def _cases():
    return [
        EditCase(1, {"en": LangView("Toyota", "Japan", "Germany", "{} is located in",
                                    paraphrase_prompts=("The headquarters of Toyota is in",),
                                    neighborhood_prompts=("Sony is located in",))}),
        EditCase(2, {"en": LangView("Lionel Messi", "football", "basketball", "{} plays",
                                    paraphrase_prompts=("The sport of Lionel Messi is",),
                                    neighborhood_prompts=("Michael Jordan plays",), neighborhood_targets=("basketball",))}),
    ]


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_evaluate_cases_with_interventions_equals_manual_application(family, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model(family)
    cases = _cases()
    delta, corr, shift = _delta(lm, scale=0.5), _corr(lm), _iti(lm).corrections(3.0)
    state = _state(lm)
    plain = evaluate_cases(lm, cases, ["en"], progress=False)
    pd.testing.assert_frame_equal(evaluate_cases(lm, cases, ["en"], progress=False, interventions=[]), plain)
    for ivs in ([delta], [delta, corr], [delta, corr, shift], [corr]):
        with contextlib.ExitStack() as stack:  # what notebooks 04-06 do in their run_eval
            for x in ivs:
                stack.enter_context(x.applied(lm))
            manual = evaluate_cases(lm, cases, ["en"], progress=False)
        got = evaluate_cases(lm, cases, ["en"], progress=False, interventions=ivs)
        pd.testing.assert_frame_equal(got, manual)
        assert not got[["nll_new", "nll_true"]].equals(plain[["nll_new", "nll_true"]])
        assert _same_state(lm, state) and not has_hooks(lm.model)
    with pytest.raises(TypeError, match="not interventions"):
        evaluate_cases(lm, cases, ["en"], progress=False, interventions=[delta, 3])
    assert _same_state(lm, state) and not has_hooks(lm.model)
