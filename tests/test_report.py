"""paper.md (memat.report): built from the committed results, every table number sourced, missing results
reported as "not run yet", deterministic bytes, and claim verdicts that follow the numbers."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from memat import published as pub
from memat import report
from memat.report import CANNOT_TELL, FAILS, HOLDS, NOT_RUN, PARTLY, SECTIONS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
FIGURES = ROOT / "figures"


# --------------------------------------------------------------------------- helpers
def _verdicts(text: str) -> dict[str, str]:
    """claim text -> status, from the summary list of paper.md."""
    out = {}
    for line in text.splitlines():
        if line.startswith("- ") and " — **" in line and line.endswith("**") and ": " in line:
            claim, status = line[2:].rsplit(" — **", 1)
            out[claim.split(": ", 1)[1]] = status[:-2]
    return out


def _claim(section_key: str, i: int = 0) -> str:
    return next(s for s in SECTIONS if s.key == section_key).claims[i].text


def _check_sourced(text: str, results: dict) -> None:
    """Every number of every table of each section comes from that section's results files, those of its
    full run included (or the published numbers)."""
    sections = report.split_sections(text)
    for s in SECTIONS:
        payloads = [results[n + x] for n in (*s.results, *s.optional) for x in ("", report.FULL_SUFFIX)
                    if n + x in results]
        bad = report.unsourced_table_numbers(sections[s.title], payloads)
        assert not bad, f"{s.title}: numbers in tables not found in {s.results}: {bad[:5]}"
    assert not report.unsourced_table_numbers(sections["Published numbers used"], [])


# --------------------------------------------------------------------------- synthetic results
METRICS9 = ("ES", "PS", "NS", "EM", "PM", "NM", "EA", "PA", "NA")


def fig1_results(es_j1: float = 66.7, es_j05: float = 41.7, ci: float = 5.25, n_group: int = 12) -> dict:
    """``n_group`` cases per Jaccard group: the J=1 − J<=0.5 comparisons of rates read their n (Wilson-based
    intervals), those of magnitudes their ``ci``."""
    rows = []
    for model, shift in (("unedited", -30.0), ("MEMIT", 0.0)):
        for group, base in (("all", (es_j1 + es_j05) / 2), ("J=1", es_j1), ("J<=0.5", es_j05)):
            n = 2 * n_group if group == "all" else n_group
            for lang in ("ca", "en"):
                for m in METRICS9:
                    v = 100.0 if (lang == "ca" and m == "ES" and model == "MEMIT") else base + shift
                    rows.append({"model": model, "lang": lang, "metric": m, "mean": v, "ci": ci, "n": n, "group": group})
    return {"parameters": {"MODEL": "tiny", "DATASET": "toy", "L1": "ca", "L2": "en", "N_EDITS": 24, "SEED": 0},
            "model": {"name": "tiny", "model_type": "llama", "device": "cpu", "dtype": "torch.float32"},
            "metrics": rows, "heldout_nll": {"unedited": {"ca": 4.5, "en": 3.75}, "MEMIT": {"ca": 4.625, "en": 3.875}},
            "per_case": [{"case_id": 1, "nll_new": 1.234567}]}


def heads_results(peak: float = 0.8) -> dict:
    def row(l1, l2, cases, p):
        return {"L1": l1, "L2": l2, "cases": cases, "kept": 24, "of": 24, "train": 90, "val": 40, "peak": p,
                "layer": 5, "head": 1, "peak L>4": p, "mean": 0.55, "mean top-16": p - 0.125}
    rows = [row("ca", "en", "all", peak), row("ca", "en", "refined", peak), row("en", "ca", "all", peak),
            row("en", "ca", "refined", peak), row("unedited", "ca", "all", 0.625), row("unedited", "en", "all", 0.625)]
    return {"parameters": {"MODEL": "tiny", "N_EDITS": 24, "K": 16}, "table": rows}


def memat_results(delta: float = 12.0, gain_ci: float = 3.5) -> dict:
    rows = []
    settings = ("CC", "CE", "EC", "EE", "CC*", "CE*")
    for s in settings:
        for lang in ("ca", "en"):
            for i, m in enumerate(METRICS9):
                base = 40.0 + i
                rows.append({"method": "MEMIT", "setting": s, "lang": lang, "metric": m, "mean": base, "ci": 2.5, "n": 100})
                rows.append({"method": "PMET", "setting": s, "lang": lang, "metric": m, "mean": base - 1, "ci": 2.5, "n": 100})
                rows.append({"method": "MEMAT-16", "setting": s, "lang": lang, "metric": m, "mean": base + delta,
                             "ci": 2.5, "n": 100})
    for lang in ("ca", "en"):
        for m in METRICS9:
            rows.append({"method": "unedited", "setting": "CC", "lang": lang, "metric": m, "mean": 10.0, "ci": 1.5, "n": 100})
    k_sweep = [{"k": k, "setting": "CC", "lang": lang, "metric": m, "mean": 50.0 + (delta if k == 16 else 0.0),
                "ci": 2.0, "n": 100} for k in (8, 16, 32, 48) for lang in ("ca", "en") for m in ("ES", "PS", "NS")]
    table3 = [{"method": meth, "lang": lang, "metric": m, "mean": 60.0 + j, "ci": 3.0, "n": 50}
              for j, meth in enumerate(("MEMIT joint", "MEMIT sum", "MEMAT joint")) for lang in ("ca", "en")
              for m in ("ES", "PS", "NS")]
    gains = [{"setting": s, "lang": lang, "metric": m, "mean": delta + 0.25, "ci": gain_ci, "n": 24}
             for s in settings for lang in ("ca", "en") for m in ("EM", "PM", "NS")]
    magnitude_gain = {"criterion": "paired interval above 0", "statement": "MEMAT adds magnitude",
                      "significant_gains": [{"setting": "CE", "lang": "en", "metric": "EM", "mean": delta + 0.25, "ci": 3.5}],
                      "significant_losses": []}
    apply_gains = [{"apply_positions": rule, "setting": "CE", "lang": lang, "metric": m, "mean": delta - i, "ci": gain_ci,
                    "n": 24, "lo": delta - i - gain_ci, "hi": delta - i + gain_ci, "mde": 5.0}
                   for i, rule in enumerate(("all", "from_subject_last", "last")) for lang in ("ca", "en")
                   for m in ("EM", "PM", "ES")]
    mechanism = [{"apply_positions": rule, "lang": lang, "key shift median": 0.03125 if rule == "all" else 0.0,
                  "key shift max": 0.125 if rule == "all" else 0.0, "NLL new, MEMIT": 3.5, "NLL new, MEMAT": 2.75}
                 for rule in ("all", "from_subject_last", "last") for lang in ("ca", "en")]
    control_gains = [{"heads": h, "lang": lang, "metric": m, "mean": delta - j, "ci": gain_ci, "n": 24}
                     for j, h in enumerate(("probes (refined)", "random", "unedited top-K")) for lang in ("ca", "en")
                     for m in ("EM", "PM", "ES", "PS")]
    probe_minus = [{"against": a, "lang": lang, "metric": m, "mean": delta + 0.25, "ci": gain_ci, "n": 24}
                   for a in ("random", "unedited top-K") for lang in ("ca", "en") for m in ("EM", "PM", "ES", "PS")]
    return {"parameters": {"MODEL": "tiny", "N_EDITS": 100, "K": 16}, "metrics": rows, "table3": table3,
            "k_sweep": k_sweep, "gains": gains, "magnitude_gain": magnitude_gain,
            "apply_positions": {"setting": "CE", "gains": apply_gains, "mechanism": mechanism},
            "controls": {"setting": "CE", "heads": {"random": [[0, 1], [5, 2]], "unedited top-K": [[3, 0], [7, 1]]},
                         "gains": control_gains, "probe_minus_control": probe_minus}}


def scaling_results(delta: float = 5.0, extra_s: float = 30.0) -> dict:
    rows, res = [], []
    for method, d in (("MEMIT", 0.0), ("MEMAT (CC*)", delta)):
        for n in (10, 100, 1000):
            for lang in ("ca", "en"):
                for m in ("ES", "PS", "NS"):
                    rows.append({"method": method, "n_edits": n, "lang": lang, "metric": m, "mean": 70.0 + d - n / 100,
                                 "ci": 1.5, "n": n})
            res.append({"method": method, "n_edits": n, "wall_s": 120.0 + (extra_s if d else 0.0), "peak_mem_mb": 2048.0})
    return {"parameters": {"MODEL": "tiny", "I_RANGE": [4, 8, 12]}, "metrics": rows, "resources": res}


def iti_results(iti_es: float = 20.0) -> dict:
    """``iti_es``: ES of the head shifts on the *unedited* model (the ``no_edit`` rows the claim is about);
    the shifts on top of the edit stay fixed."""
    rows, alone = [], []
    for lang in ("ca", "en"):
        for alpha in (5.0, 15.0):
            rows.append({"method": "ITI", "alpha": alpha, "k": 16, "lang": lang, "metric": "ES", "mean": 50.0,
                         "ci": 4.0, "n": 50})
            for metric, mean in (("ES", iti_es), ("EM", 0.5)):
                alone.append({"method": "ITI (no edit)", "alpha": alpha, "k": 16, "lang": lang, "metric": metric,
                              "mean": mean, "ci": 4.0, "n": 50})
        rows.append({"method": "MEMIT", "alpha": None, "k": None, "lang": lang, "metric": "ES", "mean": 80.0, "ci": 4.0, "n": 50})
        rows.append({"method": "MEMAT", "alpha": 15.0, "k": 16, "lang": lang, "metric": "ES", "mean": 85.0, "ci": 4.0, "n": 50})
    return {"parameters": {"MODEL": "tiny", "N_EDITS": 50}, "metrics": rows, "no_edit": alone}


def lr_results(spread: float = 20.0) -> dict:
    rows = []
    for method in ("MEMIT", "PMET"):
        for i, lr in enumerate((0.05, 0.5, 5.0)):
            for lang in ("ca", "en"):
                for m in ("ES", "PS", "NS", "HM"):
                    rows.append({"method": method, "lr": lr, "lang": lang, "metric": m,
                                 "mean": 50.0 + spread * i / 2, "ci": 3.0, "n": 40})
    return {"parameters": {"MODEL": "tiny", "N_EDITS": 40}, "metrics": rows}


def languages_results(diff: float = 20.0, memat_gain: float = 12.0, ci: float = 4.0) -> dict:
    """Notebook 08's results: ``diff``, the pooled ES gain J=1 - J<=0.5 (interval ``diff +- 2 ci``, detectable
    ``2.8 ci``); ``memat_gain``, every MEMAT - MEMIT cell (interval ``+- ci``, detectable ``2.8 ci / 1.96``)."""
    langs = [("en", "Latin", 1.0), ("de", "Latin", 0.75), ("ru", "Cyrillic", 0.125), ("zh", "Han", 0.0)]
    profile = [{"lang": l, "n_cases": 16, "share_j1": j, "share_mid": 0.0, "share_low": 1 - j, "mean_jaccard": j,
                "script": sc, "script_share": 1.0, "is_edit_lang": l == "en"} for l, sc, j in langs]
    transfer, gain = [], []
    for l, sc, j in langs:
        for m in ("ES", "EM"):
            g = 40.0 * j
            transfer.append({"lang": l, "metric": m, "edited": 30.0 + g, "unedited": 30.0, "mean": g, "ci": ci,
                             "lo": g - ci, "hi": g + ci, "n": 16, "mde": 2.8 * ci / 1.96, "share_j1": j, "script": sc,
                             "is_edit_lang": l == "en"})
        for m in ("ES", "EM", "PM"):
            gain.append({"lang": l, "metric": m, "memat": 50.0 + memat_gain, "memit": 50.0, "mean": memat_gain,
                         "ci": ci, "lo": memat_gain - ci, "hi": memat_gain + ci, "n": 16, "mde": 2.8 * ci / 1.96,
                         "share_j1": j, "script": sc, "is_edit_lang": l == "en"})
    pooled = [{"metric": m, "langs": 3, "n_j1": 12, "n_low": 20, "gain_j1": 30.0 + diff, "gain_low": 30.0,
               "diff": diff, "lo": diff - 2 * ci, "hi": diff + 2 * ci, "mde": 2.8 * ci, "boot_lo": diff - 2.5 * ci,
               "boot_hi": diff + 2.5 * ci, "at_this_n": "differs"} for m in ("ES", "EM")]
    coefficients = [{"term": t, "coef": c, "lo": c - 1, "hi": c + 1, "odds_ratio": math.exp(c)}
                    for t, c in (("intercept", -1.5), ("jaccard", 2.25), ("script[Cyrillic]", -0.5))]
    regression = {"coefficients": coefficients, "n_prompts": 48, "n_cases": 16, "n_langs": 3, "success_rate": 25.0,
                  "kind": "rewrite", "reference_script": "Latin"}
    return {"parameters": {"MODEL": "tiny", "LANGS": ["de", "ru", "zh"], "EDIT_LANG": "en", "N_EDITS": 16, "K": 16},
            "profile": profile, "transfer": transfer, "pooled": pooled, "regression": regression, "memat_gain": gain}


def synthetic(**kw) -> dict:
    return {
        "01_dataset_translation": json.loads((RESULTS / "01_dataset_translation.json").read_text()),
        "02_crosslingual_memit": fig1_results(*kw.get("fig1", ())),
        "03_head_localization": heads_results(*kw.get("heads", ())),
        "04_memat": memat_results(*kw.get("memat", ())),
        "05_scaling": scaling_results(*kw.get("scaling", ())),
        "06_iti_ablation": iti_results(*kw.get("iti", ())),
        "07_learning_rate": lr_results(*kw.get("lr", ())),
        "08_many_languages": languages_results(*kw.get("languages", ())),
    }


# --------------------------------------------------------------------------- committed results
@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> tuple[str, dict, Path]:
    out = tmp_path_factory.mktemp("report") / "paper.md"
    report.write_report(out, results_dir=RESULTS, figures_dir=FIGURES)
    return out.read_text(encoding="utf-8"), report.load_results(RESULTS), out


def test_header_sections_and_not_run(committed):
    text, results, _ = committed
    first = text.splitlines()[0]
    assert "memat report" in first and "do not edit by hand" in first
    positions = [text.index(f"## {s.title}\n") for s in SECTIONS]
    assert positions == sorted(positions), "sections out of the paper's order"
    chunks = report.split_sections(text)
    for s in SECTIONS:
        missing = [n for n in s.results if n not in results]
        assert (NOT_RUN in chunks[s.title]) == bool(missing), s.title


def test_committed_tables_and_figures(committed):
    text, results, out = committed
    _check_sourced(text, results)
    # the tables come from the results: Fig. 1's cells and the data set's counts
    row = report.one(results["02_crosslingual_memit"]["metrics"], model="MEMIT", lang="en", metric="ES", group="J=1")
    assert f"{report.fmt(row['mean'])} ± {report.fmt(row['ci'])}" in text
    assert report.fmt(results["01_dataset_translation_full"]["report"]["n_kept"], "count") in text
    # figures are linked relative to the output file, and they exist
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links
    for link in links:
        assert link.endswith(".png") and not Path(link).is_absolute()
        assert (out.parent / link).resolve().parent in (FIGURES.resolve(), (FIGURES / report.FULL_FIGURES).resolve())
        assert (out.parent / link).exists()


def test_committed_claims_read_the_numbers(committed):
    text, results, _ = committed
    v = _verdicts(text)
    # the claims are judged on the full run where its results are committed (report.FULL_SUFFIX)
    judged = results.get("02_crosslingual_memit" + report.FULL_SUFFIX) or results["02_crosslingual_memit"]
    m = judged["metrics"]
    half = judged["parameters"]["N_EDITS"] // 2
    hi = report.value(m, model="MEMIT", lang="en", metric="ES", group="J=1")
    lo = report.value(m, model="MEMIT", lang="en", metric="ES", group="J<=0.5")
    # both J=1 - J<=0.5 differences (ES, PS in en: rates) straddle 0 with a detectable difference above 10
    # points? (Newcombe's interval and the Wilson-based se, from each group's mean and n)
    effect = pub.published("magnitude_gain").value
    blind = []
    for metric in ("ES", "PS"):
        a = report.one(m, model="MEMIT", lang="en", metric=metric, group="J=1")
        b = report.one(m, model="MEMIT", lang="en", metric=metric, group="J<=0.5")
        (l1, u1), (l2, u2) = _wilson(a["mean"] / 100, a["n"]), _wilson(b["mean"] / 100, b["n"])
        p1, p2 = a["mean"] / 100, b["mean"] / 100
        d = p1 - p2
        d_lo, d_hi = d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)
        se = math.hypot(u1 - l1, u2 - l2) / (2 * 1.959964)
        blind.append(d_lo <= 0 <= d_hi and 100 * 2.801585 * se > effect)
    if all(blind):
        assert v[_claim("fig1", 2)] == CANNOT_TELL
    else:
        assert v[_claim("fig1", 2)] in (HOLDS, PARTLY) if hi > lo else v[_claim("fig1", 2)] in (FAILS, PARTLY)
    assert f"higher for J=1 subjects ({report.fmt(hi)}, n={half}) than for J<=0.5 ({report.fmt(lo)}, n={half})" in text


def test_published_numbers_are_sourced_and_placed():
    keys = [p.key for p in pub.PUBLISHED]
    assert len(keys) == len(set(keys))
    for p in pub.PUBLISHED:
        assert p.where and p.source and p.text
    for s in SECTIONS:
        for k in s.published_keys:
            pub.published(k)
        assert s.paper in pub.NOT_TRANSCRIBED or s.published_keys
    with pytest.raises(KeyError, match="known"):
        pub.published("nope")


# --------------------------------------------------------------------------- the checker can fail
def test_checker_catches_an_injected_table_number(committed):
    text, results, _ = committed
    sections = report.split_sections(text)
    title = next(s.title for s in SECTIONS if s.key == "fig1")
    chunk = sections[title]
    # the section shows the CI default and, where committed, the full run: both results files source it
    payloads = [results[n] for n in ("02_crosslingual_memit", "02_crosslingual_memit" + report.FULL_SUFFIX)
                if n in results]
    assert report.unsourced_table_numbers(chunk, payloads) == []
    # a number no results file holds, put into an existing cell
    allowed = report.allowed_numbers(payloads)
    fake = next(f"{x / 10:.1f}" for x in range(999, 0, -1) if f"{x / 10:.1f}" not in allowed)
    row = next(r for r in report.table_rows(chunk) if r.startswith("| MEMIT | J=1 | en |"))
    cells = row.split(" | ")
    cells[3] = fake + " ± " + cells[3].split(" ± ")[1]
    forged = chunk.replace(row, " | ".join(cells))
    bad = report.unsourced_table_numbers(forged, payloads)
    assert [n for n, _ in bad] == [fake]
    # a whole invented row, and a number with thousands separators
    bad = report.unsourced_table_numbers(chunk + "\n| invented | 987.6 | 12,345 |\n", payloads)
    assert {n for n, _ in bad} == {"987.6", "12,345"}
    # numbers in prose are not table numbers; names with digits (P101, fig7) are not numbers
    assert report.unsourced_table_numbers(chunk + "\nprose 987.6\n", payloads) == []
    assert report.numbers_in("| P101 | fig7_x | J<=0.5 | MEMAT-16 | 1,492 | -3.2 | 5e-05 |") == [
        "0.5", "16", "1,492", "3.2", "5e-05"]


# --------------------------------------------------------------------------- missing results, determinism
def test_missing_results_say_not_run_yet(tmp_path):
    text = report.build_report({}, figures_dir=tmp_path, out_dir=tmp_path)
    chunks = report.split_sections(text)
    for s in SECTIONS:
        assert NOT_RUN in chunks[s.title], s.title
    assert set(_verdicts(text).values()) == {report.UNMEASURED}
    # an empty results folder works too, through write_report
    out = report.write_report(tmp_path / "paper.md", results_dir=tmp_path / "none", figures_dir=tmp_path)
    assert NOT_RUN in out.read_text()


def test_deterministic_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        report.write_report(d / "paper.md", results_dir=RESULTS, figures_dir=FIGURES)
    assert (a / "paper.md").read_bytes() == (b / "paper.md").read_bytes()
    data = synthetic()
    shuffled = {k: copy.deepcopy(data[k]) for k in reversed(list(data))}
    for k in shuffled:  # row order inside the files does not matter either
        for key in ("metrics", "k_sweep", "table", "resources"):
            if isinstance(shuffled[k].get(key), list):
                shuffled[k][key].reverse()
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}
    assert report.build_report(data, **kw) == report.build_report(shuffled, **kw)


def test_suffix_selects_another_run(tmp_path):
    data = {k + "_aguila": v for k, v in synthetic().items()}
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path, suffix="_aguila")
    assert NOT_RUN not in text and "results/02_crosslingual_memit_aguila.json" in text
    assert NOT_RUN in report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)


# --------------------------------------------------------------------------- claims follow the numbers
def test_synthetic_report_is_complete_and_sourced(tmp_path):
    data = synthetic()
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)
    assert NOT_RUN not in text
    _check_sourced(text, data)
    for title in ("MEMAT-16", "MEMAT (CC*)", "MEMIT joint", "Edits in Catalan, evaluated in English"):
        assert title in text
    assert "| CC | en | 16 |" in text  # the K sweep table
    assert "| CE* | en | 12.2 ± 3.5 | 12.2 ± 3.5 | 12.2 ± 3.5 | 24 |" in text  # paired gains, with the recycled rows
    assert "- significant gains: CE en EM 12.2 ± 3.5" in text and "- significant losses: none" in text
    assert "_(figure `fig9_k_sweep.png` not found)_" in text
    # where the corrections apply, and the head controls
    assert "| from_subject_last | en | 11.0 ± 3.5 | 11.0 ± 3.5 | 11.0 ± 3.5 | 24 |" in text
    assert "| all | ca | 0.03125 | 0.125 | 3.5 | 2.75 |" in text
    assert "random (L0H1, L5H2)" in text and "| unedited top-K | en | 12.2 ± 3.5 |" in text


@pytest.mark.parametrize("section,index,good,bad", [
    ("fig1", 2, {"fig1": (66.7, 41.7, 5.25, 64)}, {"fig1": (41.7, 66.7, 5.25, 64)}),
    ("heads", 0, {"heads": (0.8,)}, {"heads": (0.6,)}),
    ("heads", 1, {"heads": (0.8,)}, {"heads": (0.6,)}),
    ("memat", 0, {"memat": (12.0,)}, {"memat": (-3.0,)}),
    ("memat", 1, {"memat": (12.0,)}, {"memat": (-3.0,)}),
    ("memat", 2, {"memat": (12.0,)}, {"memat": (-3.0,)}),
    ("memat", 3, {"memat": (12.0,)}, {"memat": (-3.0,)}),
    ("ksweep", 0, {"memat": (12.0,)}, {"memat": (-3.0,)}),
    ("mechanism", 0, {"memat": (12.0,)}, {"memat": (-3.0,)}),
    ("scaling", 0, {"scaling": (5.0,)}, {"scaling": (-5.0,)}),
    ("scaling", 1, {"scaling": (5.0, 30.0)}, {"scaling": (5.0, 300.0)}),
    ("iti", 0, {"iti": (20.0,)}, {"iti": (95.0,)}),
    ("lr", 0, {"lr": (20.0,)}, {"lr": (2.0,)}),
    ("languages", 0, {"languages": (20.0,)}, {"languages": (-20.0,)}),
    ("languages", 1, {"languages": (20.0, 12.0)}, {"languages": (20.0, -12.0)}),
])
def test_claims_flip_with_the_numbers(tmp_path, section, index, good, bad):
    claim = _claim(section, index)
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}
    assert _verdicts(report.build_report(synthetic(**good), **kw))[claim] == HOLDS
    assert _verdicts(report.build_report(synthetic(**bad), **kw))[claim] == FAILS


def test_claim_detail_states_the_numbers(tmp_path):
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}
    text = report.build_report(synthetic(fig1=(66.7, 41.7, 5.25, 64)), **kw)
    assert ("**holds**: ES(en) after a Catalan edit is higher for J=1 subjects (66.7, n=64) than for J<=0.5 "
            "(41.7, n=64)") in text
    text = report.build_report(synthetic(fig1=(41.7, 66.7, 5.25, 64)), **kw)
    assert "**does not hold**: ES(en) after a Catalan edit is not higher for J=1 subjects (41.7, n=64)" in text


def test_a_judge_that_lacks_its_rows_says_not_measured(tmp_path):
    data = synthetic()
    data["04_memat"]["metrics"] = [r for r in data["04_memat"]["metrics"] if not r["method"].startswith("MEMAT")]
    v = _verdicts(report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path))
    assert v[_claim("memat", 0)] == report.UNMEASURED


def test_fmt_is_the_one_formatter():
    assert report.fmt(66.66666) == "66.7"
    assert report.fmt(0.7272727, "frac") == "72.7"
    assert report.fmt(10641, "count") == "10,641"
    assert report.fmt(4.6846, "nats") == "4.685"
    assert report.fmt(5e-05, "g") == "5e-05"
    assert report.fmt(None) == "—" and report.fmt(float("nan")) == "—"
    with pytest.raises(ValueError, match="unknown kind"):
        report.fmt(1.0, "bogus")


def test_cli_report(tmp_path, capsys):
    from memat import cli

    out = tmp_path / "paper.md"
    args = ["report", "--out", str(out), "--results-dir", str(RESULTS), "--figures-dir", str(FIGURES)]
    assert cli.main(args) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_bytes() == report.build_report(results_dir=RESULTS, figures_dir=FIGURES,
                                                   out_dir=tmp_path).encode("utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name != "paper.md"]  # no temporary file left


def test_a_results_file_of_another_schema_is_reported_not_fatal(tmp_path):
    data = synthetic()
    for r in data["05_scaling"]["metrics"]:
        del r["metric"]
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)
    chunk = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "scaling")]
    assert "Could not build this section's tables from `results/05_scaling.json`: KeyError" in chunk
    assert "## Fig. 10" in text  # the next sections are still there


# --------------------------------------------------------------------------- what the intervals can detect
def test_report_shows_the_detectable_differences(tmp_path):
    data = synthetic()
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)
    _check_sourced(text, data)  # the derived numbers are allowed, as computed from the results
    chunk = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "memat")]
    # paired cells 12.2 +- 3.5 (no mde recorded): detectable 3.5 / 1.96 * 2.80 = 5.0, none "cannot tell"
    assert "| CE* | en | 5.0 | 5.0 | 5.0 | 24 |" in chunk and not any("†" in r for r in report.table_rows(chunk))
    # Fig. 1, rates of 12 cases per group: Newcombe's interval from the Wilson intervals (the ci of 5.25 is not
    # used). 66.7 - 41.7 = 25.0: Wilson(0.667, 12) = [0.391, 0.862], Wilson(0.417, 12) = [0.193, 0.681];
    # lo = 25.0 - 100 sqrt(0.276^2 + 0.264^2) = -13.2, hi = 25.0 + 100 sqrt(0.195^2 + 0.224^2) = 54.7;
    # se = hypot(0.471, 0.487) / 3.92 = 0.173, detectable 2.80 * 17.3 = 48.4
    fig1 = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "fig1")]
    assert f"| MEMIT | en | ES | 66.7 | 41.7 | 25.0 | [-13.2, 54.7] | 48.4 | 12 / 12 | {CANNOT_TELL} |" in fig1
    # 100 against 100 (12 of 12 each): +- 100 (1 - 0.7575) = [-24.2, 24.2], detectable 2.80 * 100 * sqrt(2) *
    # 0.2425 / 3.92 = 24.5 > 10 points: this n cannot tell (the normal approximation said [0.0, 0.0] and 0.0)
    assert f"| MEMIT | ca | ES | 100.0 | 100.0 | 0.0 | [-24.2, 24.2] | 24.5 | 12 / 12 | {CANNOT_TELL} |" in fig1
    # a recorded mde is shown as it is; a cell straddling 0 with mde above 10 points is marked
    data["04_memat"]["gains"][0].update(mean=1.0, mde=33.3)  # CC ca EM: 1.0 +- 3.5
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)
    assert "| CC | ca | 5.0 | 33.3† | 5.0 | 24 |" in text  # columns NS, EM, PM
    _check_sourced(text, data)
    # the checker still catches a detectable difference nobody computed
    payloads = [data["04_memat"]]
    forged = text.replace("| CC | ca | 5.0 | 33.3† |", "| CC | ca | 5.0 | 31.7† |")
    bad = report.unsourced_table_numbers(report.split_sections(forged)["Tables 1 and 2 — MEMAT against MEMIT and PMET"],
                                         payloads)
    assert [n for n, _ in bad] == ["31.7"]


def test_derived_numbers_are_the_documented_formulas():
    row = {"setting": "CC", "lang": "ca", "metric": "EM", "mean": -20.8, "ci": 16.6, "n": 24}
    lo, hi, mde = report.derived_numbers({"gains": [row]})
    assert (lo, hi) == (pytest.approx(-37.4), pytest.approx(-4.2))
    assert mde == pytest.approx(16.6 / 1.959964 * 2.801585)
    assert list(report.derived_numbers({"gains": [dict(row, mde=7.5)]}))[2] == 7.5
    assert list(report.derived_numbers([1, 2])) == []


@pytest.mark.parametrize("claim_of", [("fig1", 2)] + [("memat", i) for i in range(4)])
def test_cannot_tell_at_this_n(tmp_path, claim_of):
    claim = _claim(*claim_of)
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}
    # intervals that straddle 0 with a detectable difference above the 10-point headline: cannot tell
    blind = synthetic(fig1=(50.0, 45.0, 30.0), memat=(0.0, 20.0))
    v = _verdicts(report.build_report(blind, **kw))[claim]
    assert v == CANNOT_TELL
    # straddling 0 but able to detect 10 points (detectable 6.3 with 1,000 cases per group / 4.0): the verdict stands
    powered = synthetic(fig1=(50.0, 49.0, 2.0, 1000), memat=(-0.5, 3.5))
    v = _verdicts(report.build_report(powered, **kw))[claim]
    assert v == (HOLDS if claim_of[0] == "fig1" else FAILS)  # J=1 above J<=0.5; MEMAT below MEMIT
    # significant: the verdict stands (as in test_claims_flip_with_the_numbers)
    sig = synthetic(fig1=(66.7, 41.7, 5.25, 64), memat=(12.0, 3.5))
    assert _verdicts(report.build_report(sig, **kw))[claim] == HOLDS
    # results without paired rows (gains) keep the old verdicts for Tables 1-2
    if claim_of[0] == "memat":
        del blind["04_memat"]["gains"]
        assert _verdicts(report.build_report(blind, **kw))[claim] == FAILS


def test_cannot_tell_states_what_it_compared_against(tmp_path):
    text = report.build_report(synthetic(fig1=(50.0, 45.0, 30.0)), figures_dir=tmp_path, out_dir=tmp_path)
    line = next(l for l in text.splitlines() if l.startswith("- *Claim:* transfer to L2 is weaker"))
    assert f"**{CANNOT_TELL}**" in line
    # difference 5.0 of two rates of 12 cases: Wilson(0.50, 12) = [0.254, 0.746], Wilson(0.45, 12) = [0.217, 0.707];
    # Newcombe [5.0 - 100 hypot(0.246, 0.257), 5.0 + 100 hypot(0.246, 0.233)] = [-30.6, 38.9];
    # se = hypot(0.492, 0.491) / 3.92 = 0.177, detectable 49.7
    assert "difference 5.0, 95% interval [-30.6, 38.9], detectable difference 49.7" in line
    assert "above 10 points, compared against the abstract's 10-point magnitude gain" in line
    assert "by direction alone the verdict would be 'holds'" in line
    fig1 = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "fig1")]
    assert f"| MEMIT | en | ES | 50.0 | 45.0 | 5.0 | [-30.6, 38.9] | 49.7 | 12 / 12 | {CANNOT_TELL} |" in fig1


def _wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    denom = 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / denom, z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def test_rates_at_100_percent_in_both_groups_keep_their_n(tmp_path):
    # every case at 100% in both groups, ci 0: the normal approximation would say [0.0, 0.0] and 0.0
    data = synthetic(fig1=(66.7, 41.7, 0.0))
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)
    fig1 = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "fig1")]
    row = next(r for r in report.table_rows(fig1) if r.startswith("| MEMIT | ca | ES |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    lo, hi = (float(x) for x in cells[6].strip("[]").split(", "))
    mde = float(cells[7])
    l1, u1 = _wilson(1.0, 12)  # [0.7575, 1]
    assert lo < 0 < hi and (lo, hi) == (pytest.approx(-100 * (1 - l1), abs=0.05), pytest.approx(100 * (1 - l1), abs=0.05))
    assert mde > 0 and mde == pytest.approx(2.801585 * 100 * math.hypot(*[(u1 - l1) / (2 * 1.959964)] * 2), abs=0.05)
    assert cells[9] == CANNOT_TELL and "no variance" not in fig1  # 24.5 points > 10: this n cannot tell
    _check_sourced(text, data)
    # a magnitude keeps the normal approximation, and without variance still reads "no variance"
    a = {"mean": 50.0, "ci": 0.0, "n": 12}
    c = report.jaccard_comparison("EM", a, dict(a))
    assert (c.lo, c.hi, c.mde) == (0.0, 0.0, 0.0) and report.at_this_n(c, 10.0) == "no variance"
    c = report.jaccard_comparison("ES", dict(a, mean=100.0), dict(a, mean=100.0))
    assert c.lo < 0 < c.hi and c.mde > 0 and report.at_this_n(c, 10.0) == CANNOT_TELL
    # a rate without n falls back to the normal approximation
    c = report.jaccard_comparison("ES", {"mean": 60.0, "ci": 9.8}, {"mean": 50.0, "ci": 9.8})
    assert (c.lo, c.hi) == (pytest.approx(10 - 1.959964 * math.hypot(5, 5), rel=1e-4),
                            pytest.approx(10 + 1.959964 * math.hypot(5, 5), rel=1e-4))


def test_paired_cells_without_variance(tmp_path):
    data = synthetic()
    for r in data["04_memat"]["gains"]:
        if r["setting"] == "EE" and r["lang"] == "en" and r["metric"] == "NS":
            r.update(mean=0.0, ci=0.0, mde=0.0)
    text = report.build_report(data, figures_dir=tmp_path, out_dir=tmp_path)
    chunk = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "memat")]
    assert "| EE | en | n/a (no variance) | 5.0 | 5.0 | 24 |" in chunk  # columns NS, EM, PM
    assert "*n/a (no variance)*: every per-case difference of the cell is the same" in chunk
    assert not any("†" in r for r in report.table_rows(chunk))
    _check_sourced(text, data)
    # never "cannot tell": even a recorded mde above 10 points on a cell without variance
    row = {"setting": "EE", "lang": "en", "metric": "NS", "mean": 0.0, "ci": 0.0, "n": 24, "mde": 33.3}
    assert report.gain_comparison(row).no_variance and not report.gain_comparison(row).cannot_tell(10.0)
    assert not report.gain_comparison(dict(row, n=None)).no_variance
    # the claims say how many cells had no variance
    v = report.with_power(report.Verdict(HOLDS, "x"), [("a", report.gain_comparison(row))], 10.0, "y", "paired cell")
    assert v.status == HOLDS and "1 of the 1 paired cells have no variance" in v.detail


# --------------------------------------------------------------------------- a larger run beside the CI default
def _full_copy(payload: dict, n_edits: int = 128, **rows: tuple[float, float]) -> dict:
    """A `_full` payload made from ``payload``: N_EDITS ``n_edits``, every row's n scaled to it, and the MEMIT
    rows of ``rows`` (``"<group> <lang> <metric>"`` -> (mean, ci)) set."""
    full = copy.deepcopy(payload)
    scale = n_edits / full["parameters"]["N_EDITS"]
    full["parameters"]["N_EDITS"] = n_edits
    for r in full["metrics"]:
        if r.get("n") is not None:
            r["n"] = round(r["n"] * scale)
        key = f"{r.get('group')} {r['lang']} {r['metric']}"
        if r.get("model") == "MEMIT" and key in rows:
            r["mean"], r["ci"] = rows[key]
    return full


def test_without_full_runs_the_report_is_as_before(committed):
    """No `<name>_full.json` but the data set's full build: every section exactly as without the full-run logic
    (which the data set's section never uses: it reports its full build itself)."""
    text, results, out = committed
    base = {k: v for k, v in results.items()
            if not k.endswith(report.FULL_SUFFIX) or k == "01_dataset_translation_full"}
    kw = {"results_dir": RESULTS, "figures_dir": FIGURES, "out_dir": out.parent}
    plain = [dataclasses.replace(s, full_run=False) for s in SECTIONS]
    before = report.build_report(base, sections=plain, **kw)
    assert report.build_report(base, **kw) == before
    assert "### full" not in before and "(full run" not in before and "on the full run" not in before
    assert "results/01_dataset_translation_full.json" in before  # the full build, reported as it was
    if base.keys() == results.keys():  # the committed results: no `_full` run yet
        assert text == before


def test_a_full_run_is_shown_beside_the_ci_default_and_judged(tmp_path, committed):
    _, results, _ = committed
    kw = {"figures_dir": FIGURES, "out_dir": ROOT}
    data = {k: results[k] for k in ("01_dataset_translation", "01_dataset_translation_full", "02_crosslingual_memit",
                                    "03_head_localization")}
    claim = _claim("fig1", 2)
    title = next(s.title for s in SECTIONS if s.key == "fig1")
    n0 = results["02_crosslingual_memit"]["parameters"]["N_EDITS"]
    plain = report.build_report(data, **kw)
    for (hi, lo), status in (((70.0, 40.0), HOLDS), ((40.0, 70.0), FAILS)):
        full = _full_copy(results["02_crosslingual_memit"], 128, **{
            "J=1 en ES": (hi, 5.0), "J<=0.5 en ES": (lo, 5.0), "J=1 en PS": (hi, 5.0), "J<=0.5 en PS": (lo, 5.0)})
        with_full = {**data, "02_crosslingual_memit_full": full}
        text = report.build_report(with_full, **kw)
        chunk = report.split_sections(text)[title]
        # both runs' tables, headed with their n, the CI default first; each run's own figure at its head
        # (figures/ for the CI default, figures/full/ for the full run, which writes there)
        ci_at, full_at = chunk.index(f"### CI default (n = {n0})"), chunk.index("### full (n = 128)")
        assert ci_at < full_at
        assert chunk.count("fig1_crosslingual_memit_ca_en.png") == 2
        assert ci_at < chunk.index("(figures/fig1_crosslingual_memit_ca_en.png)") < full_at
        assert full_at < chunk.index("figures/full/fig1_crosslingual_memit_ca_en.png")
        assert f"| MEMIT | en | ES | {report.fmt(hi)} | {report.fmt(lo)} | " in chunk
        assert f"| {report.fmt(n0 // 2, 'count')} / {report.fmt(n0 // 2, 'count')} |" in chunk  # the CI rows too
        assert "`results/02_crosslingual_memit_full.json`" in chunk
        assert not report.unsourced_table_numbers(chunk, [results["02_crosslingual_memit"], full])
        # the verdict is the full run's, and says so
        v = _verdicts(text)
        assert v[claim] == status
        assert f"- Fig. 1 (full run, n = 128): {claim} — **{status}**" in text
        line = next(l for l in chunk.splitlines() if l.startswith(f"- *Claim:* {claim}"))
        assert f"**{status}**: on the full run (n = 128): ES(en) after a Catalan edit is " in line
        assert "(70.0, n=64)" in line or "(40.0, n=64)" in line
        ci_status = _verdicts(plain)[claim]
        assert line.endswith(f"; on the CI default run (n = {n0}): {ci_status}.")
        assert "(judged on the full run, n = 128)" in chunk
        # the other sections are exactly as without the full run
        for s in SECTIONS:
            if s.key != "fig1":
                assert report.split_sections(text)[s.title] == report.split_sections(plain)[s.title], s.title
    # the data set's full build is not a "full run" of its section
    assert "### full" not in report.split_sections(plain)[next(s.title for s in SECTIONS if s.key == "dataset")]


def test_a_full_run_of_synthetic_results(tmp_path):
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}
    data = synthetic(fig1=(50.0, 45.0, 30.0), memat=(0.0, 20.0))  # the CI default cannot tell
    full = synthetic(fig1=(66.7, 41.7, 5.25, 64), memat=(12.0, 3.5))
    for name in ("02_crosslingual_memit", "04_memat", "05_scaling"):
        data[name + "_full"] = full[name]
    data["02_crosslingual_memit_full"]["parameters"]["N_EDITS"] = 128
    data["05_scaling_full"]["edit_sizes"] = [10, 32, 100, 316]
    text = report.build_report(data, **kw)
    v = _verdicts(text)
    assert v[_claim("fig1", 2)] == HOLDS and v[_claim("memat", 0)] == HOLDS
    assert f"- Tables 1-2 (full run, n = 100): {_claim('memat', 0)} — **holds**" in text
    assert f"- Fig. 9 (full run, n = 100): {_claim('ksweep', 0)}" in text  # the K sweep reads 04 too
    assert "- Fig. 4 (full run, n = 10, 32, 100, 316 edits): " in text
    scaling = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "scaling")]
    assert "### CI default (n = 10, 100, 1,000 edits)" in scaling  # from I_RANGE [4, 8, 12]
    assert "### full (n = 10, 32, 100, 316 edits)" in scaling
    assert f"on the CI default run (n = 24): {CANNOT_TELL}" in text
    _check_sourced(text, data)
    # a full run without its CI default: shown alone, judged, the CI default said to be missing
    del data["02_crosslingual_memit"]
    text = report.build_report(data, **kw)
    chunk = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "fig1")]
    assert f"CI default: {NOT_RUN} (missing: `results/02_crosslingual_memit.json`)" in chunk
    assert "### full (n = 128)" in chunk and "### CI default" not in chunk
    assert _verdicts(text)[_claim("fig1", 2)] == HOLDS
    assert "; on the CI default run" not in chunk


