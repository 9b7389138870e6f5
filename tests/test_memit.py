"""MEMIT (memat.memit) against hand computations, closed-form properties and end-to-end efficacy on tiny models.

Keys, token positions and the z-layer states used as references are traced here, one unpadded sequence at
a time, with memat.hooks.Trace and token ids written out word by word (the word-level test tokenizer gives
one id per word after <bos>), so they do not share code with memit._keys_and_states / subject_last_index.
"""
from __future__ import annotations

import dataclasses
import math
import random

import pytest
import torch

import memat.memit as memit_mod
from memat.data.records import EditCase, LangView
from memat.forward import token_ids
from memat.hooks import TraceDict
from memat.hparams import MemitHparams
from memat.memit import (
    EditRequest,
    MemitDelta,
    _rms_gain,
    _through_post_norm,
    compute_memit,
    compute_targets,
    requests_from_cases,
)
from memat.stats import compute_second_moments
from tiny_models import VOCAB_WORDS, make_tiny_model

REQS = [
    EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo"),
    EditRequest(1, "The home of {} is in", "Pablo Picasso", "New York"),  # "New" is <unk>: still one token
    EditRequest(2, "{} was born in", "Lionel Messi", "Cairo", kl_prompts=("{} is a", "The name {}")),
]
CONTEXTS = ["{}", "The city . {}", "In the year of the war . {}"]


def _state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def _assert_state_equal(lm, ref, msg):
    now = lm.model.state_dict()
    assert now.keys() == ref.keys()
    changed = [k for k in ref if not torch.equal(now[k], ref[k])]
    assert not changed, f"{msg}: parameters changed: {changed}"


def _words_and_index(context: str, req: EditRequest):
    """Words of the context-wrapped prompt and the subject's last index, counted by hand (index 0 is <bos>)."""
    text = context.format(req.prompt.format(req.subject))
    before = context.format(req.prompt).split("{}")[0]
    return text.split(), 1 + len(before.split()) + len(req.subject.split()) - 1


@torch.no_grad()
def _hand_keys_and_states(lm, reqs, layer, z_layer, contexts):
    """Mean MLP-output-projection input over contexts [n, m] and the z-layer output of the plain prompt [n, d]."""
    tok = lm.tokenizer
    mlp, zname = lm.name_of("mlp_out", layer), lm.name_of("layer", z_layer)
    keys, states = [], []
    for q in reqs:
        ks = []
        for ci, c in enumerate(contexts):
            words, idx = _words_and_index(c, q)
            ids = torch.tensor([[tok.bos_token_id] + tok.convert_tokens_to_ids(words)])
            assert tok.convert_ids_to_tokens(int(ids[0, idx])) == q.subject.split()[-1]
            with TraceDict(lm.model, [mlp, zname], retain_input=True) as td:
                lm.model(input_ids=ids)
            ks.append(td[mlp].input[0, idx].double())
            if ci == 0:
                zo = td[zname].output
                states.append((zo[0] if isinstance(zo, tuple) else zo)[0, idx].double())
        # MEMIT's compute_ks: mean within each context type (the bare prompt; the prefixes), then over types
        ks = torch.stack(ks)
        plain = torch.tensor([c == "{}" for c in contexts])
        keys.append(torch.stack([ks[plain].mean(0), ks[~plain].mean(0)]).mean(0) if 0 < plain.sum() < len(contexts) else ks.mean(0))
    return torch.stack(keys), torch.stack(states)


def _spd(m, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, m, generator=g, dtype=torch.float64)
    return (a @ a.T / m + 0.5 * torch.eye(m, dtype=torch.float64)).float()


def _hp(layers, **kw):
    base = dict(layers=layers, v_num_grad_steps=2, batch_size=8, mom2_update_weight=1.0)
    base.update(kw)
    return MemitHparams(**base)


# --------------------------------------------------------------------------------------------------
# the closed-form update
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_update_formula_single_layer(family):
    """dW = R K^T (lam C + K K^T)^-1, with K the context-averaged keys, R = z - h_L(plain prompt), C given."""
    lm = make_tiny_model(family)
    layer = 1
    m = lm.mlp_out_weight(layer).shape[1]
    lam = 3.0
    C = _spd(m, seed=5)
    keys, cur = _hand_keys_and_states(lm, REQS, layer, layer, CONTEXTS)
    g = torch.Generator().manual_seed(2)
    zs = (cur + torch.randn(cur.shape, generator=g, dtype=torch.float64)).float()
    hp = _hp([layer], mom2_update_weight=lam)
    before = _state(lm)
    delta = compute_memit(lm, REQS, hp, stats={layer: C}, contexts=CONTEXTS, progress=False, targets=(zs, []))
    _assert_state_equal(lm, before, "compute_memit")

    K, R = keys.T, (zs.double() - cur).T  # [m, n], [d, n]
    by_hand = R @ K.T @ torch.linalg.inv(lam * C.double() + K @ K.T)  # [d_out, d_in]
    wname = lm.name_of("mlp_out", layer) + ".weight"
    assert list(delta.deltas) == [wname]
    got = delta.deltas[wname]
    param = lm.model.get_parameter(wname)
    assert got.shape == param.shape and got.dtype == param.dtype
    got_out_in = got if lm.spec.weight_layout == "out_in" else got.T
    torch.testing.assert_close(got_out_in.double(), by_hand, rtol=1e-4, atol=1e-5 * float(by_hand.abs().max()))
    assert float(by_hand.abs().max()) > 1e-3  # a non-trivial update

    # applied, the MLP output at a key changes by exactly dW k (checks the in_out layout through the module)
    words, idx = _words_and_index(CONTEXTS[1], REQS[0])
    ids = torch.tensor([[lm.tokenizer.bos_token_id] + lm.tokenizer.convert_tokens_to_ids(words)])
    name = lm.name_of("mlp_out", layer)
    with torch.no_grad(), TraceDict(lm.model, [name], retain_input=True) as t0:
        lm.model(input_ids=ids)
    with delta.applied(lm), torch.no_grad(), TraceDict(lm.model, [name], retain_input=True) as t1:
        lm.model(input_ids=ids)
    torch.testing.assert_close(t1[name].input, t0[name].input)
    change = (t1[name].output - t0[name].output)[0, idx].double()
    torch.testing.assert_close(change, by_hand @ t0[name].input[0, idx].double(), rtol=1e-3, atol=1e-5)


