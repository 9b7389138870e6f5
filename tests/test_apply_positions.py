"""Where MEMAT corrections apply at inference (issue 13, part 1): ``apply_positions`` of HeadCorrections and
MematHparams ("all", "from_subject_last", "last"), the position marks the scorers set, and the per-head norm
clamp of the training (``clamp_norm_factor``).

References are independent of memat's hooks and scorers: a forward pre-hook written here adds each head's
vector in its slice at the positions counted by hand (the tiny tokenizer has one token per word), and the
NLL is read from the model's own logits.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import make_tiny_model

from memat.corrections import APPLY_POSITIONS, HeadCorrections, PositionMarks, position_marks
from memat.data.records import EditCase, LangView
from memat.evaluate import evaluate_cases, score_continuations
from memat.hooks import TraceDict
from memat.hparams import HparamsError
from memat.memat import MematHparams, clamp_to_head_norms, corrections_cache_key, train_corrections

HEADS = [(0, 1), (1, 0), (1, 2), (2, 3)]  # two heads in layer 1
# (prompt, target, subject or None). Positions by hand: <bos> is 0, then one per word.
PAIRS = [
    ("The city of Paris is", "France", "Paris"),  # subject's last token 4: after it from 5; prompt's last 5
    ("The city of Paris", "Berlin", "city"),  # shares <bos> The city of Paris with the first, marked otherwise
    ("Michael Jordan plays basketball for", "the team of Berlin", "Michael Jordan"),  # multi-token target
    ("The capital of France is", "Paris", None),  # a neighbourhood prompt: no subject
    ("Toyota", "is", "Toyota"),  # the subject is the prompt's last token: after it = from the prompt's last
]
STARTS = {  # pair -> (first corrected position for "from_subject_last", for "last")
    0: (5, 5), 1: (3, 4), 2: (3, 5), 3: (5, 5), 4: (1, 1),
}


def _corr(lm, seed=0, scale=2.0, rule="all"):
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(len(HEADS), lm.head_dim, generator=g) * scale
    return HeadCorrections(HEADS, vec, lm.name, ("en",), meta={"n_heads": lm.n_heads}, apply_positions=rule)


@torch.no_grad()
def _hand_nll(lm, corr, prompt, target, start):
    """NLL of ``target`` after ``prompt`` with each head's vector added to its slice of the attention output
    projection's input at positions >= ``start`` (None: no correction), by a pre-hook written here."""
    tok = lm.tokenizer
    p = tok(prompt)["input_ids"]
    t = tok(" " + target, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + t[:-1]])
    handles = []
    if start is not None:
        for layer in sorted({l for l, _ in corr.heads}):
            add = torch.zeros(lm.n_heads, lm.head_dim)
            for (l, h), v in zip(corr.heads, corr.vectors):
                if l == layer:
                    add[h] += v
            add = add.reshape(-1)
            mod = lm.model.get_submodule(lm.head_site_name(layer))

            def pre(m, args, add=add):
                x = args[0].clone()
                x[:, start:] += add.to(x.dtype)
                return (x, *args[1:])

            handles.append(mod.register_forward_pre_hook(pre))
    try:
        logits = lm.model(input_ids=ids, use_cache=False).logits[0].float()
    finally:
        for hd in handles:
            hd.remove()
    lp = F.log_softmax(logits, -1)
    return float(np.mean([-float(lp[len(p) - 1 + j, tid]) for j, tid in enumerate(t)]))


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2", "falcon"])
@pytest.mark.parametrize("rule", APPLY_POSITIONS)
@pytest.mark.parametrize("method", ["shared", "separate"])
def test_scores_match_a_hand_written_forward(family, rule, method):
    lm = make_tiny_model(family)
    corr = _corr(lm, rule=rule)
    pairs = [(p, t) for p, t, _ in PAIRS]
    subjects = [s for _, _, s in PAIRS]
    with corr.applied(lm):
        nll, _ = score_continuations(lm, pairs, method=method, cache=False,
                                     subjects=None if rule == "all" else subjects)
    want = [_hand_nll(lm, corr, p, t, 0 if rule == "all" else STARTS[i][rule == "last"])
            for i, (p, t, _) in enumerate(PAIRS)]
    np.testing.assert_allclose(nll, want, rtol=1e-4, atol=1e-5)
    # and the correction changed something: the restricted rules are not the model without corrections
    bare = [_hand_nll(lm, corr, p, t, None) for p, t, _ in PAIRS]
    assert np.abs(np.asarray(want) - np.asarray(bare)).max() > 1e-3