def test_run_size():
    assert report.run_size({"parameters": {"N_EDITS": 1000}}) == "n = 1,000"
    split = {"parameters": {"N_EDITS": 24, "N_TEST": 12}, "selection": {"k": 16}}
    assert report.run_size(split) == "n = 12 test cases (+ 24 development)"
    assert report.run_size({"parameters": {"N_EDITS": 24, "N_TEST": 12}}) == "n = 24"  # no split recorded
    assert report.run_size({"parameters": {"I_RANGE": [8, 10]}, "edit_sizes": [100, 316, 100]}) == "n = 100, 316 edits"
    assert report.run_size({"parameters": {"I_RANGE": [8, 16]}}) == "n = 100, 10,000 edits"
    assert report.run_size({}) == report.run_size(None) == "n not recorded"


def test_many_languages_cannot_tell_and_no_effect(tmp_path):
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}
    # pooled difference 2 +- 2 x 6: contains 0, detectable 16.8 > 10 points: cannot tell; MEMAT 0 +- 6, detectable 8.6
    text = report.build_report(synthetic(languages=(2.0, 0.0, 6.0)), **kw)
    v = _verdicts(text)
    assert v[_claim("languages", 0)] == CANNOT_TELL
    assert v[_claim("languages", 1)] == FAILS  # no cell significant, but each could detect 10 points
    # with ci 1: contains 0 (2 +- 2), detectable 2.8 < 10: no 10-point difference, does not hold
    assert _verdicts(report.build_report(synthetic(languages=(2.0, 12.0, 1.0)), **kw))[_claim("languages", 0)] == FAILS
    # every MEMAT interval contains 0 and none could detect 10 points: cannot tell
    blind = _verdicts(report.build_report(synthetic(languages=(20.0, 1.0, 9.0)), **kw))
    assert blind[_claim("languages", 1)] == CANNOT_TELL
    lang = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "languages")]
    assert "| ES | 32.0 | 30.0 | 2.0 | [-10.0, 14.0] | [-13.0, 17.0] | 16.8 | differs | 12 / 20 |" in lang
    assert "| jaccard | 2.250 | [1.250, 3.250] | 9.488 |" in lang


