"""The many-language analysis (memat.multilang, notebook 08) on real subject strings, a tiny tokenizer and
small synthetic evaluation frames whose results are computed by hand here."""
from __future__ import annotations

import math
from statistics import NormalDist

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from memat.data.records import EditCase, LangView
from memat.multilang import (
    JAPANESE,
    NO_SCRIPT,
    language_profile,
    memat_gain_by_language,
    merge_languages,
    subject_overlap,
    subject_script,
    transfer_by_jaccard_group,
    transfer_by_language,
    transfer_regression,
)
from memat.plots_extra import language_gain_scatter
from memat.power import CANNOT_TELL, newcombe_interval
from tiny_models import make_tokenizer

Z = NormalDist().inv_cdf(0.975)  # 1.95996
K = Z + NormalDist().inv_cdf(0.8)  # 2.80158: detectable difference = K * se


# --------------------------------------------------------------------------- scripts
# subjects of BMIKE-53's counterfact_test_<lang>.json (the first records), and a few edge cases
@pytest.mark.parametrize("text, script", [
    ("Spike Hughes", "Latin"),
    ("Džon C. Brekinridž", "Latin"),  # sr, Latin with diacritics
    ("Sự Báo Thù của Shinobi", "Latin"),  # vi
    ("Спайк Хьюз", "Cyrillic"),  # ru
    ("Спайк Х'юз", "Cyrillic"),  # uk, apostrophe ignored
    ("Μαριάνα Πινέδα", "Greek"),
    ("Τζον C. Μπρέκινριτζ", "Greek"),  # one Latin letter among Greek ones: the majority
    ("سبايك هيوز", "Arabic"),
    ("اسپائک ہیوز", "Arabic"),  # ur
    ("ماریانا پینه\u200cدا", "Arabic"),  # fa, with a zero-width non-joiner
    ("ספייק יוג'ס", "Hebrew"),
    ("स्पाइक ह्यूजेस", "Devanagari"),
    ("স্পাইক হিউজ", "Bengali"),
    ("ஸ்பைக் ஹ்யூஸ்", "Tamil"),
    ("การแก้แค้นของชิโนบิ", "Thai"),
    ("სპაიკ ჰიუზი", "Georgian"),
    ("Սպայք Հյուզ", "Armenian"),
    ("斯派克·休斯", "Han"),  # zh
    ("《忍者复仇》", "Han"),
    ("東京", "Han"),  # kanji alone: the script cannot tell Japanese from Chinese
    ("スパイク・ヒューズ", JAPANESE),  # katakana and the prolonged sound mark
    ("ジョン・C・ブレッキンリッジ", JAPANESE),
    ("忍者の復讐", JAPANESE),  # Han + hiragana
    ("스파이크 휴즈", "Hangul"),
    ("1984", NO_SCRIPT),
    ("", NO_SCRIPT),
    ("... (12)", NO_SCRIPT),
    ("AБ", "Latin"),  # a tie: the script seen first
    ("БA", "Cyrillic"),
])
def test_subject_script(text, script):
    assert subject_script(text) == script


def test_subject_script_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a str"):
        subject_script(None)


# --------------------------------------------------------------------------- cases, merging, overlap
def _view(subject: str) -> LangView:
    return LangView(subject=subject, target_true="Paris", target_new="Rome", rewrite_prompt="{} is in")


def _case(cid, **subjects) -> EditCase:
    return EditCase(case_id=cid, langs={lang: _view(s) for lang, s in subjects.items()}, source=f"set{len(subjects)}")


