"""Figures of the paper, drawn with seaborn from the tables of :mod:`memat.evaluate`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["crosslingual_bars", "jaccard_histograms", "probe_map_grid", "method_bars", "k_sweep", "plot_bounds"]


def plot_bounds(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The ``(lo, hi)`` bounds to draw for each row of a metrics table: its ``lo``/``hi`` columns where
    present and finite (Wilson bounds of :func:`memat.evaluate.summarize` for rates), else ``mean -+ ci``
    (``ci`` nan counts as 0: no bar). Tables written before ``lo``/``hi`` existed draw as they did."""
    mean = rows["mean"].to_numpy(dtype=float)
    ci = np.nan_to_num(rows["ci"].to_numpy(dtype=float), nan=0.0) if "ci" in rows else np.zeros_like(mean)
    lo, hi = mean - ci, mean + ci
    for name, fallback in (("lo", lo), ("hi", hi)):
        if name in rows:
            given = rows[name].to_numpy(dtype=float)
            fallback[np.isfinite(given)] = given[np.isfinite(given)]
    return lo, hi


def error_extent(rows: pd.DataFrame) -> np.ndarray:
    """``yerr``/``xerr`` for matplotlib: a 2 x n array of the distances from ``mean`` down to ``lo`` and up
    to ``hi`` (:func:`plot_bounds`; asymmetric for Wilson bounds, never negative)."""
    mean = rows["mean"].to_numpy(dtype=float)
    lo, hi = plot_bounds(rows)
    return np.nan_to_num(np.clip(np.vstack([mean - lo, hi - mean]), 0, None), nan=0.0)


def crosslingual_bars(table: pd.DataFrame, l1: str, l2: str, metrics=("ES", "PS", "NS"), title: str | None = None):
    """Fig. 1: success metrics before/after an L1 edit, in L1 and L2, per subject-Jaccard group.

    ``table`` has columns group, lang, model ("unedited"/"MEMIT"), metric, mean, ci, and optionally lo/hi
    (the interval's bounds, e.g. Wilson: the bars then are asymmetric and stay within [0, 100]).
    """
    sns.set_theme(style="whitegrid", context="paper")
    t = table[table.metric.isin(metrics)]
    groups = list(dict.fromkeys(t.group))
    fig, axes = plt.subplots(len(groups), 2, figsize=(7.5, 2.6 * len(groups)), sharey=True, squeeze=False)
    for r, g in enumerate(groups):
        for c, lang in enumerate((l1, l2)):
            ax = axes[r][c]
            sub = t[(t.group == g) & (t.lang == lang)]
            order = list(metrics)
            hue_order = list(dict.fromkeys(sub.model))
            sns.barplot(data=sub, x="metric", y="mean", hue="model", order=order, hue_order=hue_order, ax=ax,
                        palette="colorblind", errorbar=None)
            # error bars: the 95% intervals over cases (lo..hi when given, else mean +- ci)
            bars = list(ax.containers)[: len(hue_order)]  # errorbar() below adds containers of its own
            for m, cont in zip(hue_order, bars):
                vals = sub[sub.model == m].set_index("metric").reindex(order)
                xs = [bar.get_x() + bar.get_width() / 2 for bar in cont]
                ax.errorbar(xs, vals["mean"], yerr=error_extent(vals), fmt="none", ecolor="black", capsize=2, lw=0.8)
            n = int(sub.n.max()) if len(sub) else 0
            ax.set_title(f"evaluated in {lang} · {g} (n={n})", fontsize=9)
            ax.set_xlabel("")
            ax.set_ylabel("%" if c == 0 else "")
            ax.set_ylim(0, 105)
            if r or c:
                ax.get_legend().remove() if ax.get_legend() else None
            else:
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title or f"MEMIT edits in {l1}, evaluated in {l1} and {l2}", fontsize=10)
    fig.tight_layout()
    return fig