def test_table1_is_the_papers_text_cell_by_cell():
    """Every cell of published.TABLE1 against Table 1 as the paper's text prints it (shared/paper/, beside the
    project in CI): the rows' mean(ci) pairs, English then Catalan, success block then magnitude block."""
    paper = ROOT.parent / "shared" / "paper" / "memat-arxiv-2502.02173.md"
    if not paper.exists():
        pytest.skip(f"{paper} is not here")
    text = paper.read_text(encoding="utf-8")
    block = text[text.index("(Training Language(s))"):text.index("Table 1: Results")]
    cells = {}
    metrics = iter([("ES", "PS", "NS"), ("EM", "PM", "NM")])
    names = None
    for line in block.splitlines():
        parts = line.split("\t")
        if len(parts) == 7 and parts[1].strip().replace("<b>", "").replace("</b>", "") in ("ES", "EM"):
            names = next(metrics)
            continue
        if names is None or len(parts) != 7:
            continue
        row = re.sub(r"\$\((C[CE]\*?)\)\$", r"(\1)", parts[0]).strip()
        nums = [re.findall(r"-?\d+\.\d", p.replace("$", "")) for p in parts[1:]]
        for i, (m, lang) in enumerate((m, l) for m in names for l in ("en", "ca")):
            cells[(row, lang, m)] = tuple(float(x) for x in nums[i])
    assert len(cells) == len(pub.TABLE1) == 84
    assert cells == pub.TABLE1
    assert pub.table1("MEMAT-16 (CE)", "en", "EM") == (43.8, 1.3)
    with pytest.raises(KeyError, match="rows"):
        pub.table1("MEMAT-8 (CC)", "en", "EM")


