"""PMET (memat.pmet) on tiny models: efficacy, bookkeeping, the closed form by hand, the discarded MHSA delta,
the square-root residual spread, Gemma's post-MLP norm, batching, and the typed presets.

Keys and module outputs used as references are traced here one unpadded sequence at a time with
memat.hooks.TraceDict, token ids written out word by word (the word-level test tokenizer gives one id per word
after <bos>), so they share no code with memit._keys_and_states / pmet._ffn_contribution.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
import yaml

import memat.memit as memit_mod
from memat.data.records import EditCase, LangView
from memat.forward import encode, hidden_at_final_norm
from memat.hooks import TraceDict
from memat.hparams import HparamsError, MemitHparams, find_config, load_hparams
from memat.memit import EditRequest, MemitDelta
from memat.pmet import (
    PmetHparams,
    PmetTargets,
    _BlockTail,
    compute_pmet,
    compute_pmet_targets,
)
from memat.stats import compute_second_moments
from tiny_models import VOCAB_WORDS, make_tiny_model

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "pmet"
PRESETS = sorted(CONFIG_DIR.glob("*.yaml"))

REQS = [
    EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo"),
    EditRequest(1, "The home of {} is in", "Pablo Picasso", "Oslo"),
    EditRequest(2, "{} was born in", "Lionel Messi", "Cairo", kl_prompts=("{} is a", "The name {}")),
]
CONTEXTS = ["{}", "The city . {}", "In the year of the war . {}"]
# subject-final prompts: the edited state sits at the prediction position (see test_memit.EFFICACY_REQS)
EFFICACY_REQS = [
    EditRequest(0, "The home of {}", "Michael Jordan", "Tokyo"),
    EditRequest(1, "The home of {}", "Pablo Picasso", "Oslo"),
    EditRequest(2, "The city of {}", "Lionel Messi", "Cairo"),
]


def _hp(layers, **kw):
    # kl_stop_loss < 0: no edit stops before its first step because its target happens to be the argmax already
    base = dict(layers=layers, v_num_grad_steps=3, batch_size=8, mom2_update_weight=1.0, kl_stop_loss=-1.0)
    base.update(kw)
    return PmetHparams(**base)


def _state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def _changed(lm, ref):
    now = lm.model.state_dict()
    assert now.keys() == ref.keys()
    return sorted(k for k in ref if not torch.equal(now[k], ref[k]))


def _ids_and_index(lm, context, req):
    """Token ids of the context-wrapped prompt and the subject's last index, counted by hand (0 is <bos>)."""
    tok = lm.tokenizer
    text = context.format(req.prompt.format(req.subject))
    before = context.format(req.prompt).split("{}")[0]
    idx = 1 + len(before.split()) + len(req.subject.split()) - 1
    ids = torch.tensor([[tok.bos_token_id] + tok.convert_tokens_to_ids(text.split())])
    assert tok.convert_ids_to_tokens(int(ids[0, idx])) == req.subject.split()[-1]
    return ids, idx


@torch.no_grad()
def _hand_trace(lm, reqs, layer, z_layer, contexts):
    """Context-averaged key of ``layer`` (MEMIT's two context types), and at ``z_layer`` for the plain prompt: the
    MLP output projection's output, the post-MLP norm's output (None without one) and the attention output."""
    mlp, mlp_z, attn_z = lm.name_of("mlp_out", layer), lm.name_of("mlp_out", z_layer), lm.name_of("attn_out", z_layer)
    post = lm.name_of("post_mlp_norm", z_layer) if lm.spec.post_mlp_norm else None
    names = [mlp, mlp_z, attn_z] + ([post] if post else [])
    keys, m_out, normed, a_out = [], [], [], []
    for q in reqs:
        ks = []
        for ci, c in enumerate(contexts):
            ids, idx = _ids_and_index(lm, c, q)
            with TraceDict(lm.model, names, retain_input=True) as td:
                lm.model(input_ids=ids)
            ks.append(td[mlp].input[0, idx].double())
            if ci == 0:
                m_out.append(td[mlp_z].output[0, idx].double())
                a_out.append(td[attn_z].output[0, idx].double())
                if post:
                    normed.append(td[post].output[0, idx].double())
        ks = torch.stack(ks)
        plain = torch.tensor([c == "{}" for c in contexts])
        keys.append(torch.stack([ks[plain].mean(0), ks[~plain].mean(0)]).mean(0) if 0 < plain.sum() < len(contexts) else ks.mean(0))
    return torch.stack(keys), torch.stack(m_out), (torch.stack(normed) if post else None), torch.stack(a_out)