def jaccard_histograms(frame: pd.DataFrame, columns=("subject", "relation", "target_new", "target_true"),
                       l1: str = "en", l2: str = "ca", tokenizer_name: str = "", bins: int = 20):
    """Fig. 7: histograms of the token-set Jaccard between the two languages' subjects, relations and
    targets (``frame`` from :func:`memat.data.quality.jaccard_frame`)."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(columns), figsize=(2.4 * len(columns), 2.6), sharey=True, squeeze=False)
    for ax, col in zip(axes[0], columns):
        sns.histplot(frame[col], bins=bins, binrange=(0, 1), ax=ax, color=sns.color_palette("colorblind")[0])
        ax.set_title(f"{col.replace('_', ' ')} (mean {frame[col].mean():.2f})", fontsize=9)
        ax.set_xlabel("Jaccard")
        ax.set_xlim(0, 1)
    axes[0][0].set_ylabel("cases")
    tk = f", {tokenizer_name} tokenizer" if tokenizer_name else ""
    fig.suptitle(f"Token-set Jaccard {l1}-{l2} (n={len(frame)}{tk})", fontsize=10)
    fig.tight_layout()
    return fig


def probe_map_grid(results, langs, notes=None, title: str | None = None, vmin: float = 0.5, vmax: float = 1.0):
    """Figs. 2 and 8: per-head probe accuracy maps, one panel per (L1, L2) pair.

    Rows are the edit language L1, columns the probed language L2, both in the order of ``langs``;
    ``results`` maps ``(l1, l2)`` to a :class:`memat.heads.ProbeResult` (a missing pair or None gives an
    empty panel, e.g. when the refinement left too few cases). Each panel is drawn like
    :func:`memat.heads.plot_probe_map` (heads on x, layers on y with the first at the bottom, the best
    head outlined in red) with one colour bar for the whole grid. ``notes`` maps ``(l1, l2)`` to a line
    added to that panel's title (e.g. the number of cases kept). Returns the figure.
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    langs = list(langs)
    notes = dict(notes or {})
    shapes = [np.asarray(r.accuracy).shape for r in results.values() if r is not None]
    n_l, n_h = shapes[0] if shapes else (1, 1)
    n = len(langs)
    pw, ph = max(2.2, 0.38 * n_h + 1.2), max(2.4, 0.2 * n_l + 1.2)
    fig, axes = plt.subplots(n, n, figsize=(pw * n + 1.0, ph * n + 0.6), squeeze=False)
    cmap = "viridis"
    for r, l1 in enumerate(langs):
        for c, l2 in enumerate(langs):
            ax = axes[r][c]
            res = results.get((l1, l2))
            note = notes.get((l1, l2))
            head = f"edit {l1} \u2192 probe {l2}"
            if res is None:
                ax.set_axis_off()
                ax.text(0.5, 0.5, "no probe" + (f"\n{note}" if note else ""), ha="center", va="center",
                        transform=ax.transAxes, fontsize=8)
                ax.set_title(head, fontsize=9)
                continue
            acc = np.asarray(res.accuracy, dtype=float)
            sns.heatmap(acc, ax=ax, vmin=vmin, vmax=vmax, cmap=cmap, cbar=False,
                        xticklabels=list(range(acc.shape[1])), yticklabels=list(res.layers))
            ax.invert_yaxis()
            ax.tick_params(labelsize=7)
            ax.set_xlabel("head" if r == n - 1 else "", fontsize=8)
            ax.set_ylabel("layer" if c == 0 else "", fontsize=8)
            bl, bh, best = res.best()
            i = list(res.layers).index(bl)
            ax.add_patch(Rectangle((bh, i), 1, 1, fill=False, edgecolor="red", lw=2))
            ax.text(bh + 0.5, i + 0.5, f"{best:.2f}", ha="center", va="center", color="red", fontsize=7,
                    fontweight="bold")
            sub = f"best L{bl} H{bh}: {best:.2f}" + (f", {note}" if note else "")
            ax.set_title(f"{head}\n{sub}", fontsize=8)
    fig.suptitle(title or "validation accuracy of the per-head probes", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.92, 0.15, 0.02, 0.7))
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(vmin, vmax))
    fig.colorbar(sm, cax=cax, label="validation accuracy")
    return fig