@pytest.mark.parametrize("index,a,b", [(4, "MEMIT sum", "MEMIT joint"), (5, "MEMAT joint", "MEMIT joint")])
def test_appendix_h_claims_flip_with_table3(tmp_path, index, a, b):
    kw = {"figures_dir": tmp_path, "out_dir": tmp_path}

    def with_gap(gap):
        data = synthetic()
        for r in data["04_memat"]["table3"]:
            r["mean"] = 50.0 + (gap if r["method"] == a else 0.0)
            r["ci"] = 3.0
        return data

    claim = _claim("memat", index)
    assert _verdicts(report.build_report(with_gap(30.0), **kw))[claim] == HOLDS
    assert _verdicts(report.build_report(with_gap(-30.0), **kw))[claim] == FAILS
    data = synthetic()
    data["04_memat"]["table3"] = [r for r in data["04_memat"]["table3"] if r["method"] != a]
    assert _verdicts(report.build_report(data, **kw))[claim] == report.UNMEASURED


# --------------------------------------------------------------------------- notebook 04's development split
def _split_memat(d: dict, paper_delta: float = -6.0, test_sweep: bool = False) -> dict:
    """memat_results in the layout of notebook 04 since the development split: the main row chosen on set A
    (``selection``), the paper's row beside it for CE (``paper_gains``, a loss of ``paper_delta``), every row on set T."""
    d = json.loads(json.dumps(d))
    for r in d["metrics"]:
        r["cases"] = "T"
    paper_metrics = [dict(r, method="MEMAT-16 (paper)", mean=r["mean"] - 12.0 + paper_delta)
                     for r in d["metrics"] if r["method"] == "MEMAT-16" and r["setting"] == "CE"]
    d["metrics"] += paper_metrics
    d["paper_gains"] = [{"setting": "CE", "lang": lang, "metric": m, "mean": paper_delta, "ci": 2.0, "n": 12}
                        for lang in ("ca", "en") for m in ("EM", "PM", "NS")]
    d["memat_rows"] = {"main": "MEMAT-16", "paper": "MEMAT-16 (paper)", "paper_settings": ["CE"]}
    dev = [{"k": k, "share": f"{k / 72:.1%}", "apply_positions": "last", "setting": "CE", "cases": "A", "lang": lang,
            "metric": m, "mean": 30.0 + k, "ci": 4.0, "n": 24} for k in (1, 4, 16) for lang in ("ca", "en") for m in ("EM", "PM")]
    d["selection"] = {"setting": "CE", "cases": "A", "metrics": ["EM", "PM"], "k": 16, "apply_positions": "last",
                      "forced": {"K": False, "APPLY": False},
                      "rule_choice": {"chosen": {"apply_positions": "last"}, "criterion": "best mean",
                                      "scores": [{"apply_positions": "all", "score": -8.5}, {"apply_positions": "last", "score": 2.25}]},
                      "k_choice": {"chosen": {"k": 16}, "criterion": "the highest mean paired gain",
                                   "scores": [{"k": 1, "score": 0.5}, {"k": 16, "score": 2.25}]},
                      "metrics_rows": dev, "gains": []}
    d["dataset"] = {"case_ids": [f"a{i}" for i in range(24)], "case_ids_test": [f"t{i}" for i in range(12)]}
    d["parameters"].update(K=None, PAPER_K=16, TEST_K_SWEEP=test_sweep)
    d["k_sweep"] = [dict(r, apply_positions="last", cases="T") for r in d["k_sweep"] if r["k"] <= 16] if test_sweep else []
    return d