def test_merge_languages_keeps_common_cases_with_all_languages():
    de = [_case(1, en="Paris", de="Paris"), _case(2, en="Rome", de="Rom"), _case(3, en="Lisbon", de="Lissabon")]
    ru = [_case(3, en="Lisbon", ru="Лиссабон"), _case(1, en="Paris", ru="Париж")]
    out = merge_languages([de, ru])
    assert [c.case_id for c in out] == [1, 3]  # the first set's order; case 2 lacks ru
    assert sorted(out[0].langs) == ["de", "en", "ru"]
    assert out[1]["ru"].subject == "Лиссабон" and out[1]["de"].subject == "Lissabon"
    bad = [_case(1, en="Paris (France)", ru="Париж")]
    with pytest.raises(ValueError, match="case_id=1: its 'en' view in set 1 .* differs from the one in set 0"):
        merge_languages([de, bad])
    with pytest.raises(ValueError, match="no 'en' view"):
        merge_languages([[_case(1, de="Paris")]])


def test_subject_overlap_on_a_tiny_tokenizer():
    tok = make_tokenizer(extra_words=["Париж", "Москва", "Рим"])
    cases = [
        _case(1, en="Paris", de="Paris", ru="Париж"),  # J 1 / 0
        _case(2, en="Michael Jordan", de="Michael Jordan Paris", ru="Michael Москва"),  # 2/3 / 1/3
        _case(3, en="Pablo Picasso", de="Pablo", ru="Pablo Picasso"),  # 1/2 / 1
    ]
    f = subject_overlap(cases, tok, langs=["en", "de", "ru"])
    assert list(f.columns) == ["case_id", "lang", "subject", "jaccard", "group", "script"]
    assert len(f) == 9
    j = f.set_index(["case_id", "lang"])
    expect = {(1, "en"): 1.0, (1, "de"): 1.0, (1, "ru"): 0.0, (2, "de"): 2 / 3, (2, "ru"): 1 / 3,
              (3, "de"): 0.5, (3, "ru"): 1.0}
    for key, value in expect.items():
        assert j.loc[key, "jaccard"] == pytest.approx(value)
    assert j.loc[(2, "de"), "group"] == "0.5<J<1" and j.loc[(3, "de"), "group"] == "J<=0.5"
    assert j.loc[(1, "ru"), "group"] == "J<=0.5" and j.loc[(3, "ru"), "group"] == "J=1"
    assert j.loc[(1, "ru"), "script"] == "Cyrillic" and j.loc[(2, "ru"), "script"] == "Latin"  # 7 Latin letters, 6 Cyrillic
    assert j.loc[(3, "ru"), "script"] == "Latin"
    # the reference is the edit language: J with German instead of English
    g = subject_overlap(cases, tok, langs=["ru"], ref="de").set_index("case_id")
    assert g.loc[3, "jaccard"] == pytest.approx(0.5) and g.loc[1, "jaccard"] == 0.0
    with pytest.raises(ValueError, match="case_id=1 has no 'fr' view"):
        subject_overlap(cases, tok, langs=["fr"])


# --------------------------------------------------------------------------- synthetic evaluation frames
# Four cases, the edit in English, evaluated in en, de, ru (one rewrite prompt per case and language).
#   ES (success)       unedited              edited               gain
#   de               [0, 1, 1, 0]         [1, 1, 1, 0]         [1, 0, 0, 0]
#   ru               [0, 0, 0, 1]         [1, 0, 1, 0]         [1, 0, 1, -1]
#   en               [0, 0, 0, 0]         [1, 1, 1, 1]         [1, 1, 1, 1]
#   EM (magnitude): unedited 0 everywhere; edited de [.2, .4, 0, -.2], ru [.1]*4, en [.5]*4
# Subjects: de J = [1, 1, 0.6, 0.2] (Latin); ru J = [1, 0, 0, 0], case 1 kept in Latin, the others Cyrillic.
ES_BASE = {"en": [0, 0, 0, 0], "de": [0, 1, 1, 0], "ru": [0, 0, 0, 1]}
ES_EDIT = {"en": [1, 1, 1, 1], "de": [1, 1, 1, 0], "ru": [1, 0, 1, 0]}
EM_EDIT = {"en": [0.5] * 4, "de": [0.2, 0.4, 0.0, -0.2], "ru": [0.1] * 4}
LANGS = ["en", "de", "ru"]


