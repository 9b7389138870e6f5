"""The paper's published numbers that ``paper.md`` sets beside ours, each with where it comes from.

Read from the paper's text (arXiv:2502.02173v1, as ``shared/paper/memat-arxiv-2502.02173.md`` holds it): the
abstract, the sections' numbers (§4's data set size, §5.2's probe accuracy, §7's timings, Appendix B's
learning rates) and Table 1 in full, every cell with its 95% interval (:data:`TABLE1`). Table 2 (accuracy)
and Table 3 (both languages) have only their captions in that text, and the figures are images: they are
listed in :data:`NOT_TRANSCRIBED`, where the report prints "not transcribed" rather than a number nobody
checked. To add a number, add an entry with its table/figure, row and column.

The report formats ``value`` with the same function as our own numbers; ``text`` is how the paper
words it.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Published", "PUBLISHED", "NOT_TRANSCRIBED", "TABLE1", "published", "table1"]


@dataclass(frozen=True)
class Published:
    key: str
    value: float
    unit: str  # "%", "points", "cases", "minutes", "hours", "edits", "heads"
    text: str  # the paper's wording
    where: str  # table/figure, row, column, or the passage
    source: str  # where we read it
    verified: bool  # True: read in the paper's text; False: quoted by the project brief, passage not re-read


_ABSTRACT = "arXiv:2502.02173v1, abstract (https://arxiv.org/html/2502.02173)"
_TEXT = "arXiv:2502.02173v1, the text in shared/paper/memat-arxiv-2502.02173.md"

PUBLISHED: tuple[Published, ...] = (
    Published(
        key="magnitude_gain",
        value=10,
        unit="%",
        text="MEMAT delivers a remarkable 10% increase in magnitude metrics",
        where="abstract",
        source=_ABSTRACT,
        verified=True,
    ),
    Published(
        key="dataset_kept",
        value=11229,
        unit="cases",
        text="a reduced version of the CounterFact dataset in English and Catalan containing 11,229 samples",
        where="§4 Dataset and Evaluation (Fig. 7 shows its Jaccard histograms)",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="probe_peak_accuracy",
        value=80,
        unit="%",
        text="some attention heads consistently achieve accurate classification performances near 80%",
        where="§5.2 Locating Knowledge with Heads, on Fig. 2 (the maps themselves are images)",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="heads_training_minutes",
        value=25,
        unit="minutes",
        text="the 25 GPU minutes required for training 16 attention heads corrections",
        where="§7 Reproducibility (AMD Radeon Instinct MI50, 32 GB), Aguila-7B",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="memit_hours_1000",
        value=3,
        unit="hours",
        text="introducing 1,000 samples through MEMIT takes 3 GPU hours",
        where="§7 Reproducibility, Aguila-7B",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="memit_edits_for_cost",
        value=1000,
        unit="edits",
        text="1,000 MEMIT edits (the batch of the cost comparison)",
        where="§7 Reproducibility",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="heads_for_cost",
        value=16,
        unit="heads",
        text="16 heads (the K of the cost comparison)",
        where="§7 Reproducibility",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="memit_lr",
        value=0.2,
        unit="learning rate",
        text="we find a stronger effect when changing the learning rate, which we consider optimal at lr = 0.2 "
             "[MEMIT]",
        where="Appendix B Optimization of the Learning Rate, Aguila-7B",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="pmet_lr",
        value=1e4,
        unit="learning rate",
        text="and lr = 10^4 [PMET] respectively (as printed: '10<sup>4</sup>'; a lost minus sign, 10^-4, is as likely)",
        where="Appendix B Optimization of the Learning Rate, Aguila-7B",
        source=_TEXT,
        verified=True,
    ),
    Published(
        key="table1_edits",
        value=1000,
        unit="edits",
        text="inserting 1,000 factual associations",
        where="Table 1 (caption)",
        source=_TEXT,
        verified=True,
    ),
)

#: Table 1 of the paper (Aguila-7B, 1,000 edits in Catalan; success and magnitude metrics in English and
#: Catalan), every cell as printed: ``(row, lang, metric) -> (mean, 95% interval half-width)``. Rows as the
#: paper names them; "(CAT)" is the training language of PMET/MEMIT, MEMAT-16's setting is (L1 L2) with
#: ``*`` for recycled heads.
TABLE1_ROWS: tuple[str, ...] = ("Aguila-7B Baseline", "PMET (CAT)", "MEMIT (CAT)", "MEMAT-16 (CC)", "MEMAT-16 (CE)",
                                "MEMAT-16 (CC*)", "MEMAT-16 (CE*)")
_T1 = {  # metric: rows of (English, Catalan) as (mean, ci) pairs, in TABLE1_ROWS order
    "ES": [(26.5, 1.2, 25.5, 1.2), (80.4, 2.5, 95.6, 1.3), (88.8, 0.7, 97.4, 0.4), (90.3, 1.1, 97.8, 0.5),
           (90.7, 1.0, 97.6, 0.6), (89.8, 1.1, 97.6, 0.6), (89.5, 1.1, 97.3, 0.6)],
    "PS": [(30.4, 1.2, 31.6, 1.2), (72.5, 2.5, 81.3, 2.3), (84.0, 0.8, 88.3, 0.7), (86.2, 1.1, 89.6, 1.0),
           (87.0, 1.1, 89.8, 1.0), (85.7, 1.1, 90.1, 1.0), (85.7, 1.1, 89.1, 1.0)],
    "NS": [(73.9, 0.9, 72.2, 0.8), (73.9, 2.1, 74.3, 1.8), (71.8, 0.8, 70.5, 0.7), (72.7, 1.2, 71.8, 1.0),
           (73.4, 1.1, 72.4, 1.0), (73.7, 1.1, 72.7, 1.0), (73.1, 1.2, 71.8, 1.0)],
    "EM": [(-6.7, 0.4, -7.4, 0.5), (25.3, 2.1, 62.9, 2.0), (31.9, 0.8, 67.0, 0.8), (39.0, 1.3, 72.8, 1.2),
           (43.8, 1.3, 73.3, 1.2), (42.2, 1.4, 74.8, 1.2), (38.5, 1.3, 70.6, 1.2)],
    "PM": [(-5.5, 0.4, -6.2, 0.5), (23.2, 2.2, 31.9, 2.2), (22.2, 0.6, 40.4, 0.8), (27.8, 1.1, 47.9, 1.4),
           (32.2, 1.1, 50.3, 1.4), (31.6, 1.2, 51.1, 1.4), (28.1, 1.1, 46.3, 1.4)],
    "NM": [(7.6, 0.3, 8.3, 0.4), (7.6, 0.7, 8.6, 0.8), (6.6, 0.3, 7.3, 0.3), (8.3, 0.5, 9.1, 0.6),
           (9.7, 0.5, 9.7, 0.6), (9.9, 0.5, 10.6, 0.6), (8.7, 0.5, 9.2, 0.5)],
}
TABLE1: dict[tuple[str, str, str], tuple[float, float]] = {
    (row, lang, metric): (vals[0], vals[1]) if lang == "en" else (vals[2], vals[3])
    for metric, rows in _T1.items() for row, vals in zip(TABLE1_ROWS, rows) for lang in ("en", "ca")
}
#: Where :data:`TABLE1` comes from.
TABLE1_SOURCE = ("Table 1 (§6 MEMAT Method): 'Results of English and Catalan Efficacy, Generalization and Specificity "
                 "prompts over the success and magnitude metrics in both languages ... when inserting 1,000 factual "
                 "associations ... The 95% confidence intervals are in parenthesis'")


def table1(row: str, lang: str, metric: str) -> tuple[float, float]:
    """The paper's Table 1 cell ``(mean, 95% half-width)``; a KeyError names the rows, languages and metrics."""
    try:
        return TABLE1[(row, lang, metric)]
    except KeyError:
        raise KeyError(f"no Table 1 cell {(row, lang, metric)}; rows {list(TABLE1_ROWS)}, languages ['en', 'ca'], "
                       f"metrics {list(_T1)}") from None