def test_marks_everywhere_equal_the_unrestricted_hook_bit_for_bit():
    """A mask of ones adds 1.0 * v: the same floats as "all"."""
    lm = make_tiny_model("llama")
    ids = torch.tensor([lm.tokenizer("The city of Paris is")["input_ids"]] * 2)
    ones = torch.ones(ids.shape, dtype=torch.bool)
    with torch.no_grad():
        with _corr(lm).applied(lm):
            a = lm.model(input_ids=ids).logits
        with _corr(lm, rule="last").applied(lm), position_marks(PositionMarks(ones, ones)):
            b = lm.model(input_ids=ids).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("family", ["llama", "falcon"])
def test_restricted_rules_leave_the_subject_keys_untouched(family):
    """The MEMIT key (the MLP output projection's input at the subject's last token) does not move under
    "from_subject_last" or "last" at any layer, and moves under "all" (the mechanism part 5 measures)."""
    lm = make_tiny_model(family)
    prompt, subject, sub_last = "The city of Paris is", "Paris", 4
    names = [lm.name_of("mlp_out", l) for l in range(lm.n_layers)]
    ids = lm.tokenizer(prompt)["input_ids"]

    def keys(corr):
        with torch.no_grad(), TraceDict(lm.model, names, retain_input=True, retain_output=False) as td:
            if corr is None:
                lm.model(input_ids=torch.tensor([ids]))
            else:
                marks = PositionMarks.from_starts([len(ids)], [sub_last + 1], [len(ids) - 1], len(ids))
                with corr.applied(lm), position_marks(marks):
                    lm.model(input_ids=torch.tensor([ids]))
            return torch.stack([td[n].input[0, sub_last] for n in names])

    base = keys(None)
    assert torch.equal(keys(_corr(lm, rule="from_subject_last")), base)
    assert torch.equal(keys(_corr(lm, rule="last")), base)
    assert (keys(_corr(lm)) - base).abs().max() > 1e-3


def test_a_restricted_correction_without_marks_is_an_error():
    lm = make_tiny_model("llama")
    ids = torch.tensor([lm.tokenizer("The city of Paris is")["input_ids"]])
    with _corr(lm, rule="last").applied(lm), pytest.raises(RuntimeError, match="apply_positions='last'"):
        lm.model(input_ids=ids)
    wrong = torch.ones((2, 3), dtype=torch.bool)
    with _corr(lm, rule="last").applied(lm), position_marks(PositionMarks(wrong, wrong)):
        with pytest.raises(RuntimeError, match="position marks of shape"):
            lm.model(input_ids=ids)