def test_memat_claims_stand_on_the_chosen_row_and_show_the_paper_row(tmp_path):
    kw = dict(figures_dir=tmp_path, out_dir=tmp_path)
    data = synthetic()
    data["04_memat"] = _split_memat(data["04_memat"])
    text = report.build_report(data, **kw)
    claim = _claim("memat", 1)  # the 10% magnitude gain: the chosen row gains 12.25 points, the paper's loses 6
    assert _verdicts(text)[claim] == HOLDS
    chunk = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "memat")]
    assert "main row K = 16 at `last` (chosen on set A), on the test set" in chunk
    assert "The paper's row (MEMAT-16 (paper), 16 heads at every position, no clamp): does not hold" in chunk
    assert "Every row is on set T (12 test cases)" in chunk and "k 16: 2.2" in chunk
    assert "| CE | en | -6.0 ± 2.0 | -6.0 ± 2.0 | -6.0 ± 2.0 | 12 |" in chunk  # the paper's row, paired (NS, EM, PM)
    _check_sourced(text, data)
    # without the paper's row, the verdict is the chosen row's alone
    data["04_memat"]["memat_rows"]["paper"] = None
    assert "The paper's row" not in report.split_sections(report.build_report(data, **kw))[
        next(s.title for s in SECTIONS if s.key == "memat")].split("Paired MEMAT")[0]


