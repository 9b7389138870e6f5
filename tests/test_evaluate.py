"""Evaluation metrics (memat.evaluate) against NLLs computed by hand from ``model(...).logits`` on single,
unpadded sequences."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memat.data.records import EditCase, LangView
from memat.evaluate import evaluate_cases, heldout_nll, mean_ci, score_continuations, summarize
from tiny_models import make_tiny_model


@torch.no_grad()
def hand_score(lm, prompt, target):
    """(token-averaged NLL of target after prompt, greedy decoding reproduces target) from full-vocabulary logits."""
    tok = lm.tokenizer
    p = tok(prompt).input_ids
    t = tok(target, add_special_tokens=False).input_ids
    logits = lm.model(input_ids=torch.tensor([p + t])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    nll = -sum(float(lp[len(p) - 1 + j, t[j]]) for j in range(len(t))) / len(t)
    greedy = all(int(logits[len(p) - 1 + j].argmax()) == t[j] for j in range(len(t)))
    return nll, greedy


@torch.no_grad()
def greedy_words(lm, prompt, n):
    """The model's own greedy continuation (n tokens) as a string, decoded by hand."""
    ids = lm.tokenizer(prompt).input_ids
    out = []
    for _ in range(n):
        nxt = int(lm.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        ids.append(nxt)
        out.append(nxt)
    words = lm.tokenizer.convert_ids_to_tokens(out)
    assert all(not w.startswith("<") for w in words), words  # no special token: the string round-trips
    return " ".join(words)


@pytest.fixture(scope="module", params=["llama", "gemma2", "gpt2"])
def lm(request):
    # gemma2 has a final logit soft-cap, which score_continuations must apply like the model does
    return make_tiny_model(request.param)


def test_score_continuations_by_hand(lm):
    pairs = [
        ("The capital of France is", "Paris"),
        ("Michael Jordan plays", "basketball in the city of Chicago"),  # multi-token, one <unk>
        ("La capital de França és", "París"),
        ("Pablo Picasso was born in", "Spain"),
        ("The capital of France is", " Pablo Picasso "),  # surrounding spaces are stripped
    ]
    greedy_prompts = ["The capital of France is", "He was born in"]
    pairs += [(p, greedy_words(lm, p, n)) for p, n in zip(greedy_prompts, (1, 3))]
    nll, acc = score_continuations(lm, pairs, batch_size=3)  # several batches, padded
    ref = [hand_score(lm, p, t) for p, t in pairs]
    np.testing.assert_allclose(nll, [r[0] for r in ref], rtol=1e-5, atol=1e-6)
    assert acc.tolist() == [r[1] for r in ref]
    assert acc[-2:].all() and not acc[:4].any()  # both outcomes occur
    # batch composition does not matter
    nll1, acc1 = score_continuations(lm, pairs, batch_size=1)
    np.testing.assert_allclose(nll1, nll, rtol=1e-5, atol=1e-6)
    assert (acc1 == acc).all()


def test_score_continuations_empty_target_is_an_error(lm):
    with pytest.raises(ValueError, match="tokenises to nothing"):
        score_continuations(lm, [("The capital of France is", "   ")])


def test_heldout_nll_by_hand(lm):
    texts = [
        "The capital of France is Paris and the capital of Spain is Madrid",
        "La capital de Catalunya és Barcelona",
        "Paris",  # <bos> Paris: one predicted token
        "",  # only <bos>: nothing to predict, skipped
        "Michael Jordan plays basketball in the city of Chicago in America for many years and days",
    ]
    for max_len in (128, 6):
        total, count = 0.0, 0
        for t in texts:
            ids = lm.tokenizer(t).input_ids[:max_len]
            if len(ids) < 2:
                continue
            with torch.no_grad():
                lp = torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
            total += -sum(float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1))
            count += len(ids) - 1
        got = heldout_nll(lm, texts, max_len=max_len, batch_size=2)
        assert got == pytest.approx(total / count, rel=1e-5)


# --------------------------------------------------------------------------------------------------
# evaluate_cases and summarize
# --------------------------------------------------------------------------------------------------


