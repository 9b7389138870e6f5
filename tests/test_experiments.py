"""Notebook glue: Jaccard groups and stratified selection, atomic outputs, the Fig. 1 drawing."""
import itertools
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from memat import experiments, plots
from memat.data import EditCase, LangView


class _Tok:
    """Whitespace 'tokenizer': one id per distinct word."""

    def __init__(self):
        self.vocab = {}

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]
        return {"input_ids": ids}

    def encode(self, text, add_special_tokens=True):
        return self(text)["input_ids"]


def _case(i, s_ca, s_en):
    return EditCase(i, {"ca": LangView(s_ca, "a", "b", "{} x"), "en": LangView(s_en, "a", "b", "{} x")})


def test_jaccard_groups_and_stratified_selection():
    cases = [_case(i, f"Joan {i}", f"Joan {i}") for i in range(6)]  # J = 1
    cases += [_case(10 + i, f"Nova York {i}", f"New York {i}") for i in range(6)]  # J = 2/4
    cases += [_case(20 + i, f"Londres{i}", f"London{i}") for i in range(6)]  # J = 0
    sel, table = experiments.select_by_jaccard(cases, "ca", "en", _Tok(), 6, seed=1)
    assert len(sel) == 6 and [c.case_id for c in sel] == sorted(c.case_id for c in sel)  # input order kept
    assert table.group.value_counts().to_dict() == {"J=1": 3, "J<=0.5": 3}
    assert set(table.jaccard[table.group == "J<=0.5"]) <= {0.0, 0.5}
    again, _ = experiments.select_by_jaccard(cases, "ca", "en", _Tok(), 6, seed=1)
    assert [c.case_id for c in again] == [c.case_id for c in sel]
    with pytest.raises(ValueError, match="only 6 cases in group J=1"):
        experiments.select_by_jaccard(cases, "ca", "en", _Tok(), 14)


def test_write_results_is_json_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "project_root", lambda: tmp_path)
    import numpy as np

    path = experiments.write_results("x", {"a": np.float32(1.5), "b": float("nan"), "t": pd.DataFrame({"c": [1, 2]})})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None, "t": [{"c": 1}, {"c": 2}]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left


def test_crosslingual_bars_draw_the_table():
    rows = [dict(group=g, lang=l, model=m, metric=k, mean=10.0 * (i % 9) + 5, ci=2.0, n=4)
            for i, (g, l, m, k) in enumerate(itertools.product(["all", "J=1"], ["ca", "en"], ["unedited", "MEMIT"], ["ES", "PS", "NS"]))]
    table = pd.DataFrame(rows)
    fig = plots.crosslingual_bars(table, "ca", "en")
    axes = fig.axes
    assert len(axes) == 4
    ax = axes[3]  # J=1, evaluated in en
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)
    want = sorted(table[(table.group == "J=1") & (table.lang == "en")]["mean"].round(6))
    assert heights == want


def test_crosslingual_bars_draw_lo_hi_when_given():
    """Asymmetric error bars from the Wilson bounds: a bar at 100% still has a lower whisker; rows without
    bounds fall back to mean +- ci."""
    from matplotlib.collections import LineCollection

    rows = [dict(group="all", lang=l, model=m, metric=k, mean=100.0 if k == "ES" else 50.0, ci=0.0 if k == "ES" else 4.0,
                 lo=72.25 if k == "ES" else (float("nan") if k == "NS" else 40.0), hi=100.0 if k == "ES" else (float("nan") if k == "NS" else 58.0), n=10)
            for l in ("ca", "en") for m in ("unedited", "MEMIT") for k in ("ES", "PS", "NS")]
    fig = plots.crosslingual_bars(pd.DataFrame(rows), "ca", "en")
    ax = fig.axes[0]
    spans = sorted({(round(min(seg[:, 1]), 6), round(max(seg[:, 1]), 6))
                    for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()})
    assert spans == [(40.0, 58.0), (46.0, 54.0), (72.25, 100.0)]  # PS: lo/hi; NS: mean +- ci; ES: Wilson
    plt.close(fig)


def test_atomic_files_get_plain_permissions(tmp_path):
    import os
    import stat

    from memat.io import atomic_write_text

    umask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