def _spd(m, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, m, generator=g, dtype=torch.float64)
    return (a @ a.T / m + 0.5 * torch.eye(m, dtype=torch.float64)).float()


def _stats_texts(n=40, words=12):
    rng = random.Random(0)
    vocab = [w for w in VOCAB_WORDS if w.isalpha()]
    return [" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(n)]


@torch.no_grad()
def _next_token_logprobs(lm, req):
    ids = torch.tensor([lm.tokenizer(req.prompt.format(req.subject)).input_ids])
    return torch.log_softmax(lm.model(input_ids=ids).logits[0, -1].double(), -1)


# --------------------------------------------------------------------------------------------------
# efficacy end to end, and what the edit touches
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, layers", [("llama", [1, 2]), ("gemma3_text", [0, 1, 2]), ("falcon", [1, 2])])
def test_pmet_efficacy_and_bookkeeping(family, layers):
    lm = make_tiny_model(family)
    tok = lm.tokenizer
    stats, count = compute_second_moments(lm, layers, _stats_texts(), progress=False)
    assert count > lm.mlp_out_weight(0).shape[1]
    hp = PmetHparams(layers=layers, v_lr=1.0, v_num_grad_steps=30, v_weight_decay=1e-3, clamp_norm_factor=10.0,
                     mom2_update_weight=0.01, batch_size=8, kl_stop_loss=-1.0)
    tgt = [tok.convert_tokens_to_ids(q.target_new) for q in EFFICACY_REQS]
    before = [_next_token_logprobs(lm, q) for q in EFFICACY_REQS]
    assert all(int(lp.argmax()) != t for lp, t in zip(before, tgt)), "precondition: targets are not predicted yet"
    state = _state(lm)
    delta = compute_pmet(lm, EFFICACY_REQS, hp, stats=stats, contexts=["{}"])
    assert _changed(lm, state) == [], "compute_pmet changed the model"
    assert isinstance(delta, MemitDelta)
    wnames = sorted(lm.name_of("mlp_out", l) + ".weight" for l in layers)
    assert sorted(delta.deltas) == wnames  # MLP output projections of the configured layers, nothing else
    with delta.applied(lm):
        assert _changed(lm, state) == wnames  # in particular no attention weight moves
        after = [_next_token_logprobs(lm, q) for q in EFFICACY_REQS]
    assert _changed(lm, state) == [], "not bit-identical after remove()"
    gains = [float(lp1[t] - lp0[t]) for t, lp0, lp1 in zip(tgt, before, after)]
    if lm.spec.post_mlp_norm is None:
        assert all(int(lp1.argmax()) == t for lp1, t in zip(after, tgt)), [tok.convert_ids_to_tokens(int(lp.argmax())) for lp in after]
        assert min(gains) > 1.0, gains  # the tiny models' bounded logits cap the NLL near 3.5 nats
    else:  # the normed MLP output has a fixed scale: the FFN can only turn, so the gain is smaller
        assert min(gains) > 0.5, gains
    assert delta.meta["method"] == "PMET" and delta.meta["case_ids"] == [0, 1, 2]
    assert delta.meta["hparams"]["residual_spread"] == "sqrt"
    assert all(l["nll_end"] < l["nll_start"] - 1.0 for l in delta.meta["targets"]), delta.meta["targets"]


def test_delta_roundtrip_and_edit_cases(tmp_path):
    lm = make_tiny_model("llama")
    en = LangView("Michael Jordan", "Chicago", "Tokyo", "{} lives in")
    ca = LangView("Michael Jordan", "Chicago", "Tòquio", "{} viu a")
    case = EditCase(case_id=7, langs={"en": en, "ca": ca})
    hp = _hp([1, 2], mom2_adjustment=False)
    d_case = compute_pmet(lm, [case], hp, contexts=["{}"], lang="ca")
    d_req = compute_pmet(lm, [EditRequest(7, "{} viu a", "Michael Jordan", "Tòquio")], hp, contexts=["{}"], lang="ca")
    assert d_case.meta["lang"] == "ca" and d_case.meta["case_ids"] == [7]
    for k in d_req.deltas:
        assert torch.equal(d_case.deltas[k], d_req.deltas[k])
    loaded = MemitDelta.load(d_case.save(tmp_path / "pmet.safetensors"))
    assert loaded.meta["method"] == "PMET"
    for k in d_case.deltas:
        assert torch.equal(loaded.deltas[k], d_case.deltas[k])


def test_restores_model_on_error(monkeypatch):
    lm = make_tiny_model("llama")
    layers = [1, 2]
    hp = _hp(layers, mom2_adjustment=False)
    ref = _state(lm)
    w1 = lm.name_of("mlp_out", 1) + ".weight"
    real = memit_mod._keys_and_states

    def failing(lm_, reqs, layer, *a, **k):
        if layer == 2:
            assert not torch.equal(lm_.model.get_parameter(w1), ref[w1])  # mid-way: layer 1 is edited in place
            raise RuntimeError("simulated failure on the second layer")
        return real(lm_, reqs, layer, *a, **k)

    monkeypatch.setattr(memit_mod, "_keys_and_states", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        compute_pmet(lm, REQS, hp, contexts=["{}"])
    assert _changed(lm, ref) == []


def test_errors_are_clear():
    lm = make_tiny_model("llama")
    eye = {l: torch.eye(64) for l in range(4)}
    with pytest.raises(ValueError, match=r"layers \[4\] out of range"):
        compute_pmet(lm, REQS, _hp([2, 4]), stats=eye, contexts=["{}"])
    with pytest.raises(ValueError, match="mom2_adjustment needs stats"):
        compute_pmet(lm, REQS, _hp([1, 2]), stats={1: eye[1]}, contexts=["{}"])
    with pytest.raises(ValueError, match="no requests"):
        compute_pmet(lm, [], _hp([1]), stats=eye, contexts=["{}"])
    with pytest.raises(TypeError, match="PmetHparams"):
        compute_pmet(lm, REQS, MemitHparams(layers=[1]), stats=eye, contexts=["{}"])
    with pytest.raises(ValueError, match="shape"):
        compute_pmet(lm, REQS, _hp([1]), stats=eye, contexts=["{}"], targets=(torch.zeros(2, 32), []))


# --------------------------------------------------------------------------------------------------
# the closed form, by hand
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_update_formula_single_layer(family):
    """One layer L, hand-built covariance C: dW = R K^T (lam C + K K^T)^-1 with K the context-averaged keys and
    R = z_ffn - m_L, the FFN part only: m_L is the MLP output at L (NOT the residual-stream state h_L), and z_ffn
    comes from the joint optimisation (its starting point is exactly the traced m_L)."""
    lm = make_tiny_model(family)
    layer = 2
    m = lm.mlp_out_weight(layer).shape[1]
    lam = 3.0
    C = _spd(m, seed=5)
    hp = _hp([layer], v_num_grad_steps=5, v_lr=0.5, mom2_update_weight=lam)
    tg = compute_pmet_targets(lm, REQS, hp, CONTEXTS)
    keys, m_L, _, a_L = _hand_trace(lm, REQS, layer, layer, CONTEXTS)
    torch.testing.assert_close(tg.ffn_init.double(), m_L, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tg.attn_init.double(), a_L, rtol=1e-5, atol=1e-6)
    assert float((tg.ffn - tg.ffn_init).norm(dim=-1).min()) > 1e-3  # the optimisation moved every FFN target
    before = _state(lm)
    delta = compute_pmet(lm, REQS, hp, stats={layer: C}, contexts=CONTEXTS, targets=tg)
    assert _changed(lm, before) == []
    K, R = keys.T, (tg.ffn.double() - m_L).T  # [m, n], [d, n]
    by_hand = R @ K.T @ torch.linalg.inv(lam * C.double() + K @ K.T)  # [d_out, d_in]
    wname = lm.name_of("mlp_out", layer) + ".weight"
    assert list(delta.deltas) == [wname]
    got = delta.deltas[wname]
    assert got.shape == lm.model.get_parameter(wname).shape
    got = got if lm.spec.weight_layout == "out_in" else got.T
    torch.testing.assert_close(got.double(), by_hand, rtol=1e-4, atol=1e-5 * float(by_hand.abs().max()))
    assert float(by_hand.abs().max()) > 1e-4


@pytest.mark.parametrize("spread", ["sqrt", "linear"])
def test_residual_spread_over_two_layers(spread):
    """Layers [1, 2], C = I, one context: the first layer takes R / sqrt(2) (PMET) or R / 2 (MEMIT's spread) of the
    FFN residual R = z - m_2; the second takes what remains of the FFN residual at layer 2 after the first update,
    divided by 1, with keys recomputed on the model carrying the first update."""
    lm = make_tiny_model("llama")
    layers, lam = [1, 2], 0.5
    m = lm.mlp_out_weight(1).shape[1]
    eye = torch.eye(m)
    _, m2, _, _ = _hand_trace(lm, REQS, 2, 2, ["{}"])
    g = torch.Generator().manual_seed(3)
    zs = (m2 + m2.norm(dim=-1, keepdim=True) * 0.3 * torch.randn(m2.shape, generator=g, dtype=torch.float64)).float()
    hp = _hp(layers, mom2_update_weight=lam, residual_spread=spread)
    delta = compute_pmet(lm, REQS, hp, stats={l: eye for l in layers}, contexts=["{}"], targets=(zs, []))
    div = 2 ** 0.5 if spread == "sqrt" else 2.0
    def inv(K):
        return torch.linalg.inv(lam * torch.eye(m, dtype=torch.float64) + K @ K.T)

    k1, _, _, _ = _hand_trace(lm, REQS, 1, 2, ["{}"])
    R1 = (zs.double() - m2).T / div
    w1, w2 = (lm.name_of("mlp_out", l) + ".weight" for l in layers)
    torch.testing.assert_close(delta.deltas[w1].double(), R1 @ k1 @ inv(k1.T), rtol=1e-4, atol=1e-6)
    with MemitDelta({w1: delta.deltas[w1]}).applied(lm):
        k2, m2_now, _, _ = _hand_trace(lm, REQS, 2, 2, ["{}"])
    R2 = (zs.double() - m2_now).T
    torch.testing.assert_close(delta.deltas[w2].double(), R2 @ k2 @ inv(k2.T), rtol=1e-4, atol=1e-6)
    assert float((m2_now - m2).norm()) > 0  # the first layer's update reached layer 2


def test_gemma_ffn_target_is_reached_through_post_norm():
    """Gemma's FFN target is norm(m_L + delta_ffn), reachable by construction: with one layer, one context, C = I and
    a vanishing lambda, the edited model's normed MLP output at the subject equals it (only if the residual is
    mapped through the RMS norm: added to the MLP output as it is, it would not land there)."""
    lm = make_tiny_model("gemma3_text")
    layer = 1
    hp = _hp([layer], v_num_grad_steps=8, v_lr=0.5, mom2_update_weight=1e-6)
    tg = compute_pmet_targets(lm, REQS, hp, ["{}"])
    _, _, normed, _ = _hand_trace(lm, REQS, layer, layer, ["{}"])
    torch.testing.assert_close(tg.ffn_init.double(), normed, rtol=1e-5, atol=1e-5)
    step = (tg.ffn - tg.ffn_init).norm(dim=-1)
    assert float(step.min()) > 1e-3
    d_in = lm.mlp_out_weight(layer).shape[1]
    delta = compute_pmet(lm, REQS, hp, stats={layer: torch.eye(d_in)}, contexts=["{}"], targets=tg)
    with delta.applied(lm):
        _, _, reached, _ = _hand_trace(lm, REQS, layer, layer, ["{}"])
    err = (reached - tg.ffn.double()).norm(dim=-1)
    assert float(err.max()) < 1e-3 * float(step.min()), (err, step)


# --------------------------------------------------------------------------------------------------
# the MHSA delta: optimised jointly, then discarded
# --------------------------------------------------------------------------------------------------


def test_attention_delta_is_optimised_but_never_written():
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: _spd(lm.mlp_out_weight(l).shape[1], seed=l) for l in layers}
    base = _hp(layers, v_num_grad_steps=8, v_lr=0.5, kl_stop_loss=-1.0)
    frozen = compute_pmet_targets(lm, REQS, dataclasses.replace(base, attn_v_lr=0.0), CONTEXTS)
    joint = compute_pmet_targets(lm, REQS, base, CONTEXTS)
    # attn_v_lr = 0: the attention delta stays exactly zero; by default it moves
    assert torch.equal(frozen.attn, frozen.attn_init)
    assert all(l["attn_delta_ratio"] == 0.0 for l in frozen.logs)
    assert float((joint.attn - joint.attn_init).norm(dim=-1).min()) > 1e-3
    # same starting point, but the FFN optimum depends on what attention absorbed
    torch.testing.assert_close(joint.ffn_init, frozen.ffn_init)
    assert float((joint.ffn - frozen.ffn).norm(dim=-1).min()) > 1e-4
    ref = _state(lm)
    d_joint = compute_pmet(lm, REQS, base, stats=stats, contexts=CONTEXTS, targets=joint)
    d_frozen = compute_pmet(lm, REQS, base, stats=stats, contexts=CONTEXTS, targets=frozen)
    wnames = sorted(lm.name_of("mlp_out", l) + ".weight" for l in layers)
    for d in (d_joint, d_frozen):
        assert sorted(d.deltas) == wnames
        with d.applied(lm):
            assert _changed(lm, ref) == wnames
    assert any(not torch.equal(d_joint.deltas[k], d_frozen.deltas[k]) for k in wnames)
    # the update reads only the FFN targets: any attention target gives the same weights
    garbage = PmetTargets(joint.ffn, joint.ffn_init, joint.attn * 0 + 1e3, joint.attn_init * 0 - 7, joint.logs)
    d_garbage = compute_pmet(lm, REQS, base, stats=stats, contexts=CONTEXTS, targets=garbage)
    for k in wnames:
        assert torch.equal(d_garbage.deltas[k], d_joint.deltas[k])


def test_deltas_sit_on_the_component_outputs():
    """Replaying the optimised deltas with hooks written here: the FFN delta alone shifts the MLP output projection's
    output at the subject to the FFN target, and both deltas (attention output + MLP output) reproduce the NLL the
    optimisation logged."""
    lm = make_tiny_model("llama")
    layer = 2
    req = REQS[0]
    hp = _hp([layer], v_num_grad_steps=4, v_lr=0.5)
    tg = compute_pmet_targets(lm, [req], hp, ["{}"])
    d_ffn, d_attn = (tg.ffn - tg.ffn_init)[0], (tg.attn - tg.attn_init)[0]
    assert float(d_attn.norm()) > 1e-3 and float(d_ffn.norm()) > 1e-3
    ids, idx = _ids_and_index(lm, "{}", req)
    mlp, attn = lm.name_of("mlp_out", layer), lm.name_of("attn_out", layer)
    target = lm.tokenizer.convert_tokens_to_ids(req.target_new)

    def adder(deltas):
        def add(out, name):
            out = out.clone()
            out[0, idx] += deltas.get(name, 0)
            return out
        return add

    with torch.no_grad(), TraceDict(lm.model, [mlp], edit_output=adder({mlp: d_ffn})) as td:
        lm.model(input_ids=ids)
    torch.testing.assert_close(td[mlp].output[0, idx], tg.ffn[0], rtol=1e-5, atol=1e-5)
    with torch.no_grad(), TraceDict(lm.model, [mlp, attn], edit_output=adder({mlp: d_ffn, attn: d_attn})):
        logits = lm.model(input_ids=ids).logits[0, -1]
    nll = -float(torch.log_softmax(logits.double(), -1)[target])
    assert nll == pytest.approx(tg.logs[0]["nll_end"], rel=1e-4, abs=1e-5)
    assert tg.logs[0]["nll_end"] < tg.logs[0]["nll_start"]


# --------------------------------------------------------------------------------------------------
# the optimisation: batching, stopping rule, replay from a block's input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_targets_batched_equals_one_at_a_time(family):
    lm = make_tiny_model(family)
    reqs = [EFFICACY_REQS[0], REQS[1], REQS[2]]
    hp = _hp([1, 2], v_num_grad_steps=12, v_lr=0.5, batch_size=3, kl_stop_loss=-1.0)
    t3 = compute_pmet_targets(lm, reqs, hp, CONTEXTS)
    t1 = compute_pmet_targets(lm, reqs, dataclasses.replace(hp, batch_size=1), CONTEXTS)
    for f in ("ffn", "ffn_init", "attn", "attn_init"):
        a, b = getattr(t3, f), getattr(t1, f)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    assert float((t1.attn - t1.attn_init).norm(dim=-1).min()) > 1e-3
    for a, b in zip(t3.logs, t1.logs):
        assert a["steps"] == b["steps"] and a["case_id"] == b["case_id"]
        assert a["nll_end"] == pytest.approx(b["nll_end"], rel=1e-4, abs=1e-5)


def test_argmax_kl_stopping_rule():
    """PMET stops an edit once all its target tokens are the argmax and kl_factor * KL <= kl_stop_loss: with a huge
    threshold every edit stops exactly when its targets become the argmax; with a negative one none stops early."""
    lm = make_tiny_model("llama")
    hp = _hp([1, 2], v_num_grad_steps=25, v_lr=1.0, clamp_norm_factor=10.0, v_weight_decay=1e-3, early_stop_loss=0.0,
             kl_stop_loss=1e9)
    stopped = compute_pmet_targets(lm, EFFICACY_REQS, hp, ["{}"])
    never = compute_pmet_targets(lm, EFFICACY_REQS, dataclasses.replace(hp, kl_stop_loss=-1.0), ["{}"])
    assert all(l["steps"] == hp.v_num_grad_steps for l in never.logs)
    early = [l for l in stopped.logs if l["steps"] < hp.v_num_grad_steps]
    assert early, stopped.logs
    assert all(l["argmax_end"] for l in early)


def test_weight_decay_acts_on_both_deltas():
    """v_weight_decay * (|d_ffn| / |m0|^2 + |d_attn| / |a0|^2): a huge decay keeps both deltas near zero (Adam steps of
    the decay's gradient alternate around it), without decay both grow."""
    lm = make_tiny_model("llama")
    hp = _hp([2], v_num_grad_steps=12, v_lr=0.02, v_weight_decay=0.0, early_stop_loss=0.0)
    free = compute_pmet_targets(lm, REQS, hp, ["{}"])
    held = compute_pmet_targets(lm, REQS, dataclasses.replace(hp, v_weight_decay=1e6), ["{}"])
    for key in ("ffn_delta_ratio", "attn_delta_ratio"):
        for f, h in zip(free.logs, held.logs):
            assert h[key] < 0.3 * f[key], (key, f[key], h[key])


@pytest.mark.parametrize("family, first", [("llama", 0), ("llama", 2), ("gemma3_text", 0), ("falcon", 1)])
def test_block_tail_replays_from_block_input(family, first):
    lm = make_tiny_model(family)
    tok = lm.tokenizer
    seqs = [tok("The home of Michael Jordan is in").input_ids, tok("Paris").input_ids]
    b = encode(tok, seqs, lm.device)
    with torch.no_grad():
        ref = hidden_at_final_norm(lm, b)
        r = _BlockTail(lm, first)
        h = r.capture(b)
        out = r.run(h)
    assert r.layer == first - 1
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r.final, ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# typed hyperparameters and presets
# --------------------------------------------------------------------------------------------------


def test_there_are_presets():
    assert {p.stem for p in PRESETS} >= {"gemma3-270m", "aguila-7b"}


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_loads_typed(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    hp = load_hparams(path.stem, cls=PmetHparams, kind="pmet")
    assert find_config(path.stem, kind="pmet").resolve() == path.resolve()
    assert hp == load_hparams(path, cls=PmetHparams, kind="pmet")
    assert isinstance(hp, PmetHparams)
    for k, v in raw.items():
        got = getattr(hp, k)
        assert got == v, k
        if isinstance(v, float):
            assert isinstance(got, float), k
    assert hp.layers == [4, 5, 6, 7, 8]


def test_gemma_preset_shares_memit_statistics():
    """Same key-statistics settings as the MEMIT preset, so layer_stats hits the same cache."""
    pm = load_hparams("gemma3-270m", cls=PmetHparams, kind="pmet")
    me = load_hparams("gemma3-270m")
    for f in ("layers", "mom2_corpus", "mom2_n_samples", "mom2_max_len", "mom2_dtype", "context_templates"):
        assert getattr(pm, f) == getattr(me, f), f


@pytest.mark.parametrize(
    "text, needles",
    [
        ("layers: [1, 2]\nv_lr: 5e-1\n", ["'v_lr'", "'5e-1'", "YAML 1.1"]),
        ("layers: [1, 2]\nattn_v_lr: 1e-2\n", ["'attn_v_lr'", "'1e-2'"]),
        ("layers: [1, 2]\nkl_stop_loss: 1e-2\n", ["'kl_stop_loss'", "YAML 1.1"]),
        ("layers: [1, 2]\nattn_v_lr: -1.0\n", ["'attn_v_lr'", ">= 0"]),
        ("layers: [1, 2]\nresidual_spread: cubic\n", ["'residual_spread'", "cubic", "sqrt"]),
        ("layers: [1, 2]\nnll_loss_factor: 0\n", ["'nll_loss_factor'", "> 0"]),
        ("layers: [1, 2]\nv_lrr: 0.5\n", ["unknown field", "v_lrr"]),
        ("layers: [2, 1]\n", ["'layers'", "strictly increasing"]),
    ],
)
def test_hparams_errors_name_the_field(tmp_path, text, needles):
    p = tmp_path / "h.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(HparamsError) as e:
        load_hparams(p, cls=PmetHparams, kind="pmet")
    msg = str(e.value)
    assert str(p) in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_hparams_defaults_and_attn_lr():
    hp = load_hparams({"layers": [1], "v_lr": 0.3}, cls=PmetHparams, kind="pmet")
    assert hp.attn_v_lr is None and hp.attn_lr == 0.3
    assert load_hparams({"layers": [1], "attn_v_lr": 0}, cls=PmetHparams).attn_lr == 0.0
    assert isinstance(load_hparams({"layers": [1], "attn_v_lr": 1}, cls=PmetHparams).attn_v_lr, float)
    assert hp.residual_spread == "sqrt" and hp.to_dict()["argmax_nll_decay"] == 0.1


def test_cached_memit_dispatches_pmet_and_keys_it_apart(tmp_path, monkeypatch):
    """cached_memit with PMET hyperparameters computes and caches a PMET edit (not a MEMIT one), under a
    key different from MEMIT's with the same shared settings."""
    from memat import memit as memit_mod
    from memat import pmet as pmet_mod
    from memat.memit import MemitHparams

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = _hp(layers, v_num_grad_steps=2, context_templates=[[3, 1]])
    calls = []
    real = pmet_mod.compute_pmet
    monkeypatch.setattr(pmet_mod, "compute_pmet", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)
    b = memit_mod.cached_memit(lm, REQS, hp, stats, "en", progress=False)
    assert len(calls) == 1
    direct = real(lm, REQS, hp, stats=stats, lang="en", contexts=memit_mod.context_templates(lm, "en", hp.context_templates, seed=0))
    assert all(torch.equal(direct.deltas[k], b.deltas[k]) and torch.equal(a.deltas[k], b.deltas[k]) for k in direct.deltas)
    shared = {f.name: getattr(hp, f.name) for f in dataclasses.fields(MemitHparams)}
    k_memit = memit_mod.memit_cache_key(lm, REQS, MemitHparams(**shared), "en")
    assert memit_mod.memit_cache_key(lm, REQS, hp, "en") != k_memit


@pytest.mark.parametrize("family", ["llama", "gpt2", "falcon"])
@pytest.mark.parametrize("z", [1, 2])
def test_pmet_targets_suffix_equals_full(family, z):
    """PMET's suffix method (blocks from the edited layer on, over the positions from the subject's last
    token) against the full replay: the same attention and FFN targets and logs, tolerance 1e-4 of |z|."""
    lm = make_tiny_model(family)
    hp = _hp(list(range(z + 1)), v_num_grad_steps=12)
    full = compute_pmet_targets(lm, REQS, hp, CONTEXTS, method="full")
    suf = compute_pmet_targets(lm, REQS, hp, CONTEXTS, method="suffix")
    for f in ("ffn", "ffn_init", "attn", "attn_init"):
        a, b = getattr(suf, f), getattr(full, f)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()), msg=f)
    assert float((full.ffn - full.ffn_init).abs().max()) > 0
    for a, b in zip(suf.logs, full.logs):
        assert a["steps"] == b["steps"]
        assert a["nll_end"] == pytest.approx(b["nll_end"], rel=1e-4, abs=1e-5)