def _frame(success, magnitude, paraphrase=None):
    rows = []
    for lang in LANGS:
        for i in range(4):
            rows.append({"case_id": i + 1, "lang": lang, "kind": "rewrite", "prompt_idx": 0,
                         "success": bool(success[lang][i]), "magnitude": magnitude[lang][i],
                         "accuracy": bool(success[lang][i])})
            for k, s in enumerate((paraphrase or {}).get(lang, [[]] * 4)[i]):
                rows.append({"case_id": i + 1, "lang": lang, "kind": "paraphrase", "prompt_idx": k,
                             "success": bool(s), "magnitude": 0.1 * s, "accuracy": False})
    return pd.DataFrame(rows)


def _overlap():
    j = {"en": [1, 1, 1, 1], "de": [1, 1, 0.6, 0.2], "ru": [1, 0, 0, 0]}
    scripts = {"en": ["Latin"] * 4, "de": ["Latin"] * 4, "ru": ["Latin", "Cyrillic", "Cyrillic", "Cyrillic"]}
    groups = {1: "J=1", 0.6: "0.5<J<1", 0.2: "J<=0.5", 0: "J<=0.5"}
    return pd.DataFrame([{"case_id": i + 1, "lang": lang, "subject": "s", "jaccard": float(j[lang][i]),
                          "group": groups[j[lang][i]], "script": scripts[lang][i]} for lang in LANGS for i in range(4)])


@pytest.fixture
def frames():
    zero = {lang: [0.0] * 4 for lang in LANGS}
    return _frame(ES_EDIT, EM_EDIT), _frame(ES_BASE, zero), _overlap()


def _row(t, lang, metric):
    r = t[(t.lang == lang) & (t.metric == metric)]
    assert len(r) == 1
    return r.iloc[0]


def test_language_profile():
    p = language_profile(_overlap()).set_index("lang")
    assert p.loc["de", "share_j1"] == 0.5 and p.loc["de", "share_mid"] == 0.25 and p.loc["de", "share_low"] == 0.25
    assert p.loc["ru", "share_j1"] == 0.25 and p.loc["ru", "script"] == "Cyrillic" and p.loc["ru", "script_share"] == 0.75
    assert p.loc["de", "mean_jaccard"] == pytest.approx(0.7)
    assert p.loc["en", "is_edit_lang"] and not p.loc["ru", "is_edit_lang"]


def test_transfer_by_language_hand_computed(frames):
    edited, unedited, overlap = frames
    t = transfer_by_language(edited, unedited, overlap)
    assert list(dict.fromkeys(t.lang)) == LANGS and list(dict.fromkeys(t.metric)) == ["ES", "EM"]  # no paraphrases
    de = _row(t, "de", "ES")
    assert de["edited"] == 75 and de["unedited"] == 50 and de["mean"] == 25 and de["n"] == 4
    sd = 0.5  # gains [1, 0, 0, 0]
    assert de["ci"] == pytest.approx(100 * Z * sd / 2) and de["lo"] == pytest.approx(25 - 100 * Z * sd / 2)
    assert de["mde"] == pytest.approx(100 * K * sd / 2)
    assert de["share_j1"] == 0.5 and de["script"] == "Latin" and not de["is_edit_lang"]
    ru = _row(t, "ru", "ES")
    sd = math.sqrt((0.75 ** 2 + 0.25 ** 2 + 0.75 ** 2 + 1.25 ** 2) / 3)  # gains [1, 0, 1, -1]
    assert ru["mean"] == 25 and ru["ci"] == pytest.approx(100 * Z * sd / 2)
    assert ru["share_j1"] == 0.25 and ru["script"] == "Cyrillic"
    em = _row(t, "de", "EM")
    sd = math.sqrt((0.1 ** 2 + 0.3 ** 2 + 0.1 ** 2 + 0.3 ** 2) / 3)
    assert em["mean"] == pytest.approx(10) and em["ci"] == pytest.approx(100 * Z * sd / 2)
    flat = _row(t, "ru", "EM")  # every gain 0.1: no variance
    assert flat["mean"] == pytest.approx(10) and flat["ci"] == pytest.approx(0) and flat["mde"] == pytest.approx(0)
    en = _row(t, "en", "ES")
    assert en["is_edit_lang"] and en["share_j1"] == 1 and en["mean"] == 100