def test_evaluate_cases_marks_the_case_subject_and_neighbourhood_prompts():
    """evaluate_cases under a restricted correction equals scoring each pair by hand: the rewrite and paraphrase
    prompts after the case's subject, the neighbourhood prompts (another subject) from their last token."""
    lm = make_tiny_model("gemma3_text")
    view = LangView("Paris", "France", "Germany", "The city of {} is",
                    paraphrase_prompts=("The war . The city of Paris is",), neighborhood_prompts=("The capital of France is",))
    case = EditCase(1, {"en": view})
    corr = _corr(lm, rule="from_subject_last")
    df = evaluate_cases(lm, [case], ["en"], progress=False, cache=False, interventions=[corr])
    hand = {
        ("rewrite", "new"): _hand_nll(lm, corr, "The city of Paris is", "Germany", 5),
        ("rewrite", "true"): _hand_nll(lm, corr, "The city of Paris is", "France", 5),
        ("paraphrase", "new"): _hand_nll(lm, corr, "The war . The city of Paris is", "Germany", 8),
        ("neighborhood", "true"): _hand_nll(lm, corr, "The capital of France is", "France", 5),
    }
    got = {(k, w): float(df[df.kind == k][f"nll_{w}"].iloc[0]) for k, w in hand}
    for k in hand:
        assert got[k] == pytest.approx(hand[k], rel=1e-4, abs=1e-5), k
    # the same corrections at every position give other scores (the rule was used)
    df_all = evaluate_cases(lm, [case], ["en"], progress=False, cache=False, interventions=[corr.at("all")])
    assert not np.allclose(df.nll_new, df_all.nll_new)


def test_apply_positions_round_trip_and_validation(tmp_path):
    lm = make_tiny_model("llama")
    corr = _corr(lm, rule="from_subject_last")
    back = HeadCorrections.load(corr.save(tmp_path / "c.safetensors"), lm=lm)
    assert back.apply_positions == "from_subject_last" and torch.equal(back.vectors, corr.vectors)
    assert corr.at("last").vectors is corr.vectors and corr.at("last").apply_positions == "last"
    with pytest.raises(ValueError, match="apply_positions must be one of"):
        corr.at("first")
    with pytest.raises(ValueError, match="HeadCorrections.apply_positions"):
        _corr(lm, rule="subject")
    with pytest.raises(HparamsError, match="'apply_positions'"):
        MematHparams(apply_positions="everywhere")
    for bad in (0.0, -1.0, float("inf"), True, "0.75"):
        with pytest.raises(HparamsError, match="'clamp_norm_factor'"):
            MematHparams(clamp_norm_factor=bad)


# --------------------------------------------------------------------------------------------------
# the clamp
# --------------------------------------------------------------------------------------------------


def _cases():
    v = LangView("Toyota", "Japan", "Germany", "{} is located in")
    w = LangView("Paris", "France", "Italy", "The city of {} is")
    return [EditCase(1, {"en": v}), EditCase(2, {"en": w})]


CTX = {"en": ["The city . {}", "In the year of the war . {}"]}


def test_clamp_to_head_norms_closed_form():
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    n = clamp_to_head_norms(v, torch.tensor([2.0, 2.0, 1.0]), 0.5)  # limits 1, 1, 0.5
    assert n == 1
    torch.testing.assert_close(v, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))


def test_one_clamped_step_is_the_unclamped_step_rescaled():
    """After one Adam step the clamp only rescales: omega_clamped = omega * min(1, f * ||a|| / ||omega||) per head,
    with ||a|| the head's output norm that step measured (before any correction: omega starts at zero)."""
    lm = make_tiny_model("llama")
    base = dict(lr=5.0, n_steps=1, batch_size=2, lambda_omega=0.0)
    free, log0 = train_corrections(lm, _cases(), HEADS, MematHparams(**base), contexts=CTX)
    f = 0.05
    clamped, log1 = train_corrections(lm, _cases(), HEADS, MematHparams(**base, clamp_norm_factor=f), contexts=CTX)
    a = torch.tensor(log1["steps"][0]["head_norms"])
    assert torch.allclose(a, torch.tensor(log0["steps"][0]["head_norms"]))
    norm = free.vectors.norm(dim=-1)
    assert bool((norm > f * a).all()), "lr 5 overshoots every head: the test needs the clamp to act"
    want = free.vectors * (f * a / norm)[:, None]
    torch.testing.assert_close(clamped.vectors, want, rtol=1e-5, atol=1e-7)
    assert log1["steps"][0]["clamped"] == len(HEADS) and "clamped" not in log0["steps"][0]


