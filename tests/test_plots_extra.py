"""Scaling, ITI and learning-rate figures (memat.plots_extra) on synthetic metric tables: what is drawn is
what the table says (line data, band extents, heat-map cells, titles, axis labels and scales)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from memat.plots_extra import iti_heatmap, lr_plot, resources_plot, scaling_plot

SIZES = [1, 10, 100, 1000]


def _scaling_df():
    rows = []
    for method, off in (("MEMIT", 0.0), ("MEMAT", 5.0)):
        for lang, loff in (("en", 0.0), ("ca", -10.0)):
            for metric in ("ES", "PS", "NS", "EM", "PM", "NM"):
                for n in SIZES:
                    rows.append({"n_edits": n, "method": method, "lang": lang, "metric": metric,
                                 "mean": 90 - 10 * np.log10(n) + off + loff, "ci": 1.0 + np.log10(n)})
    return pd.DataFrame(rows)


def _bands(ax):
    return [c for c in ax.collections if c.get_paths()]


def test_scaling_plot():
    df = _scaling_df()
    fig = scaling_plot(df)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 6
    for ax, metric in zip(axes, ["ES", "PS", "NS", "EM", "PM", "NM"]):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "number of edits" and ax.get_ylabel() == f"{metric} (%)"
        assert len(ax.lines) == 4 and len(_bands(ax)) == 4  # 2 methods x 2 languages
        by_label = {l.get_label(): l for l in ax.lines}
        line = by_label["MEMAT (ca)"]
        sub = df[(df.method == "MEMAT") & (df.lang == "ca") & (df.metric == metric)]
        np.testing.assert_allclose(line.get_xdata(), SIZES)
        np.testing.assert_allclose(line.get_ydata(), sub["mean"])
        assert line.get_color() != by_label["MEMIT (ca)"].get_color()
        assert line.get_linestyle() != by_label["MEMAT (en)"].get_linestyle()
    # the band around MEMAT (ca) spans mean +- ci
    band = _bands(axes[0])[3]
    ys = band.get_paths()[0].vertices[:, 1]
    sub = df[(df.method == "MEMAT") & (df.lang == "ca") & (df.metric == "ES")]
    assert ys.min() == pytest.approx((sub["mean"] - sub.ci).min())
    assert ys.max() == pytest.approx((sub["mean"] + sub.ci).max())
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["MEMIT (en)", "MEMIT (ca)", "MEMAT (en)", "MEMAT (ca)"]
    plt.close(fig)
    fig = scaling_plot(df, metrics=("ES", "NS", "XX"))
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        scaling_plot(df.drop(columns="ci"))
    with pytest.raises(ValueError, match="none of the metrics"):
        scaling_plot(df, metrics=("XX",))


def test_scaling_bands_follow_lo_hi_when_given():
    """Bands from the table's lo/hi (asymmetric, as Wilson bounds are) instead of mean +- ci; rows whose
    bounds are missing fall back to mean +- ci."""
    df = _scaling_df()
    df["lo"], df["hi"] = np.maximum(df["mean"] - 2 * df.ci, 0.0), np.minimum(df["mean"] + df.ci / 2, 100.0)
    df.loc[df.metric == "PS", ["lo", "hi"]] = np.nan
    fig = scaling_plot(df)
    axes = [a for a in fig.axes if a.get_visible()]
    for ax, metric, lo_col, hi_col in ((axes[0], "ES", "lo", "hi"), (axes[1], "PS", None, None)):
        band = _bands(ax)[3]  # MEMAT (ca)
        ys = band.get_paths()[0].vertices[:, 1]
        sub = df[(df.method == "MEMAT") & (df.lang == "ca") & (df.metric == metric)]
        lo = sub[lo_col] if lo_col else sub["mean"] - sub.ci
        hi = sub[hi_col] if hi_col else sub["mean"] + sub.ci
        assert ys.min() == pytest.approx(lo.min()) and ys.max() == pytest.approx(hi.max())
    plt.close(fig)


def _iti_df():
    rows = []
    for a in (0.0, 5.0, 15.0):
        for k in (1, 4, 16):
            for lang in ("en", "ca"):
                rows.append({"method": "ITI", "alpha": a, "k": k, "lang": lang, "metric": "ES", "mean": a + k / 10, "ci": 1.0})
    rows.append({"method": "MEMIT", "alpha": np.nan, "k": np.nan, "lang": "ca", "metric": "ES", "mean": 55.25, "ci": 2.0})
    rows.append({"method": "MEMAT", "alpha": np.nan, "k": np.nan, "lang": "ca", "metric": "ES", "mean": 61.04, "ci": 1.5})
    rows.append({"method": "MEMAT", "alpha": np.nan, "k": np.nan, "lang": "en", "metric": "ES", "mean": 99.0, "ci": 0.1})
    return pd.DataFrame(rows)


def test_iti_heatmap():
    df = _iti_df()
    fig = iti_heatmap(df, "ES", "ca")
    ax = fig.axes[0]
    cells = np.asarray(ax.collections[0].get_array()).reshape(3, 3)
    want = np.array([[a + k / 10 for k in (1, 4, 16)] for a in (0.0, 5.0, 15.0)])
    np.testing.assert_allclose(cells, want)  # rows alpha ascending, columns K ascending
    assert not ax.yaxis_inverted()  # first row (smallest alpha) at the bottom: alpha grows upwards
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "5", "15"]
    assert ax.get_xlabel() == "K (heads)" and ax.get_ylabel() == "alpha"
    title = ax.get_title()
    assert "ITI ES (ca)" in title and "MEMIT 55.2 ± 2.0" in title and "MEMAT 61.0 ± 1.5" in title and "99.0" not in title
    assert [t.get_text() for t in ax.texts][:3] == ["0.1", "0.4", "1.6"]  # annotated values
    plt.close(fig)
    fig = iti_heatmap(df[df.method == "ITI"], "ES", "en", references={"MEMIT": 40.0})
    assert "MEMIT 40.0" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="no ITI rows"):
        iti_heatmap(df, "PS", "ca")
    with pytest.raises(ValueError, match="several rows"):
        iti_heatmap(pd.concat([df, df.iloc[:1]]), "ES", "en")


def _lr_df():
    rows = []
    for method in ("MEMIT", "MEMAT"):
        for lr in (1e-3, 1e-2, 1e-1, 1.0):
            for lang in ("en", "ca"):
                for i, metric in enumerate(("ES", "PS", "NS", "HM")):
                    rows.append({"method": method, "lr": lr, "lang": lang, "metric": metric,
                                 "mean": 50 + 10 * i + 5 * np.log10(lr), "ci": 2.0, "n": 10})
    return pd.DataFrame(rows)


def test_lr_plot():
    df = _lr_df()
    fig = lr_plot(df, "MEMAT")
    assert len(fig.axes) == 2
    for ax, lang in zip(fig.axes, ["en", "ca"]):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate" and ax.get_ylabel() in ("%", "")
        assert lang in ax.get_title()
        assert [l.get_label() for l in ax.lines] == ["ES", "PS", "NS", "HM"] and len(_bands(ax)) == 4
        hm = ax.lines[3]
        np.testing.assert_allclose(hm.get_xdata(), [1e-3, 1e-2, 1e-1, 1.0])
        np.testing.assert_allclose(hm.get_ydata(), 80 + 5 * np.log10([1e-3, 1e-2, 1e-1, 1.0]))
        assert hm.get_linestyle() == "--"
    assert "MEMAT" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="pass method="):
        lr_plot(df)
    with pytest.raises(ValueError, match="no rows for method 'PMET'"):
        lr_plot(df, "PMET")
    fig = lr_plot(df[df.method == "MEMIT"].drop(columns="method"), langs=["ca"])
    assert len(fig.axes) == 1
    plt.close(fig)


def test_resources_plot():
    df = pd.DataFrame({"n_edits": [1, 10, 100] * 2, "method": ["MEMIT"] * 3 + ["MEMAT"] * 3,
                       "seconds": [1.0, 3.0, 20.0, 1.5, 4.0, 25.0], "peak_mb": [0.0, 50.0, 400.0, 10.0, 60.0, 420.0]})
    fig = resources_plot(df)
    t, mem = fig.axes
    assert t.get_xscale() == "log" and t.get_yscale() == "log" and mem.get_yscale() == "linear"
    assert t.get_ylabel() == "wall time (s)" and mem.get_ylabel() == "peak memory (MB)"
    np.testing.assert_allclose(mem.lines[1].get_ydata(), [10.0, 60.0, 420.0])
    plt.close(fig)


def test_resources_plot_accepts_the_results_file_columns_and_a_memory_label():
    # the rows notebook 05 writes: wall_s / peak_mem_mb (the names of results/05_scaling.json)
    df = pd.DataFrame({"n_edits": [3, 6, 3, 6], "method": ["MEMIT", "MEMIT", "MEMAT (CE*)", "MEMAT (CE*)"],
                       "wall_s": [2.0, 4.0, 12.0, 14.0], "peak_mem_mb": [5.0, 7.0, 50.0, 51.0]})
    fig = resources_plot(df, mem_label="peak RSS growth (MB)")
    t, mem = fig.axes
    assert mem.get_ylabel() == "peak RSS growth (MB)"
    np.testing.assert_allclose(t.lines[0].get_ydata(), [2.0, 4.0])
    np.testing.assert_allclose(mem.lines[1].get_ydata(), [50.0, 51.0])
    assert [l.get_label() for l in t.lines] == ["MEMIT", "MEMAT (CE*)"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"no time column \(one of \['seconds', 'wall_s'\]"):
        resources_plot(df.drop(columns="wall_s"))
    with pytest.raises(ValueError, match=r"no memory column"):
        resources_plot(df.drop(columns="peak_mem_mb"))


def test_log_x_ticks_at_the_values_when_few():
    df = _scaling_df()
    fig = scaling_plot(df[df.n_edits.isin([1, 10])].assign(n_edits=lambda d: d.n_edits.map({1: 3, 10: 18})))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == [3.0, 18.0] and [t.get_text() for t in ax.get_xticklabels()] == ["3", "18"]
    plt.close(fig)
    many = pd.DataFrame([{"n_edits": n, "method": "MEMIT", "lang": "en", "metric": "ES", "mean": 50.0, "ci": 1.0}
                         for n in [1, 2, 3, 6, 10, 18, 32, 56, 100, 178]])
    fig = scaling_plot(many)
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].get_xticks()) != 10  # matplotlib's own log ticks
    plt.close(fig)