def test_transfer_by_language_paraphrases_are_averaged_per_case(frames):
    edited, unedited, overlap = frames
    para_e = {lang: [[1, 0]] * 4 for lang in LANGS}  # two paraphrases: per case 0.5 edited, 0 unedited
    para_u = {lang: [[0, 0]] * 4 for lang in LANGS}
    e = _frame(ES_EDIT, EM_EDIT, para_e)
    u = _frame(ES_BASE, {lang: [0.0] * 4 for lang in LANGS}, para_u)
    t = transfer_by_language(e, u, overlap)
    assert list(dict.fromkeys(t.metric)) == ["ES", "EM", "PS", "PM"]
    ps = _row(t, "ru", "PS")
    assert ps["mean"] == 50 and ps["ci"] == pytest.approx(0) and ps["n"] == 4
    assert _row(t, "ru", "PM")["mean"] == pytest.approx(5)


def test_transfer_by_language_errors(frames):
    edited, unedited, overlap = frames
    with pytest.raises(ValueError, match=r"metrics \['PS'\] need prompt kinds \['paraphrase'\]"):
        transfer_by_language(edited, unedited, overlap, metrics=["ES", "PS"])
    with pytest.raises(ValueError, match="unknown metrics"):
        transfer_by_language(edited, unedited, overlap, metrics=["XS"])
    with pytest.raises(ValueError, match=r"edited frame lacks columns \['lang'\]"):
        transfer_by_language(edited.drop(columns="lang"), unedited, overlap)
    with pytest.raises(ValueError, match=r"overlap \(subject_overlap\(\)\) lacks columns \['script'\]"):
        transfer_by_language(edited, unedited, overlap.drop(columns="script"))
    with pytest.raises(ValueError, match=r"overlap has no row for 4 \(case_id, lang\) pairs"):
        transfer_by_language(edited, unedited, overlap[overlap.lang != "ru"])
    with pytest.raises(ValueError, match="not paired"):
        transfer_by_language(edited, unedited[unedited.case_id != 4], overlap)
    with pytest.raises(ValueError, match="repeated"):
        transfer_by_language(edited, unedited, pd.concat([overlap, overlap.head(1)]))


def test_memat_gain_by_language(frames):
    edited, unedited, overlap = frames
    t = memat_gain_by_language(edited, unedited, overlap, metrics=["EM"])
    assert list(t.metric.unique()) == ["EM"] and {"memat", "memit"} <= set(t.columns)
    de = _row(t, "de", "EM")
    assert de["memat"] == pytest.approx(10) and de["memit"] == 0 and de["mean"] == pytest.approx(10)
    assert de["share_j1"] == 0.5
    assert t.set_index("lang")["is_edit_lang"].to_dict() == {"en": True, "de": False, "ru": False}