def test_clamped_training_keeps_every_head_under_its_bound():
    lm = make_tiny_model("gemma3_text")
    f = 0.2
    corr, log = train_corrections(lm, _cases(), HEADS, MematHparams(lr=1.0, n_steps=6, batch_size=1, clamp_norm_factor=f),
                                  contexts=CTX)
    last = torch.tensor(log["steps"][-1]["head_norms"])
    assert bool((corr.vectors.norm(dim=-1) <= f * last * (1 + 1e-5)).all())
    assert sum(s["clamped"] for s in log["steps"]) > 0


def test_cache_key_keeps_earlier_entries_and_follows_the_clamp():
    lm = make_tiny_model("llama")
    hp = MematHparams(lr=0.05, n_steps=2)
    key = corrections_cache_key(lm, _cases(), HEADS, hp, None, ("en",), CTX)
    # apply_positions does not change the training; an unset clamp is the training before the field existed
    assert corrections_cache_key(lm, _cases(), HEADS, MematHparams(lr=0.05, n_steps=2, apply_positions="last"),
                                 None, ("en",), CTX) == key
    assert corrections_cache_key(lm, _cases(), HEADS, MematHparams(lr=0.05, n_steps=2, clamp_norm_factor=0.75),
                                 None, ("en",), CTX) != key
    corr, _ = train_corrections(lm, _cases(), HEADS, MematHparams(lr=0.05, n_steps=1, apply_positions="last"), contexts=CTX)
    assert corr.apply_positions == "last"


def test_key_shift_is_zero_for_restricted_rules_and_the_hand_value_for_all():
    from memat.memat import key_shift

    lm = make_tiny_model("llama")
    cases = _cases()
    corr = _corr(lm)
    layers = [1, 2, 3]
    for rule in ("from_subject_last", "last"):
        df = key_shift(lm, cases, corr.at(rule), layers, "en")
        assert len(df) == len(cases) * len(layers) and (df.rel_change == 0).all()
    df = key_shift(lm, cases, corr, layers, "en")
    # by hand for the second case: "<bos> The city of Paris is", the subject's last token at 4
    names = [lm.name_of("mlp_out", l) for l in layers]
    ids = torch.tensor([lm.tokenizer("The city of Paris is")["input_ids"]])
    got = []
    for on in (False, True):
        with torch.no_grad(), TraceDict(lm.model, names, retain_input=True, retain_output=False) as td:
            if on:
                with corr.applied(lm):
                    lm.model(input_ids=ids)
            else:
                lm.model(input_ids=ids)
        got.append(torch.stack([td[n].input[0, 4] for n in names]))
    want = ((got[1] - got[0]).norm(dim=-1) / got[0].norm(dim=-1)).tolist()
    np.testing.assert_allclose(df[df.case_id == 2].sort_values("layer").rel_change, want, rtol=1e-5)
    assert min(want) > 1e-3  # layer 0's correction reaches every later key


def test_random_heads():
    from memat.corrections import random_heads

    a = random_heads(18, 4, 16, seed=0)
    assert a == random_heads(18, 4, 16, seed=0) and a != random_heads(18, 4, 16, seed=1)
    assert len(set(a)) == 16 and all(0 <= l < 18 and 0 <= h < 4 for l, h in a) and a == sorted(a)
    assert sorted(random_heads(2, 3, 6)) == [(l, h) for l in range(2) for h in range(3)]
    # uniform: over many seeds every head is drawn about k / total of the time
    counts = np.zeros((3, 4))
    for seed in range(600):
        for l, h in random_heads(3, 4, 3, seed=seed):
            counts[l, h] += 1
    assert abs(counts / 600 - 0.25).max() < 0.07
    for bad in (0, 13, True, 2.0):
        with pytest.raises(ValueError, match="k must be an int"):
            random_heads(3, 4, bad)
