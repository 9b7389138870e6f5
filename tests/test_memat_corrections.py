"""MEMAT head corrections (memat.memat) on tiny models: where the hooks add omega, eq. 12's terms against
hand computations, training behaviour, persistence and errors.

References are traced here with memat.hooks.TraceDict on the attention output projection's input, and token
positions are counted by hand word by word (the word-level test tokenizer gives one id per word or
punctuation mark after <bos>), so they share no code with memat.memat's row builder or hooks.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import make_tiny_model

from memat.data.records import EditCase, LangView
from memat.evaluate import score_continuations
from memat.heads import ProbeResult
from memat.hooks import TraceDict
from memat.hparams import HparamsError
from memat.memat import (
    HeadCorrections,
    MematHparams,
    correction_loss,
    load_memat_hparams,
    norm_penalty,
    select_heads,
    train_corrections,
    training_rows,
)
from memat.memit import MemitDelta


def _v(subject, true, new, prompt, kl=("{} is a",), **kw):
    return LangView(subject, true, new, prompt, kl_prompts=kl, **kw)


CASES = [
    EditCase(10, {"en": _v("Danielle Darrieux", "French", "English", "The mother tongue of {} is"),
                  "ca": _v("Danielle Darrieux", "francès", "anglès", "La llengua de {} és", kl=("{} és un",))}),
    EditCase(11, {"en": _v("Toyota", "Japan", "Germany", "{} is located in"),
                  "ca": _v("Toyota", "Japó", "Alemanya", "{} és situada a", kl=("{} és un",))}),
    EditCase(12, {"en": _v("Lionel Messi", "football", "basketball", "{} plays"),
                  "ca": _v("Lionel Messi", "futbol", "música", "{} juga la", kl=("{} és un",))}),
    EditCase(13, {"en": _v("Pablo Picasso", "Paris", "New York", "{} died in", kl=("{} is a", "The name of {} is")),
                  "ca": _v("Pablo Picasso", "París", "Londres", "{} va morir a", kl=("{} és un",))}),
]
# punctuation written with spaces, so that text.split() counts the word-level tokens
CTX = {"en": ["The city . {}", "In the year of the war . {}"], "ca": ["El món . {}", "La ciutat de la història . {}"]}
LANGS = ("en", "ca")


def _n_tokens(text: str) -> int:
    """Token count of ``text`` with <bos>, by hand (one token per whitespace-separated word)."""
    return 1 + len(text.split())


def _random_corrections(lm, heads, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(len(heads), lm.head_dim, generator=g) * scale
    return HeadCorrections(heads, vec, lm.name, LANGS, meta={"n_heads": lm.n_heads})


def _state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def _assert_state_equal(lm, ref):
    now = lm.model.state_dict()
    changed = [k for k in ref if not torch.equal(now[k], ref[k])]
    assert not changed, f"parameters changed: {changed}"


def _n_hooks(lm) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in lm.model.modules())


@torch.no_grad()
def _attn_inputs(lm, batch_kwargs, layers, corr=None, positions=None):
    """{layer: o_proj input [B, T, H*d]}; the correction hooks (if any) are registered first, so the trace sees
    the input as o_proj receives it."""
    names = [lm.name_of("attn_out", l) for l in layers]

    def run():
        with TraceDict(lm.model, names, retain_input=True, retain_output=False) as td:
            lm.model(**batch_kwargs, use_cache=False)
        return {l: td[n].input.clone() for l, n in zip(layers, names)}

    if corr is None:
        return run()
    cm = corr.applied(lm) if positions is None else corr.hook_positions(lm, positions)
    with cm:
        return run()


def _delta(lm, seed=0, layer=1, scale=0.1):
    w = lm.name_of("mlp_out", layer) + ".weight"
    g = torch.Generator().manual_seed(seed)
    return MemitDelta({w: torch.randn(lm.model.get_parameter(w).shape, generator=g) * scale})


# --------------------------------------------------------------------------------------------------
# training rows and the training hook
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["prompt_last", "input_last"])
def test_training_rows_positions_by_hand(position):
    lm = make_tiny_model("llama")
    rows = training_rows(lm, CASES, LANGS, CTX, position)
    lengths = [len(s) for s in rows.seqs]
    assert len(set(lengths)) > 2  # a right-padded batch of this is really padded
    r = 0
    for c in CASES:
        for lang in LANGS:
            v = c[lang]
            prompt = v.rewrite_prompt.replace("{}", v.subject)
            n_tgt = len(v.target_new.split())
            for ctx in CTX[lang]:
                text = ctx.replace("{}", prompt)
                n_p = _n_tokens(text)
                assert rows.seqs[r] == lm.tokenizer(text)["input_ids"] + rows.seqs[r][n_p:]
                assert lengths[r] == n_p + n_tgt - 1
                expected = n_p - 1 if position == "prompt_last" else n_p + n_tgt - 2
                assert rows.positions[r] == expected, (text, v.target_new)
                r += 1
            for kp in v.kl_prompts:
                assert rows.positions[r] == _n_tokens(kp.replace("{}", v.subject)) - 1
                assert r in rows.kl_rows
                r += 1
    assert r == len(rows.seqs)
    # every corrected position is a real token
    assert all(p < n for p, n in zip(rows.positions, lengths))
    # the multi-token target "New York" makes the two choices differ
    assert any(p != n - 1 for p, n in zip(rows.positions, lengths)) == (position == "prompt_last")


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
def test_training_hook_adds_omega_exactly_at_the_last_real_token(family):
    """Right-padded batch: at the corrected layer only (row, corrected position, head slice) changes, by omega."""
    from memat.forward import encode

    lm = make_tiny_model(family)
    d = lm.head_dim
    layer = 1
    heads = [(layer, 0), (layer, 2)]  # two heads in one layer
    corr = _random_corrections(lm, heads)
    rows = training_rows(lm, CASES, LANGS, CTX)
    b = encode(lm.tokenizer, rows.seqs, lm.device)
    assert int(b.lengths.min()) < b.input_ids.shape[1]  # padding present
    base = _attn_inputs(lm, b.to_model_kwargs(), [layer])[layer]
    got = _attn_inputs(lm, b.to_model_kwargs(), [layer], corr, rows.positions)[layer]
    diff = got - base
    expected = torch.zeros_like(diff)
    for r, p in enumerate(rows.positions):
        for (l, h), vec in zip(heads, corr.vectors):
            expected[r, p, h * d : (h + 1) * d] = vec
    changed = diff != 0
    assert changed.any(dim=-1).sum() == len(rows.seqs)  # one position per row
    assert torch.equal(changed, expected != 0), "something outside (row, last real token, head slice) changed"
    torch.testing.assert_close(diff, expected, rtol=0, atol=1e-6)
    # never a padding slot: the changed position of each row is below its length
    pos_changed = changed.any(-1).float().argmax(-1)
    assert (pos_changed < b.lengths).all()
    assert pos_changed.tolist() == rows.positions


def test_training_hook_heads_in_two_layers():
    """A later layer's head is shifted by its own omega relative to the run with only the earlier layer's heads."""
    from memat.forward import encode

    lm = make_tiny_model("llama")
    d = lm.head_dim
    heads = [(1, 3), (2, 1)]
    corr = _random_corrections(lm, heads, seed=3)
    only_first = HeadCorrections([heads[0]], corr.vectors[:1].clone(), meta={"n_heads": lm.n_heads})
    rows = training_rows(lm, CASES[:2], ("en",), CTX)
    b = encode(lm.tokenizer, rows.seqs, lm.device)
    a = _attn_inputs(lm, b.to_model_kwargs(), [2], only_first, rows.positions)[2]
    both = _attn_inputs(lm, b.to_model_kwargs(), [2], corr, rows.positions)[2]
    expected = torch.zeros_like(a)
    for r, p in enumerate(rows.positions):
        expected[r, p, 1 * d : 2 * d] = corr.vectors[1]
    torch.testing.assert_close(both - a, expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# the inference hook (eq. 6)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "falcon"])
def test_inference_hook_every_position_and_same_layer_heads(family):
    from memat.forward import encode

    lm = make_tiny_model(family)
    d = lm.head_dim
    heads = [(1, 0), (1, 3), (2, 2)]
    corr = _random_corrections(lm, heads, seed=1)
    texts = ["The capital of France is Paris", "He was born in London", "La capital de França és París i"]
    b = encode(lm.tokenizer, [lm.tokenizer(t)["input_ids"] for t in texts], lm.device)
    base = _attn_inputs(lm, b.to_model_kwargs(), [1, 2])
    got = _attn_inputs(lm, b.to_model_kwargs(), [1, 2], corr)
    # layer 1: both heads of the layer, each by its own vector, at every position (padding included)
    exp = torch.zeros_like(base[1])
    exp[..., 0:d] = corr.vectors[0]
    exp[..., 3 * d : 4 * d] = corr.vectors[1]
    torch.testing.assert_close(got[1] - base[1], exp, rtol=0, atol=1e-6)
    assert torch.equal((got[1] - base[1]) != 0, exp != 0)
    # layer 2: relative to a run with only layer 1's corrections, the slice of head 2 moves by its vector
    first = HeadCorrections(heads[:2], corr.vectors[:2].clone(), meta={"n_heads": lm.n_heads})
    ref = _attn_inputs(lm, b.to_model_kwargs(), [2], first)[2]
    exp2 = torch.zeros_like(ref)
    exp2[..., 2 * d : 3 * d] = corr.vectors[2]
    torch.testing.assert_close(got[2] - ref, exp2, rtol=0, atol=1e-6)
    # dropping either head of layer 1 changes the outputs: both take effect
    with torch.no_grad(), corr.applied(lm):
        full = lm.model(**b.to_model_kwargs()).logits
    for keep in ([0, 2], [1, 2]):
        part = HeadCorrections([heads[i] for i in keep], corr.vectors[keep].clone(), meta={"n_heads": lm.n_heads})
        with torch.no_grad(), part.applied(lm):
            other = lm.model(**b.to_model_kwargs()).logits
        assert (full - other).abs().max() > 1e-4


def test_hooks_removed_on_exit_and_on_exception():
    lm = make_tiny_model("gemma3_text")
    corr = _random_corrections(lm, [(0, 1), (0, 2), (3, 0)])
    ids = torch.tensor([lm.tokenizer("The capital of France is Paris")["input_ids"]])
    state, n0 = _state(lm), _n_hooks(lm)
    with torch.no_grad():
        before = lm.model(input_ids=ids).logits.clone()
        with corr.applied(lm):
            assert _n_hooks(lm) == n0 + 2  # one pre-hook per corrected layer
            inside = lm.model(input_ids=ids).logits.clone()
        assert (inside - before).abs().max() > 1e-4
        assert _n_hooks(lm) == n0
        assert torch.equal(lm.model(input_ids=ids).logits, before)
        for cm in (corr.applied(lm), corr.hook_positions(lm, [ids.shape[1] - 1])):
            with pytest.raises(KeyError, match="boom"), cm:
                lm.model(input_ids=ids)
                raise KeyError("boom")
            assert _n_hooks(lm) == n0
            assert torch.equal(lm.model(input_ids=ids).logits, before)
    _assert_state_equal(lm, state)


def test_corrections_are_portable_across_deltas():
    """Trained with one delta, applied with another one (CC*/CE* rows): nothing refers to the training cases."""
    lm = make_tiny_model("llama")
    hp = MematHparams(lr=0.05, n_steps=3, batch_size=2)
    corr, _ = train_corrections(lm, CASES[:2], [(1, 0), (2, 1)], hp, delta=_delta(lm, 0), langs=("en",), contexts=CTX)
    other = _delta(lm, 5, layer=2)
    ids = torch.tensor([lm.tokenizer("Lionel Messi plays")["input_ids"]])
    with torch.no_grad(), other.applied(lm):
        plain = lm.model(input_ids=ids).logits
        with corr.applied(lm):
            both = lm.model(input_ids=ids).logits
    assert (both - plain).abs().max() > 1e-5


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def _last_logprobs(lm, text):
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    return torch.log_softmax(lm.model(input_ids=ids).logits[0, -1].double(), -1)


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_training_lowers_new_target_nll_with_bounded_kl(family):
    """Trained on the edited model (delta applied), the corrections lower the new target's NLL on the training
    prompts, with the edited model without corrections as reference.

    Bound on the KL: at omega = 0 the objective is the NLL alone (KL = 0, penalty = 0), so any omega that
    lowers the objective has KL <= kl_factor^-1 * (NLL improvement); measured here on all the cases with the
    training hook, independently of the per-step log. With the inference hook (every position) there is no
    such identity, so the "is a" KL is held to 1 nat, about a sixth of log(vocab) = 6.6 nats of a tiny model
    whose next-token distributions are close to uniform.
    """
    lm = make_tiny_model(family)
    delta = _delta(lm)
    heads = [(1, 0), (1, 2), (2, 3), (3, 1)]
    hp = MematHparams(lr=0.05, n_steps=40, batch_size=2, lambda_omega=0.1)
    state = _state(lm)
    corr, log = train_corrections(lm, CASES, heads, hp, delta=delta, langs=LANGS, contexts=CTX)
    _assert_state_equal(lm, state)  # the delta was removed again
    assert not delta.is_applied
    assert len(log["steps"]) == 40 and log["n_steps"] == 40
    zero = HeadCorrections(heads, torch.zeros_like(corr.vectors), meta={"n_heads": lm.n_heads})
    a = correction_loss(lm, zero, CASES, hp, CTX, langs=LANGS, delta=delta)
    b = correction_loss(lm, corr, CASES, hp, CTX, langs=LANGS, delta=delta)
    assert abs(a["kl"]) < 1e-6 and a["penalty"] == 0.0 and abs(a["loss"] - a["nll"]) < 1e-6
    improvement = a["nll"] - b["nll"]
    assert b["loss"] < a["loss"] - 0.2
    assert improvement > 0.3
    assert 0 < b["kl"] <= improvement
    # the uncorrected reference of the log's first step is the edited model: its NLL there is the edited one
    assert log["steps"][0]["kl"] == pytest.approx(0.0, abs=1e-6)

    # inference (every position): NLL of the new target on the training prompts, edited model +- corrections
    pairs = [(ctx.replace("{}", c[lg].rewrite_prompt.replace("{}", c[lg].subject)), c[lg].target_new)
             for c in CASES for lg in LANGS for ctx in CTX[lg]]
    with delta.applied(lm):
        nll0, _ = score_continuations(lm, pairs)
        with corr.applied(lm):
            nll1, _ = score_continuations(lm, pairs)
        kls = []
        for c in CASES:
            for lg in LANGS:
                for kp in c[lg].kl_prompts:
                    text = kp.replace("{}", c[lg].subject)
                    p0 = _last_logprobs(lm, text)
                    with corr.applied(lm):
                        p1 = _last_logprobs(lm, text)
                    kls.append(float((p1.exp() * (p1 - p0)).sum()))
    assert nll1.mean() < nll0.mean() - 0.2
    assert 0 < np.mean(kls) < 1.0


def test_kl_reference_is_each_batchs_own():
    """With omega ~ 0 all along (tiny lr), the KL of every step is ~0: the reference of each mini-batch is the
    uncorrected distribution of that mini-batch's own subjects (a reference kept from the first case would give
    the KL between two different subjects' distributions), and it is the edited model's."""
    lm = make_tiny_model("llama")
    hp = MematHparams(lr=1e-9, n_steps=4, batch_size=1)
    _, log = train_corrections(lm, CASES, [(1, 0), (2, 1)], hp, delta=_delta(lm, scale=0.5), langs=LANGS, contexts=CTX)
    assert all(abs(s["kl"]) < 1e-6 for s in log["steps"]), [s["kl"] for s in log["steps"]]
    # the test can fail: the subjects' "is a" distributions differ by far more than that
    p = [_last_logprobs(lm, c["en"].kl_prompts[0].replace("{}", c["en"].subject)) for c in CASES]
    assert float((p[0].exp() * (p[0] - p[1])).sum()) > 1e-3


def test_delta_is_applied_during_training():
    lm = make_tiny_model("llama")
    hp = MematHparams(lr=0.05, n_steps=2, batch_size=4)
    heads = [(2, 0)]
    _, with_delta = train_corrections(lm, CASES, heads, hp, delta=_delta(lm, scale=0.5), contexts=CTX)
    _, without = train_corrections(lm, CASES, heads, hp, contexts=CTX)
    assert with_delta["steps"][0]["nll"] != pytest.approx(without["steps"][0]["nll"], abs=1e-4)


def test_huge_lambda_keeps_vectors_near_zero():
    lm = make_tiny_model("llama")
    heads = [(1, 0), (2, 3)]
    free, _ = train_corrections(lm, CASES, heads, MematHparams(lr=0.05, n_steps=30, batch_size=2, lambda_omega=0.0), contexts=CTX)
    tied, _ = train_corrections(lm, CASES, heads, MematHparams(lr=0.05, n_steps=30, batch_size=2, lambda_omega=1e6), contexts=CTX)
    fn, tn = free.vectors.norm(dim=-1), tied.vectors.norm(dim=-1)
    assert (fn > 0.5).all()
    assert (tn < 0.1 * fn).all(), (tn, fn)


def test_norm_penalty_formula():
    vec = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    norms = torch.tensor([10.0, 0.5, 2.0])
    by_hand = 0.3 / 3 * ((5 / 10) ** 2 + (1 / 0.5) ** 2 + (2 / 2) ** 2)
    assert float(norm_penalty(vec, norms, 0.3)) == pytest.approx(by_hand, rel=1e-6)


def test_penalty_uses_each_heads_own_norm():
    """Two heads of one layer with output norms ~30x apart: the logged penalty and head norms match a hand
    computation with per-head norms (and not one shared norm)."""
    lm = make_tiny_model("llama", num_key_value_heads=4)  # MHA: head h reads value rows [h*d, (h+1)*d)
    d, layer = lm.head_dim, 1
    with torch.no_grad():
        lm.model.model.layers[layer].self_attn.v_proj.weight[2 * d : 3 * d] *= 30.0
    heads = [(layer, 0), (layer, 2)]
    init = torch.stack([torch.linspace(-1, 1, d), torch.linspace(0.5, 2, d)])
    lam = 0.7
    hp = MematHparams(lr=1e-3, n_steps=1, batch_size=len(CASES), lambda_omega=lam)
    _, log = train_corrections(lm, CASES, heads, hp, langs=LANGS, contexts=CTX, init=init)

    # hand: every training row of the (single) mini-batch, unpadded, at its hand-counted position
    name = lm.name_of("attn_out", layer)
    per_head = [[], []]
    for c in CASES:
        for lg in LANGS:
            v = c[lg]
            prompt = v.rewrite_prompt.replace("{}", v.subject)
            texts = [(ctx.replace("{}", prompt), None) for ctx in CTX[lg]] + [(kp.replace("{}", v.subject), None) for kp in v.kl_prompts]
            for text, _ in texts:
                ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
                with torch.no_grad(), TraceDict(lm.model, [name], retain_input=True) as td:
                    lm.model(input_ids=ids)
                x = td[name].input[0, _n_tokens(text) - 1]
                for j, (_, h) in enumerate(heads):
                    per_head[j].append(float(x[h * d : (h + 1) * d].norm()))
    a = torch.tensor([float(np.mean(p)) for p in per_head], dtype=torch.float32)
    assert a[1] > 10 * a[0]
    torch.testing.assert_close(torch.tensor(log["steps"][0]["head_norms"]), a, rtol=1e-4, atol=0)
    w = init.norm(dim=-1)
    by_hand = lam / 2 * float(((w / a) ** 2).sum())
    shared = lam / 2 * float(((w / a.mean()) ** 2).sum())
    assert log["steps"][0]["penalty"] == pytest.approx(by_hand, rel=1e-4)
    assert abs(shared - by_hand) > 0.5 * by_hand


def test_grad_accum_equals_larger_batch_on_the_first_step():
    lm = make_tiny_model("llama")
    heads = [(1, 1), (2, 2)]
    big, lb = train_corrections(lm, CASES[:2], heads, MematHparams(lr=0.01, n_steps=1, batch_size=2), contexts=CTX)
    acc, la = train_corrections(lm, CASES[:2], heads, MematHparams(lr=0.01, n_steps=1, batch_size=1, grad_accum=2), contexts=CTX)
    assert la["steps"][0]["n_cases"] == lb["steps"][0]["n_cases"] == 2
    assert la["steps"][0]["nll"] == pytest.approx(lb["steps"][0]["nll"], rel=1e-5)
    torch.testing.assert_close(acc.vectors, big.vectors, rtol=0, atol=1e-4)


def test_schedule_epochs_and_steps():
    lm = make_tiny_model("llama")
    _, log = train_corrections(lm, CASES, [(0, 0)], MematHparams(n_epochs=2, batch_size=3), contexts=CTX)
    assert log["n_steps"] == 4 and [s["epoch"] for s in log["steps"]] == [0, 0, 1, 1]
    assert [s["n_cases"] for s in log["steps"]] == [3, 1, 3, 1]
    _, log = train_corrections(lm, CASES, [(0, 0)], MematHparams(n_steps=5, batch_size=2, grad_accum=2), contexts=CTX)
    assert log["n_steps"] == 5 and [s["epoch"] for s in log["steps"]] == [0, 1, 2, 3, 4]


def test_determinism_and_model_left_as_it_was():
    lm = make_tiny_model("gemma3_text")
    heads = [(1, 0), (2, 3)]
    hp = MematHparams(lr=0.05, n_steps=4, batch_size=1, seed=7)
    p = lm.model.get_parameter(lm.name_of("mlp_out", 0) + ".weight")
    p.requires_grad_(True)  # a caller's flag: frozen during training, restored afterwards
    state = _state(lm)
    a, la = train_corrections(lm, CASES, heads, hp, delta=_delta(lm), contexts=CTX, langs=LANGS)
    b, lb = train_corrections(lm, CASES, heads, hp, delta=_delta(lm), contexts=CTX, langs=LANGS)
    c, _ = train_corrections(lm, CASES, heads, MematHparams(lr=0.05, n_steps=4, batch_size=1, seed=8),
                             delta=_delta(lm), contexts=CTX, langs=LANGS)
    assert torch.equal(a.vectors, b.vectors)
    assert [s["loss"] for s in la["steps"]] == [s["loss"] for s in lb["steps"]]
    assert not torch.equal(a.vectors, c.vectors)  # the seed drives the case order
    assert p.requires_grad and sum(q.requires_grad for q in lm.model.parameters()) == 1
    _assert_state_equal(lm, state)
    assert a.vectors.dtype == torch.float32 and a.vectors.device.type == "cpu" and not a.vectors.requires_grad
    assert a.heads == heads and a.langs == LANGS and a.model_name == lm.name
    assert a.meta["n_heads"] == lm.n_heads and a.hparams["seed"] == 7


def test_generated_contexts_are_used_and_seeded():
    lm = make_tiny_model("llama")
    hp = MematHparams(n_steps=1, n_prefixes=2, prefix_len=4, batch_size=4)
    _, l1 = train_corrections(lm, CASES[:1], [(0, 0)], hp, langs=LANGS)
    _, l2 = train_corrections(lm, CASES[:1], [(0, 0)], hp, langs=LANGS)
    assert l1["contexts"] == l2["contexts"]
    for lg in LANGS:
        assert len(l1["contexts"][lg]) == 2 and all(c.endswith(". {}") for c in l1["contexts"][lg])
    hp2 = MematHparams(n_steps=1, n_prefixes=2, prefix_len=4, bare_prompt=True)
    _, l3 = train_corrections(lm, CASES[:1], [(0, 0)], hp2, langs=("en",))
    assert l3["contexts"]["en"][0] == "{}" and len(l3["contexts"]["en"]) == 3


# --------------------------------------------------------------------------------------------------
# persistence
# --------------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    lm = make_tiny_model("gemma3_text")
    corr, _ = train_corrections(lm, CASES[:2], [(1, 0), (1, 3), (3, 2)], MematHparams(lr=0.05, n_steps=2), langs=LANGS, contexts=CTX)
    path = corr.save(tmp_path / "sub" / "corr.safetensors")
    assert [p.name for p in path.parent.iterdir()] == ["corr.safetensors"]  # no temporary file left
    back = HeadCorrections.load(path, lm=lm)
    assert torch.equal(back.vectors, corr.vectors) and back.vectors.dtype == corr.vectors.dtype
    assert back.heads == corr.heads and back.langs == corr.langs and back.model_name == corr.model_name
    assert back.hparams == corr.hparams and back.meta == json.loads(json.dumps(corr.meta))
    assert MematHparams.from_dict(back.hparams) == MematHparams(lr=0.05, n_steps=2)
    ids = torch.tensor([lm.tokenizer("Toyota is located in")["input_ids"]])
    with torch.no_grad():
        with corr.applied(lm):
            x = lm.model(input_ids=ids).logits
        with back.applied(lm):
            y = lm.model(input_ids=ids).logits
    assert torch.equal(x, y)


def test_load_into_other_geometry_is_a_clear_error(tmp_path):
    lm = make_tiny_model("gemma3_text")  # 4 heads of 16
    corr = _random_corrections(lm, [(1, 0), (2, 3)])
    path = corr.save(tmp_path / "c.safetensors")
    fewer = make_tiny_model("gemma3_text", num_attention_heads=2)  # 2 heads, same head_dim 16
    fewer.name = "tiny-two-heads"
    with pytest.raises(ValueError, match=r"(?s)tiny-two-heads.*n_heads 4 != 2"):
        HeadCorrections.load(path, lm=fewer)
    with pytest.raises(ValueError, match="tiny-two-heads"), corr.applied(fewer):
        pass
    other_dim = make_tiny_model("llama")  # head_dim 8
    with pytest.raises(ValueError, match="head_dim 16 != 8"):
        HeadCorrections.load(path, lm=other_dim)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a MEMAT corrections file"):
        HeadCorrections.load(bad)
    with pytest.raises(FileNotFoundError):
        HeadCorrections.load(tmp_path / "missing.safetensors")


# --------------------------------------------------------------------------------------------------
# head selection, validation
# --------------------------------------------------------------------------------------------------


def _probe_result():
    acc = np.array([[0.5, 0.9, 0.6], [0.95, 0.7, 0.9]])
    return ProbeResult(accuracy=acc, train_accuracy=acc, layers=[3, 5], n_train=10, n_val=4, seed=0)


def test_select_heads():
    pr = _probe_result()
    assert select_heads(pr, 3) == [(5, 0), (3, 1), (5, 2)] == pr.top_k(3)
    assert len(select_heads(pr, 6)) == 6
    with pytest.raises(ValueError, match=r"k=7 heads requested.*only 6 heads \(2 layers x 3 heads\)"):
        select_heads(pr, 7)
    with pytest.raises(ValueError, match="k must be >= 1"):
        select_heads(pr, 0)
    with pytest.raises(TypeError):
        select_heads(pr, 2.0)


def test_heads_errors():
    lm = make_tiny_model("llama")
    hp = MematHparams(n_steps=1)
    with pytest.raises(ValueError, match="heads is empty"):
        train_corrections(lm, CASES, [], hp, contexts=CTX)
    with pytest.raises(ValueError, match="heads is empty"):
        HeadCorrections([], torch.zeros(0, 8))
    with pytest.raises(ValueError, match="duplicates"):
        train_corrections(lm, CASES, [(1, 0), (1, 0)], hp, contexts=CTX)
    with pytest.raises(ValueError, match=r"heads \[\(1, 4\)\] do not exist"):
        train_corrections(lm, CASES, [(1, 4)], hp, contexts=CTX)
    with pytest.raises(ValueError, match="2 heads but 1 vectors"):
        HeadCorrections([(0, 0), (0, 1)], torch.zeros(1, 8))
    with pytest.raises(KeyError, match="no language 'es'"):
        train_corrections(lm, CASES, [(0, 0)], hp, langs=("en", "es"), contexts=CTX)
    with pytest.raises(ValueError, match="no training cases"):
        train_corrections(lm, [], [(0, 0)], hp, contexts=CTX)


def test_hparams_validation_and_loading(tmp_path):
    with pytest.raises(HparamsError, match="'lr'"):
        MematHparams(lr=0.0)
    with pytest.raises(HparamsError, match="'batch_size'"):
        MematHparams(batch_size=0)
    with pytest.raises(HparamsError, match="n_prefixes=0"):
        MematHparams(n_prefixes=0)
    with pytest.raises(HparamsError, match="'lambda_omega'"):
        MematHparams(lambda_omega=-1.0)
    p = tmp_path / "m.yaml"
    p.write_text("k: 8\nlr: 5.0e-2\nn_steps: 100\nlambda_omega: 0.5\n", encoding="utf-8")
    hp = load_memat_hparams(p, seed=3)
    assert hp == MematHparams(k=8, lr=0.05, n_steps=100, lambda_omega=0.5, seed=3)
    p.write_text("lr: 5e-2\n", encoding="utf-8")
    with pytest.raises(HparamsError, match="YAML 1.1"):
        load_memat_hparams(p)
    with pytest.raises(HparamsError, match="unknown field"):
        load_memat_hparams({"kk": 3})
    assert MematHparams.from_dict(MematHparams().to_dict()) == MematHparams()


def test_cached_corrections_round_trip_and_key(tmp_path, monkeypatch):
    """The second call loads the file (same vectors, no training); any change of the inputs retrains."""
    import memat.memat as mm
    from memat.memat import cached_corrections, corrections_cache_key

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("gemma3_text")
    heads = [(1, 0), (2, 3)]
    hp = MematHparams(lr=0.05, n_steps=2, batch_size=2, seed=3)
    delta = _delta(lm)
    calls = []
    real = mm.train_corrections
    monkeypatch.setattr(mm, "train_corrections", lambda *a, **k: calls.append(1) or real(*a, **k))
    a, la = cached_corrections(lm, CASES, heads, hp, delta=delta, langs=LANGS, contexts=CTX)
    b, lb = cached_corrections(lm, CASES, heads, hp, delta=delta, langs=LANGS, contexts=CTX)
    assert len(calls) == 1 and not la["cached"] and lb["cached"]
    assert torch.equal(a.vectors, b.vectors) and b.heads == heads
    assert [s["loss"] for s in la["steps"]] == [s["loss"] for s in lb["steps"]]
    assert len(list((tmp_path / "corrections").rglob("*.safetensors"))) == 1
    key = corrections_cache_key(lm, CASES, heads, hp, delta, LANGS, CTX)
    changed = [
        corrections_cache_key(lm, CASES, heads[:1], hp, delta, LANGS, CTX),
        corrections_cache_key(lm, CASES, heads, MematHparams(lr=0.06, n_steps=2, batch_size=2, seed=3), delta, LANGS, CTX),
        corrections_cache_key(lm, CASES[:3], heads, hp, delta, LANGS, CTX),
        corrections_cache_key(lm, CASES, heads, hp, None, LANGS, CTX),
        corrections_cache_key(lm, CASES, heads, hp, delta, ("en",), CTX),
    ]
    assert len({key, *changed}) == 6
    cached_corrections(lm, CASES, heads, MematHparams(lr=0.06, n_steps=2, batch_size=2, seed=3), delta=delta,
                       langs=LANGS, contexts=CTX)
    assert len(calls) == 2


def test_nll_by_epoch_compares_complete_epochs_on_the_same_cases():
    from memat.memat import nll_by_epoch, nll_lowered

    def st(epoch, n, nll):
        return {"epoch": epoch, "n_cases": n, "nll": nll}

    # 10 cases in batches of 4, 4, 2; the first step of the last epoch is worse than the first step overall,
    # yet the epoch means fell: a first-versus-last-step check would say the opposite
    log = {"steps": [st(0, 4, 1.0), st(0, 4, 3.0), st(0, 2, 6.0), st(1, 4, 0.5), st(1, 4, 1.0), st(1, 2, 4.0)]}
    assert nll_by_epoch(log) == pytest.approx([(4 + 12 + 12) / 10, (2 + 4 + 8) / 10])
    assert nll_lowered(log) is True
    assert log["steps"][-1]["nll"] > log["steps"][0]["nll"]
    rose = {"steps": [st(0, 5, 1.0), st(0, 5, 1.0), st(1, 5, 2.0), st(1, 5, 1.0)]}
    assert nll_lowered(rose) is False
    cut = {"steps": [st(0, 5, 3.0), st(0, 5, 3.0), st(1, 5, 0.1)]}  # n_steps stopped inside epoch 1
    assert nll_by_epoch(cut) == [3.0] and nll_lowered(cut) is None
    with pytest.raises(ValueError, match="lack 'epoch'"):
        nll_by_epoch({"steps": [{"nll": 1.0}]})


# --------------------------------------------------------------------------------------------------
# the split training pass (positions before the corrected one run once, without gradient)
# --------------------------------------------------------------------------------------------------


def _split_family(family):
    over = {"sliding_window": 64} if family == "gemma3_text" else {}  # the tiny default window (4) is shorter than the rows
    return make_tiny_model(family, **over)


@pytest.mark.parametrize("family", ["llama", "gpt2", "falcon", "gemma3_text", "gpt_neox"])
def test_split_training_pass_gives_the_full_pass_loss_and_gradients(family):
    """Eq. 12 on one mini-batch with rows of different prefix lengths, heads in the first layer, the last and
    two in one layer, nonzero corrections and the edit applied: the split pass (prefix once in the model's
    key/value cache, forward and backward over the positions from the corrected one on) gives the full
    pass's loss terms, head norms and gradient of every correction. Tolerance 1e-5 relative on the loss
    terms, 1e-4 of the largest gradient entry (float32 rounding of differently shaped products)."""
    from memat.memat import _loss_parts, _split_rows

    lm = _split_family(family)
    heads = [(0, 1), (2, 0), (2, 3), (lm.n_layers - 1, 2)]
    hp = MematHparams(lr=0.05, n_steps=1, batch_size=4, lambda_omega=0.1, kl_factor=0.7)
    rows = training_rows(lm, CASES, LANGS, CTX, hp.train_position)
    assert len(set(rows.positions)) > 3  # the rows are split at many different places
    assert _split_rows(lm, rows, "split") is not None
    out = {}
    with _delta(lm).applied(lm):
        for method in ("full", "split"):
            corr = _random_corrections(lm, heads, seed=3)
            corr.vectors.requires_grad_(True)
            parts = _loss_parts(lm, corr, rows, hp, method)
            parts["loss"].backward()
            out[method] = {k: v.detach().clone() for k, v in parts.items()}, corr.vectors.grad.clone()
    (pf, gf), (ps, gs) = out["full"], out["split"]
    for key in ("loss", "nll", "kl", "penalty", "head_norms"):
        torch.testing.assert_close(ps[key], pf[key], rtol=1e-5, atol=1e-6, msg=key)
    assert float(pf["kl"]) > 1e-4 and float(gf.abs().max()) > 1e-4  # both terms carry gradient here
    torch.testing.assert_close(gs, gf, rtol=1e-4, atol=1e-4 * float(gf.abs().max()))


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_train_corrections_split_equals_full(family):
    """Ten Adam steps over shuffled mini-batches, split against full: the same corrections (1e-4 of their
    largest entry) and the same per-step log."""
    lm = _split_family(family)
    heads = [(0, 2), (1, 0), (3, 1)]
    hp = MematHparams(lr=0.05, n_steps=10, batch_size=2, lambda_omega=0.1)
    delta = _delta(lm)
    got = {m: train_corrections(lm, CASES, heads, hp, delta=delta, langs=LANGS, contexts=CTX, method=m)
           for m in ("full", "split")}
    (cf, lf), (cs, ls) = got["full"], got["split"]
    scale = float(cf.vectors.abs().max())
    assert scale > 1e-2  # the corrections moved
    torch.testing.assert_close(cs.vectors, cf.vectors, rtol=1e-4, atol=1e-4 * scale)
    for a, b in zip(ls["steps"], lf["steps"]):
        for key in ("loss", "nll", "kl", "penalty"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["step"], key)


def test_split_training_pass_falls_back_to_every_position_where_it_is_not_exact():
    """A mini-batch that reads a loss before a row's corrected position (``train_position="input_last"``
    with a target of several tokens: its first tokens are read before the last input token) runs every
    position, and so does every mini-batch of a model whose sliding window is shorter than the rows: there
    ``method="split"`` is ``"full"`` bit for bit. An unknown method is an error."""
    from memat.memat import _split_rows

    lm = make_tiny_model("llama")
    rows = training_rows(lm, CASES, LANGS, CTX, "input_last")
    assert _split_rows(lm, rows, "split") is None
    assert _split_rows(lm, training_rows(lm, CASES, LANGS, CTX, "prompt_last"), "full") is None
    short = make_tiny_model("gemma3_text")  # window of 4 tokens
    assert _split_rows(short, training_rows(short, CASES, LANGS, CTX, "prompt_last"), "split") is None
    heads = [(1, 0), (2, 3)]
    hp = MematHparams(lr=0.05, n_steps=3, batch_size=2)
    a, _ = train_corrections(short, CASES, heads, hp, langs=LANGS, contexts=CTX, method="split")
    b, _ = train_corrections(short, CASES, heads, hp, langs=LANGS, contexts=CTX, method="full")
    assert torch.equal(a.vectors, b.vectors)
    with pytest.raises(ValueError, match="method must be one of"):
        train_corrections(lm, CASES, heads, MematHparams(n_steps=1), langs=LANGS, contexts=CTX, method="fast")
