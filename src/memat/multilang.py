"""Cross-lingual transfer across many languages: does it follow subject tokenisation, and does MEMAT carry
to languages it never saw? The analysis layer of notebook 08 (BMIKE-53's CounterFact, English + 50 languages).

The paper's Limitations say its hypotheses stem from English and Catalan only, two languages with the same
alphabet. Two of its claims are tested here on many languages at once:

* Fig. 1's finding: an edit transfers to another language when the subject is tokenised the same way
  (subject-token Jaccard J = 1) and hardly when it is not (J <= 0.5). :func:`transfer_by_language` gives the
  transfer gain per language (edited minus unedited, paired over cases), :func:`transfer_by_jaccard_group`
  pools the languages and compares J = 1 with J <= 0.5, and :func:`transfer_regression` separates the
  subject's Jaccard from its script in a logistic regression of per-prompt success.
* "MEMAT benefits languages not included in the training data": :func:`memat_gain_by_language` gives the paired
  MEMAT - MEMIT difference per language, corrections trained in the edit language only.

Inputs are the long frames of :func:`memat.evaluate.evaluate_cases` (one row per case, language, prompt type and
prompt; columns ``case_id, lang, kind, success, magnitude, accuracy``) of two models scored on the same cases and
prompts, and the per-case, per-language subject table of :func:`subject_overlap` (``case_id, lang, jaccard,
group, script``). BMIKE-53 pairs English with one language per file: :func:`merge_languages` joins the
per-language loads into cases that carry every language, so that all languages are compared on the same facts.

Rates and magnitudes are in percent (``scale = 100``, as :func:`memat.evaluate.summarize`); intervals are at
``level`` (95% by default), detectable differences at 80% power and a 5% level (:mod:`memat.power`). Every
result is a DataFrame or a plain dict that :func:`memat.experiments.to_jsonable` writes as it is.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd

from .data.loaders import subject_jaccard
from .data.records import EditCase
from .evaluate import METRIC_NAMES, mean_ci, paired_difference, summarize
from .experiments import jaccard_group
from .power import CANNOT_TELL, chance_positives, count_reading, two_group_comparison
from .report import ALPHA, POWER, at_this_n, jaccard_comparison, reference_effect

__all__ = [
    "NO_SCRIPT",
    "JAPANESE",
    "subject_script",
    "merge_languages",
    "subject_overlap",
    "language_profile",
    "transfer_by_language",
    "memat_gain_by_language",
    "transfer_by_jaccard_group",
    "transfer_regression",
    "resolve_langs",
    "load_bmike53_languages",
    "heads_for",
    "many_language_verdicts",
]

#: The script of a string without letters (digits, punctuation, spaces only), as Unicode's Script property
#: calls the characters shared by every script.
NO_SCRIPT = "Common"
#: Han together with kana, or kana alone (ISO 15924 ``Jpan``, "Japanese").
JAPANESE = "Japanese"

# Unicode character-name prefixes -> script (longest prefix first where one extends another). A letter whose
# name starts with none of them is given the first word of its name, title-cased ("SYRIAC LETTER ALAPH" ->
# "Syriac"); a letter mapped to None belongs to no script (MODIFIER LETTER APOSTROPHE) and is not counted.
_SCRIPT_PREFIXES: tuple[tuple[str, str | None], ...] = (
    ("FULLWIDTH LATIN", "Latin"),
    ("HALFWIDTH KATAKANA", "Kana"),
    ("HALFWIDTH HANGUL", "Hangul"),
    ("CJK UNIFIED IDEOGRAPH", "Han"),
    ("CJK COMPATIBILITY IDEOGRAPH", "Han"),
    ("IDEOGRAPHIC", "Han"),  # 々 IDEOGRAPHIC ITERATION MARK, 〆 IDEOGRAPHIC CLOSING MARK
    ("KATAKANA", "Kana"),  # also ー KATAKANA-HIRAGANA PROLONGED SOUND MARK
    ("HIRAGANA", "Kana"),
    ("HANGUL", "Hangul"),
    ("MODIFIER LETTER", None),
    ("LATIN", "Latin"),
    ("CYRILLIC", "Cyrillic"),
    ("GREEK", "Greek"),
    ("ARABIC", "Arabic"),
    ("HEBREW", "Hebrew"),
    ("DEVANAGARI", "Devanagari"),
    ("BENGALI", "Bengali"),
    ("GURMUKHI", "Gurmukhi"),
    ("GUJARATI", "Gujarati"),
    ("TAMIL", "Tamil"),
    ("TELUGU", "Telugu"),
    ("KANNADA", "Kannada"),
    ("MALAYALAM", "Malayalam"),
    ("SINHALA", "Sinhala"),
    ("THAI", "Thai"),
    ("LAO", "Lao"),
    ("GEORGIAN", "Georgian"),
    ("ARMENIAN", "Armenian"),
)

#: metric name (ES, EM, ...) -> (prompt kind, per-prompt column of :func:`memat.evaluate.evaluate_cases`)
_METRIC: dict[str, tuple[str, str]] = {
    name: (kind, col) for kind, names in METRIC_NAMES.items()
    for name, col in zip(names, ("success", "magnitude", "accuracy"))
}
EVAL_COLUMNS = ("case_id", "lang", "kind", "success", "magnitude", "accuracy")
OVERLAP_COLUMNS = ("case_id", "lang", "jaccard", "group", "script")
GROUP_J1, GROUP_LOW = "J=1", "J<=0.5"


# --------------------------------------------------------------------------- scripts and subject overlap
def _letter_script(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    if not name:
        return None
    for prefix, script in _SCRIPT_PREFIXES:
        if name.startswith(prefix):
            return script
    return name.split()[0].title()


def subject_script(text: str) -> str:
    """The Unicode script of the letters of ``text`` (a subject): "Latin", "Cyrillic", "Greek", "Arabic",
    "Hebrew", "Devanagari", "Bengali", "Tamil", "Thai", "Georgian", "Armenian", "Han", "Hangul",
    :data:`JAPANESE`, ...

    Why: a subject can keep its English spelling in a language written otherwise (BMIKE-53's Thai and Hindi
    files have "Spike Hughes", "Mariana Pineda"), so the script is a property of the subject string, not of
    the language; the regression of :func:`transfer_regression` needs it per case.

    Each letter (Unicode category L*) is given the script its character name starts with (``unicodedata.name``:
    "CYRILLIC SMALL LETTER A" -> Cyrillic; CJK ideographs -> Han; hiragana, katakana and the prolonged sound
    mark -> kana). Digits, punctuation, spaces, combining marks and modifier letters are ignored. Kana marks
    Japanese: a string with any kana letter counts its Han and kana letters together as :data:`JAPANESE` (a
    Japanese subject written in kanji only is "Han", as a Chinese one: the script cannot tell them apart). The
    script with most letters wins; a tie goes to the script whose first letter comes first in ``text``.
    A string without letters ("1984", "", "...") is :data:`NO_SCRIPT` ("Common")."""
    if not isinstance(text, str):
        raise TypeError(f"subject_script: text must be a str, got {type(text).__name__}")
    counts: Counter[str] = Counter()  # insertion order = order of first appearance, for ties
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            script = _letter_script(ch)
            if script is not None:
                counts[script] += 1
    if not counts:
        return NO_SCRIPT
    if "Kana" in counts:
        merged: Counter[str] = Counter()
        for script, k in counts.items():
            merged[JAPANESE if script in ("Kana", "Han") else script] += k
        counts = merged
    best = max(counts.values())
    return next(s for s, k in counts.items() if k == best)


def merge_languages(case_sets: Sequence[Sequence[EditCase]], ref: str = "en") -> list[EditCase]:
    """The cases present in every one of ``case_sets``, each carrying the languages of all of them.

    BMIKE-53 pairs the same English records with one other language per file (``load_dataset(
    "bmike53_counterfact", langs=["en", X])`` for each X); notebook 08 compares languages on the same facts,
    so it keeps the cases that every file kept (a record without X's part, or whose subject is absent from
    X's question, is skipped by the loader of that file and so dropped here). The order is that of the first
    set; ``source`` joins the sets' sources with "+"; ``meta["portability"]`` merges theirs. A case whose
    ``ref`` view differs between two sets (two files that disagree on the English fact) is an error naming it,
    as is a case of a set without ``ref``."""
    sets = [list(s) for s in case_sets]
    if not sets:
        raise ValueError("merge_languages: no case sets given")
    by_id: list[dict] = []
    for i, s in enumerate(sets):
        ids: dict = {}
        for c in s:
            if ref not in c.langs:
                raise ValueError(f"merge_languages: case_id={c.case_id} of set {i} has no {ref!r} view "
                                 f"(has: {sorted(c.langs)})")
            if c.case_id in ids:
                raise ValueError(f"merge_languages: case_id={c.case_id} appears twice in set {i}")
            ids[c.case_id] = c
        by_id.append(ids)
    out = []
    for c in sets[0]:
        parts = [ids.get(c.case_id) for ids in by_id]
        if any(p is None for p in parts):
            continue
        langs: dict = {}
        portability: dict = {}
        for i, p in enumerate(parts):
            if p[ref] != c[ref]:
                raise ValueError(f"merge_languages: case_id={c.case_id}: its {ref!r} view in set {i} "
                                 f"({p.source or 'no source'}) differs from the one in set 0 ({c.source or 'no source'}); "
                                 "the sets do not hold the same facts")
            for lang, view in p.langs.items():
                if lang in langs and langs[lang] != view:
                    raise ValueError(f"merge_languages: case_id={c.case_id}: language {lang!r} differs between sets")
                langs[lang] = view
            portability.update(p.meta.get("portability", {}))
        meta = {k: v for k, v in c.meta.items() if k != "portability"}
        if portability:
            meta["portability"] = portability
        source = "+".join(dict.fromkeys(p.source for p in parts if p.source))
        out.append(EditCase(case_id=c.case_id, langs=langs, relation_id=c.relation_id, source=source, meta=meta))
    return out


def subject_overlap(cases: Sequence[EditCase], tokenizer, langs: Sequence[str] | None = None,
                    ref: str = "en") -> pd.DataFrame:
    """Per case and language: the subject's token-set Jaccard with its ``ref`` subject (the edit language,
    English by default), its J group and its script. A tidy frame ``case_id, lang, subject, jaccard, group,
    script``, one row per case and language of ``langs`` (default: every language of each case), ``ref``
    included (J = 1 there by definition).

    The Jaccard is the package's (:func:`memat.data.subject_jaccard`: token-id sets of ``" " + subject``
    without special tokens, with ``tokenizer``), the groups those of Fig. 1 (:func:`memat.experiments.jaccard_group`:
    J=1, 0.5<J<1, J<=0.5), the script :func:`subject_script`. A case without ``ref`` or without a language of
    ``langs`` is an error naming it (merge per-language loads with :func:`merge_languages` first)."""
    rows = []
    for c in cases:
        want = list(c.langs) if langs is None else list(langs)
        lacking = [lang for lang in [ref, *want] if lang not in c.langs]
        if lacking:
            raise ValueError(f"subject_overlap: case_id={c.case_id} has no {lacking[0]!r} view (has: {sorted(c.langs)}); "
                             "merge the per-language loads with merge_languages()")
        for lang in want:
            j = subject_jaccard(c, ref, lang, tokenizer)
            rows.append({"case_id": c.case_id, "lang": lang, "subject": c[lang].subject, "jaccard": j,
                         "group": jaccard_group(j), "script": subject_script(c[lang].subject)})
    return pd.DataFrame(rows, columns=["case_id", "lang", "subject", "jaccard", "group", "script"])


# --------------------------------------------------------------------------- input checks
def _require(df: pd.DataFrame, cols: Sequence[str], fn: str, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{fn}: {what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{fn}: {what} lacks columns {missing} (has {list(df.columns)})")


def _check_overlap(overlap: pd.DataFrame, fn: str) -> pd.DataFrame:
    _require(overlap, OVERLAP_COLUMNS, fn, "overlap (subject_overlap())")
    dup = overlap.duplicated(["case_id", "lang"])
    if dup.any():
        ex = overlap.loc[dup, ["case_id", "lang"]].head(3).values.tolist()
        raise ValueError(f"{fn}: overlap has {int(dup.sum())} repeated (case_id, lang) rows, e.g. {ex}")
    return overlap


def _covered(frame: pd.DataFrame, overlap: pd.DataFrame, fn: str, what: str) -> pd.DataFrame:
    """The rows of ``overlap`` for the (case_id, lang) pairs of ``frame``; pairs ``overlap`` lacks are an error."""
    pairs = frame[["case_id", "lang"]].drop_duplicates()
    got = pairs.merge(overlap, on=["case_id", "lang"], how="left", indicator=True)
    lacking = got[got["_merge"] == "left_only"]
    if len(lacking):
        ex = lacking[["case_id", "lang"]].head(3).values.tolist()
        raise ValueError(f"{fn}: overlap has no row for {len(lacking)} (case_id, lang) pairs of {what}, e.g. {ex} "
                         "(same cases and languages, and the same case_id type?)")
    return got.drop(columns="_merge")


def _metrics(metrics: Sequence[str] | None, frames: Sequence[pd.DataFrame], fn: str) -> list[str]:
    """``metrics`` checked against the prompt kinds of ``frames``; ``None``: ES, EM, and PS, PM when every frame
    has paraphrase prompts."""
    kinds = set.intersection(*(set(f["kind"]) for f in frames))
    if metrics is None:
        return ["ES", "EM"] + (["PS", "PM"] if "paraphrase" in kinds else [])
    if isinstance(metrics, str):
        raise TypeError(f"{fn}: metrics must be a sequence of names such as ('ES', 'EM'), not the string {metrics!r}")
    unknown = [m for m in metrics if m not in _METRIC]
    if unknown:
        raise ValueError(f"{fn}: unknown metrics {unknown}; choose among {list(_METRIC)}")
    absent = [m for m in metrics if _METRIC[m][0] not in kinds]
    if absent:
        raise ValueError(f"{fn}: metrics {absent} need prompt kinds {sorted({_METRIC[m][0] for m in absent})}, "
                         f"which the frames do not all have (kinds in every frame: {sorted(kinds)})")
    return list(dict.fromkeys(metrics))


def _modal(values: pd.Series) -> tuple[str, float]:
    """The most frequent value (ties: alphabetical) and its share."""
    counts = values.value_counts()
    best = counts.max()
    return sorted(counts.index[counts == best])[0], float(best / counts.sum())


# --------------------------------------------------------------------------- per language
def language_profile(overlap: pd.DataFrame, edit_lang: str | None = "en") -> pd.DataFrame:
    """Per language of ``overlap`` (:func:`subject_overlap`, restricted to the cases evaluated): ``lang,
    n_cases, share_j1, share_mid, share_low`` (shares of the J groups J=1, 0.5<J<1, J<=0.5), ``mean_jaccard``,
    ``script`` (the most frequent subject script; ties alphabetical), ``script_share`` (its share), and
    ``is_edit_lang`` (``lang == edit_lang``). Languages in first-seen order. The x axis of Figs. (a) and (d):
    a language whose subjects keep the edit language's tokens should transfer the edit best, if Fig. 1's
    finding holds beyond Catalan."""
    _check_overlap(overlap, "language_profile")
    rows = []
    for lang, g in overlap.groupby("lang", sort=False):
        script, share = _modal(g["script"])
        rows.append({"lang": lang, "n_cases": int(g["case_id"].nunique()),
                     "share_j1": float((g["group"] == GROUP_J1).mean()),
                     "share_mid": float((g["group"] == "0.5<J<1").mean()),
                     "share_low": float((g["group"] == GROUP_LOW).mean()),
                     "mean_jaccard": float(g["jaccard"].mean()), "script": script, "script_share": share,
                     "is_edit_lang": lang == edit_lang})
    return pd.DataFrame(rows)


def _gain_by_language(treated: pd.DataFrame, control: pd.DataFrame, overlap: pd.DataFrame,
                      names: tuple[str, str], metrics: Sequence[str] | None, edit_lang: str | None,
                      level: float, fn: str) -> pd.DataFrame:
    _require(treated, EVAL_COLUMNS, fn, f"the {names[0]} frame")
    _require(control, EVAL_COLUMNS, fn, f"the {names[1]} frame")
    _check_overlap(overlap, fn)
    metrics = _metrics(metrics, (treated, control), fn)
    kinds = sorted({_METRIC[m][0] for m in metrics})
    a, b = treated[treated["kind"].isin(kinds)], control[control["kind"].isin(kinds)]
    try:
        diff = paired_difference(a, b, level=level, by=("lang",), alpha=ALPHA, power=POWER)
    except ValueError as e:
        raise ValueError(f"{fn}: the {names[0]} and {names[1]} frames are not paired: {e}") from None
    means = {}
    for name, f in zip(names, (a, b)):
        means[name] = summarize(f, level=level, by=("lang",)).set_index(["lang", "metric"])["mean"]
    diff = diff[diff["metric"].isin(metrics)].copy()
    for name in names:
        diff[name] = [means[name].get((lang, m), np.nan) for lang, m in zip(diff["lang"], diff["metric"])]
    profile = language_profile(_covered(a, overlap, fn, f"the {names[0]} frame"), edit_lang)
    out = diff.merge(profile, on="lang", how="left")
    order = {lang: i for i, lang in enumerate(dict.fromkeys(a["lang"]))}
    out["_l"], out["_m"] = out["lang"].map(order), out["metric"].map({m: i for i, m in enumerate(metrics)})
    cols = ["lang", "metric", *names, "mean", "ci", "lo", "hi", "n", "mde", "n_cases", "share_j1", "share_mid",
            "share_low", "mean_jaccard", "script", "script_share", "is_edit_lang"]
    return out.sort_values(["_l", "_m"])[cols].reset_index(drop=True)


def transfer_by_language(edited: pd.DataFrame, unedited: pd.DataFrame, overlap: pd.DataFrame,
                         metrics: Sequence[str] | None = None, edit_lang: str | None = "en",
                         level: float = 0.95) -> pd.DataFrame:
    """(a) The transfer gain of an edit per language: edited minus unedited ES and EM (and PS, PM when the
    frames have paraphrases; ``metrics`` to choose), paired over cases, beside the language's share of J = 1
    subjects and its script.

    Why: the paper's Fig. 1 finding (transfer is weak when subject tokenisation differs) rests on English and
    Catalan only; plotted against ``share_j1`` over many languages and scripts (:func:`memat.plots_extra.
    language_gain_scatter`), the gain should rise with the share if the finding generalises.

    ``edited``/``unedited``: :func:`memat.evaluate.evaluate_cases` of the edited and the unedited model on the
    same cases and languages; ``overlap``: :func:`subject_overlap` with the edit language as ``ref``. One row
    per language and metric (languages in the frames' order): ``lang, metric, edited, unedited`` (the two
    models' means), ``mean, ci, lo, hi, n, mde`` (the paired per-case difference of
    :func:`memat.evaluate.paired_difference`: its mean, normal half-width and bounds at ``level``, number of
    cases and detectable difference at 80% power), then :func:`language_profile`'s columns (``share_j1``,
    ``script``, ...; computed on the evaluated cases). The edit language's row (``is_edit_lang``) is efficacy,
    not transfer; it is kept as the reference point. Percent throughout."""
    return _gain_by_language(edited, unedited, overlap, ("edited", "unedited"), metrics, edit_lang, level,
                             "transfer_by_language")


def memat_gain_by_language(memat: pd.DataFrame, memit: pd.DataFrame, overlap: pd.DataFrame,
                           metrics: Sequence[str] | None = None, edit_lang: str | None = "en",
                           level: float = 0.95) -> pd.DataFrame:
    """(d) MEMAT's gain per language: the paired per-case difference MEMAT - MEMIT of ES and EM (and PS, PM
    with paraphrases) per language, with its interval and detectable difference, beside the language's share
    of J = 1 subjects and its script (the columns of :func:`transfer_by_language`, with ``memat`` and
    ``memit`` for the two methods' means).

    Why: the paper claims MEMAT "benefits languages not included in the training data"; with corrections
    trained in ``edit_lang`` only, every other row is such a language (``is_edit_lang`` marks the trained one).
    ``memat``/``memit``: :func:`memat.evaluate.evaluate_cases` of the corrected and the uncorrected edit on
    the same cases and languages. A verdict over the cross-lingual rows: :func:`memat.experiments.
    crosslingual_gain_verdict` with ``gains=table.assign(setting=edit_lang)`` and ``edit_lang={edit_lang: edit_lang}``."""
    return _gain_by_language(memat, memit, overlap, ("memat", "memit"), metrics, edit_lang, level,
                             "memat_gain_by_language")


# --------------------------------------------------------------------------- pooled over languages
def _units(frame: pd.DataFrame, kind: str, col: str) -> pd.Series:
    """Per (case_id, lang): the mean of ``col`` over the prompts of ``kind``, as floats."""
    f = frame[frame["kind"] == kind]
    return f.groupby(["case_id", "lang"])[col].mean().astype(float)


def _paired_units(edited: pd.DataFrame, unedited: pd.DataFrame, kind: str, col: str, fn: str) -> pd.DataFrame:
    a, b = _units(edited, kind, col), _units(unedited, kind, col)
    only = a.index.symmetric_difference(b.index)
    if len(only):
        raise ValueError(f"{fn}: {len(only)} (case_id, lang) pairs of {kind} prompts are in one frame only, "
                         f"e.g. {list(only[:3])}")
    return pd.DataFrame({"edited": a, "unedited": b.loc[a.index]}).reset_index()


def _cluster_boot(units: pd.DataFrame, n_boot: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of ``mean(gain | J=1) - mean(gain | J<=0.5)`` with cases resampled (all the
    languages of a drawn case come with it: a case's languages are not independent)."""
    if n_boot <= 0:
        return float("nan"), float("nan")
    ids, idx = np.unique(units["case_id"].astype(str), return_inverse=True)
    n = len(ids)
    sums, counts = {}, {}
    for g in (GROUP_J1, GROUP_LOW):
        m = (units["group"] == g).to_numpy()
        sums[g] = np.bincount(idx[m], weights=units["gain"].to_numpy()[m], minlength=n)
        counts[g] = np.bincount(idx[m], minlength=n).astype(float)
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (w @ sums[GROUP_J1]) / (w @ counts[GROUP_J1]) - (w @ sums[GROUP_LOW]) / (w @ counts[GROUP_LOW])
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan"), float("nan")
    q = (1 - level) / 2
    return float(np.quantile(d, q)), float(np.quantile(d, 1 - q))


def transfer_by_jaccard_group(edited: pd.DataFrame, unedited: pd.DataFrame, overlap: pd.DataFrame,
                              metrics: Sequence[str] | None = None, edit_lang: str | None = "en",
                              level: float = 0.95, effect: float | None = None, n_boot: int = 200,
                              seed: int = 0) -> pd.DataFrame:
    """(b) Fig. 1's finding on many languages at once: the transfer gain (edited minus unedited, per case and
    language) of J = 1 subjects against J <= 0.5 subjects, pooled over every language but ``edit_lang``.

    The unit is a (case, language) pair, its value the mean over the case's prompts of the metric's kind
    (ES/EM: the rewrite prompt; PS/PM: the paraphrases), its gain the edited minus the unedited value on the
    same prompts (paired). Per group: ``n`` units, ``cases`` distinct cases, the edited and unedited means
    and the mean gain with its normal half-width ``ci``. The difference J=1 - J<=0.5 of the mean gains:
    ``diff``, ``lo``/``hi`` (normal, standard error ``sqrt(se1^2 + se2^2)``, :func:`memat.power.
    two_group_comparison`: the groups hold different units) and ``mde``, the smallest difference detectable at
    this n (80% power, 5% level). A gain is a difference of rates, not a proportion, so the Wilson/Newcombe
    intervals do not apply to it; ``edited_diff``, ``edited_lo``, ``edited_hi``, ``edited_mde`` compare the
    edited rates themselves as Fig. 1 and paper.md do (:func:`memat.report.jaccard_comparison`: Newcombe's
    interval for ES/PS, the normal one for EM/PM). One case appears in several languages, possibly in both
    groups, so units are not quite independent: ``boot_lo``/``boot_hi`` is a percentile interval of ``diff``
    with cases resampled (``n_boot`` draws, ``seed``; 0 skips it); where it is much wider than ``lo``..``hi``
    the normal interval is too optimistic.

    ``at_this_n``: the package's reading of the difference (:func:`memat.report.at_this_n`): "differs" (the
    interval excludes 0; the sign of ``diff`` says which way), "cannot tell at this n" (it contains 0 and
    ``mde`` exceeds ``effect``), "no variance", or "no <effect>-point difference". ``effect`` defaults to the
    reference effect of paper.md (the abstract's 10-point magnitude gain; the paper gives no effect size for
    Fig. 1). One row per metric, percent."""
    fn = "transfer_by_jaccard_group"
    _require(edited, EVAL_COLUMNS, fn, "the edited frame")
    _require(unedited, EVAL_COLUMNS, fn, "the unedited frame")
    _check_overlap(overlap, fn)
    metrics = _metrics(metrics, (edited, unedited), fn)
    effect = reference_effect()[0] if effect is None else float(effect)
    rows = []
    for metric in metrics:
        kind, col = _METRIC[metric]
        u = _paired_units(edited, unedited, kind, col, fn)
        if edit_lang is not None:
            u = u[u["lang"] != edit_lang]
        if u.empty:
            raise ValueError(f"{fn}: no {kind} prompts in a language other than the edit language {edit_lang!r}")
        u = u.merge(_covered(u, overlap, fn, "the frames")[["case_id", "lang", "group"]], on=["case_id", "lang"])
        u["gain"] = u["edited"] - u["unedited"]
        u = u[u["group"].isin([GROUP_J1, GROUP_LOW])]
        row: dict = {"metric": metric, "langs": int(u["lang"].nunique())}
        stats = {}
        for g, tag in ((GROUP_J1, "j1"), (GROUP_LOW, "low")):
            s = u[u["group"] == g]
            gain, ci = mean_ci(s["gain"], level)
            ed, ed_ci = mean_ci(s["edited"], level)
            base, _ = mean_ci(s["unedited"], level)
            stats[tag] = {"mean": 100 * ed, "ci": 100 * ed_ci, "n": len(s)}
            row.update({f"n_{tag}": len(s), f"cases_{tag}": int(s["case_id"].nunique()), f"edited_{tag}": 100 * ed,
                        f"unedited_{tag}": 100 * base, f"gain_{tag}": 100 * gain, f"ci_{tag}": 100 * ci})
        c = two_group_comparison(row["gain_j1"], row["ci_j1"], row["gain_low"], row["ci_low"], level, ALPHA, POWER)
        e = jaccard_comparison(metric, stats["j1"], stats["low"])
        boot_lo, boot_hi = _cluster_boot(u, n_boot, seed, level)
        row.update({"diff": c.diff, "lo": c.lo, "hi": c.hi, "mde": c.mde, "boot_lo": 100 * boot_lo,
                    "boot_hi": 100 * boot_hi, "at_this_n": at_this_n(c, effect), "effect": effect,
                    "edited_diff": e.diff, "edited_lo": e.lo, "edited_hi": e.hi, "edited_mde": e.mde})
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- logistic regression
def _fit_logistic(X: np.ndarray, y: np.ndarray, C: float | None) -> np.ndarray:
    """``[intercept, coefficients...]`` of an L2-penalised (``C``; ``None``: unpenalised) logistic regression."""
    import warnings

    from scipy.linalg import LinAlgWarning
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # Newton-Cholesky: exact for few features and many rows, ~10x faster than lbfgs here; a singular Hessian
    # (a script absent from a bootstrap draw, without penalty) makes scikit-learn warn and fall back to lbfgs
    model = LogisticRegression(C=np.inf if C is None else C, solver="newton-cholesky", max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", LinAlgWarning)
        model.fit(X, y)
    return np.concatenate([model.intercept_, model.coef_[0]])


def transfer_regression(edited: pd.DataFrame, overlap: pd.DataFrame, unedited: pd.DataFrame | None = None,
                        kind: str = "rewrite", edit_lang: str | None = "en", reference: str = "Latin",
                        min_script_cases: int = 5, C: float | None = 100.0, n_boot: int = 200, seed: int = 0,
                        level: float = 0.95) -> dict:
    """(c) A logistic regression of per-prompt transfer success on the subject's Jaccard and script:
    ``logit P(success) = b0 + b_J * jaccard + sum_s b_s * [script == s] (+ b_u * unedited success)``, over
    the prompts of ``kind`` of the edited model in every language but ``edit_lang``.

    Why: across languages the Jaccard and the script go together (a Cyrillic subject seldom shares tokens with
    its English one), so the per-language scatter cannot tell whether transfer follows tokenisation or the
    alphabet. Here ``b_J`` is the log-odds change from no shared subject token to identical tokens at a given
    script, identified by subjects whose tokens differ within a script (localised Latin spellings) and by
    subjects kept in Latin script in languages written otherwise; a positive ``b_J`` whose interval excludes
    0 supports Fig. 1's finding beyond Catalan.

    Scripts are one-hot with ``reference`` (Latin) as the base level (its subjects' log-odds are ``b0 + b_J
    J``), the others in alphabetical order, "Other" last; scripts with fewer than ``min_script_cases``
    distinct cases are pooled into "Other". With the ``unedited`` frame (the same prompts scored by the unedited model), its per-prompt success enters as a
    covariate, so that ``b_J`` is read net of what the model already preferred. ``C``: inverse strength of a
    weak L2 penalty (scikit-learn's ``LogisticRegression``; it keeps the coefficients finite when a script's
    prompts all succeed or all fail), ``None`` for none. Intervals: percentile intervals at ``level`` of a
    bootstrap over cases (every prompt and language of a drawn case; ``n_boot`` draws, ``seed``); a draw whose
    outcomes are all equal cannot be fitted and is dropped (``n_boot_valid`` counts those kept).

    Returns a dict: ``coefficients`` (a DataFrame ``term, coef, lo, hi, odds_ratio``; terms ``intercept``,
    ``jaccard``, ``script[<name>]``, ``unedited_success``), ``n_prompts``, ``n_cases``, ``n_langs``,
    ``success_rate`` (percent), ``kind``, ``reference_script``, ``scripts`` (prompts per level), ``pooled``
    (the scripts pooled into Other), ``C``, ``n_boot``, ``n_boot_valid``, ``seed``, ``level``."""
    fn = "transfer_regression"
    _require(edited, ("case_id", "lang", "kind", "prompt_idx", "success"), fn, "the edited frame")
    _check_overlap(overlap, fn)
    if kind not in METRIC_NAMES:
        raise ValueError(f"{fn}: kind must be one of {list(METRIC_NAMES)}, got {kind!r}")
    if C is not None and not C > 0:
        raise ValueError(f"{fn}: C must be positive or None (no penalty), got {C!r}")
    if n_boot < 0:
        raise ValueError(f"{fn}: n_boot must be >= 0, got {n_boot!r}")
    keys = ["case_id", "lang", "prompt_idx"]
    df = edited[edited["kind"] == kind][keys + ["success"]]
    if edit_lang is not None:
        df = df[df["lang"] != edit_lang]
    if df.empty:
        raise ValueError(f"{fn}: the edited frame has no {kind} prompts in a language other than {edit_lang!r}")
    if df.duplicated(keys).any():
        raise ValueError(f"{fn}: the edited frame has repeated (case_id, lang, prompt_idx) rows of kind {kind!r}")
    df = df.merge(_covered(df, overlap, fn, "the edited frame")[["case_id", "lang", "jaccard", "script"]],
                  on=["case_id", "lang"])
    terms = ["jaccard"]
    if unedited is not None:
        _require(unedited, ("case_id", "lang", "kind", "prompt_idx", "success"), fn, "the unedited frame")
        base = unedited[unedited["kind"] == kind][keys + ["success"]].rename(columns={"success": "unedited_success"})
        df = df.merge(base, on=keys, how="left")
        if df["unedited_success"].isna().any():
            ex = df.loc[df["unedited_success"].isna(), keys].head(3).values.tolist()
            raise ValueError(f"{fn}: the unedited frame lacks {int(df['unedited_success'].isna().sum())} prompts of the "
                             f"edited frame, e.g. {ex}")
    cases_per_script = df.groupby("script")["case_id"].nunique()
    if reference not in cases_per_script.index:
        raise ValueError(f"{fn}: no subject of the reference script {reference!r} among the prompts; pass "
                         f"reference= one of {sorted(cases_per_script.index)}")
    pooled = sorted(s for s, k in cases_per_script.items() if k < min_script_cases and s != reference)
    df["level"] = np.where(df["script"].isin(pooled), "Other", df["script"])
    per_level = df["level"].value_counts()
    levels = sorted((s for s in per_level.index if s != reference), key=lambda s: (s == "Other", s))
    terms += [f"script[{s}]" for s in levels] + (["unedited_success"] if unedited is not None else [])
    X = np.column_stack([df["jaccard"].to_numpy(float)]
                        + [(df["level"] == s).to_numpy(float) for s in levels]
                        + ([df["unedited_success"].to_numpy(float)] if unedited is not None else []))
    y = df["success"].to_numpy(bool).astype(int)
    if y.min() == y.max():
        raise ValueError(f"{fn}: every {kind} prompt {'succeeds' if y[0] else 'fails'}; there is nothing to regress")
    coef = _fit_logistic(X, y, C)
    # bootstrap over cases: rows of each case, drawn with replacement
    codes, uniques = pd.factorize(df["case_id"])
    rows_of = [np.flatnonzero(codes == i) for i in range(len(uniques))] if n_boot else []
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = np.concatenate([rows_of[i] for i in rng.integers(0, len(rows_of), len(rows_of))])
        if y[pick].min() == y[pick].max():
            continue
        draws.append(_fit_logistic(X[pick], y[pick], C))
    q = (1 - level) / 2
    if draws:
        lo, hi = np.quantile(np.array(draws), [q, 1 - q], axis=0)
    else:
        lo = hi = np.full(len(coef), np.nan)
    table = pd.DataFrame({"term": ["intercept", *terms], "coef": coef, "lo": lo, "hi": hi,
                          "odds_ratio": np.exp(coef)})
    return {
        "coefficients": table,
        "n_prompts": int(len(df)),
        "n_cases": int(len(uniques)),
        "n_langs": int(df["lang"].nunique()),
        "success_rate": float(100 * y.mean()),
        "kind": kind,
        "reference_script": reference,
        "scripts": {str(k): int(v) for k, v in per_level.items()},
        "pooled": pooled,
        "C": C,
        "n_boot": int(n_boot),
        "n_boot_valid": len(draws),
        "seed": int(seed),
        "level": float(level),
    }


# --------------------------------------------------------------------------- notebook 08's steps
def resolve_langs(langs, edit_lang: str = "en") -> list[str]:
    """The languages notebook 08 evaluates: ``edit_lang`` first, then ``langs`` in order without repeats.
    ``langs="all"``: every BMIKE-53 language (English and :data:`memat.data.BMIKE53_LANGS`). A language
    without a BMIKE-53 file is an error listing the available ones."""
    from .data import BMIKE53_LANGS

    if isinstance(langs, str):
        if langs != "all":
            raise ValueError(f"LANGS: a list of language codes or 'all', got {langs!r}")
        langs = list(BMIKE53_LANGS)
    langs = [edit_lang, *langs, *(["en"] if langs == list(BMIKE53_LANGS) else [])]
    known = ("en", *BMIKE53_LANGS)  # every file pairs English with one of BMIKE53_LANGS
    unknown = [l for l in langs if l not in known]
    if unknown:
        raise ValueError(f"LANGS/EDIT_LANG: no BMIKE-53 file for {unknown}; available: {', '.join(known)}")
    out = list(dict.fromkeys(langs))
    if len(out) < 2:
        raise ValueError(f"LANGS: at least one language besides the edit language {edit_lang!r}, got {langs[1:]}")
    return out


def load_bmike53_languages(langs: Sequence[str], source_dir=None) -> tuple[list[EditCase], pd.DataFrame]:
    """The BMIKE-53 cases present in every language of ``langs`` (each file pairs English with one language;
    :func:`merge_languages`) and a table of what each file kept and skipped: ``lang, loaded`` and one column
    per skip reason (a record without the language's part, a subject absent from its question), then
    ``common``, the cases kept in every language."""
    from .data import load_dataset

    others = [l for l in dict.fromkeys(langs) if l != "en"]
    if not others:
        raise ValueError(f"load_bmike53_languages: needs a language besides English, got {list(langs)}")
    loads = {x: load_dataset("bmike53_counterfact", langs=["en", x], source_dir=source_dir) for x in others}
    cases = merge_languages([r.cases for r in loads.values()], ref="en")
    reasons = sorted({k for r in loads.values() for k in r.skipped})
    skips = pd.DataFrame([{"lang": x, "loaded": len(r), **{k: int(r.skipped.get(k, 0)) for k in reasons}}
                          for x, r in loads.items()])
    skips["common"] = len(cases)
    return cases, skips


def heads_for(heads_results: dict, edit_lang: str, head_set: str, k: int) -> list[tuple[int, int]]:
    """The top-``k`` heads of notebook 03's probe map for editing and probing in ``edit_lang``
    (``"<edit_lang>-><edit_lang>"``, its ``head_set`` "all" or "refined"). A missing map is an error listing
    the ones the results file has."""
    from .heads import probe_map

    return [tuple(h) for h in probe_map(heads_results, edit_lang, edit_lang, head_set).top_k(k)]


def many_language_verdicts(transfer: pd.DataFrame, pooled: pd.DataFrame, regression: dict, gain: pd.DataFrame,
                           edit_lang: str, model: str, n_cases: int) -> dict:
    """Notebook 08's two answers, each ``{verdict, statement, ...}`` with the numbers it rests on.

    * ``tokenisation``: does transfer follow subject tokenisation beyond English and Catalan? Read on the
      pooled J = 1 against J <= 0.5 difference of the ES transfer gain (:func:`transfer_by_jaccard_group`),
      on the wider of its normal and its case-bootstrap interval (a fact's languages are not independent):
      "holds" when it lies above 0, "does not hold" when it lies below 0 or could have detected the
      reference effect and contains 0, "cannot tell at this n" otherwise; the regression's Jaccard
      coefficient (log-odds, bootstrap interval) is quoted beside it.
    * ``memat_unseen_languages``: does MEMAT benefit languages it was not trained on? The rule of
      :func:`memat.experiments.crosslingual_gain_verdict` on the EM/PM gains MEMAT - MEMIT of every language but
      ``edit_lang``; "cannot tell at this n" when every such interval contains 0 and none could detect the
      reference effect, and "does not hold" when no more cells are significantly positive than chance gives
      (:func:`memat.power.chance_positives`: one of 24 at the 95% level)."""
    from .experiments import crosslingual_gain_verdict

    effect, effect_name = reference_effect()
    es = pooled[pooled.metric == "ES"]
    if es.empty:
        raise ValueError("many_language_verdicts: pooled has no ES row")
    r = es.iloc[0]
    reading = r["at_this_n"]
    lo, hi = float(r["lo"]), float(r["hi"])
    boot = [float(r.get(k, np.nan)) for k in ("boot_lo", "boot_hi")]
    if all(np.isfinite(boot)):
        # the units of one fact (its languages) are not independent: judge on the wider of the normal and the
        # case-bootstrap interval
        lo, hi = min(lo, boot[0]), max(hi, boot[1])
        reading = ("differs" if lo > 0 or hi < 0 else CANNOT_TELL if float(r["mde"]) > effect
                   else f"no {effect:g}-point difference")
    if reading == "differs":
        tok = "holds" if r["diff"] > 0 else "does not hold"
    elif reading.startswith("no ") and reading.endswith("-point difference"):
        tok = "does not hold"
    else:
        tok = CANNOT_TELL if reading == CANNOT_TELL else reading
    coef = regression["coefficients"].set_index("term")
    bj = coef.loc["jaccard"] if "jaccard" in coef.index else None
    reg_text = (f"; the regression's Jaccard coefficient is {bj['coef']:+.2f} log-odds [{bj['lo']:+.2f}, {bj['hi']:+.2f}] "
                f"over {regression['n_prompts']} prompts") if bj is not None else ""
    tokenisation = {
        "verdict": tok, "diff": float(r["diff"]), "lo": float(r["lo"]), "hi": float(r["hi"]), "mde": float(r["mde"]),
        "effect": effect,
        "statement": (f"ES transfer gain for J = 1 minus J <= 0.5, pooled over {transfer.lang.nunique() - 1} languages "
                      f"on {model} with {n_cases} facts: {r['diff']:+.1f} points [{r['lo']:+.1f}, {r['hi']:+.1f}]"
                      + (f" (case bootstrap [{boot[0]:+.1f}, {boot[1]:+.1f}])" if all(np.isfinite(boot)) else "")
                      + f", detectable difference {r['mde']:.1f} against {effect_name} ({reading}){reg_text}."),
    }
    cross = gain[gain.lang != edit_lang]
    mv = crosslingual_gain_verdict(cross.assign(setting=edit_lang), {edit_lang: edit_lang}, model, n_cases)
    mag = cross[cross.metric.isin(["EM", "PM"])]
    blind = bool(len(mag)) and bool(((mag.lo <= 0) & (mag.hi >= 0) & (mag.mde > effect)).all())
    chance = chance_positives(int(mv["cross_lingual_tests"]))
    reading = count_reading(mv["cross_lingual_gains"], mv["cross_lingual_losses"], mv["cross_lingual_tests"], 0.95)
    verdict = CANNOT_TELL if blind else {"holds": "holds", "fails": "does not hold", "partly": "holds in part"}[reading]
    memat = {
        "verdict": verdict,
        "chance_positives": chance,
        "magnitude_verdict": mv,
        "statement": mv["statement"] + (f" Every interval contains 0 and none could detect {effect_name}." if blind else
                                        f" By chance alone about {chance} of {mv['cross_lingual_tests']} would be "
                                        "significantly positive."),
    }
    return {"tokenisation": tokenisation, "memat_unseen_languages": memat}
