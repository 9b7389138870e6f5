"""Per-head probes (memat.heads) against hand computations on tiny models and synthetic activations.

References are traced here one unpadded sequence at a time with memat.hooks.TraceDict and token ids written
out word by word (the word-level test tokenizer gives one id per word after <bos>), so they share no code
with heads.head_outputs (its own pre-hooks, batching, right padding, early stop).
"""
from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from memat.data.records import EditCase, LangView
from memat.heads import (
    ProbeData,
    ProbeResult,
    collect_probe_data,
    edit_transfers,
    head_outputs,
    plot_probe_map,
    split_by_case,
    train_probes,
)
from memat.hooks import TraceDict
from memat.memit import MemitDelta
from tiny_models import make_tiny_model

TEXTS = [
    "The capital of France is Paris",
    "Paris",
    "Michael Jordan plays basketball for the team of the city of Berlin in Germany",
    "La capital de França és París",
    "He was born in London",
]

# hand-picked families: multi-head, grouped-query, multi-query, Gemma 3 (head_dim != hidden / heads), GPT-2 Conv1D
HAND_FAMILIES = [
    ("llama", {"num_key_value_heads": 4}),  # MHA
    ("llama", {}),  # GQA (2 KV heads)
    ("qwen2", {}),  # GQA with q/k/v biases
    ("falcon", {}),  # MQA, fused query_key_value
    ("gemma3_text", {}),  # MQA, head_dim 16, o_proj input 64 > hidden 32
    ("gpt2", {}),  # MHA, Conv1D c_attn / c_proj
]
HAND_IDS = ["llama-mha", "llama-gqa", "qwen2-gqa", "falcon-mqa", "gemma3_text", "gpt2"]


def _ids(lm, text: str) -> list[int]:
    tok = lm.tokenizer
    ids = [tok.bos_token_id] + tok.convert_tokens_to_ids(text.split())
    assert tok.unk_token_id not in ids, text
    return ids


@torch.no_grad()
def _traced_single(lm, ids: list[int], layers):
    """{layer: (o_proj input [T, H*d], o_proj output [T, hidden])} of one unpadded sequence."""
    names = [lm.name_of("attn_out", l) for l in layers]
    with TraceDict(lm.model, names, retain_input=True) as td:
        lm.model(input_ids=torch.tensor([ids]))
    return {l: (td[n].input[0], td[n].output[0]) for l, n in zip(layers, names)}


# --------------------------------------------------------------------------------------------------
# head_outputs
# --------------------------------------------------------------------------------------------------


def test_head_outputs_through_attn_out_every_family(tiny_lm):
    """Concatenating the heads gives the o_proj input of an unpadded single-text forward at the last token,
    and pushing it through o_proj (Conv1D for GPT-2) gives the o_proj output captured there."""
    lm = tiny_lm
    L, H, d = lm.n_layers, lm.n_heads, lm.head_dim
    X = head_outputs(lm, TEXTS, batch_size=3)
    assert X.shape == (len(TEXTS), L, H, d) and X.dtype == torch.float32 and X.device.type == "cpu"
    for i, text in enumerate(TEXTS):
        ref = _traced_single(lm, _ids(lm, text), range(L))
        for l in range(L):
            inp, out = ref[l]
            assert inp.shape[-1] == H * d  # MHA, GQA and MQA alike
            torch.testing.assert_close(X[i, l].reshape(H * d), inp[-1], rtol=1e-5, atol=1e-6)
            with torch.no_grad():
                through = lm.module("attn_out", l)(X[i, l].reshape(1, H * d))[0]
            torch.testing.assert_close(through, out[-1], rtol=1e-4, atol=1e-5)
    assert float(X.abs().mean()) > 1e-2


def _zero_queries(lm, layer: int, heads):
    """Zero the query projection of ``heads`` at ``layer``: those heads then attend uniformly (causally)."""
    fam, d = lm.config.model_type, lm.head_dim
    with torch.no_grad():
        for h in heads:
            sl = slice(h * d, (h + 1) * d)
            if fam == "gpt2":
                c = lm.model.transformer.h[layer].attn.c_attn  # Conv1D weight [in, 3*hidden]: q columns first
                c.weight[:, sl] = 0
                c.bias[sl] = 0
            elif fam == "falcon":
                qkv = lm.model.transformer.h[layer].self_attention.query_key_value  # rows: H*d q, d k, d v
                qkv.weight[sl] = 0
                if qkv.bias is not None:
                    qkv.bias[sl] = 0
            else:
                q = lm.model.model.layers[layer].self_attn.q_proj
                q.weight[sl] = 0
                if q.bias is not None:
                    q.bias[sl] = 0