def _cases():
    c1 = EditCase(1, {
        "en": LangView("Danielle Darrieux", "French", "English", "The mother tongue of {} is",
                       paraphrase_prompts=("Danielle Darrieux speaks", "The language of Danielle Darrieux is"),
                       neighborhood_prompts=("The mother tongue of Pablo Picasso is",)),
        "ca": LangView("Danielle Darrieux", "francès", "anglès", "La llengua de {} és l",
                       paraphrase_prompts=("Danielle Darrieux parla",),
                       neighborhood_prompts=("La llengua de Pablo Picasso és el",),
                       rewrite_prompt_true="La llengua de {} és el",  # article variant for the true target
                       neighborhood_prompts_new=("La llengua de Pablo Picasso és l",)),
    })
    c2 = EditCase("two", {
        "en": LangView("Lionel Messi", "football", "basketball", "{} plays",
                       paraphrase_prompts=("The sport of Lionel Messi is",),
                       neighborhood_prompts=("Michael Jordan plays", "Miles Davis plays"),
                       neighborhood_targets=("basketball", "jazz")),  # their own answers, not target_true
        "ca": LangView("Lionel Messi", "futbol", "música", "{} juga a",
                       paraphrase_prompts=("L esport de Lionel Messi és el",),
                       neighborhood_prompts=("Michael Jordan juga a",),
                       paraphrase_prompts_true=("L esport de Lionel Messi és la",)),
    })
    c3 = EditCase(3, {
        "en": LangView("Toyota", "Japan", "Italy", "{} was founded in",
                       paraphrase_prompts=("The headquarters of Toyota is in",),
                       neighborhood_prompts=("Sony was founded in",)),
        "ca": LangView("Toyota", "Japó", "Itàlia", "{} va ser fundada a",
                       paraphrase_prompts=("Toyota és de",),
                       neighborhood_prompts=("Sony va ser fundada a",)),
    })
    return [c1, c2, c3]


def _hand_rows(lm, cases, langs):
    rows = []
    for c in cases:
        for lang in langs:
            v = c[lang]
            kinds = {
                "rewrite": [(v.rewrite_prompt.format(v.subject), (v.rewrite_prompt_true or v.rewrite_prompt).format(v.subject),
                             v.target_true)],
                "paraphrase": [(p, pt, v.target_true) for p, pt in
                               zip(v.paraphrase_prompts, v.paraphrase_prompts_true or v.paraphrase_prompts)],
                "neighborhood": [(pn, p, ans) for pn, p, ans in
                                 zip(v.neighborhood_prompts_new or v.neighborhood_prompts, v.neighborhood_prompts,
                                     v.neighborhood_targets or [v.target_true] * len(v.neighborhood_prompts))],
            }
            for kind, items in kinds.items():
                for k, (p_new, p_true, true_target) in enumerate(items):
                    nll_new, acc_new = hand_score(lm, p_new, v.target_new)
                    nll_true, acc_true = hand_score(lm, p_true, true_target)
                    rows.append(dict(case_id=c.case_id, lang=lang, kind=kind, prompt_idx=k, nll_new=nll_new,
                                     nll_true=nll_true, acc_new=acc_new, acc_true=acc_true))
    return rows


def test_max_neighborhood_keeps_the_first_prompts_with_the_same_scores(lm):
    cases, langs = _cases(), ["en", "ca"]
    full = evaluate_cases(lm, cases, langs, batch_size=4, progress=False)
    cut = evaluate_cases(lm, cases, langs, batch_size=4, progress=False, max_neighborhood=1)
    nb = full.kind == "neighborhood"
    # case "two" has two English neighbourhood prompts: only its first is kept; the other kinds are untouched
    expected = full[~nb | (full.prompt_idx < 1)]
    assert len(cut) == len(expected) == len(full) - 1
    key = ["case_id", "lang", "kind", "prompt_idx"]
    a = expected.astype({"case_id": str}).sort_values(key).reset_index(drop=True)
    b = cut.astype({"case_id": str}).sort_values(key).reset_index(drop=True)
    assert (a[key] == b[key]).all().all()
    np.testing.assert_allclose(b.nll_new, a.nll_new, rtol=1e-5)
    np.testing.assert_allclose(b.nll_true, a.nll_true, rtol=1e-5)
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="max_neighborhood"):
            evaluate_cases(lm, cases, langs, progress=False, max_neighborhood=bad)
    with pytest.raises(ValueError, match="unknown prompt kinds"):
        evaluate_cases(lm, cases, langs, progress=False, kinds=("rewrite", "neighbourhood"))