def test_the_solve_runs_where_and_in_the_precision_the_hparams_say(monkeypatch):
    """``solve_device``/``solve_dtype``: the solve reads its matrices in that dtype on that device (spied on
    torch.linalg.solve), float32 stays close to the float64 update by hand, and an edit at the defaults keeps
    the cache key it had before the fields existed."""
    lm = make_tiny_model("llama")
    layer, lam = 1, 3.0
    C = _spd(lm.mlp_out_weight(layer).shape[1], seed=5)
    keys, cur = _hand_keys_and_states(lm, REQS, layer, layer, CONTEXTS)
    g = torch.Generator().manual_seed(2)
    zs = (cur + torch.randn(cur.shape, generator=g, dtype=torch.float64)).float()
    K, R = keys.T, (zs.double() - cur).T
    by_hand = R @ K.T @ torch.linalg.inv(lam * C.double() + K @ K.T)
    wname = lm.name_of("mlp_out", layer) + ".weight"
    seen, real = [], torch.linalg.solve
    monkeypatch.setattr(torch.linalg, "solve", lambda A, B: seen.append((A.device.type, A.dtype, B.dtype)) or real(A, B))
    got = {}
    for dtype in ("float64", "float32"):
        hp = _hp([layer], mom2_update_weight=lam, solve_dtype=dtype)
        d = compute_memit(lm, REQS, hp, stats={layer: C}, contexts=CONTEXTS, progress=False, targets=(zs, []))
        got[dtype] = d.deltas[wname] if lm.spec.weight_layout == "out_in" else d.deltas[wname].T
        assert seen[-1] == ("cpu", getattr(torch, dtype), getattr(torch, dtype)) and got[dtype].dtype == torch.float32
    scale = float(by_hand.abs().max())
    torch.testing.assert_close(got["float64"].double(), by_hand, rtol=1e-4, atol=1e-5 * scale)
    torch.testing.assert_close(got["float32"].double(), by_hand, rtol=1e-2, atol=1e-3 * scale)
    assert not torch.equal(got["float32"], got["float64"])  # the float32 solve did run in float32

    # placement: the host, or the device of the model's first parameter
    fake = type("FakeLM", (), {"device": torch.device("meta")})()
    assert memit_mod.solve_placement(fake, _hp([1])) == (torch.device("cpu"), torch.float64)
    assert memit_mod.solve_placement(fake, _hp([1], solve_device="model", solve_dtype="float32")) == (
        torch.device("meta"), torch.float32)

    # the defaults leave an edit's key as it was; another placement or precision is another edit
    hp = _hp([1, 2])
    key = lambda h: memit_mod.memit_cache_key(lm, REQS, h, "en")
    k0 = key(hp)
    assert key(dataclasses.replace(hp, solve_dtype="float32")) != k0
    assert key(dataclasses.replace(hp, solve_device="model")) != k0
    fields = {"solve_device", "solve_dtype"}
    monkeypatch.setattr(MemitHparams, "to_dict", lambda self: {k: v for k, v in dataclasses.asdict(self).items()
                                                               if k not in fields})
    assert key(hp) == k0


@pytest.mark.parametrize("family", ["llama", "falcon"])
def test_multilayer_update_reaches_targets(family):
    """With one context, a vanishing lambda and C = I, the last layer's update realises the remaining residual
    exactly, so after the whole edit the z-layer state at the subject equals z (for every edit). This checks the
    residual spreading and that keys/states are recomputed after each layer's update."""
    lm = make_tiny_model(family)
    layers = [0, 1, 2]
    m = lm.mlp_out_weight(0).shape[1]
    stats = {l: torch.eye(m) for l in layers}
    _, cur = _hand_keys_and_states(lm, REQS, layers[-1], layers[-1], ["{}"])
    g = torch.Generator().manual_seed(3)
    zs = (cur + 0.5 * cur.norm(dim=-1, keepdim=True) / math.sqrt(cur.shape[1])
          * torch.randn(cur.shape, generator=g, dtype=torch.float64)).float()
    lam = 1e-6
    hp = _hp(layers, mom2_update_weight=lam)
    delta = compute_memit(lm, REQS, hp, stats=stats, contexts=["{}"], progress=False, targets=(zs, []))
    assert len(delta.deltas) == 3 and all(float(d.abs().max()) > 0 for d in delta.deltas.values())
    # the first layer takes 1/3 of the residual: dW_0 = (R / 3) K_0^T (lam I + K_0 K_0^T)^-1
    keys0, _ = _hand_keys_and_states(lm, REQS, 0, layers[-1], ["{}"])
    K0, R0 = keys0.T, (zs.double() - cur).T / len(layers)
    by_hand = R0 @ K0.T @ torch.linalg.inv(lam * torch.eye(m, dtype=torch.float64) + K0 @ K0.T)
    dw0 = delta.deltas[lm.name_of("mlp_out", 0) + ".weight"].double()
    torch.testing.assert_close(dw0 @ K0, R0, rtol=1e-3, atol=1e-4 * float(R0.abs().max()))  # realises R/3 at the keys
    torch.testing.assert_close(dw0, by_hand, rtol=1e-3, atol=1e-3 * float(by_hand.abs().max()))
    with delta.applied(lm):
        _, reached = _hand_keys_and_states(lm, REQS, layers[-1], layers[-1], ["{}"])
    torch.testing.assert_close(reached, zs.double(), rtol=1e-3, atol=1e-3 * float(zs.abs().max()))
    assert float((zs.double() - cur).norm()) > 10 * float((reached - zs.double()).norm())
    assert [r["layer"] for r in delta.meta["layers"]] == layers


@pytest.mark.parametrize("family", ["gemma3_text", "gemma2"])
def test_post_norm_family_reaches_reachable_target(family):
    """Gemma's MLP output passes through an RMS norm before joining the residual stream. Choose z = h_L + norm(m2) -
    norm(m), with m the traced MLP output at the subject and m2 another vector: reachable. With one layer, one
    context and a vanishing lambda, the edited model's state at the subject is exactly z (only if the residual is
    mapped through the norm; adding it to the MLP output directly would not land there)."""
    lm = make_tiny_model(family)
    layer = 1
    name, post = lm.name_of("mlp_out", layer), lm.module("post_mlp_norm", layer)
    ms = []
    with torch.no_grad():
        for q in REQS:
            words, idx = _words_and_index("{}", q)
            ids = torch.tensor([[lm.tokenizer.bos_token_id] + lm.tokenizer.convert_tokens_to_ids(words)])
            with TraceDict(lm.model, [name]) as td:
                lm.model(input_ids=ids)
            ms.append(td[name].output[0, idx])
        m = torch.stack(ms)
        g = torch.Generator().manual_seed(7)
        m2 = m + m.abs().mean() * torch.randn(m.shape, generator=g)
        step = post(m2) - post(m)
    _, cur = _hand_keys_and_states(lm, REQS, layer, layer, ["{}"])
    zs = (cur + step.double()).float()
    d_in = lm.mlp_out_weight(layer).shape[1]
    hp = _hp([layer], mom2_update_weight=1e-6)
    delta = compute_memit(lm, REQS, hp, stats={layer: torch.eye(d_in)}, contexts=["{}"], progress=False, targets=(zs, []))
    with delta.applied(lm):
        _, reached = _hand_keys_and_states(lm, REQS, layer, layer, ["{}"])
    err = (reached - zs.double()).norm(dim=-1)
    assert float(err.max()) < 1e-3 * float(step.norm(dim=-1).min()), (err, step.norm(dim=-1))