@torch.no_grad()
def _values(lm, layer: int, ids):
    """Value vectors [T, n_kv, d] of one unpadded sequence, traced at the value projection."""
    fam, H, d = lm.config.model_type, lm.n_heads, lm.head_dim
    if fam == "gpt2":
        name = f"transformer.h.{layer}.attn.c_attn"
    elif fam == "falcon":
        name = f"transformer.h.{layer}.self_attention.query_key_value"
    else:
        name = f"model.layers.{layer}.self_attn.v_proj"
    with TraceDict(lm.model, [name]) as td:
        lm.model(input_ids=torch.tensor([ids]))
    out = td[name].output[0]
    if fam == "gpt2":
        return out[:, 2 * H * d :].reshape(len(ids), H, d)
    if fam == "falcon":
        return out[:, -d:].reshape(len(ids), 1, d)
    return out.reshape(len(ids), lm.n_kv_heads, d)


@pytest.mark.parametrize("family,overrides", HAND_FAMILIES, ids=HAND_IDS)
def test_head_outputs_uniform_attention_by_hand(family, overrides):
    """With its query zeroed, head h attends uniformly to positions 0..t, so its output at the last token is the
    mean of the value vectors of its KV head (h // (H / n_kv)): checks the position read, the head order inside
    the o_proj input and the GQA / MQA head-to-KV mapping. Read in a right-padded batch."""
    lm = make_tiny_model(family, **overrides)
    layer, zeroed = 1, (1, 3)  # layer 1 is a full-attention layer of the tiny Gemma 3
    H = lm.n_heads
    _zero_queries(lm, layer, zeroed)
    X = head_outputs(lm, TEXTS, layers=[layer], batch_size=len(TEXTS))[:, 0]
    group = H // lm.n_kv_heads
    for i, text in enumerate(TEXTS):
        v = _values(lm, layer, _ids(lm, text))
        for h in zeroed:
            expected = v[:, h // group].mean(0)
            torch.testing.assert_close(X[i, h], expected, rtol=1e-4, atol=1e-5)
        if len(text.split()) > 1:  # the other heads are not uniform: they differ from those means
            for h in (0, 2):
                assert float((X[i, h] - v[:, h // group].mean(0)).abs().max()) > 1e-3


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "falcon", "gpt2"])
def test_head_outputs_padding_batching_and_positions(family):
    lm = make_tiny_model(family)
    alone = torch.cat([head_outputs(lm, [t]) for t in TEXTS])
    for bs in (2, 16):
        torch.testing.assert_close(head_outputs(lm, TEXTS, batch_size=bs), alone, rtol=1e-5, atol=1e-6)
    # token lists are used as given; a mixed list is fine
    mixed = [_ids(lm, t) if i % 2 else t for i, t in enumerate(TEXTS)]
    torch.testing.assert_close(head_outputs(lm, mixed), alone, rtol=1e-5, atol=1e-6)
    # reading position p of a long text = the last token of its prefix of p + 1 tokens (causal attention)
    long = _ids(lm, TEXTS[2])
    ps = [3, -4, 0, -1]
    got = head_outputs(lm, [long] * len(ps), positions=ps)
    want = torch.cat([head_outputs(lm, [long[: (p if p >= 0 else len(long) + p) + 1]]) for p in ps])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert float((got[0] - got[1]).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="outside"):
        head_outputs(lm, [long], positions=len(long))
    with pytest.raises(ValueError, match="outside"):
        head_outputs(lm, ["Paris"], positions=-3)


def test_head_outputs_layers_and_early_stop():
    lm = make_tiny_model("llama")
    full = head_outputs(lm, TEXTS)
    torch.testing.assert_close(head_outputs(lm, TEXTS, layers=[3, 1]), full[:, [3, 1]])
    calls = {l: 0 for l in range(lm.n_layers)}
    hooks = [
        lm.module("layer", l).register_forward_hook(lambda m, a, o, l=l: calls.__setitem__(l, calls[l] + 1))
        for l in range(lm.n_layers)
    ]
    try:
        sub = head_outputs(lm, TEXTS, layers=[1], batch_size=2)
    finally:
        for h in hooks:
            h.remove()
    torch.testing.assert_close(sub[:, 0], full[:, 1])
    assert calls[0] == 3 and calls[2] == 0 and calls[3] == 0  # three batches; stopped inside layer 1
    assert head_outputs(lm, []).shape == (0, lm.n_layers, lm.n_heads, lm.head_dim)
    with pytest.raises(ValueError, match="out of range"):
        head_outputs(lm, TEXTS, layers=[4])
    with pytest.raises(ValueError, match="duplicates"):
        head_outputs(lm, TEXTS, layers=[1, 1])
    # no hook is left behind (also after the early stop)
    assert all(not m._forward_pre_hooks for m in lm.model.modules())


# --------------------------------------------------------------------------------------------------
# probes on synthetic activations
# --------------------------------------------------------------------------------------------------


def _synthetic(n_cases=60, layers=(5, 6, 7), H=4, d=8, signal=(1, 2), strength=3.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n_cases)
    groups = np.repeat(np.arange(n_cases), 2)
    X = rng.standard_normal((2 * n_cases, len(layers), H, d)).astype(np.float32)
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    X[:, signal[0], signal[1]] += (strength * (2 * y - 1))[:, None] * direction
    X += 5.0  # an offset and scale the standardisation must remove
    return ProbeData(X=X, y=y, groups=groups, case_ids=list(range(n_cases)), layers=list(layers), kept=list(range(n_cases)))


def test_probes_find_the_signal_head():
    data = _synthetic()
    res = train_probes(data, val_fraction=0.3, seed=0)
    assert res.accuracy.shape == (3, 4) and res.train_accuracy.shape == (3, 4)
    assert res.accuracy[1, 2] >= 0.95 and res.train_accuracy[1, 2] >= 0.95
    others = np.delete(res.accuracy.ravel(), 1 * 4 + 2)
    assert abs(others.mean() - 0.5) < 0.15 and others.max() < 0.8
    assert res.top_k(1) == [(6, 2)]  # actual layer index, not the row
    assert res.n_val_cases == math.ceil(0.3 * 60) and res.n_train_cases == 60 - res.n_val_cases
    assert res.n_val == 2 * res.n_val_cases and res.n_train + res.n_val == 120
    assert res.best()[:2] == (6, 2)


def test_probes_chance_on_shuffled_labels():
    data = _synthetic()
    rng = np.random.default_rng(1)
    data.y = rng.permutation(data.y)
    res = train_probes(data, seed=0)
    assert abs(res.accuracy.mean() - 0.5) < 0.15
    assert res.accuracy[1, 2] < 0.8


def test_split_by_case_never_splits_a_case():
    groups = np.repeat(np.arange(23), 2)
    groups = np.concatenate([groups, [3, 3, 7]])  # cases with more sentences
    splits = set()
    for seed in range(5):
        tr, va = split_by_case(groups, 0.3, seed)
        assert len(np.intersect1d(tr, va)) == 0 and sorted(np.concatenate([tr, va]).tolist()) == list(range(len(groups)))
        assert not set(groups[tr]) & set(groups[va])
        assert len(set(groups[va])) == math.ceil(0.3 * 23)
        splits.add(tuple(va))
    assert len(splits) > 1  # the seed matters
    # train_probes uses exactly that split
    data = _synthetic(n_cases=23)
    res = train_probes(data, val_fraction=0.3, seed=4)
    _, va = split_by_case(data.groups, 0.3, 4)
    assert res.val_groups == sorted(set(data.groups[va].tolist()))
    assert res.n_val == len(va)


def test_train_probes_deterministic_and_json_roundtrip():
    data = _synthetic(n_cases=30)
    a, b = train_probes(data, seed=3), train_probes(data, seed=3)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.train_accuracy, b.train_accuracy)
    assert a.val_groups == b.val_groups
    assert train_probes(data, seed=4).val_groups != a.val_groups
    back = ProbeResult.from_dict(json.loads(json.dumps(a.to_dict())))
    np.testing.assert_array_equal(back.accuracy, a.accuracy)
    np.testing.assert_array_equal(back.train_accuracy, a.train_accuracy)
    assert (back.layers, back.n_train, back.n_val, back.seed, back.val_groups) == (a.layers, a.n_train, a.n_val, 3, a.val_groups)
    assert back.top_k(12) == a.top_k(12)


def test_train_probes_too_few_cases():
    data = _synthetic(n_cases=1)
    with pytest.raises(ValueError, match=r"1 case\(s\) \(2 sentences\).*0 training and 1 validation"):
        train_probes(data)
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_case([0, 1], 1.0)


def test_top_k_order_ties_and_errors():
    acc = np.array([[0.9, 0.8, 0.9], [0.9, 1.0, 0.5]])
    res = ProbeResult(accuracy=acc, train_accuracy=acc, layers=[2, 5], n_train=10, n_val=4, seed=0)
    assert res.top_k(6) == [(5, 1), (2, 0), (2, 2), (5, 0), (2, 1), (5, 2)]
    assert res.top_k(3) == [(5, 1), (2, 0), (2, 2)]
    with pytest.raises(ValueError, match="6 heads"):
        res.top_k(7)
    with pytest.raises(ValueError, match="between 1 and 6"):
        res.top_k(0)


def test_plot_probe_map():
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    res = train_probes(_synthetic(), seed=0)
    fig = plot_probe_map(res, title="t")
    ax = fig.axes[0]
    rects = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(rects) == 1 and rects[0].get_xy() == (2, 1)  # head 2, row of layer 6
    assert [t.get_text() for t in ax.get_yticklabels()] == ["5", "6", "7"]
    assert ax.get_ylabel() == "layer" and ax.get_xlabel() == "head"
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# collect_probe_data on a tiny model
# --------------------------------------------------------------------------------------------------


def _cases():
    def en(subject, true, new, prompt, **kw):
        return LangView(subject, true, new, prompt, **kw)

    return [
        EditCase(10, {"en": en("Danielle Darrieux", "French", "English", "The mother tongue of {} is",
                               paraphrase_prompts=("Danielle Darrieux speaks", "The language of Danielle Darrieux is")),
                      "ca": en("Danielle Darrieux", "francès", "anglès", "La llengua de {} és")}),
        EditCase(11, {"en": en("Toyota", "Japan", "Germany", "{} is located in"),
                      "ca": en("Toyota", "Japó", "Alemanya", "{} és situada a")}),
        EditCase("c12", {"en": en("Lionel Messi", "football", "basketball", "{} plays"),
                         # a Catalan variant prompt per target (agreement)
                         "ca": en("Lionel Messi", "futbol", "música", "{} juga la", rewrite_prompt_true="{} juga el")}),
        EditCase(13, {"en": en("Pablo Picasso", "Paris", "London", "{} died in"),
                      "ca": en("Pablo Picasso", "París", "Londres", "{} va morir a")}),
    ]


@torch.no_grad()
def _hand_X(lm, sentences):
    """Head outputs at the last token of each sentence, traced alone, [n, L, H, d]."""
    rows = []
    for s in sentences:
        ref = _traced_single(lm, _ids(lm, s), range(lm.n_layers))
        rows.append(torch.stack([ref[l][0][-1].reshape(lm.n_heads, lm.head_dim) for l in range(lm.n_layers)]))
    return torch.stack(rows)


def test_collect_probe_data_unrefined():
    lm = make_tiny_model("llama")
    cases = _cases()
    data = collect_probe_data(lm, cases, "ca", refine=False, batch_size=3)
    assert len(data) == 8 and data.X.shape == (8, lm.n_layers, lm.n_heads, lm.head_dim)
    assert data.y.tolist() == [0, 1] * 4 and data.groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert data.case_ids == [10, 11, "c12", 13] and data.kept == [0, 1, 2, 3] and data.dropped == []
    sentences = [
        "La llengua de Danielle Darrieux és francès", "La llengua de Danielle Darrieux és anglès",
        "Toyota és situada a Japó", "Toyota és situada a Alemanya",
        "Lionel Messi juga el futbol", "Lionel Messi juga la música",
        "Pablo Picasso va morir a París", "Pablo Picasso va morir a Londres",
    ]
    assert data.texts == sentences
    np.testing.assert_allclose(data.X, _hand_X(lm, sentences).numpy(), rtol=1e-5, atol=1e-6)
    # several prompt kinds: the first case has 2 paraphrases in English
    more = collect_probe_data(lm, cases, "en", kinds=("rewrite", "paraphrase"), refine=False, layers=[2])
    assert more.groups.tolist() == [0] * 6 + [1, 1, 2, 2, 3, 3] and more.X.shape[1] == 1
    assert more.texts[2:4] == ["Danielle Darrieux speaks French", "Danielle Darrieux speaks English"]


def test_collect_probe_data_refined_with_injected_criterion_and_delta():
    lm = make_tiny_model("gpt2")
    cases = _cases()
    name = lm.name_of("attn_out", 0) + ".weight"
    w = lm.model.get_parameter(name)
    before = w.detach().clone()
    delta = MemitDelta({name: 0.5 * torch.randn(w.shape, generator=torch.Generator().manual_seed(0))})
    seen = []

    def criterion(m, cs, lang):
        seen.append((delta.is_applied, lang, len(cs)))
        return np.array([True, False, True, False])

    data = collect_probe_data(lm, cases, "ca", refine=True, delta=delta, transfers=criterion)
    assert seen == [(True, "ca", 4)]  # the refinement is judged under the edited model
    assert torch.equal(w, before) and not delta.is_applied  # removed afterwards
    assert data.kept == [0, 2] and data.dropped == [1, 3] and data.dropped_case_ids == [11, 13]
    assert data.groups.tolist() == [0, 0, 2, 2] and data.y.tolist() == [0, 1, 0, 1] and data.refined
    with delta.applied(lm):
        edited = _hand_X(lm, [data.texts[k] for k in range(4)])
    np.testing.assert_allclose(data.X, edited.numpy(), rtol=1e-5, atol=1e-6)
    plain = collect_probe_data(lm, cases, "ca", refine=True, transfers=criterion)
    assert float(np.abs(plain.X - data.X).max()) > 1e-3  # the delta did change what was read


@torch.no_grad()
def _hand_nll(lm, prompt: str, target: str) -> float:
    p, t = _ids(lm, prompt), lm.tokenizer.convert_tokens_to_ids(target.split())
    logits = lm.model(input_ids=torch.tensor([p + t])).logits[0].float()
    lp = torch.log_softmax(logits[len(p) - 1 : -1], -1)
    return float(-lp[torch.arange(len(t)), torch.tensor(t)].mean())


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_refinement_keeps_cases_where_new_target_is_preferred(family):
    lm = make_tiny_model(family, seed=1)
    cases = _cases()
    expected = []
    for c in cases:
        v = c["ca"]
        (p_new, p_true), = v.prompt_pairs("rewrite")
        expected.append(_hand_nll(lm, p_new, v.target_new) < _hand_nll(lm, p_true, v.target_true))
    assert edit_transfers(lm, cases, "ca").tolist() == expected
    assert any(expected) and not all(expected), "pick cases/seed giving both outcomes, or the test cannot fail"
    data = collect_probe_data(lm, cases, "ca", refine=True)
    assert data.kept == [i for i, e in enumerate(expected) if e]
    assert data.dropped == [i for i, e in enumerate(expected) if not e]
    assert sorted(set(data.groups.tolist())) == data.kept and len(data) == 2 * len(data.kept)


def test_probe_map_reads_a_cross_lingual_map_and_names_what_is_missing():
    from memat.heads import ProbeResult, probe_map

    acc = np.array([[0.5, 0.9], [0.7, 0.6]])
    pr = ProbeResult(accuracy=acc, train_accuracy=acc, layers=[3, 4], n_train=10, n_val=4, seed=1)
    r03 = {"probes": {"ca->en": {"all": pr.to_dict()}}}
    got = probe_map(r03, "ca", "en", "all")
    assert got.layers == [3, 4] and got.top_k(2) == [(3, 1), (4, 0)] and np.array_equal(got.accuracy, acc)
    with pytest.raises(ValueError, match=r"no probe map 'en->ca' \(maps: \['ca->en'\]\)"):
        probe_map(r03, "en", "ca", "all")
    with pytest.raises(ValueError, match=r"HEAD_SET: 'refined' is not one of \['all'\]"):
        probe_map(r03, "ca", "en", "refined")
    with pytest.raises(ValueError, match="no 'probes'"):
        probe_map({"table": []}, "ca", "en")


# --------------------------------------------------------------------------------------------------
# how well the map is measured (issue 13, part 3)
# --------------------------------------------------------------------------------------------------


def test_bootstrap_accuracy_resamples_cases_and_brackets_the_estimate():
    from memat.heads import bootstrap_accuracy

    data = _synthetic(n_cases=40)
    res = train_probes(data, seed=0, keep_predictions=True)
    assert res.val_correct.shape == (res.n_val, 3, 4)
    assert np.allclose(res.val_correct.mean(0), res.accuracy)  # the kept predictions are the map's
    assert "val_correct" not in res.to_dict()
    out = bootstrap_accuracy(res, n_boot=500, seed=0)
    assert out["heads"] == [[6, 2]] and out["n_val_cases"] == res.n_val_cases
    assert out["lo"] <= out["accuracy"] <= out["hi"] <= 1.0
    noise = bootstrap_accuracy(res, heads=[(5, 0), (7, 3)], n_boot=500, seed=0)
    assert noise["lo"] < 0.5 + 0.2 and noise["hi"] - noise["lo"] > 0.05  # chance heads: a wide interval near 0.5
    assert noise["accuracy"] == pytest.approx(np.mean([res.accuracy[0, 0], res.accuracy[2, 3]]))
    # by hand: two validation cases, one with 3 right of 3 sentences, one with 0 of 1; resampling both cases
    # twice gives 3/3 or 0/1; once each gives 3/4
    res.val_correct = np.zeros((4, 3, 4), dtype=bool)
    res.val_correct[:3, 1, 2] = True
    res.val_row_groups = np.array([10, 10, 10, 11])
    b = bootstrap_accuracy(res, heads=[(6, 2)], n_boot=4000, seed=1, level=0.4)
    assert b["accuracy"] == pytest.approx(0.75)
    assert b["lo"] == pytest.approx(0.75) and b["hi"] == pytest.approx(0.75)  # P(3/4) = 1/2: the 30% and 70% quantiles
    b90 = bootstrap_accuracy(res, heads=[(6, 2)], n_boot=4000, seed=1, level=0.9)
    assert b90["lo"] == 0.0 and b90["hi"] == 1.0  # a case bootstrap, not a sentence one (that would never give 0)
    with pytest.raises(ValueError, match="not in the probe map"):
        bootstrap_accuracy(res, heads=[(9, 0)])
    with pytest.raises(ValueError, match="keep_predictions"):
        bootstrap_accuracy(train_probes(data, seed=0))


def test_shuffled_label_control_is_at_chance_and_below_a_real_signal():
    from memat.heads import shuffled_label_control

    data = _synthetic(n_cases=40)
    ctl = shuffled_label_control(data, n_shuffles=3, seed=0, k=2)
    assert len(ctl["best"]) == 3 and ctl["k"] == 2
    assert all(abs(m - 0.5) < 0.15 for m in ctl["mean"])
    assert max(ctl["best"]) < train_probes(data, seed=0).best()[2]  # the signal head beats the best shuffled one
    assert all(t <= b for t, b in zip(ctl["top_k_mean"], ctl["best"]))
    assert np.array_equal(data.y, np.tile([0, 1], 40))  # the caller's labels are untouched
    assert ctl == shuffled_label_control(data, n_shuffles=3, seed=0, k=2)  # seeded


def test_topk_overlap_across_seeds_is_one_for_a_clear_head_and_low_for_noise():
    from memat.heads import topk_overlap_across_seeds

    strong = topk_overlap_across_seeds(_synthetic(n_cases=40), k=1, seeds=[0, 1, 2])
    assert strong["top_k"] == {"0": [[6, 2]], "1": [[6, 2]], "2": [[6, 2]]}
    assert strong["pairwise"] == [1.0, 1.0, 1.0] and strong["mean_overlap"] == 1.0
    assert strong["random_expectation"] == pytest.approx(1 / 12)
    noise = topk_overlap_across_seeds(_synthetic(n_cases=40, strength=0.0), k=3, seeds=[0, 1, 2, 3])
    assert len(noise["pairwise"]) == 6 and noise["mean_overlap"] < 1.0
    with pytest.raises(ValueError, match="two distinct"):
        topk_overlap_across_seeds(_synthetic(), k=1, seeds=[0, 0])


def test_topk_overlap_reuses_a_known_map_and_gives_the_same_answer(monkeypatch):
    import memat.heads as heads_mod

    data = _synthetic(n_cases=40, strength=0.5)
    fresh = heads_mod.topk_overlap_across_seeds(data, k=3, seeds=[0, 1, 2])
    known = {0: train_probes(data, 0.3, 0)}
    calls = []
    real = heads_mod.train_probes
    monkeypatch.setattr(heads_mod, "train_probes", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    reused = heads_mod.topk_overlap_across_seeds(data, k=3, seeds=[0, 1, 2], known=known)
    assert reused == fresh
    assert calls == [1, 2]  # seed 0 came from `known`