def test_evaluate_cases_and_summarize_by_hand(lm):
    cases, langs = _cases(), ["en", "ca"]
    df = evaluate_cases(lm, cases, langs, batch_size=4, progress=False)
    ref = _hand_rows(lm, cases, langs)
    assert len(df) == len(ref) == 6 + 7 + 7  # rewrite, paraphrase, neighbourhood rows (counted in _cases)
    key = lambda r: (str(r["case_id"]), r["lang"], r["kind"], r["prompt_idx"])  # noqa: E731
    got = {key(r): r for r in df.to_dict("records")}
    assert set(got) == {key(r) for r in ref}
    for r in ref:
        g = got[key(r)]
        assert g["nll_new"] == pytest.approx(r["nll_new"], rel=1e-5, abs=1e-6)
        assert g["nll_true"] == pytest.approx(r["nll_true"], rel=1e-5, abs=1e-6)
        p_new, p_true = math.exp(-r["nll_new"]), math.exp(-r["nll_true"])
        assert g["p_new"] == pytest.approx(p_new, rel=1e-5) and g["p_true"] == pytest.approx(p_true, rel=1e-5)
        nb = r["kind"] == "neighborhood"
        assert bool(g["success"]) == ((p_true > p_new) if nb else (p_new > p_true))
        assert g["magnitude"] == pytest.approx((p_true - p_new) if nb else (p_new - p_true), rel=1e-4, abs=1e-9)
        assert bool(g["accuracy"]) == (r["acc_true"] if nb else r["acc_new"])

    # the neighbourhood answer of case "two" (en, prompt 1) is "jazz", not the case's target_true
    two = got[("two", "en", "neighborhood", 1)]
    assert two["nll_true"] == pytest.approx(hand_score(lm, "Miles Davis plays", "jazz")[0], rel=1e-5)
    assert two["nll_true"] != pytest.approx(hand_score(lm, "Miles Davis plays", "football")[0], rel=1e-3)
    # the Catalan true target is scored with its own article variant
    one = got[("1", "ca", "rewrite", 0)]
    assert one["nll_true"] == pytest.approx(hand_score(lm, "La llengua de Danielle Darrieux és el", "francès")[0], rel=1e-5)

    summ = summarize(df)
    assert set(summ.metric) == {"ES", "EM", "EA", "PS", "PM", "PA", "NS", "NM", "NA"}
    for lang in langs:
        for kind, names in (("rewrite", ("ES", "EM", "EA")), ("paraphrase", ("PS", "PM", "PA")),
                            ("neighborhood", ("NS", "NM", "NA"))):
            rows = [got[key(r)] for r in ref if r["lang"] == lang and r["kind"] == kind]
            for col, name in zip(("success", "magnitude", "accuracy"), names):
                per_case = {}
                for r in rows:
                    per_case.setdefault(str(r["case_id"]), []).append(float(r[col]))
                vals = [sum(v) / len(v) for v in per_case.values()]
                n = len(vals)
                mean = sum(vals) / n
                std = math.sqrt(sum((x - mean) ** 2 for x in vals) / (n - 1))
                line = summ[(summ.lang == lang) & (summ.metric == name)]
                assert len(line) == 1
                line = line.iloc[0]
                assert line["n"] == n == 3
                assert line["mean"] == pytest.approx(100 * mean, rel=1e-9, abs=1e-9)
                assert line["ci"] == pytest.approx(100 * 1.96 * std / math.sqrt(n), rel=1e-4, abs=1e-9)
    # the paraphrase magnitude averages two prompts for case 1 (en) before averaging cases
    em = summ[(summ.lang == "en") & (summ.metric == "PM")].iloc[0]
    assert em["ci"] > 0