# --------------------------------------------------------------------------- magnitude_verdict
def _gain(setting, lang, metric, mean, ci=1.0):
    return {"setting": setting, "lang": lang, "metric": metric, "mean": mean, "ci": ci, "n": 24}


EDIT_LANG = {"CC": "ca", "CE": "ca", "EE": "en", "CE*": "ca"}


@pytest.mark.parametrize("cross, verdict", [
    ([5.0, 5.0, 5.0, 0.0], "appear"),  # 3 of 4 cross-lingual cells up, none down
    ([5.0, 5.0, 0.0, 0.0], "appear"),  # exactly half
    ([5.0, 5.0, 5.0, -5.0], "appear only in part"),  # one significant loss
    ([5.0, 0.0, 0.0, 0.0], "appear only in part"),
    ([5.0, -5.0, -5.0, 0.0], "do not appear"),  # the measured pattern: 1 up, 2 down
    ([0.0, 0.0, 0.0, 0.0], "do not appear"),
    ([0.5, 0.5, 0.5, 0.5], "do not appear"),  # positive means inside their intervals
])
def test_magnitude_verdict_counts_only_significant_cross_lingual_cells(cross, verdict):
    from memat.experiments import crosslingual_gain_verdict as magnitude_verdict

    rows = [_gain("CC", "en", "EM", cross[0]), _gain("CC", "en", "PM", cross[1]),
            _gain("CE", "en", "EM", cross[2]), _gain("CE", "en", "PM", cross[3]),
            # edit-language cells and other metrics never enter the cross-lingual count
            _gain("CC", "ca", "EM", -30.0), _gain("CE", "ca", "PM", 30.0), _gain("CC", "en", "ES", -50.0)]
    out = magnitude_verdict(rows, EDIT_LANG, "tiny", 24)
    assert out["verdict"] == verdict
    assert out["cross_lingual_tests"] == 4 and out["n_tests"] == 6
    assert out["cross_lingual_gains"] == sum(x - 1.0 > 0 for x in cross)
    assert out["cross_lingual_losses"] == sum(x + 1.0 < 0 for x in cross)
    assert f" {verdict} on tiny with 24 cases" in out["statement"]
    assert {"setting": "CE", "lang": "ca", "metric": "PM", "mean": 30.0, "ci": 1.0} in out["significant_gains"]
    assert {"setting": "CC", "lang": "ca", "metric": "EM", "mean": -30.0, "ci": 1.0} in out["significant_losses"]


def test_magnitude_verdict_reads_edit_languages_from_the_setting_names():
    from memat.experiments import crosslingual_gain_verdict as magnitude_verdict

    rows = [_gain("CC", "en", "EM", 5.0), _gain("CE", "en", "PM", -5.0), _gain("EE", "ca", "EM", 5.0),
            _gain("CE*", "ca", "PM", 5.0), _gain("CE*", "en", "EM", 0.0)]
    assert magnitude_verdict(rows, None, "tiny", 24) == magnitude_verdict(rows, EDIT_LANG, "tiny", 24)
    # C and E stand for the run's languages
    es = [dict(r, lang={"ca": "es"}.get(r["lang"], r["lang"])) for r in rows]
    out = magnitude_verdict(es, None, "tiny", 24, langs=("es", "en"))
    assert out["cross_lingual_tests"] == 4 and out["cross_lingual_gains"] == 2
    with pytest.raises(ValueError, match=r"setting 'CX': expected two letters"):
        magnitude_verdict([_gain("CX", "ca", "EM", 1.0)], None, "tiny", 24)


def test_magnitude_verdict_bad_input_names_the_problem():
    from memat.experiments import crosslingual_gain_verdict as magnitude_verdict

    with pytest.raises(ValueError, match=r"no edit language for settings \['EC'\]"):
        magnitude_verdict([_gain("EC", "ca", "EM", 1.0)], EDIT_LANG, "tiny", 24)
    with pytest.raises(ValueError, match="lack columns"):
        magnitude_verdict([{"setting": "CC", "lang": "en", "metric": "EM"}], EDIT_LANG, "tiny", 24)
    with pytest.raises(ValueError, match="no"):
        magnitude_verdict([_gain("CC", "en", "ES", 1.0)], EDIT_LANG, "tiny", 24)


