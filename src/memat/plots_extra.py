"""Figures of the scaling, ITI and learning-rate experiments (MEMAT paper Figs. 4, 10, 5 and 6) and of the
many-language experiment (notebook 08, :func:`language_gain_scatter`), drawn from long tables of metrics
(one row per setting, language and metric, with ``mean`` and ``ci`` half-widths as
:func:`memat.evaluate.summarize` and :func:`memat.lrsearch.summarize_grid` return them). Bands span the
interval's ``lo``..``hi`` columns where the table has them (Wilson bounds for rates, inside [0, 100]), else
``mean +- ci``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .plots import error_extent, plot_bounds

__all__ = ["iti_heatmap", "language_gain_scatter", "lr_plot", "resources_plot", "scaling_plot"]

_LINESTYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P"]


def _need(df: pd.DataFrame, cols: Sequence[str], fn: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{fn}: the metrics table lacks columns {missing} (has {list(df.columns)})")


def _log_x(ax, values, max_ticks: int = 8) -> None:
    """Log x axis; with at most ``max_ticks`` distinct x values, ticks exactly at them with plain labels (a
    narrow log range otherwise gets overlapping minor-tick labels such as ``3x10^0 4x10^0``)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    xs = sorted({float(v) for v in values if np.isfinite(float(v)) and float(v) > 0})
    if 0 < len(xs) <= max_ticks:
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticklabels([f"{x:g}" for x in xs])


def _line_with_band(ax, x, rows: pd.DataFrame, label, color, linestyle="-", marker="o"):
    """The line of ``rows["mean"]`` against ``x`` and its band (:func:`memat.plots.plot_bounds`)."""
    x, mean = np.asarray(x, float), rows["mean"].to_numpy(dtype=float)
    lo, hi = plot_bounds(rows)
    ax.plot(x, mean, linestyle=linestyle, marker=marker, markersize=3.5, color=color, label=label, lw=1.3)
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)


def scaling_plot(
    metrics_df: pd.DataFrame,
    metrics: Sequence[str] = ("ES", "PS", "NS", "EM", "PM", "NM"),
    methods: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
    title: str | None = None,
):
    """Fig. 4: each metric against the number of edits (log x), one panel per metric (success metrics in the
    first row, magnitudes in the second), one colour per method (MEMIT, MEMAT, ...), one line style per
    language, bands of the interval (the notebook passes 68% intervals): ``lo``..``hi`` where the table
    has them (:func:`memat.evaluate.summarize`'s Wilson bounds for rates), else +-``ci``.

    ``metrics_df`` columns: ``n_edits, method, lang, metric, mean, ci`` (optionally ``lo, hi``). Metrics
    absent from the table are skipped. Returns the figure.
    """
    _need(metrics_df, ["n_edits", "method", "lang", "metric", "mean", "ci"], "scaling_plot")
    df = metrics_df[metrics_df.metric.isin(metrics)]
    present = [m for m in metrics if m in set(df.metric)]
    if not present:
        raise ValueError(f"scaling_plot: none of the metrics {list(metrics)} is in the table")
    methods = list(methods or dict.fromkeys(df.method))
    langs = list(langs or dict.fromkeys(df.lang))
    sns.set_theme(style="whitegrid", context="paper")
    colors = dict(zip(methods, sns.color_palette("colorblind", len(methods))))
    ncols = min(3, len(present))
    nrows = -(-len(present) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.7 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, present):
        for mi, method in enumerate(methods):
            for li, lang in enumerate(langs):
                sub = df[(df.metric == metric) & (df.method == method) & (df.lang == lang)].sort_values("n_edits")
                if sub.empty:
                    continue
                _line_with_band(ax, sub.n_edits, sub, f"{method} ({lang})", colors[method],
                                _LINESTYLES[li % len(_LINESTYLES)], _MARKERS[mi % len(_MARKERS)])
        _log_x(ax, df.n_edits)
        ax.set_xlabel("number of edits")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(metric, fontsize=9)
    for ax in list(axes.flat)[len(present):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7, frameon=False)
    fig.suptitle(title or "Scaling the number of edits (bands: intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * ((len(labels) - 1) // 4), 1, 1))
    return fig


def iti_heatmap(
    metrics_df: pd.DataFrame,
    metric: str,
    lang: str,
    references: Mapping[str, float] | None = None,
    ax=None,
    cmap: str = "viridis",
    fmt: str = ".1f",
):
    """Fig. 10: one ITI metric in one language over the grid of ``alpha`` (y, increasing upwards) and
    ``K`` (x, number of heads), annotated.

    ``metrics_df`` columns: ``alpha, k, lang, metric, mean`` (+ ``method``). Rows with a missing alpha and
    a ``method`` (e.g. ``"MEMIT"``, ``"MEMAT"``) are references, noted in the title with their ``ci`` when
    present; ``references`` (``{name: value}``) adds or overrides them. Returns the figure.
    """
    _need(metrics_df, ["alpha", "k", "lang", "metric", "mean"], "iti_heatmap")
    sel = metrics_df[(metrics_df.metric == metric) & (metrics_df.lang == lang)]
    grid = sel[sel.alpha.notna() & sel.k.notna()]
    if grid.empty:
        raise ValueError(f"iti_heatmap: no ITI rows (alpha and k set) for metric {metric!r} in language {lang!r}")
    dup = grid.duplicated(["alpha", "k"])
    if dup.any():
        raise ValueError(f"iti_heatmap: several rows for (alpha, k) {grid[dup][['alpha', 'k']].values.tolist()}")
    refs: dict[str, str] = {}
    if "method" in sel.columns:
        for _, r in sel[sel.alpha.isna()].iterrows():
            ci = r.get("ci", np.nan)
            refs[str(r["method"])] = f"{r['mean']:.1f}" + (f" ± {ci:.1f}" if pd.notna(ci) else "")
    for name, v in (references or {}).items():
        refs[str(name)] = f"{float(v):.1f}"
    table = grid.pivot(index="alpha", columns="k", values="mean").sort_index().sort_index(axis=1)
    table.columns = [int(c) for c in table.columns]
    table.index = pd.Index([f"{float(a):g}" for a in table.index], name="alpha")  # 15, not 15.0
    sns.set_theme(style="white", context="paper")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(3.5, 0.7 * table.shape[1] + 2), max(2.8, 0.45 * table.shape[0] + 1.5)))
    else:
        fig = ax.figure
    sns.heatmap(table, ax=ax, annot=True, fmt=fmt, cmap=cmap, annot_kws={"fontsize": 7},
                cbar_kws={"label": f"{metric} (%)"})
    ax.invert_yaxis()
    ax.set_xlabel("K (heads)")
    ax.set_ylabel("alpha")
    ref_text = " · ".join(f"{k} {v}" for k, v in refs.items())
    ax.set_title(f"ITI {metric} ({lang})" + (f"\n{ref_text}" if ref_text else ""), fontsize=9)
    fig.tight_layout()
    return fig


