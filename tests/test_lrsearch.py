"""Learning-rate grid summaries (memat.lrsearch) against hand computations on small synthetic per-case frames
shaped like memat.evaluate.evaluate_cases' output, and the HM bootstrap against the delta method."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from memat.lrsearch import harmonic_mean, hm_bootstrap, summarize_grid

Z68 = 0.9944578832097535  # NormalDist().inv_cdf(0.84)
Z95 = 1.959963984540054


def _rows(case_id, lang, kind, successes):
    return [{"case_id": case_id, "lang": lang, "kind": kind, "prompt_idx": k, "success": bool(s),
             "magnitude": 0.1 * (1 if s else -1), "accuracy": False} for k, s in enumerate(successes)]


def _frame(spec):
    """spec: {lang: {case_id: (rewrite, [paraphrases], [neighbours])}} of 0/1 successes."""
    rows = []
    for lang, cases in spec.items():
        for cid, (es, ps, ns) in cases.items():
            rows += _rows(cid, lang, "rewrite", [es])
            rows += _rows(cid, lang, "paraphrase", ps)
            rows += _rows(cid, lang, "neighborhood", ns)
    return pd.DataFrame(rows)


SPEC = {
    "en": {1: (1, [1, 0], [1, 1]), 2: (1, [1, 1], [1, 0, 1, 1]), 3: (0, [0, 0], [0, 0])},
    "ca": {1: (1, [1, 1], [1, 1]), 2: (0, [0, 1], [1, 1, 1, 1]), 3: (1, [1, 1], [1, 0])},
}


def test_harmonic_mean_rules():
    assert harmonic_mean([50, 100, 100]) == pytest.approx(3 / (1 / 50 + 2 / 100))
    assert harmonic_mean([40.0]) == 40.0
    assert harmonic_mean([0, 80, 90]) == 0.0
    assert math.isnan(harmonic_mean([np.nan, 80, 90]))
    assert math.isnan(harmonic_mean([0, np.nan]))  # NaN wins over 0: undefined, not "failed"
    with pytest.raises(ValueError, match="no values"):
        harmonic_mean([])
    with pytest.raises(ValueError, match=">= 0"):
        harmonic_mean([-1, 2])


def test_summarize_grid_by_hand():
    df = _frame(SPEC)
    out = summarize_grid({0.5: df, 0.05: df.assign(success=~df.success)}, level=0.68, n_boot=200)
    assert list(out.columns) == ["lr", "lang", "metric", "mean", "ci", "n", "n_boot_dropped"]
    assert out.lr.tolist() == [0.05] * 8 + [0.5] * 8  # sorted by lr
    assert out.metric.tolist()[:8] == ["ES", "PS", "NS", "HM"] * 2 and out.lang.tolist()[:8] == ["ca"] * 4 + ["en"] * 4
    t = out[out.lr == 0.5].set_index(["lang", "metric"])
    # en: per-case ES 1, 1, 0; PS 0.5, 1, 0; NS 1, 0.75, 0
    per_case = {"ES": [1, 1, 0], "PS": [0.5, 1, 0], "NS": [1, 0.75, 0]}
    means = {}
    for m, v in per_case.items():
        mu = sum(v) / 3
        sd = math.sqrt(sum((x - mu) ** 2 for x in v) / 2)
        assert t.loc[("en", m), "mean"] == pytest.approx(100 * mu)
        assert t.loc[("en", m), "ci"] == pytest.approx(100 * Z68 * sd / math.sqrt(3))
        assert t.loc[("en", m), "n"] == 3
        means[m] = 100 * mu
    assert means == pytest.approx({"ES": 200 / 3, "PS": 50.0, "NS": 175 / 3})
    assert t.loc[("en", "HM"), "mean"] == pytest.approx(3 / (3 / 200 + 1 / 50 + 3 / 175))
    assert t.loc[("en", "HM"), "n"] == 3 and t.loc[("en", "HM"), "ci"] > 0
    # ca: ES 2/3, PS (1 + 0.5 + 1) / 3, NS (1 + 1 + 0.5) / 3
    assert t.loc[("ca", "HM"), "mean"] == pytest.approx(3 / (3 / 200 + 3 / 250 + 3 / 250))
    # flipped successes: ES of en becomes 1/3
    f = out[out.lr == 0.05].set_index(["lang", "metric"])
    assert f.loc[("en", "ES"), "mean"] == pytest.approx(100 / 3)


def test_intervals_68_narrower_than_95_and_seeded():
    df = _frame(SPEC)
    a = summarize_grid({0.1: df}, level=0.68, n_boot=300, seed=1)
    b = summarize_grid({0.1: df}, level=0.95, n_boot=300, seed=1)
    assert (a["mean"].to_numpy() == b["mean"].to_numpy()).all()
    assert (a.ci < b.ci).all()
    np.testing.assert_allclose(b.ci / a.ci, Z95 / Z68)  # same replicates, only z changes
    again = summarize_grid({0.1: df}, level=0.68, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(a, again)
    other = summarize_grid({0.1: df}, level=0.68, n_boot=300, seed=2)
    hm = lambda t: float(t[t.metric == "HM"].ci.iloc[0])
    assert hm(other) != hm(a)


def test_hm_bootstrap_matches_the_delta_method():
    """ES varies (Bernoulli 0.7 over 2,000 cases), PS = NS = 100 for all: HM = f(ES) = 3 / (1/ES + 2/100), so
    the bootstrap std of HM is |f'(ES)| * std(ES) to first order."""
    rng = np.random.default_rng(12345)  # not the bootstrap's seed: the data and the resampling must not share a stream
    n = 2000
    es = rng.random(n) < 0.7
    df = _frame({"en": {i: (int(es[i]), [1], [1, 1]) for i in range(n)}})
    point, reps = hm_bootstrap(df, n_boot=2000, seed=0)
    E = 100 * es.mean()
    assert point == pytest.approx(3 / (1 / E + 2 / 100))
    se_es = 100 * es.std() / math.sqrt(n)  # the bootstrap std of a mean
    fprime = 3 / (1 / E + 2 / 100) ** 2 / E**2
    assert reps.std(ddof=1) == pytest.approx(fprime * se_es, rel=0.1)
    assert reps.mean() == pytest.approx(point, rel=0.01)
    # and summarize_grid's HM half-width is z times that std
    out = summarize_grid({1.0: df}, level=0.68, n_boot=2000, seed=0).set_index("metric")
    assert out.loc["HM", "ci"] == pytest.approx(Z68 * reps.std(ddof=1))
    assert out.loc["HM", "ci"] < out.loc["ES", "ci"]  # f' < 1: HM moves less than ES