def test_mean_ci():
    x = [0.2, 0.5, 0.9, 0.4]
    m, ci = mean_ci(x)
    assert m == pytest.approx(0.5)
    assert ci == pytest.approx(1.959964 * np.std(x, ddof=1) / 2, rel=1e-6)
    _, ci68 = mean_ci(x, level=0.68)
    assert ci68 == pytest.approx(0.994458 * np.std(x, ddof=1) / 2, rel=1e-5)
    assert mean_ci([0.3])[0] == 0.3 and math.isnan(mean_ci([0.3])[1])
    assert all(math.isnan(v) for v in mean_ci([]))


def test_paired_difference_by_hand():
    import pandas as pd

    from memat.evaluate import paired_difference

    def frame(vals):
        rows = []
        for cid, (s, m) in vals.items():
            for idx in range(2):  # two prompts per case: the per-case mean is taken first
                rows.append(dict(case_id=cid, lang="en", kind="rewrite", prompt_idx=idx, success=s[idx], magnitude=m[idx], accuracy=0.0))
        return pd.DataFrame(rows)

    base = frame({1: ((0, 0), (0.1, 0.3)), 2: ((1, 0), (0.0, 0.0)), 3: ((0, 0), (0.2, 0.2))})
    new = frame({1: ((1, 1), (0.3, 0.5)), 2: ((1, 1), (0.1, 0.1)), 3: ((0, 1), (0.2, 0.4))})
    d = paired_difference(new, base).set_index("metric")
    diffs_m = np.array([0.2, 0.1, 0.1])  # per-case magnitude gains
    assert d.loc["EM", "mean"] == pytest.approx(100 * diffs_m.mean())
    assert d.loc["EM", "ci"] == pytest.approx(100 * 1.959964 * diffs_m.std(ddof=1) / np.sqrt(3), rel=1e-5)
    assert d.loc["ES", "mean"] == pytest.approx(100 * np.mean([1.0, 0.5, 0.5]))
    assert d.loc["EA", "mean"] == 0 and (d.n == 3).all()
    with pytest.raises(ValueError, match="one frame only"):
        paired_difference(new, base[base.case_id != 2])


def test_wide_table_layout():
    from memat.experiments import wide_table

    rows = [dict(method="A", lang="ca", metric="ES", mean=50.0, ci=10.0), dict(method="A", lang="en", metric="ES", mean=40.0, ci=float("nan")),
            dict(method="B", lang="ca", metric="ES", mean=60.04, ci=1.26)]
    t = wide_table(rows, ["method"], metrics=["ES"], langs=["ca", "en"])
    assert list(t.index) == ["A", "B"] and list(t.columns) == [("ca", "ES"), ("en", "ES")]
    assert t.loc["A", ("ca", "ES")] == "50.0 ± 10.0" and t.loc["A", ("en", "ES")] == "40.0"
    assert t.loc["B", ("ca", "ES")] == "60.0 ± 1.3"


def _per_case_rows(spec):
    """Rows of evaluate_cases for one language: ``spec`` maps case -> {kind: [(success, magnitude, accuracy), ...]}
    (one tuple per prompt)."""
    import pandas as pd

    rows = []
    for cid, kinds in spec.items():
        for kind, prompts in kinds.items():
            for idx, (s, m, a) in enumerate(prompts):
                rows.append(dict(case_id=cid, lang="en", kind=kind, prompt_idx=idx, success=s, magnitude=m, accuracy=a))
    return pd.DataFrame(rows)