def lr_plot(
    metrics_df: pd.DataFrame,
    method: str | None = None,
    metrics: Sequence[str] = ("ES", "PS", "NS", "HM"),
    langs: Sequence[str] | None = None,
    title: str | None = None,
):
    """Figs. 5 / 6: ES, PS, NS and their harmonic mean HM against the learning rate (log x), one panel per
    language, bands of +-``ci`` (or ``lo``..``hi`` where the table has them).

    ``metrics_df``: :func:`memat.lrsearch.summarize_grid`'s columns ``lr, lang, metric, mean, ci``; with a
    ``method`` column, only the rows of ``method`` are drawn (required then). Returns the figure.
    """
    _need(metrics_df, ["lr", "lang", "metric", "mean", "ci"], "lr_plot")
    df = metrics_df
    if "method" in df.columns:
        if method is None:
            raise ValueError(f"lr_plot: the table has several methods {sorted(set(df.method))}; pass method=")
        df = df[df.method == method]
        if df.empty:
            raise ValueError(f"lr_plot: no rows for method {method!r} (methods: {sorted(set(metrics_df.method))})")
    df = df[df.metric.isin(metrics)]
    if df.empty:
        raise ValueError(f"lr_plot: none of the metrics {list(metrics)} is in the table")
    langs = list(langs or dict.fromkeys(df.lang))
    sns.set_theme(style="whitegrid", context="paper")
    colors = dict(zip(metrics, sns.color_palette("colorblind", len(metrics))))
    fig, axes = plt.subplots(1, len(langs), figsize=(3.6 * len(langs), 2.9), squeeze=False, sharey=True)
    for ax, lang in zip(axes[0], langs):
        for i, metric in enumerate(metrics):
            sub = df[(df.lang == lang) & (df.metric == metric)].sort_values("lr")
            if sub.empty:
                continue
            _line_with_band(ax, sub.lr, sub, metric, colors[metric],
                            "--" if metric == "HM" else "-", _MARKERS[i % len(_MARKERS)])
        _log_x(ax, df.lr)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("%")
        ax.set_title(f"evaluated in {lang}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title or (f"{method}: learning rate" if method else "learning rate"), fontsize=10)
    fig.tight_layout()
    return fig


#: column names :func:`resources_plot` accepts for the time and the memory, in order of preference
_TIME_COLS = ("seconds", "wall_s")
_MEM_COLS = ("peak_mb", "peak_mem_mb")


def _pick(df: pd.DataFrame, names: Sequence[str], what: str) -> str:
    for n in names:
        if n in df.columns:
            return n
    raise ValueError(f"resources_plot: the table has no {what} column (one of {list(names)}; has {list(df.columns)})")


def resources_plot(resources_df: pd.DataFrame, title: str | None = None, mem_label: str | None = None):
    """Wall time and peak memory (:class:`memat.scaling.Measurement`) against the number of edits (log x; time
    on a log y axis), one line per ``method``.

    Columns: ``n_edits, method``, the time in ``seconds`` (or ``wall_s``) and the memory in ``peak_mb`` (or
    ``peak_mem_mb``; the first name present is used). ``mem_label`` is the memory axis label (default
    ``"peak memory (MB)"``; e.g. ``"peak RSS growth (MB)"`` for a CPU measurement). Returns the figure."""
    _need(resources_df, ["n_edits", "method"], "resources_plot")
    t_col, m_col = _pick(resources_df, _TIME_COLS, "time"), _pick(resources_df, _MEM_COLS, "memory")
    sns.set_theme(style="whitegrid", context="paper")
    methods = list(dict.fromkeys(resources_df.method))
    colors = dict(zip(methods, sns.color_palette("colorblind", len(methods))))
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for ax, col, label in ((axes[0], t_col, "wall time (s)"), (axes[1], m_col, mem_label or "peak memory (MB)")):
        for i, m in enumerate(methods):
            sub = resources_df[resources_df.method == m].sort_values("n_edits")
            ax.plot(sub.n_edits, sub[col], marker=_MARKERS[i % len(_MARKERS)], color=colors[m], label=m, lw=1.3)
        _log_x(ax, resources_df.n_edits)
        if col == t_col:
            ax.set_yscale("log")  # memory stays linear: the CPU figure is a growth, which can be 0
        ax.set_xlabel("number of edits")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(title or "Cost of the edits", fontsize=10)
    fig.tight_layout()
    return fig


def language_gain_scatter(
    table: pd.DataFrame,
    metrics: Sequence[str] = ("ES", "EM"),
    x: str = "share_j1",
    ylabel: str = "edited \u2212 unedited (points)",
    title: str | None = None,
):
    """Notebook 08, Figs. (a) and (d): a per-language gain against the language's share of J = 1 subjects, one
    panel per metric (ES and EM), one labelled point per language coloured by its subjects' script, error bars
    spanning the gain's interval (``lo``..``hi``, else ``mean +- ci``). The edit language (``is_edit_lang``,
    where the table has it) is drawn hollow: its gain is efficacy (or, for MEMAT, the trained language), not
    transfer.

    ``table``: :func:`memat.multilang.transfer_by_language` (edited - unedited) or
    :func:`memat.multilang.memat_gain_by_language` (MEMAT - MEMIT; pass ``ylabel``), columns ``lang, metric,
    mean, ci, script`` and ``x`` (``share_j1`` by default; ``mean_jaccard`` works too). If transfer follows
    subject tokenisation, the points rise from left to right whatever their colour. Returns the figure."""
    _need(table, ["lang", "metric", "mean", "ci", "script", x], "language_gain_scatter")
    present = [m for m in metrics if m in set(table.metric)]
    if not present:
        raise ValueError(f"language_gain_scatter: none of the metrics {list(metrics)} is in the table "
                         f"(has {sorted(set(table.metric))})")
    sns.set_theme(style="whitegrid", context="paper")
    scripts = list(dict.fromkeys(table.script))
    palette = sns.color_palette("colorblind", len(scripts)) if len(scripts) <= 10 else sns.color_palette("husl", len(scripts))
    colors = dict(zip(scripts, palette))
    fig, axes = plt.subplots(1, len(present), figsize=(3.8 * len(present), 3.3), squeeze=False)
    for ax, metric in zip(axes[0], present):
        sub = table[table.metric == metric].reset_index(drop=True)
        dup = sub.lang[sub.lang.duplicated()]
        if len(dup):
            raise ValueError(f"language_gain_scatter: several {metric} rows for languages {sorted(set(dup))}")
        xs, ys = sub[x].to_numpy(dtype=float), sub["mean"].to_numpy(dtype=float)
        err = error_extent(sub)
        edit = sub["is_edit_lang"].to_numpy(dtype=bool) if "is_edit_lang" in sub else np.zeros(len(sub), bool)
        for i, r in sub.iterrows():
            c = colors[r["script"]]
            ax.errorbar(xs[i], ys[i], yerr=err[:, i : i + 1], fmt="none", ecolor=c, elinewidth=0.8, capsize=2, alpha=0.7)
        for is_edit in (False, True):
            for script in scripts:
                m = (sub.script == script).to_numpy() & (edit == is_edit)
                if m.any():
                    ax.scatter(xs[m], ys[m], s=28, zorder=3, edgecolors=colors[script], linewidths=1.2,
                               facecolors="none" if is_edit else [colors[script]],
                               label=None if is_edit else script)
        for i, lang in enumerate(sub.lang):
            ax.annotate(str(lang), (xs[i], ys[i]), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.axhline(0, color="black", lw=0.6)
        if x in ("share_j1", "share_mid", "share_low", "mean_jaccard"):  # in [0, 1]
            ax.set_xlim(-0.05, 1.05)
        ax.set_xlabel({"share_j1": "share of subjects with J = 1", "mean_jaccard": "mean subject Jaccard"}.get(x, x))
        ax.set_ylabel(f"{metric}: {ylabel}")
        ax.set_title(metric, fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if "is_edit_lang" in table and table["is_edit_lang"].astype(bool).any():
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="gray"))
        labels.append("edit language")
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False, title="subject script",
               title_fontsize=7)
    fig.suptitle(title or "Gain per language against its share of J = 1 subjects (bars: intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    return fig