def test_hm_bootstrap_resamples_cases_jointly():
    """ES and PS equal case by case: resampled together, they move together, so the bootstrap std of HM is
    the delta-method value with both partial derivatives added (independent resampling would give the
    square root of the sum of squares instead, ~sqrt(2) times smaller)."""
    rng = np.random.default_rng(54321)
    n = 1500
    s = rng.random(n) < 0.6
    df = _frame({"en": {i: (int(s[i]), [int(s[i])], [1]) for i in range(n)}})
    point, reps = hm_bootstrap(df, n_boot=1500, seed=3)
    p = 100 * s.mean()
    # HM = 3 / (2/p + 1/100); dHM/dp (both ES and PS equal to p) = 3 * (2/p^2) / (2/p + 1/100)^2
    deriv = 3 * (2 / p**2) / (2 / p + 1 / 100) ** 2
    se = 100 * s.std() / math.sqrt(n)
    assert point == pytest.approx(3 / (2 / p + 1 / 100))
    assert reps.std(ddof=1) == pytest.approx(deriv * se, rel=0.1)


def test_constant_metrics_have_no_interval_and_zero_gives_zero():
    df = _frame({"en": {i: (1, [1, 1], [1]) for i in range(5)}})
    t = summarize_grid({0.2: df}, n_boot=50).set_index("metric")
    assert t.loc["HM", "mean"] == pytest.approx(100.0) and t.loc["HM", "ci"] == 0.0
    zero = _frame({"en": {i: (0, [1], [1]) for i in range(5)}})
    t = summarize_grid({0.2: zero}, n_boot=50).set_index("metric")
    assert t.loc["HM", "mean"] == 0.0 and t.loc["HM", "ci"] == 0.0