def test_mom2_adjustment_false_uses_identity():
    """Without statistics the second moment is the identity (ROME's mom2_adjustment=False): dW = R K^T (lam I + K K^T)^-1.
    (K K^T alone is singular when there are fewer edits than key dimensions.)"""
    lm = make_tiny_model("llama")
    layer = 1
    lam = 2.0
    keys, cur = _hand_keys_and_states(lm, REQS, layer, layer, ["{}"])
    zs = (cur + 1.0).float()
    hp = _hp([layer], mom2_adjustment=False, mom2_update_weight=lam)
    delta = compute_memit(lm, REQS, hp, stats=None, contexts=["{}"], progress=False, targets=(zs, []))
    K, R = keys.T, (zs.double() - cur).T
    by_hand = R @ K.T @ torch.linalg.inv(lam * torch.eye(K.shape[0], dtype=torch.float64) + K @ K.T)
    got = delta.deltas[lm.name_of("mlp_out", layer) + ".weight"].double()
    torch.testing.assert_close(got, by_hand, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# efficacy end to end
# --------------------------------------------------------------------------------------------------

# Subject-final prompts: in a random 4-layer model with hidden size 32, a residual change at a subject token
# that is followed by other tokens reaches the prediction only through one or two random attention layers
# whose values are read through an RMS/LayerNorm (bounded), which cannot move the next-token distribution
# far; with the subject last, the optimised vector acts on the prediction position directly.
EFFICACY_REQS = [
    EditRequest(0, "The home of {}", "Michael Jordan", "Tokyo"),
    EditRequest(1, "The home of {}", "Pablo Picasso", "Oslo"),
    EditRequest(2, "The city of {}", "Lionel Messi", "Cairo"),
]


def _stats_texts(n=40, words=12):
    rng = random.Random(0)
    vocab = [w for w in VOCAB_WORDS if w.isalpha()]
    return [" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(n)]


@torch.no_grad()
def _next_token_logprobs(lm, req):
    ids = torch.tensor([lm.tokenizer(req.prompt.format(req.subject)).input_ids])
    return torch.log_softmax(lm.model(input_ids=ids).logits[0, -1].double(), -1)


@pytest.mark.parametrize("family, layers", [("llama", [1, 2]), ("gemma3_text", [0, 1, 2]), ("falcon", [1, 2])])
def test_memit_efficacy(family, layers):
    lm = make_tiny_model(family)
    tok = lm.tokenizer
    stats, count = compute_second_moments(lm, layers, _stats_texts(), progress=False)
    assert count > lm.mlp_out_weight(0).shape[1]  # full-rank statistics
    hp = MemitHparams(layers=layers, v_lr=1.0, v_num_grad_steps=30, v_weight_decay=1e-3, clamp_norm_factor=4.0,
                      mom2_update_weight=0.01, batch_size=8)
    tgt = [tok.convert_tokens_to_ids(q.target_new) for q in EFFICACY_REQS]
    before = [_next_token_logprobs(lm, q) for q in EFFICACY_REQS]
    assert all(int(lp.argmax()) != t for lp, t in zip(before, tgt)), "precondition: targets are not predicted yet"
    state = _state(lm)
    delta = compute_memit(lm, EFFICACY_REQS, hp, stats=stats, contexts=["{}"], progress=False)
    _assert_state_equal(lm, state, "compute_memit")
    with delta.applied(lm):
        after = [_next_token_logprobs(lm, q) for q in EFFICACY_REQS]
    _assert_state_equal(lm, state, "after applied()")
    for q, t, lp0, lp1 in zip(EFFICACY_REQS, tgt, before, after):
        assert int(lp1.argmax()) == t, f"{family}: {q.prompt.format(q.subject)!r} -> {tok.convert_ids_to_tokens(int(lp1.argmax()))}"
        assert float(lp1[t] - lp0[t]) > 1.5
    if lm.spec.post_mlp_norm is None:
        # the weight edit realises the optimised vector: the edited model's NLL is the one the optimisation reached
        for log, t, lp1 in zip(delta.meta["targets"], tgt, after):
            assert abs(-float(lp1[t]) - log["nll_end"]) < 0.05
            assert log["nll_end"] < log["nll_start"] - 1.0


# --------------------------------------------------------------------------------------------------
# MemitDelta bookkeeping
# --------------------------------------------------------------------------------------------------


def _random_delta(lm, layers=(1, 3), scale=1e-3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for l in layers:
        p = lm.model.get_parameter(lm.name_of("mlp_out", l) + ".weight")
        out[lm.name_of("mlp_out", l) + ".weight"] = torch.randn(p.shape, generator=g) * scale
    return MemitDelta(out, {"case_ids": [1, "b"], "note": "x", "nested": {"a": [1.5, None]}})


def test_delta_apply_remove_bitwise():
    lm = make_tiny_model("llama")
    ref = _state(lm)
    d = _random_delta(lm)
    k = next(iter(d.deltas))
    # precondition: undoing by subtraction would NOT restore the weights bit for bit
    assert not torch.equal(ref[k] + d.deltas[k] - d.deltas[k], ref[k])
    d.apply(lm)
    assert d.is_applied
    assert torch.equal(lm.model.get_parameter(k), ref[k] + d.deltas[k])
    with pytest.raises(RuntimeError, match="already applied"):
        d.apply(lm)
    assert torch.equal(lm.model.get_parameter(k), ref[k] + d.deltas[k]), "a refused second apply changed weights"
    d.remove(lm)
    assert not d.is_applied
    _assert_state_equal(lm, ref, "apply + remove")
    d.remove(lm)  # removing an unapplied delta is a no-op
    _assert_state_equal(lm, ref, "second remove")


def test_delta_applied_context_restores_on_error():
    lm = make_tiny_model("gpt2")
    ref = _state(lm)
    d = _random_delta(lm)
    with pytest.raises(KeyError, match="boom"):
        with d.applied(lm):
            assert not torch.equal(lm.model.get_parameter(next(iter(d.deltas))), ref[next(iter(d.deltas))])
            raise KeyError("boom")
    _assert_state_equal(lm, ref, "applied() with an exception")
    assert not d.is_applied


def test_delta_apply_rejects_bad_deltas_without_editing():
    lm = make_tiny_model("llama")
    ref = _state(lm)
    good = _random_delta(lm)
    bad_name = MemitDelta({**good.deltas, "model.layers.9.mlp.down_proj.weight": torch.zeros(3)})
    with pytest.raises(KeyError, match="lacks"):
        bad_name.apply(lm)
    k = next(iter(good.deltas))
    bad_shape = MemitDelta({**good.deltas, k: good.deltas[k].T.contiguous()})
    with pytest.raises(ValueError, match="shape"):
        bad_shape.apply(lm)
    _assert_state_equal(lm, ref, "rejected deltas")


def test_delta_save_load_roundtrip(tmp_path):
    lm = make_tiny_model("llama")
    d = _random_delta(lm)
    path = d.save(tmp_path / "sub" / "edit.safetensors")
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    e = MemitDelta.load(path)
    assert e.deltas.keys() == d.deltas.keys()
    for k in d.deltas:
        assert torch.equal(e.deltas[k], d.deltas[k]) and e.deltas[k].dtype == d.deltas[k].dtype
    assert e.meta == d.meta
    assert not e.is_applied


def test_delta_sum():
    lm = make_tiny_model("llama")
    a, b = _random_delta(lm, (1, 3), seed=1), _random_delta(lm, (2, 3), seed=2)
    s = a + b
    k1, k2, k3 = (lm.name_of("mlp_out", l) + ".weight" for l in (1, 2, 3))
    assert set(s.deltas) == {k1, k2, k3}
    assert torch.equal(s.deltas[k1], a.deltas[k1]) and torch.equal(s.deltas[k2], b.deltas[k2])
    assert torch.equal(s.deltas[k3], a.deltas[k3] + b.deltas[k3])


def test_compute_memit_leaves_model_unchanged_and_restores_on_error(monkeypatch):
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = _hp(layers, v_num_grad_steps=3)
    ref = _state(lm)
    w1 = lm.name_of("mlp_out", 1) + ".weight"
    real = memit_mod._keys_and_states
    seen = []

    def spy(lm_, reqs, layer, *a, **k):
        # the first layer's update is in the model while the second layer's keys are computed
        seen.append((layer, not torch.equal(lm_.model.get_parameter(w1), ref[w1])))
        return real(lm_, reqs, layer, *a, **k)

    monkeypatch.setattr(memit_mod, "_keys_and_states", spy)
    d = compute_memit(lm, REQS, hp, stats=stats, contexts=["{}"], progress=False)
    assert seen == [(1, False), (2, True)], seen
    _assert_state_equal(lm, ref, "after compute_memit")
    assert all(float(v.abs().max()) > 0 for v in d.deltas.values())

    def failing(lm_, reqs, layer, *a, **k):
        if layer == 2:
            assert not torch.equal(lm_.model.get_parameter(w1), ref[w1])  # mid-way: layer 1 is edited in place
            raise RuntimeError("simulated failure on the second layer")
        return real(lm_, reqs, layer, *a, **k)

    monkeypatch.setattr(memit_mod, "_keys_and_states", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        compute_memit(lm, REQS, hp, stats=stats, contexts=["{}"], progress=False)
    _assert_state_equal(lm, ref, "after a failed compute_memit")


# --------------------------------------------------------------------------------------------------
# batching of the target optimisation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
@pytest.mark.parametrize("early_stop_loss", [0.05, 5.5], ids=["no-early-stop", "early-stop"])
def test_compute_targets_batched_equals_one_at_a_time(family, early_stop_loss):
    """The rows of different edits never interact (separate sequences, per-row Adam statistics, frozen rows
    restored), so a batch of 3 and 3 batches of 1 are the same computation up to float32 rounding: padding
    changes matrix shapes and thus the summation order (relative differences ~1e-7 per op), and 15 Adam
    steps carry them along; the observed worst case is ~1e-6 of |z|, the tolerance is 1e-4 of |z|.
    With early_stop_loss=5.5 the first edit stops after a few steps while the others continue."""
    lm = make_tiny_model(family)
    reqs = [EFFICACY_REQS[0], REQS[1], REQS[2]]  # the first one's loss drops fast (subject-final prompt)
    hp = _hp([1, 2], v_num_grad_steps=15, v_lr=0.5, early_stop_loss=early_stop_loss, batch_size=3)
    z3, init3, log3 = compute_targets(lm, reqs, hp, CONTEXTS, progress=False)
    z1, init1, log1 = compute_targets(lm, reqs, dataclasses.replace(hp, batch_size=1), CONTEXTS, progress=False)
    scale = float(z1.abs().max())
    torch.testing.assert_close(init3, init1, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(z3, z1, rtol=1e-4, atol=1e-4 * scale)
    assert float((z1 - init1).norm(dim=-1).min()) > 1e-2 * scale  # the optimisation moved every target
    assert float((z1 - init1).norm(dim=-1).max()) > 0.2 * scale
    steps1 = [l["steps"] for l in log1]
    if early_stop_loss > 1:
        assert steps1[0] < hp.v_num_grad_steps and steps1[1] == hp.v_num_grad_steps, steps1
    for a, b in zip(log3, log1):
        assert a["case_id"] == b["case_id"]
        assert a["steps"] == b["steps"], (log3, log1)
        for key in ("nll_start", "nll_end", "kl_end", "delta_norm_ratio"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("family", ["llama", "gpt2", "falcon", "gemma3_text", "gpt_neox"])
@pytest.mark.parametrize("early_stop_loss", [0.05, 5.5], ids=["no-early-stop", "early-stop"])
def test_compute_targets_suffix_equals_full_recomputation(family, early_stop_loss):
    """The suffix method (prefix positions in the key/value cache, each step over the positions from the
    subject's last token on, finished requests leaving the batch) against today's full replay of every
    position: the same target vectors, starting points, step counts and logged losses. Tolerance 1e-4 of
    |z| after 15 Adam steps (observed ~1e-6: float32 rounding of different matrix shapes)."""
    over = {"sliding_window": 64} if family == "gemma3_text" else {}  # the tiny default window (4) is shorter than the rows
    lm = make_tiny_model(family, **over)
    reqs = [EFFICACY_REQS[0], REQS[1], REQS[2], EFFICACY_REQS[2]]
    hp = _hp([1, 2], v_num_grad_steps=15, v_lr=0.5, early_stop_loss=early_stop_loss, batch_size=4)
    zf, initf, logf = compute_targets(lm, reqs, hp, CONTEXTS, progress=False, method="full")
    zs, inits, logs = compute_targets(lm, reqs, hp, CONTEXTS, progress=False, method="suffix")
    scale = float(zf.abs().max())
    torch.testing.assert_close(inits, initf, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(zs, zf, rtol=1e-4, atol=1e-4 * scale)
    assert float((zf - initf).norm(dim=-1).min()) > 1e-2 * scale  # every target moved
    steps = [l["steps"] for l in logs]
    if early_stop_loss > 1:  # some requests stop early while the others continue
        assert min(steps) < hp.v_num_grad_steps == max(steps), steps
    for a, b in zip(logs, logf):
        assert a["case_id"] == b["case_id"] and a["steps"] == b["steps"], (logs, logf)
        for key in ("nll_start", "nll_end", "kl_end", "delta_norm_ratio"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


def test_compute_targets_falls_back_to_full_within_a_short_sliding_window():
    lm = make_tiny_model("gemma3_text")  # window of 4 tokens: the suffix split cannot be used
    hp = _hp([1, 2], v_num_grad_steps=3, v_lr=0.5)
    zs, _, _ = compute_targets(lm, REQS, hp, CONTEXTS, progress=False, method="suffix")
    zf, _, _ = compute_targets(lm, REQS, hp, CONTEXTS, progress=False, method="full")
    torch.testing.assert_close(zs, zf, rtol=0, atol=0)
    with pytest.raises(ValueError, match="method must be one of"):
        compute_targets(lm, REQS, hp, CONTEXTS, progress=False, method="fast")


def test_compute_targets_initial_state_is_traced_state():
    lm = make_tiny_model("gpt2")
    _, cur = _hand_keys_and_states(lm, REQS, 2, 2, ["{}"])
    hp = _hp([1, 2], v_num_grad_steps=1)
    z, init, _ = compute_targets(lm, REQS, hp, CONTEXTS, progress=False)
    torch.testing.assert_close(init.double(), cur, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z, init)  # one step: loss computed, no update made


# --------------------------------------------------------------------------------------------------
# the post-MLP RMS norm
# --------------------------------------------------------------------------------------------------


def _rmsnorm(x, g):
    return g * x / x.pow(2).mean(-1, keepdim=True).sqrt()


def _random_norm_case(seed, n=5, d=24):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, d, generator=gen, dtype=torch.float64) * 3
    g = 1.0 + 0.5 * torch.randn(d, generator=gen, dtype=torch.float64)  # a few gains may be negative
    return gen, m, g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_through_post_norm_reachable_target(seed):
    """resid = norm(m2) - norm(m) is reachable: norm(m + result) == norm(m) + resid exactly; and m + result is the
    point of the ray through m2 closest to m (m - m' orthogonal to m') unless that projection is clamped."""
    gen, m, g = _random_norm_case(seed)
    m2 = torch.randn(m.shape, generator=gen, dtype=torch.float64) * 2
    m2[:3] += 2 * m[:3]  # rows 0-2 point roughly like m: their projection is not clamped
    resid = _rmsnorm(m2, g) - _rmsnorm(m, g)
    r = _through_post_norm(m, resid, g)
    assert r.dtype == m.dtype
    new = m + r
    torch.testing.assert_close(_rmsnorm(new, g), _rmsnorm(m, g) + resid, rtol=1e-9, atol=1e-9)
    rms = lambda x: x.pow(2).mean(-1).sqrt()  # noqa: E731
    proj = (m * m2).sum(-1) / m2.norm(dim=-1)  # length of m's projection on the ray
    unclamped = proj / math.sqrt(m.shape[1]) > 0.1 * rms(m) * (1 + 1e-6)
    assert bool(unclamped[:3].all())
    for i in torch.nonzero(unclamped).flatten().tolist():
        assert abs(float(((m[i] - new[i]) * new[i]).sum())) < 1e-9 * float(m[i].norm() ** 2)
        torch.testing.assert_close(new[i].norm(), proj[i])


def test_through_post_norm_opposite_direction_is_clamped_but_reached():
    """A target pointing against m needs a negative projection; the scale is clamped to 0.1 rms(m) and the
    normalised image still reaches the target."""
    _, m, g = _random_norm_case(3)
    resid = -2 * _rmsnorm(m, g)  # target -norm(m) = norm(-m)
    new = m + _through_post_norm(m, resid, g)
    torch.testing.assert_close(_rmsnorm(new, g), -_rmsnorm(m, g), rtol=1e-9, atol=1e-9)
    rms = lambda x: x.pow(2).mean(-1).sqrt()  # noqa: E731
    torch.testing.assert_close(rms(new), 0.1 * rms(m))


@pytest.mark.parametrize("uniform_gain", [False, True])
def test_through_post_norm_unreachable_target(uniform_gain):
    """For an unreachable y = norm(m) + resid, the image p = norm(m + result) is the Euclidean-nearest point of the
    reachable set {g * v : rms(v) = 1} to y. Checked by the global-optimality certificate of this trust-region
    problem (v = p / g satisfies (g^2 + mu) v = g y for ONE multiplier mu with g^2 + mu >= 0), and by comparison
    with the radial projection y / rms(y / g) and with random reachable points. With a uniform gain the set is a
    sphere and p = radius * y / |y|."""
    gen, m, g = _random_norm_case(4)
    if uniform_gain:
        g = torch.full_like(g, 1.7)
    resid = 5 * torch.randn(m.shape, generator=gen, dtype=torch.float64)
    y = _rmsnorm(m, g) + resid
    p = _rmsnorm(m + _through_post_norm(m, resid, g), g)
    v = p / g
    radial = y / (y / g).pow(2).mean(-1, keepdim=True).sqrt()
    assert ((y / g).pow(2).mean(-1).sqrt() - 1).abs().min() > 0.1  # really unreachable
    torch.testing.assert_close(v.pow(2).mean(-1), torch.ones(len(v), dtype=v.dtype))  # on the reachable set
    mu = (g * y - g * g * v) / v
    torch.testing.assert_close(mu, mu.mean(-1, keepdim=True).expand_as(mu), rtol=1e-6, atol=1e-6)
    assert bool((g * g + mu.mean(-1, keepdim=True) >= -1e-9).all())
    dist = (p - y).norm(dim=-1)
    assert bool((dist <= (radial - y).norm(dim=-1) + 1e-9).all())
    if not uniform_gain:
        assert bool((dist < (radial - y).norm(dim=-1) - 1e-3).any())  # the radial projection is not the nearest
    w = torch.randn(2000, m.shape[1], generator=gen, dtype=torch.float64)
    samples = g * w / w.pow(2).mean(-1, keepdim=True).sqrt()  # random reachable points
    for i in range(len(y)):
        assert float(dist[i]) <= float((samples - y[i]).norm(dim=-1).min()) + 1e-9
    if uniform_gain:
        radius = 1.7 * math.sqrt(m.shape[1])
        torch.testing.assert_close(p, radius * y / y.norm(dim=-1, keepdim=True), rtol=1e-9, atol=1e-9)


def test_rms_gain_reads_the_norm_scale():
    lm = make_tiny_model("gemma3_text")
    norm = lm.module("post_mlp_norm", 1)
    x = torch.randn(7, lm.hidden_size)
    with torch.no_grad():
        by_hand = norm(x) * x.pow(2).mean(-1, keepdim=True).sqrt() / x  # g = norm(x) rms(x) / x
        g = _rms_gain(norm, lm.hidden_size, lm.device, lm.dtype)
    torch.testing.assert_close(g.expand_as(by_hand), by_hand, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


def _case():
    en = LangView("Michael Jordan", "Chicago", "Tokyo", "{} lives in")
    ca = LangView("Michael Jordan", "Chicago", "Tòquio", "{} viu a")
    return EditCase(case_id=7, langs={"en": en, "ca": ca})


def test_errors_are_clear():
    lm = make_tiny_model("llama")
    eye = {l: torch.eye(64) for l in range(4)}
    with pytest.raises(ValueError, match=r"layers \[4\] out of range .*4 layers"):
        compute_memit(lm, REQS, _hp([2, 4]), stats=eye, contexts=["{}"], progress=False)
    with pytest.raises(ValueError, match="mom2_adjustment needs stats"):
        compute_memit(lm, REQS, _hp([1, 2]), stats=None, contexts=["{}"], progress=False)
    with pytest.raises(ValueError, match="mom2_adjustment needs stats"):
        compute_memit(lm, REQS, _hp([1, 2]), stats={1: eye[1]}, contexts=["{}"], progress=False)
    with pytest.raises(ValueError, match="pass lang="):
        compute_memit(lm, [_case()], _hp([1]), stats=eye, contexts=["{}"], progress=False)
    with pytest.raises(ValueError, match="no requests"):
        compute_memit(lm, [], _hp([1]), stats=eye, contexts=["{}"], progress=False)
    with pytest.raises(ValueError, match="exactly once"):
        compute_memit(lm, [EditRequest(0, "Michael lives in", "Michael", "Tokyo")], _hp([1]), stats=eye,
                      contexts=["{}"], progress=False)


def test_requests_from_cases_and_edit_case_input():
    lm = make_tiny_model("llama")
    reqs = requests_from_cases([_case()], "ca")
    assert reqs == [EditRequest(7, "{} viu a", "Michael Jordan", "Tòquio", ("{} is a",))]
    hp = _hp([1], mom2_adjustment=False)
    d_case = compute_memit(lm, [_case()], hp, lang="ca", contexts=["{}"], progress=False)
    d_req = compute_memit(lm, reqs, hp, contexts=["{}"], progress=False)
    assert d_case.meta["case_ids"] == [7] and d_case.meta["lang"] == "ca"
    for k in d_req.deltas:
        assert torch.equal(d_case.deltas[k], d_req.deltas[k])
    assert token_ids(lm.tokenizer, "Tòquio", bos=False) == [lm.tokenizer.convert_tokens_to_ids("Tòquio")]


# --------------------------------------------------------------------------------------------------
# the on-disk delta cache
# --------------------------------------------------------------------------------------------------
def test_cached_memit_reuses_only_identical_edits(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = _hp(layers, v_num_grad_steps=2, context_templates=[[3, 1]])
    calls = []
    real = memit_mod.compute_memit
    monkeypatch.setattr(memit_mod, "compute_memit", lambda *a, **k: calls.append(1) or real(*a, **k))

    first = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)
    again = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)
    assert len(calls) == 1
    assert first.deltas.keys() == again.deltas.keys()
    assert all(torch.equal(first.deltas[k], again.deltas[k]) for k in first.deltas)
    # the cached delta is exactly what compute_memit gives with the same contexts
    direct = real(lm, REQS, hp, stats=stats, lang="en", progress=False,
                  contexts=memit_mod.context_templates(lm, "en", hp.context_templates, seed=0))
    assert all(torch.equal(direct.deltas[k], again.deltas[k]) for k in direct.deltas)

    # anything the edit depends on changes the key: hyperparameters, requests, statistics, weights
    memit_mod.cached_memit(lm, REQS, dataclasses.replace(hp, v_num_grad_steps=3), stats, "en", progress=False)
    memit_mod.cached_memit(lm, REQS[:1], hp, stats, "en", progress=False)
    memit_mod.cached_memit(lm, REQS, hp, {l: 2 * s for l, s in stats.items()}, "en", progress=False)
    with torch.no_grad():
        lm.model.get_parameter(lm.name_of("mlp_out", 3) + ".weight").add_(1e-3)
    memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)
    assert len(calls) == 5
    memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False, cache=False)
    assert len(calls) == 6


def test_cached_targets_are_per_request_and_shared_between_edits(tmp_path, monkeypatch):
    """A request's target vector is optimised once: a later edit of a subset (or of a superset) of the
    requests computes only the targets it has never seen, and its delta matches a fresh computation."""
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = _hp(layers, v_num_grad_steps=3, context_templates=[[3, 1]])
    seen = []
    real = memit_mod.compute_targets
    monkeypatch.setattr(memit_mod, "compute_targets", lambda lm_, reqs, *a, **k: seen.append(len(reqs)) or real(lm_, reqs, *a, **k))
    memit_mod.cached_memit(lm, REQS[:2], hp, stats, "en", progress=False)
    assert seen == [2]
    sub = memit_mod.cached_memit(lm, REQS[1:2], hp, stats, "en", progress=False)  # new delta key, cached target
    assert seen == [2]
    full = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)  # only the third target is new
    assert seen == [2, len(REQS) - 2]
    assert len(list((tmp_path / "targets").rglob("*.safetensors"))) == len(REQS)
    ctx = memit_mod.context_templates(lm, "en", hp.context_templates, seed=0)
    for reqs, got in ((REQS[1:2], sub), (REQS, full)):
        fresh = memit_mod.compute_memit(lm, reqs, hp, stats=stats, lang="en", progress=False, contexts=ctx)
        for k in fresh.deltas:
            torch.testing.assert_close(got.deltas[k], fresh.deltas[k], rtol=1e-4, atol=1e-6)
        assert [t["case_id"] for t in got.meta["targets"]] == [q.case_id for q in reqs]
    # a target depends on the optimisation settings and the contexts, not on the covariance weight
    keys = memit_mod.target_cache_keys(lm, REQS, hp, ctx)
    assert memit_mod.target_cache_keys(lm, REQS, dataclasses.replace(hp, mom2_update_weight=7.0), ctx) == keys
    assert memit_mod.target_cache_keys(lm, REQS, dataclasses.replace(hp, v_lr=hp.v_lr * 2), ctx)[0] != keys[0]
    assert memit_mod.target_cache_keys(lm, REQS, hp, ctx[:1])[0] != keys[0]


def _corrupt_target(path, key, how):
    from safetensors.torch import save_file

    z = torch.zeros(4)
    if how == "garbage":
        path.write_bytes(b"not a safetensors file")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-8])
    elif how == "no log":
        save_file({"z": z}, str(path), metadata={"key": key})
    elif how == "log not JSON":
        save_file({"z": z}, str(path), metadata={"key": key, "log": "{"})
    elif how == "log not an object":
        save_file({"z": z}, str(path), metadata={"key": key, "log": "[1]"})
    elif how == "no z":
        save_file({"y": z}, str(path), metadata={"key": key, "log": "{}"})


@pytest.mark.parametrize("how", ["garbage", "truncated", "no log", "log not JSON", "log not an object", "no z"])
def test_an_unreadable_cached_target_is_reported_and_recomputed(tmp_path, monkeypatch, how):
    """A corrupt target file is named in a warning (with the error), its target optimised again (the others
    still read from the cache) and the entry overwritten; the result is the fresh computation's."""
    import re
    import warnings

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    hp = _hp([1, 2], v_num_grad_steps=2, context_templates=[[3, 1]])
    ctx = memit_mod.context_templates(lm, "en", hp.context_templates, seed=0)
    reqs = REQS[:2]
    seen = []
    real = memit_mod.compute_targets
    monkeypatch.setattr(memit_mod, "compute_targets", lambda lm_, rs, *a, **k: seen.append(len(rs)) or real(lm_, rs, *a, **k))
    z1, logs1 = memit_mod.cached_targets(lm, reqs, hp, ctx, progress=False)  # computed: the fresh result
    key = memit_mod.target_cache_keys(lm, reqs, hp, ctx)[0]
    path = tmp_path / "targets" / lm.name.replace("/", "__") / f"{key[:32]}.safetensors"
    assert path.is_file() and seen == [2]
    _corrupt_target(path, key, how)
    with pytest.warns(UserWarning, match=rf"target cache .*{re.escape(path.name)} is unreadable \(\w+: .*\); recomputing"):
        z2, logs2 = memit_mod.cached_targets(lm, reqs, hp, ctx, progress=False)
    assert seen == [2, 1]  # only the corrupt entry
    fresh, _, fresh_logs = real(lm, reqs[:1], hp, memit_mod.per_request_contexts(ctx, 1), False)
    assert torch.equal(z2[0], fresh[0]) and logs2[0] == dict(fresh_logs[0], case_id=reqs[0].case_id)
    assert torch.equal(z2[1], z1[1]) and logs2[1] == logs1[1]  # read back
    torch.testing.assert_close(z2, z1, rtol=1e-4, atol=1e-6)  # optimised alone, not in a batch of two
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry was rewritten: read back without a warning or a computation
        z3, _ = memit_mod.cached_targets(lm, reqs, hp, ctx, progress=False)
    assert seen == [2, 1] and torch.equal(z3, z2)


# --------------------------------------------------------------------------------------------------
# per-request contexts (a joint edit of requests in two languages)
# --------------------------------------------------------------------------------------------------
def test_per_request_contexts_equal_separate_computations():
    lm = make_tiny_model("llama")
    hp = _hp([1, 2], v_num_grad_steps=3, context_templates=[[3, 1]], batch_size=1)
    ctx_a = memit_mod.context_templates(lm, "en", hp.context_templates, seed=0)
    ctx_b = memit_mod.context_templates(lm, "en", hp.context_templates, seed=1)
    assert ctx_a != ctx_b
    n = len(REQS)
    mixed = [ctx_a, ctx_b, ctx_a]
    # shared contexts and the same list repeated per request are one computation
    z_shared, _, _ = compute_targets(lm, REQS, hp, ctx_a, progress=False)
    z_rep, _, _ = compute_targets(lm, REQS, hp, [ctx_a] * n, progress=False)
    assert torch.equal(z_shared, z_rep)
    # each request's target and key are those of the request alone with its own contexts
    z_mixed, _, _ = compute_targets(lm, REQS, hp, mixed, progress=False)
    keys_mixed, cur_mixed = memit_mod._keys_and_states(lm, REQS, 1, 2, mixed, batch_size=8)
    keys_shared, _ = memit_mod._keys_and_states(lm, REQS, 1, 2, ctx_a, batch_size=8)
    for i, q in enumerate(REQS):
        z_i, _, _ = compute_targets(lm, [q], hp, mixed[i], progress=False)
        assert torch.equal(z_mixed[i], z_i[0])
        k_i, c_i = memit_mod._keys_and_states(lm, [q], 1, 2, mixed[i], batch_size=8)
        torch.testing.assert_close(keys_mixed[i], k_i[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(cur_mixed[i], c_i[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(keys_mixed[1], keys_shared[1])  # request 1 really used its own prefixes
    assert not torch.allclose(z_mixed[1], z_shared[1])
    # cache keys follow each request's own contexts
    k_shared = memit_mod.target_cache_keys(lm, REQS, hp, ctx_a)
    assert memit_mod.target_cache_keys(lm, REQS, hp, [ctx_a] * n) == k_shared
    k_mixed = memit_mod.target_cache_keys(lm, REQS, hp, mixed)
    assert k_mixed[0] == k_shared[0] and k_mixed[2] == k_shared[2] and k_mixed[1] != k_shared[1]
    # malformed per-request contexts are refused with the reason
    with pytest.raises(ValueError, match="1 per-request lists for 3 requests"):
        compute_targets(lm, REQS, hp, [ctx_a], progress=False)
    with pytest.raises(ValueError, match="contexts of request 1.*same layout"):
        compute_targets(lm, REQS, hp, [ctx_a, ctx_b[1:], ctx_a], progress=False)
    with pytest.raises(TypeError, match="string"):
        compute_targets(lm, REQS, hp, "{}", progress=False)


def test_cached_memit_context_langs_gives_each_request_its_language(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = _hp(layers, v_num_grad_steps=2, context_templates=[[3, 1]])
    langs = ["en", "ca", "en"]
    ctx = {l: memit_mod.context_templates(lm, l, hp.context_templates, seed=0) for l in ("en", "ca")}
    assert ctx["en"] != ctx["ca"]
    joint = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False, context_langs=langs)
    assert joint.meta["context_langs"] == langs
    direct = memit_mod.compute_memit(lm, REQS, hp, stats=stats, lang="en", progress=False,
                                     contexts=[ctx[l] for l in langs])
    for k in direct.deltas:
        torch.testing.assert_close(joint.deltas[k], direct.deltas[k], rtol=1e-4, atol=1e-6)
    plain = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)  # another key: not the joint delta
    assert any(not torch.allclose(plain.deltas[k], joint.deltas[k]) for k in plain.deltas)
    assert len(list((tmp_path / "deltas").rglob("*.safetensors"))) == 2
    again = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False, context_langs=langs)
    assert all(torch.equal(again.deltas[k], joint.deltas[k]) for k in joint.deltas)
    with pytest.raises(ValueError, match="context_langs needs one language code per request"):
        memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False, context_langs=["en"])


# --------------------------------------------------------------------------------------------------
# cache keys do not depend on the machine (issue 12: notebook 03's memit/*/cache_key)
# --------------------------------------------------------------------------------------------------
def _fresh_machine(root, monkeypatch, converted, cache_via):
    """A fresh machine under ``root``: its own $HOME (the cache dir from ``cache_via``: ``"home"``,
    ``"xdg"`` or ``"memat"``), raw-data source dir and working directory (a notebook folder of a project at
    another path), and the embedded model converted into its own cache dir as
    :func:`memat.models.embedded_checkpoint` does (here the tiny model's saved checkpoint ``converted`` is
    copied there). Returns the model loaded by ``load_model("gemma3-270m")`` and the cache dir."""
    import shutil

    import memat.models as models_mod

    (root / "home").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(root / "home"))
    for var, via in (("XDG_CACHE_HOME", "xdg"), ("MEMAT_CACHE", "memat")):
        if cache_via == via:
            monkeypatch.setenv(var, str(root / var.lower()))
        else:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MEMAT_DATA_SOURCE", str(root / "shared" / "data"))
    (root / "project" / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(root / "project" / "notebooks")

    def checkpoint(refresh=False):
        target = models_mod.cache_dir() / "models" / "gemma3-270m-tiny"
        if not target.exists():
            shutil.copytree(converted, target)
        return target

    monkeypatch.setattr(models_mod, "embedded_checkpoint", checkpoint)
    return models_mod.load_model("gemma3-270m", device="cpu"), models_mod.cache_dir()


def test_cache_keys_do_not_depend_on_the_machine(tmp_path, monkeypatch):
    """The same model, data and settings on two fresh machines (other home, cache, data source and project
    directories) give the same MEMIT, target, MEMAT-corrections, score and statistics keys, and a cache
    filled on one machine serves the other; the keys still follow what the result depends on.
    Before the fix every key differed: the model fingerprint hashed ``config.to_dict()``, whose
    ``_name_or_path`` is the checkpoint's absolute path under the cache dir."""
    import shutil

    from memat import evaluate
    from memat.memat import MematHparams, corrections_cache_key
    from memat.stats import model_fingerprints

    src = make_tiny_model("llama")
    src.model.save_pretrained(tmp_path / "converted")
    src.tokenizer.save_pretrained(tmp_path / "converted")
    layers = [1, 2]
    stats = {l: torch.eye(src.mlp_out_weight(l).shape[1]) for l in layers}
    hp = _hp(layers, v_num_grad_steps=2, context_templates=[[3, 1]])
    seen, solves = [], []
    real_targets, real_memit = memit_mod.compute_targets, memit_mod.compute_memit
    monkeypatch.setattr(memit_mod, "compute_targets",
                        lambda lm_, reqs, *a, **k: seen.append(len(reqs)) or real_targets(lm_, reqs, *a, **k))
    monkeypatch.setattr(memit_mod, "compute_memit", lambda *a, **k: solves.append(1) or real_memit(*a, **k))

    def keys(lm, root):
        # the statistics corpus named by a path of this machine, as a user's YAML would
        hp_here = dataclasses.replace(hp, mom2_corpus={"en": str(root / "project" / "data" / "corpus.txt")})
        pairs = evaluate._encode_pairs(lm.tokenizer, [("Michael Jordan lives in", "Tokyo"),
                                                      ("The capital of France is", "Paris")])
        return {
            "memit": memit_mod.memit_cache_key(lm, REQS, hp_here, "en", 0, memit_mod.stats_key(stats)),
            "targets": memit_mod.target_cache_keys(lm, REQS, hp, CONTEXTS),
            "corrections": corrections_cache_key(lm, [_case()], [(1, 0), (2, 3)], MematHparams(n_steps=1), None,
                                                 ("en", "ca")),
            "scores": evaluate._scores_path(lm, pairs, "shared")[1],
            "stats": model_fingerprints(lm, [0, 3]),
        }

    machines = {}
    for name, via in (("a", "home"), ("b", "xdg"), ("c", "memat")):  # the last one stays set up
        lm, cache = _fresh_machine(tmp_path / name, monkeypatch, tmp_path / "converted", via)
        assert lm.name == "gemma3-270m" and cache.is_relative_to(tmp_path / name)
        machines[name] = (lm, cache, keys(lm, tmp_path / name))
        if name == "a":  # an edit cached on machine a
            delta_a = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)
            assert seen == [len(REQS)] and solves == [1]
    lm_a, cache_a, keys_a = machines["a"]
    lm_c, cache_c, keys_c = machines["c"]
    assert lm_a.model.config._name_or_path != lm_c.model.config._name_or_path  # the trap is really there
    for name in "bc":
        assert machines[name][2] == keys_a, f"machine {name}"

    # the cache filled on machine a serves machine c (the cache dir copied over)
    for kind in ("deltas", "targets"):
        shutil.copytree(cache_a / kind, cache_c / kind)
    delta_c = memit_mod.cached_memit(lm_c, REQS, hp, stats, "en", progress=False)
    assert seen == [len(REQS)] and solves == [1]  # nothing recomputed: the delta itself was read
    assert delta_c.meta["cache_key"] == delta_a.meta["cache_key"]  # what notebook 03 writes to its results
    assert all(torch.equal(delta_c.deltas[k], delta_a.deltas[k]) for k in delta_a.deltas)

    # what the result depends on still changes the keys: hyperparameters, requests, statistics, weights
    k = memit_mod.memit_cache_key
    base = k(lm_c, REQS, hp, "en", 0, memit_mod.stats_key(stats))
    assert base == delta_a.meta["cache_key"]
    assert k(lm_c, REQS, dataclasses.replace(hp, description="another run"), "en", 0, memit_mod.stats_key(stats)) == base
    changed = [
        k(lm_c, REQS, dataclasses.replace(hp, v_lr=hp.v_lr * 2), "en", 0, memit_mod.stats_key(stats)),
        k(lm_c, REQS, dataclasses.replace(hp, mom2_update_weight=7.0), "en", 0, memit_mod.stats_key(stats)),
        k(lm_c, REQS[:2], hp, "en", 0, memit_mod.stats_key(stats)),
        k(lm_c, REQS, hp, "ca", 0, memit_mod.stats_key(stats)),
        k(lm_c, REQS, hp, "en", 0, memit_mod.stats_key({l: 2 * s for l, s in stats.items()})),
    ]
    with torch.no_grad():
        lm_c.model.get_parameter(lm_c.name_of("mlp_out", 3) + ".weight").add_(1e-3)
    changed.append(k(lm_c, REQS, hp, "en", 0, memit_mod.stats_key(stats)))
    assert len({base, *changed}) == 1 + len(changed)
    after = keys(lm_c, tmp_path / "c")
    assert all(after[name] != keys_c[name] for name in ("memit", "corrections", "scores"))
    assert after["targets"][0] != keys_c["targets"][0]
    assert after["stats"][0] == keys_c["stats"][0] and after["stats"][3] != keys_c["stats"][3]


def test_a_delta_is_added_in_float32_and_cast_once_on_a_bfloat16_model():
    lm = make_tiny_model("llama")
    lm.model.to(torch.bfloat16)
    ref = _state(lm)
    d = _random_delta(lm, scale=3e-3)
    k = next(iter(d.deltas))
    w0 = ref[k]
    once = (w0.float() + d.deltas[k]).to(torch.bfloat16)
    twice = w0 + d.deltas[k].to(torch.bfloat16)  # the update rounded to bfloat16 before the sum
    assert w0.dtype == torch.bfloat16 and d.deltas[k].dtype == torch.float32
    assert not torch.equal(once, twice), "precondition: the two roundings differ somewhere"
    with d.applied(lm):
        assert torch.equal(lm.model.get_parameter(k), once)
    _assert_state_equal(lm, ref, "bfloat16 apply + remove")
    # on float32 weights it is the plain sum
    p = torch.randn(4, 5)
    u = torch.randn(4, 5) * 1e-3
    expect = p + u
    memit_mod.add_in_float32(p, u)
    assert torch.equal(p, expect)
