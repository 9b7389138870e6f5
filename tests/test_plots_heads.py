"""The grid of per-head probe maps (memat.plots.probe_map_grid, Figs. 2 and 8) on synthetic accuracies."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from memat import plots
from memat.heads import ProbeResult


def _result(seed, n_layers=6, n_heads=4, layers=None):
    acc = np.random.default_rng(seed).uniform(0.4, 0.95, (n_layers, n_heads))
    return ProbeResult(accuracy=acc, train_accuracy=np.ones_like(acc), layers=layers or list(range(n_layers)),
                       n_train=40, n_val=20, seed=0)


def test_probe_map_grid_draws_one_panel_per_pair():
    langs = ["ca", "en"]
    results = {(a, b): _result(i) for i, (a, b) in enumerate((a, b) for a in langs for b in langs)}
    notes = {k: f"n={i} cases" for i, k in enumerate(results)}
    fig = plots.probe_map_grid(results, langs, notes=notes, title="t")
    panels = fig.axes[:4]
    assert len(fig.axes) == 5  # four panels and one shared colour bar
    for ax, (pair, res) in zip(panels, results.items()):
        mesh = ax.collections[0]
        # the heat map shows the accuracies as given (rows are layers, first layer at the bottom)
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(res.accuracy.shape), res.accuracy)
        assert not ax.yaxis_inverted()  # the heat map inverts y, the grid inverts it back: first layer at the bottom
        l, h, best = res.best()
        title = ax.get_title()
        assert f"edit {pair[0]}" in title and f"probe {pair[1]}" in title
        assert f"best L{l} H{h}: {best:.2f}" in title and notes[pair] in title
        boxes = [p for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
        assert len(boxes) == 1 and boxes[0].get_xy() == (h, res.layers.index(l))


def test_probe_map_grid_keeps_model_layer_labels_and_empty_panels():
    langs = ["ca", "en"]
    results = {("ca", "en"): _result(0, n_layers=3, layers=[4, 5, 8]), ("en", "ca"): None}
    fig = plots.probe_map_grid(results, langs, notes={("en", "ca"): "1 case kept"})
    ax = fig.axes[0 * 2 + 1]  # row ca, column en
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4", "5", "8"]
    empty = fig.axes[1 * 2 + 0]  # row en, column ca
    assert not empty.axison
    assert any("1 case kept" in t.get_text() for t in empty.texts)


def _long_rows():
    import pandas as pd

    rows = []
    for method, setting, cases in (("unedited", "", "A"), ("MEMIT", "C", "A"), ("MEMAT-16", "CE", "A"), ("MEMAT-16", "CE*", "B")):
        for lang in ("ca", "en"):
            for i, metric in enumerate(("ES", "PS", "EM")):
                rows.append(dict(method=method, setting=setting, cases=cases, lang=lang, metric=metric, mean=10.0 * i + len(method), ci=2.0, n=24))
    return pd.DataFrame(rows)


def test_method_bars_one_bar_per_row_and_panel():
    from memat.plots import method_bars

    fig = method_bars(_long_rows(), ["ES", "EM"], ["ca", "en"], title="t")
    axes = fig.get_axes()
    assert len(axes) == 4 and axes[0].get_title() == "ES (ca)"
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["unedited [A]", "MEMIT C [A]", "MEMAT-16 CE [A]", "MEMAT-16 CE* [B]"]
    assert len(axes[0].patches) == 4 and axes[0].patches[1].get_width() == pytest.approx(5.0)
    plt.close(fig)


def test_k_sweep_lines_and_baseline():
    import pandas as pd

    from memat.plots import k_sweep

    sweep = pd.DataFrame([dict(k=k, lang=l, metric=m, mean=float(k), ci=1.0) for k in (8, 16) for l in ("ca", "en") for m in ("ES", "EM")])
    base = pd.DataFrame([dict(lang="en", metric="ES", mean=3.0, ci=1.0)])
    fig = k_sweep(sweep, base, ["ca", "en"], names=("ES", "EM"))
    ax = fig.get_axes()[0]
    assert ax.get_xlabel() == "heads corrected (k)" and [t for t in ax.get_xticks()] == [8, 16]
    ys = [list(line.get_ydata()) for line in ax.get_lines()]
    assert [8.0, 16.0] in ys and [3.0, 3.0] in ys
    plt.close(fig)