def test_the_departure_between_the_main_and_the_paper_row_is_named_with_its_size():
    from memat.report import _departure_lines

    d = _split_memat(synthetic()["04_memat"], paper_delta=-6.0)
    base = {"k": 16, "lr": 0.05, "clamp_norm_factor": None, "apply_positions": "all", "description": "x"}
    d["hparams"] = {"memat": dict(base, apply_positions="last", description="y"), "memat_paper": base}
    d["gains"] = [dict(r, mean=2.0) for r in d["paper_gains"]] + [dict(d["paper_gains"][0], setting="CE*", mean=50.0)]
    text = "\n".join(_departure_lines(d))
    # only apply_positions differs (the description is not a hyperparameter); NS is not a magnitude cell and
    # the recycled CE* row has no paper counterpart: 4 cells, 2.0 against -6.0
    assert '`apply_positions` ("last" against the paper\'s "all")' in text and "description" not in text
    assert "over the 4 magnitude cells" in text and "2.0 points for the main row and -6.0" in text
    assert "a difference of 8.0 points that comes from that choice alone" in text
    d["hparams"]["memat"]["clamp_norm_factor"] = 0.75
    assert "`apply_positions`" in (t := "\n".join(_departure_lines(d))) and "`clamp_norm_factor` (0.75" in t
    assert "these choices alone" in t
    d["hparams"]["memat"] = dict(base)
    assert "no departure separates them" in "\n".join(_departure_lines(d))
    assert _departure_lines({"hparams": {"memat": base}}) == []  # a results file without the paper's preset