def test_summarize_gives_wilson_bounds_for_rates_and_normal_ones_for_magnitudes():
    from memat.power import wilson_interval

    # 10 cases, every rewrite a success (ES 100%, the normal interval of zero width) and never reproduced
    # exactly (EA 0%); two paraphrases per case, half of them successes in cases 0-3 (fractional rates)
    spec = {c: {"rewrite": [(1, 0.1 * c, 0)], "paraphrase": [(int(c < 4), 0.05, 1), (0, -0.05, int(c < 7))]}
            for c in range(10)}
    t = summarize(_per_case_rows(spec)).set_index("metric")
    assert {"mean", "ci", "n", "lo", "hi"} <= set(t.columns)
    es = t.loc["ES"]
    assert es["mean"] == 100.0 and es["ci"] == 0.0
    assert es["lo"] == pytest.approx(72.2468, abs=1e-3) and es["hi"] == 100.0  # Wilson, 10 of 10
    ea = t.loc["EA"]
    assert ea["lo"] == 0.0 and ea["hi"] == pytest.approx(27.7532, abs=1e-3)  # Wilson, 0 of 10
    ps = t.loc["PS"]  # per-case rates 0.5 (x4) and 0: mean 0.2, Wilson with 2 "successes" of 10
    assert ps["mean"] == pytest.approx(20.0)
    assert (ps["lo"], ps["hi"]) == tuple(pytest.approx(100 * b) for b in wilson_interval(2.0, 10))
    pa = t.loc["PA"]  # per-case rates 1 (x7) and 0.5: 8.5 of 10
    assert (pa["lo"], pa["hi"]) == tuple(pytest.approx(100 * b) for b in wilson_interval(8.5, 10))
    for name in ("EM", "PM"):  # magnitudes: the normal interval, mean -+ ci
        r = t.loc[name]
        assert r["lo"] == pytest.approx(r["mean"] - r["ci"]) and r["hi"] == pytest.approx(r["mean"] + r["ci"])
    assert t.loc["EM", "ci"] > 0
    for name in ("ES", "EA", "PS", "PA"):
        assert 0.0 <= t.loc[name, "lo"] < t.loc[name, "hi"] <= 100.0
    # scale and level apply to the bounds like to the mean
    t1 = summarize(_per_case_rows(spec), scale=1.0, level=0.68).set_index("metric")
    assert t1.loc["ES", "lo"] == pytest.approx(wilson_interval(10, 10, level=0.68)[0])


def test_paired_difference_detectable_difference_by_hand():
    import pandas as pd

    from memat.evaluate import paired_difference

    base = _per_case_rows({c: {"rewrite": [(0, 0.1, 0), (0, 0.3, 0)]} for c in range(3)})
    gains = [0.2, 0.1, 0.1]  # per-case magnitude gains (means over the two prompts)
    new = base.copy()
    new["magnitude"] = new["magnitude"] + [g for g in gains for _ in range(2)]
    new["success"] = [1, 1, 1, 0, 0, 0]  # per case: 1, 0.5, 0
    d = paired_difference(new, base).set_index("metric")
    sd = np.std(gains, ddof=1)
    assert d.loc["EM", "mde"] == pytest.approx(100 * (1.959964 + 0.841621) * sd / math.sqrt(3), rel=1e-5)  # 9.339
    assert d.loc["EM", "lo"] == pytest.approx(d.loc["EM", "mean"] - d.loc["EM", "ci"])
    assert d.loc["EM", "hi"] == pytest.approx(d.loc["EM", "mean"] + d.loc["EM", "ci"])
    assert d.loc["ES", "mde"] == pytest.approx(100 * 2.801585 * np.std([1, 0.5, 0], ddof=1) / math.sqrt(3), rel=1e-5)
    # the detectable difference is 2.80 / 1.96 of the 95% half-width, whatever the interval's level
    assert d.loc["EM", "mde"] == pytest.approx(d.loc["EM", "ci"] * 2.801585 / 1.959964, rel=1e-5)
    d68 = paired_difference(new, base, level=0.68).set_index("metric")
    assert d68.loc["EM", "mde"] == pytest.approx(d.loc["EM", "mde"]) and d68.loc["EM", "ci"] < d.loc["EM", "ci"]
    d90 = paired_difference(new, base, power=0.9, scale=1.0).set_index("metric")
    assert d90.loc["EM", "mde"] == pytest.approx((1.959964 + 1.281552) * sd / math.sqrt(3), rel=1e-5)
    assert math.isnan(paired_difference(new[new.case_id == 0], base[base.case_id == 0]).set_index("metric").loc["EM", "mde"])
    assert isinstance(d, pd.DataFrame) and {"mean", "ci", "n", "lo", "hi", "mde"} <= set(d.columns)