def test_the_old_name_of_the_crosslingual_gain_count_is_the_same_function():
    from memat import experiments

    assert experiments.magnitude_verdict is experiments.crosslingual_gain_verdict


def _dev_gains(em_ca, em_en, pm=0.0):
    return [{"lang": "ca", "metric": "EM", "mean": em_ca}, {"lang": "en", "metric": "EM", "mean": em_en},
            {"lang": "ca", "metric": "PM", "mean": pm}, {"lang": "en", "metric": "PM", "mean": pm},
            {"lang": "ca", "metric": "ES", "mean": 99.0}]


def test_choose_on_dev_takes_the_highest_mean_gain_and_ignores_other_metrics():
    from memat.experiments import choose_on_dev

    cands = [({"k": 1}, _dev_gains(-10, 2)), ({"k": 4}, _dev_gains(3, 5)), ({"k": 16}, _dev_gains(8, -20))]
    out = choose_on_dev(cands)
    assert out["chosen"] == {"k": 4}
    assert [s["score"] for s in out["scores"]] == pytest.approx([-2.0, 2.0, -3.0])  # (EM ca + EM en + 2 PM) / 4
    assert choose_on_dev(cands, metrics=("EM",), langs=("ca",))["chosen"] == {"k": 16}
    assert choose_on_dev(cands, metrics=("ES",))["chosen"] == {"k": 1}  # all equal: the first


def test_choose_on_dev_breaks_ties_to_the_earlier_candidate_and_names_bad_input():
    from memat.experiments import choose_on_dev

    tie = [({"k": 16, "apply_positions": "all"}, _dev_gains(1, 1)), ({"k": 2, "apply_positions": "last"}, _dev_gains(1, 1))]
    assert choose_on_dev(tie)["chosen"] == {"k": 16, "apply_positions": "all"}
    with pytest.raises(ValueError, match="no candidates"):
        choose_on_dev([])
    with pytest.raises(ValueError, match=r"\{'k': 3\}.*no finite"):
        choose_on_dev([({"k": 3}, [{"lang": "ca", "metric": "ES", "mean": 1.0}])])
    with pytest.raises(ValueError, match="lack columns"):
        choose_on_dev([({"k": 3}, [{"lang": "ca", "mean": 1.0}])])


def test_memat_choice_takes_the_given_value_then_notebook_04s_then_the_presets():
    from memat.experiments import memat_choice
    from memat.memat import load_memat_hparams

    preset = load_memat_hparams("gemma3-270m")  # k 16, apply_positions "all"
    r04 = {"selection": {"k": 4, "apply_positions": "last", "cases": "A"}}
    got = memat_choice(r04, None, None, preset)
    assert (got["k"], got["apply_positions"]) == (4, "last") and "notebook 04" in got["source"]["k"]
    got = memat_choice(r04, 16, None, preset)
    assert (got["k"], got["apply_positions"]) == (16, "last") and got["source"]["k"] == "given"
    old = memat_choice({"parameters": {"K": 16}}, None, None, preset)  # a results file from before the split
    assert (old["k"], old["apply_positions"]) == (preset.k, preset.apply_positions)
    assert old["source"] == {"k": "the MEMAT preset", "apply_positions": "the MEMAT preset"}
    with pytest.raises(ValueError, match="APPLY"):
        memat_choice(r04, None, "everywhere", preset)
    with pytest.raises(ValueError, match="K: the number of heads"):
        memat_choice(None, 0, None, preset)
    with pytest.raises(ValueError, match="no k"):
        memat_choice(None)


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from memat.io import atomic_dir

    dest = tmp_path / "ckpt"
    with atomic_dir(dest) as tmp:
        (tmp / "a.bin").write_bytes(b"1")
        assert not dest.exists()  # nothing at the destination until the block ends
    assert sorted(p.name for p in dest.iterdir()) == ["a.bin"]
    with pytest.raises(RuntimeError):
        with atomic_dir(dest) as tmp:
            (tmp / "b.bin").write_bytes(b"2")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in dest.iterdir()) == ["a.bin"]  # the old folder stands
    with atomic_dir(dest) as tmp:
        (tmp / "c.bin").write_bytes(b"3")
    assert sorted(p.name for p in dest.iterdir()) == ["c.bin"]  # replaced whole, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folder left