def test_transfer_by_jaccard_group_hand_computed(frames):
    edited, unedited, overlap = frames
    t = transfer_by_jaccard_group(edited, unedited, overlap, n_boot=300, seed=1).set_index("metric")
    es = t.loc["ES"]
    # J=1 units (case, lang) outside en: (1, de), (2, de), (1, ru): gains [1, 0, 1]
    # J<=0.5 units: (4, de), (2, ru), (3, ru), (4, ru): gains [0, 0, 1, -1]; (3, de) is 0.5<J<1, left out
    assert (es["n_j1"], es["n_low"], es["cases_j1"], es["cases_low"], es["langs"]) == (3, 4, 2, 3, 2)
    sd1, sd2 = math.sqrt(1 / 3), math.sqrt(2 / 3)
    assert es["gain_j1"] == pytest.approx(200 / 3) and es["ci_j1"] == pytest.approx(100 * Z * sd1 / math.sqrt(3))
    assert es["gain_low"] == pytest.approx(0) and es["ci_low"] == pytest.approx(100 * Z * sd2 / 2)
    se = math.sqrt(sd1 ** 2 / 3 + sd2 ** 2 / 4)
    assert es["diff"] == pytest.approx(200 / 3)
    assert es["lo"] == pytest.approx(200 / 3 - 100 * Z * se) and es["hi"] == pytest.approx(200 / 3 + 100 * Z * se)
    assert es["mde"] == pytest.approx(100 * K * se)  # 147.7 points > the 10-point reference effect
    assert es["at_this_n"] == CANNOT_TELL and es["effect"] == 10
    # edited rates compared as Fig. 1 does: 3/3 against 1/4, Newcombe's interval
    assert es["edited_j1"] == 100 and es["edited_low"] == 25 and es["unedited_j1"] == pytest.approx(100 / 3)
    lo, hi = newcombe_interval(1.0, 3, 0.25, 4)
    assert es["edited_diff"] == 75 and es["edited_lo"] == pytest.approx(100 * lo) and es["edited_hi"] == pytest.approx(100 * hi)
    assert es["boot_lo"] <= es["boot_hi"] and np.isfinite(es["boot_lo"])
    em = t.loc["EM"]
    assert em["gain_j1"] == pytest.approx(100 * 0.7 / 3) and em["gain_low"] == pytest.approx(100 * 0.1 / 4)
    assert em["diff"] == pytest.approx(100 * (0.7 / 3 - 0.1 / 4))
    again = transfer_by_jaccard_group(edited, unedited, overlap, n_boot=300, seed=1).set_index("metric")
    assert again.loc["ES", "boot_lo"] == es["boot_lo"]  # seeded
    # a large effect to detect: the same numbers now read "no 1000-point difference"
    assert transfer_by_jaccard_group(edited, unedited, overlap, effect=1000, n_boot=0).set_index("metric").loc[
        "ES", "at_this_n"] == "no 1000-point difference"
    none = transfer_by_jaccard_group(edited, unedited, overlap, n_boot=0)
    assert none["boot_lo"].isna().all()


def test_transfer_by_jaccard_group_excludes_only_the_edit_language(frames):
    edited, unedited, overlap = frames
    t = transfer_by_jaccard_group(edited, unedited, overlap, edit_lang=None, n_boot=0).set_index("metric")
    assert t.loc["ES", "n_j1"] == 7 and t.loc["ES", "langs"] == 3  # the four en units join J=1
    with pytest.raises(ValueError, match="no rewrite prompts in a language other than"):
        transfer_by_jaccard_group(edited[edited.lang == "en"], unedited[unedited.lang == "en"], overlap, n_boot=0)


# --------------------------------------------------------------------------- logistic regression
def _logistic_frames(seed=0, n_cases=300):
    """Per-prompt successes drawn from logit P = -1 + 2.5 J - 0.5 [Cyrillic] + 0.5 [Han]."""
    rng = np.random.default_rng(seed)
    rows, over = [], []
    for c in range(n_cases):
        for lang in ("de", "ru", "zh"):
            if lang == "de":
                script, j = "Latin", rng.choice([1.0, 0.8, 0.5, 0.2, 0.0])
            elif rng.random() < 0.3:  # a subject kept in Latin script
                script, j = "Latin", rng.choice([1.0, 0.6])
            else:
                script, j = ("Cyrillic" if lang == "ru" else "Han"), rng.uniform(0, 0.4)
            logit = -1 + 2.5 * j + {"Latin": 0.0, "Cyrillic": -0.5, "Han": 0.5}[script]
            over.append({"case_id": c, "lang": lang, "jaccard": j, "group": "-", "script": script})
            for k in range(2):
                s = rng.random() < 1 / (1 + math.exp(-logit))
                rows.append({"case_id": c, "lang": lang, "kind": "rewrite", "prompt_idx": k, "success": s,
                             "magnitude": 0.0, "accuracy": s})
    return pd.DataFrame(rows), pd.DataFrame(over)