#: Figures and tables whose numbers are not transcribed (the report says so instead of guessing).
NOT_TRANSCRIBED: dict[str, str] = {
    "Fig. 7": "Jaccard histograms of the translated data set (only the number of kept cases is transcribed)",
    "Fig. 1": "cross-lingual MEMIT bars (ES/PS/NS per Jaccard group)",
    "Figs. 2/8": "per-head probe accuracy maps (only the ~80% peak is transcribed)",
    "Tables 1-2": "Table 2's cells (the accuracy metrics EA/PA/NA; only its caption is in the text)",
    "Table 3": "joint vs summed bilingual editing (only its caption is in the text)",
    "Fig. 9": "metrics against the number of heads K",
    "Fig. 4": "metrics against the number of edits (only the cost sentence is transcribed)",
    "Fig. 10": "ITI ablation",
    "Figs. 5/6": "learning-rate sweeps of MEMIT and PMET",
    "§10 Limitations": "no number: the paper ran English and Catalan only and says its findings 'may be limited' "
                       "beyond them",
    "§6 (b), eq. 6": "no number: the paper corrects the probes' top-K heads at every position and runs no control "
                     "of either choice",
}


def published(key: str) -> Published:
    """The published number ``key``; a KeyError names the known keys."""
    for p in PUBLISHED:
        if p.key == key:
            return p
    raise KeyError(f"no published number {key!r}; known: {[p.key for p in PUBLISHED]}")