def test_k16_is_judged_on_test_cases_only(tmp_path):
    kw = dict(figures_dir=tmp_path, out_dir=tmp_path)
    data = synthetic()
    claim = _claim("ksweep")
    data["04_memat"] = _split_memat(data["04_memat"], test_sweep=False)
    text = report.build_report(data, **kw)
    assert _verdicts(text)[claim] == report.UNMEASURED  # set A chose K: its sweep is not a result
    chunk = report.split_sections(text)[next(s.title for s in SECTIONS if s.key == "ksweep")]
    assert "On set A, the development cases that chose K" in chunk and "On set T" not in chunk
    data["04_memat"] = _split_memat(synthetic()["04_memat"], test_sweep=True)
    text = report.build_report(data, **kw)
    assert _verdicts(text)[claim] == HOLDS  # K = 16 best of 8 and 16 on the test rows
    assert "on the test cases" in text and "On set T, the test cases" in text
    # a results file from before the split says its rows are in-sample
    old = report.build_report(synthetic(), **kw)
    assert "they are in-sample" in old


def test_probe_uncertainty_lines_show_intervals_and_count_maps_above_the_shuffled_control():
    from memat.report import _probe_uncertainty_lines

    def m(acc, lo, hi):
        return {"best": {"accuracy": acc, "lo": lo, "hi": hi}, "topk_accuracy": {"accuracy": acc - 0.1, "lo": lo - 0.1, "hi": hi - 0.1},
                "seeds": {"mean_overlap": 0.5, "random_expectation": 16 / 72}}

    def row(l1, l2, above):
        return {"L1": l1, "L2": l2, "cases": "all", "val cases": 8, "shuffled best": 0.66, "shuffled top-16": 0.6,
                "above shuffled": above}

    d = {"parameters": {"K": 16, "N_BOOT": 1000, "N_SHUFFLES": 5, "SPLIT_SEEDS": [0, 1, 2]},
         "probe_uncertainty": {"table": [row("ca", "en", True), row("en", "ca", False), row("unedited", "en", True)],
                               "maps": {"ca->en": {"all": m(0.9, 0.8, 0.95)}, "en->ca": {"all": m(0.7, 0.5, 0.8)},
                                        "unedited->en": {"all": m(0.7, 0.6, 0.8)}}}}
    text = "\n".join(_probe_uncertainty_lines(d))
    assert "90.0 [80.0, 95.0]" in text and "80.0 [70.0, 85.0]" in text  # best, top-K with their intervals
    assert "1 of 2 edited maps clear the label-shuffled control" in text  # the unedited row is not counted
    assert "the others are not shown" in text
    d["probe_uncertainty"]["table"][1]["above shuffled"] = True
    assert "every edited map separates" in "\n".join(_probe_uncertainty_lines(d))
    assert "re-run notebook 03" in "\n".join(_probe_uncertainty_lines({"table": []}))