def _row_label(r) -> str:
    method, setting, cases = r.get("method", ""), r.get("setting", ""), r.get("cases", "")
    lab = f"{method} {setting}".strip()
    return f"{lab} [{cases}]" if cases else lab


def method_bars(metrics: pd.DataFrame, names, langs, title: str | None = None):
    """Tables 1-2 as bars: one panel per (language, metric), one bar per row (method, setting, case
    set) with its 95% interval. ``metrics`` holds long rows: method, setting, cases, lang, metric, mean, ci
    (and optionally lo/hi, drawn instead of mean +- ci where given)."""
    sns.set_theme(style="whitegrid", context="paper")
    t = metrics[metrics.metric.isin(list(names)) & metrics.lang.isin(list(langs))].copy()
    t["row"] = [_row_label(r) for r in t.to_dict("records")]
    rows = list(dict.fromkeys(t.row))
    colors = dict(zip(rows, sns.color_palette("colorblind", len(rows)) if len(rows) <= 10 else sns.color_palette("husl", len(rows))))
    fig, axes = plt.subplots(len(langs), len(names), figsize=(1.9 * len(names) + 1.5, 0.28 * len(rows) * len(langs) + 1.2),
                             squeeze=False)
    for i, lang in enumerate(langs):
        for j, name in enumerate(names):
            ax = axes[i][j]
            sub = t[(t.lang == lang) & (t.metric == name)].set_index("row").reindex(rows)
            ax.barh(range(len(rows)), sub["mean"], xerr=error_extent(sub), color=[colors[r] for r in rows],
                    error_kw={"lw": 0.7, "capsize": 1.5})
            ax.axvline(0, color="black", lw=0.6)
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
            ax.tick_params(axis="y", labelleft=j == 0)
            ax.set_title(f"{name} ({lang})", fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_xlabel("%", fontsize=7)
    fig.suptitle(title or "success and magnitude per method", fontsize=9)
    fig.tight_layout()
    return fig


def k_sweep(sweep: pd.DataFrame, baseline: pd.DataFrame | None, langs, names=("ES", "PS", "EM", "PM"), title: str | None = None):
    """Fig. 9: MEMAT metrics against the number of corrected heads ``k`` (lines with 95% bands), one panel
    per metric, one line per language; ``baseline`` (long rows of the uncorrected MEMIT edit) as dashed
    horizontal lines. Bands span lo..hi where the table has them, else mean +- ci."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.6), squeeze=False)
    pal = dict(zip(langs, sns.color_palette("colorblind", len(langs))))
    for ax, name in zip(axes[0], names):
        for lang in langs:
            sub = sweep[(sweep.metric == name) & (sweep.lang == lang)].sort_values("k")
            ax.plot(sub["k"], sub["mean"], marker="o", color=pal[lang], label=f"MEMAT ({lang})")
            lo, hi = plot_bounds(sub)
            ax.fill_between(sub["k"], lo, hi, color=pal[lang], alpha=0.15)
            if baseline is not None:
                b = baseline[(baseline.metric == name) & (baseline.lang == lang)]
                if len(b):
                    ax.axhline(float(b["mean"].iloc[0]), color=pal[lang], ls="--", lw=0.9, label=f"MEMIT ({lang})")
        ax.set_xlabel("heads corrected (k)")
        ax.set_ylabel("%" if ax is axes[0][0] else "")
        ax.set_title(name, fontsize=9)
        ks = sorted(set(sweep["k"]))
        if ks and ks[0] > 0 and ks[-1] / ks[0] >= 8:  # 1, 2, 4, 8, 16: evenly spaced on a log axis
            ax.set_xscale("log", base=2)
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title or "MEMAT against the number of corrected heads", fontsize=10)
    fig.tight_layout()
    return fig