def test_missing_kind_gives_nan_hm_and_dropped_replicates():
    df = _frame({"en": {1: (1, [], [1]), 2: (0, [], [1])}})  # no paraphrases at all
    t = summarize_grid({0.2: df}, n_boot=50).set_index("metric")
    assert "PS" not in t.index and math.isnan(t.loc["HM", "mean"]) and math.isnan(t.loc["HM", "ci"])
    # paraphrases in one case of four: replicates that miss it are dropped and counted
    df = _frame({"en": {1: (1, [1], [1]), 2: (0, [], [1]), 3: (1, [], [0]), 4: (1, [], [1])}})
    _, reps = hm_bootstrap(df, n_boot=400, seed=0)
    frac = np.isnan(reps).mean()
    assert frac == pytest.approx((3 / 4) ** 4, abs=0.06)  # P(case 1 never drawn in 4 draws)
    t = summarize_grid({0.2: df}, n_boot=400, seed=0).set_index("metric")
    assert t.loc["HM", "n_boot_dropped"] == int(np.isnan(reps).sum()) and t.loc["HM", "ci"] > 0


def test_errors():
    df = _frame(SPEC)
    with pytest.raises(ValueError, match="per_case_frames is empty"):
        summarize_grid({})
    with pytest.raises(ValueError, match=r"lacks columns \['success'\]"):
        summarize_grid({0.1: df.drop(columns="success")})
    with pytest.raises(ValueError, match="finite and > 0"):
        summarize_grid({0.0: df})
    with pytest.raises(ValueError, match="level must be in"):
        summarize_grid({0.1: df}, level=1.5)
    with pytest.raises(ValueError, match=r"unknown metrics \['HM'\]"):
        summarize_grid({0.1: df}, metrics=("ES", "HM"))
    with pytest.raises(ValueError, match="n_boot"):
        hm_bootstrap(df, n_boot=1)
    extra = summarize_grid({0.1: df}, metrics=("ES", "EM"), n_boot=20)
    assert extra.metric.tolist()[:3] == ["ES", "EM", "HM"]


# --------------------------------------------------------------------------------------------------
# with_learning_rate
# --------------------------------------------------------------------------------------------------


def test_with_learning_rate_memit_and_pmet_presets():
    from memat.hparams import load_hparams
    from memat.lrsearch import with_learning_rate
    from memat.pmet import PmetHparams

    hp = load_hparams("gemma3-270m")
    out = with_learning_rate(hp, 20)
    assert out.v_lr == 20.0 and isinstance(out.v_lr, float) and hp.v_lr == 5.0
    assert {k: v for k, v in out.to_dict().items() if k != "v_lr"} == {k: v for k, v in hp.to_dict().items() if k != "v_lr"}
    assert with_learning_rate(hp, 5).to_dict() == hp.to_dict()  # the preset's rate: the same edit (cache key)

    pm = load_hparams("gemma3-270m", cls=PmetHparams, kind="pmet")
    ratio = pm.attn_v_lr / pm.v_lr
    for lr in (0.01, 0.05, 0.2):
        o = with_learning_rate(pm, lr)
        assert isinstance(o, PmetHparams) and o.v_lr == lr
        assert o.attn_v_lr == pytest.approx(ratio * lr)
    assert with_learning_rate(pm, pm.v_lr).attn_v_lr == pytest.approx(pm.attn_v_lr)
    import dataclasses

    same = dataclasses.replace(pm, attn_v_lr=None)  # one rate for both deltas: stays one rate
    assert with_learning_rate(same, 0.3).attn_v_lr is None and with_learning_rate(same, 0.3).attn_lr == 0.3
    off = dataclasses.replace(pm, attn_v_lr=0.0)  # no attention delta: stays off
    assert with_learning_rate(off, 0.3).attn_v_lr == 0.0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "x", None, True])
def test_with_learning_rate_rejects_bad_rates(bad):
    from memat.hparams import load_hparams
    from memat.lrsearch import with_learning_rate

    with pytest.raises(ValueError, match="learning rate"):
        with_learning_rate(load_hparams("gemma3-270m"), bad)


def test_with_learning_rate_needs_hparams():
    from memat.lrsearch import with_learning_rate

    with pytest.raises(TypeError, match="v_lr"):
        with_learning_rate({"v_lr": 1.0}, 2.0)