def test_an_in_sample_full_run_of_notebook_04_is_shown_but_the_held_out_run_is_judged(committed):
    _, results, _ = committed
    kw = {"figures_dir": FIGURES, "out_dir": ROOT}
    split = results["04_memat"]
    assert split.get("selection"), "the committed CI run of notebook 04 has its development split"
    old = {k: v for k, v in split.items() if k != "selection"}  # as notebook 04 wrote it before the split
    data = {k: results[k] for k in ("03_head_localization",)}
    title = next(s.title for s in SECTIONS if s.key == "memat")
    text = report.build_report({**data, "04_memat": split, "04_memat_full": old}, **kw)
    chunk = report.split_sections(text)[title]
    assert "judged on the CI default run, n = 12 test cases (+ 24 development): the full run is in-sample" in chunk
    assert "held out:" in chunk and "its rows are in-sample and it is not judged" in chunk
    assert "(CI default run, n = 12 test cases (+ 24 development); the full run is in-sample)" in text
    # a full run with its own split is judged as any full run
    text2 = report.build_report({**data, "04_memat": split, "04_memat_full": split}, **kw)
    assert "judged on the full run" in report.split_sections(text2)[title]
    assert not report.in_sample(next(s for s in SECTIONS if s.key == "fig1"), {"04_memat": old})