def test_transfer_regression_recovers_a_known_jaccard_coefficient():
    edited, overlap = _logistic_frames(seed=3)
    res = transfer_regression(edited, overlap, n_boot=200, seed=0)
    coef = res["coefficients"].set_index("term")
    assert list(coef.index) == ["intercept", "jaccard", "script[Cyrillic]", "script[Han]"]  # Latin the reference
    assert res["reference_script"] == "Latin" and res["n_prompts"] == 1800 and res["n_cases"] == 300
    assert res["n_langs"] == 3 and res["n_boot_valid"] == 200 and res["pooled"] == []
    j = coef.loc["jaccard"]
    assert j["lo"] > 0 and abs(j["coef"] - 2.5) < 0.3 and j["odds_ratio"] == pytest.approx(math.exp(j["coef"]))
    for term, truth in (("intercept", -1.0), ("jaccard", 2.5), ("script[Cyrillic]", -0.5), ("script[Han]", 0.5)):
        assert coef.loc[term, "lo"] + 0.05 < truth < coef.loc[term, "hi"] - 0.05, term  # covered, not by a hair
    # the penalty is weak: the unpenalised fit is nearly the same
    free = transfer_regression(edited, overlap, n_boot=0, C=None)["coefficients"].set_index("term")
    assert free.loc["jaccard", "coef"] == pytest.approx(j["coef"], abs=0.02)


def test_transfer_regression_options_and_errors():
    edited, overlap = _logistic_frames(n_cases=40)
    again = transfer_regression(edited, overlap, n_boot=20, seed=3)
    same = transfer_regression(edited, overlap, n_boot=20, seed=3)
    pd.testing.assert_frame_equal(again["coefficients"], same["coefficients"])
    base = edited.assign(success=edited["success"] & (edited["prompt_idx"] == 0))
    res = transfer_regression(edited, overlap, unedited=base, n_boot=0, C=None)
    assert res["coefficients"]["term"].iloc[-1] == "unedited_success" and res["coefficients"]["lo"].isna().all()
    few = transfer_regression(edited, overlap, n_boot=0, min_script_cases=1000)
    assert few["pooled"] == ["Cyrillic", "Han"] and "script[Other]" in set(few["coefficients"].term)
    with pytest.raises(ValueError, match="reference script 'Greek'"):
        transfer_regression(edited, overlap, reference="Greek", n_boot=0)
    with pytest.raises(ValueError, match="every rewrite prompt fails"):
        transfer_regression(edited.assign(success=False), overlap, n_boot=0)
    with pytest.raises(ValueError, match="lacks columns"):
        transfer_regression(edited.drop(columns="prompt_idx"), overlap)
    with pytest.raises(ValueError, match="kind must be one of"):
        transfer_regression(edited, overlap, kind="rewrites")


# --------------------------------------------------------------------------- figures
def test_language_gain_scatter(frames):
    edited, unedited, overlap = frames
    t = transfer_by_language(edited, unedited, overlap)
    fig = language_gain_scatter(t)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2
    for ax, metric in zip(axes, ("ES", "EM")):
        assert sorted(x.get_text() for x in ax.texts) == sorted(LANGS)  # one label per language
        pts = np.vstack([c.get_offsets() for c in ax.collections if len(c.get_offsets()) and hasattr(c, "get_facecolors")
                         and c.get_offsets().ndim == 2 and type(c).__name__ == "PathCollection"])
        assert len(pts) == len(LANGS)
        sub = t[t.metric == metric]
        assert sorted(map(tuple, np.round(pts, 6))) == sorted(zip(np.round(sub.share_j1, 6), np.round(sub["mean"], 6)))
        assert ax.get_ylabel().startswith(metric)
    labels = [x.get_text() for x in fig.legends[0].get_texts()]
    assert "Latin" in labels and "Cyrillic" in labels and "edit language" in labels
    plt.close(fig)
    g = memat_gain_by_language(edited, unedited, overlap)
    fig = language_gain_scatter(g, ylabel="MEMAT \u2212 MEMIT (points)", title="MEMAT's gain")
    assert fig._suptitle.get_text() == "MEMAT's gain"
    plt.close(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        language_gain_scatter(t.drop(columns="script"))
    with pytest.raises(ValueError, match="none of the metrics"):
        language_gain_scatter(t, metrics=("NS",))


# --------------------------------------------------------------------------- notebook 08's steps
def test_resolve_langs():
    from memat.data import BMIKE53_LANGS
    from memat.multilang import resolve_langs

    assert resolve_langs(["de", "en", "de", "zh"], "en") == ["en", "de", "zh"]
    assert resolve_langs(["en", "zh"], "de") == ["de", "en", "zh"]
    every = resolve_langs("all", "en")
    assert every[0] == "en" and sorted(every) == sorted(["en", *BMIKE53_LANGS]) and len(every) == len(BMIKE53_LANGS) + 1
    with pytest.raises(ValueError, match=r"no BMIKE-53 file for \['xx'\]; available: .*\bzh\b"):
        resolve_langs(["de", "xx"])
    with pytest.raises(ValueError, match="'all'"):
        resolve_langs("every")
    with pytest.raises(ValueError, match="besides the edit language"):
        resolve_langs(["en"], "en")


def test_heads_for_reads_notebook_03s_map():
    from memat.heads import ProbeResult
    from memat.multilang import heads_for

    acc = np.zeros((3, 2))
    acc[2, 1], acc[0, 0], acc[1, 1] = 0.9, 0.8, 0.7
    pr = ProbeResult(accuracy=acc, train_accuracy=acc, layers=[0, 1, 2], n_train=10, n_val=4, seed=0)
    r03 = {"probes": {"en->en": {"refined": pr.to_dict(), "all": pr.to_dict()}}}
    assert heads_for(r03, "en", "refined", 2) == [(2, 1), (0, 0)]
    with pytest.raises(ValueError, match=r"no probe map 'de->de' \(maps: \['en->en'\]\)"):
        heads_for(r03, "de", "refined", 2)
    with pytest.raises(ValueError, match="HEAD_SET"):
        heads_for(r03, "en", "best", 2)


def test_many_language_verdicts(frames):
    from memat.multilang import many_language_verdicts

    edited, unedited, overlap = frames
    transfer = transfer_by_language(edited, unedited, overlap)
    pooled = transfer_by_jaccard_group(edited, unedited, overlap, n_boot=0)
    reg = {"coefficients": pd.DataFrame([{"term": "jaccard", "coef": 1.2, "lo": 0.1, "hi": 2.0}]), "n_prompts": 8}
    gain = memat_gain_by_language(edited, unedited, overlap)
    v = many_language_verdicts(transfer, pooled, reg, gain, "en", "tiny", 4)
    es = pooled.set_index("metric").loc["ES"]
    tok = v["tokenisation"]
    assert tok["diff"] == pytest.approx(es["diff"]) and tok["verdict"] in ("holds", "does not hold", CANNOT_TELL)
    expected = {"differs": "holds" if es["diff"] > 0 else "does not hold", CANNOT_TELL: CANNOT_TELL}.get(es["at_this_n"], "does not hold")
    assert tok["verdict"] == expected
    assert "+1.20 log-odds [+0.10, +2.00] over 8 prompts" in tok["statement"]
    mv = v["memat_unseen_languages"]
    # the edit language's own rows never count: only de and ru are cross-lingual here
    assert mv["magnitude_verdict"]["cross_lingual_tests"] == len(gain[(gain.lang != "en") & gain.metric.isin(["EM", "PM"])])
    assert mv["verdict"] in ("holds", "does not hold", "holds in part", CANNOT_TELL)
    # every interval containing 0 with a detectable difference above the reference effect: cannot tell
    wide = gain.assign(lo=-50.0, hi=50.0, mde=60.0, mean=0.0, ci=50.0)
    assert many_language_verdicts(transfer, pooled, reg, wide, "en", "tiny", 4)["memat_unseen_languages"]["verdict"] == CANNOT_TELL


def test_target_continuation_without_space_after_cjk():
    from memat.data.records import target_continuation

    assert target_continuation("问题：斯派克·休斯来自哪里？\n答案：", "伦敦") == "伦敦"
    assert target_continuation("質問：どこ？\n回答：", "ロンドン") == "ロンドン"
    assert target_continuation("東京の", "首都") == "首都"
    assert target_continuation("질문: 어디?\n답변:", "런던") == " 런던"
    assert target_continuation("Answer:", "London") == " London"
    assert target_continuation("", "London") == " London"


def test_load_bmike53_languages_on_the_real_files():
    import os
    from pathlib import Path

    from memat.multilang import load_bmike53_languages

    shared = Path(os.environ.get("MEMAT_DATA_SOURCE") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (shared / "bmike53_counterfact").is_dir():
        pytest.skip(f"{shared / 'bmike53_counterfact'} missing (set MEMAT_DATA_SOURCE)")
    cases, skips = load_bmike53_languages(["en", "he", "zh"], source_dir=shared)
    assert list(skips.lang) == ["he", "zh"] and set(skips.common) == {len(cases)}
    assert 0 < len(cases) <= skips.loaded.min()
    assert skips.set_index("lang").loc["he", "missing_language"] == 17  # SOURCE.md: 17 Hebrew records lack their part
    assert all(set(c.langs) == {"en", "he", "zh"} for c in cases)
    with pytest.raises(ValueError, match="besides English"):
        load_bmike53_languages(["en"], source_dir=shared)


def test_many_language_verdicts_use_the_case_bootstrap_and_count_chance(frames):
    """The pooled reading uses the wider of the normal and the case-bootstrap interval (a fact's languages are
    not independent); one significantly positive MEMAT cell of many is what chance gives: does not hold."""
    from memat.multilang import many_language_verdicts

    edited, unedited, overlap = frames
    transfer = transfer_by_language(edited, unedited, overlap)
    pooled = transfer_by_jaccard_group(edited, unedited, overlap, n_boot=0)
    reg = {"coefficients": pd.DataFrame([{"term": "jaccard", "coef": 1.2, "lo": 0.1, "hi": 2.0}]), "n_prompts": 8}
    gain = memat_gain_by_language(edited, unedited, overlap)
    sure = pooled.assign(diff=20.0, lo=10.0, hi=30.0, mde=8.0, at_this_n="differs")
    assert many_language_verdicts(transfer, sure, reg, gain, "en", "tiny", 4)["tokenisation"]["verdict"] == "holds"
    loose = sure.assign(boot_lo=-2.0, boot_hi=40.0)  # the bootstrap interval contains 0; mde 8 < 10
    tok = many_language_verdicts(transfer, loose, reg, gain, "en", "tiny", 4)["tokenisation"]
    assert tok["verdict"] == "does not hold" and "(case bootstrap [-2.0, +40.0])" in tok["statement"]
    assert many_language_verdicts(transfer, loose.assign(mde=15.0), reg, gain, "en", "tiny", 4)["tokenisation"]["verdict"] == CANNOT_TELL
    # eight more languages copied from the first cross-lingual ones: enough cells that one is what chance gives
    extra = pd.concat([gain[gain.lang != "en"].assign(lang=f"x{i}") for i in range(8)])
    one_up = pd.concat([gain, extra], ignore_index=True).assign(mean=0.0, ci=1.0, lo=-1.0, hi=1.0, mde=2.0)
    cross = (one_up.lang != "en") & one_up.metric.isin(["EM", "PM"])
    assert 3 <= cross.sum() <= 40  # chance_positives: 1
    first = one_up.index[cross][0]
    one_up.loc[first, ["mean", "lo", "hi"]] = [5.0, 4.0, 6.0]
    mv = many_language_verdicts(transfer, pooled, reg, one_up, "en", "tiny", 4)["memat_unseen_languages"]
    assert mv["chance_positives"] == 1 and mv["verdict"] == "does not hold"
    assert "By chance alone about 1 of" in mv["statement"]
