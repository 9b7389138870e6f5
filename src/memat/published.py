"""The paper's published numbers that ``paper.md`` sets beside ours, each with where it comes from.

Only numbers that could be checked are here. The paper's full text (its tables and figures) was not
available offline when this file was written: the one passage that could be read is the abstract
(arXiv:2502.02173, https://arxiv.org/html/2502.02173). The other entries are the few numbers the
project's brief quotes from the paper; their place in the paper is given as the brief describes it and
marked ``verified=False`` (the passage itself was not re-read). Every other table and figure of the
paper is listed in :data:`NOT_TRANSCRIBED`: the report prints "not transcribed" there rather than a
number nobody checked. To add a number, add an entry with its table/figure, row and column.

The report formats ``value`` with the same function as our own numbers; ``text`` is how the paper
words it.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Published", "PUBLISHED", "NOT_TRANSCRIBED", "published"]


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
_BRIEF = "project brief's summary of the paper (passage not re-read: the full text was not available offline)"

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
        text="11,229 cases kept in the translated (English/Catalan) CounterFact",
        where="the translated data set (its size; Fig. 7 shows its Jaccard histograms)",
        source=_BRIEF,
        verified=False,
    ),
    Published(
        key="probe_peak_accuracy",
        value=80,
        unit="%",
        text="~80% peak probe accuracy on L2 after an L1 edit",
        where="Figs. 2 and 8, per-head probe accuracy maps (peak over heads)",
        source=_BRIEF,
        verified=False,
    ),
    Published(
        key="heads_training_minutes",
        value=25,
        unit="minutes",
        text="about 25 GPU minutes to train the corrections of 16 heads",
        where="MEMAT's cost (text), aguila-7b",
        source=_BRIEF,
        verified=False,
    ),
    Published(
        key="memit_hours_1000",
        value=3,
        unit="hours",
        text="about 3 GPU hours for 1,000 MEMIT edits",
        where="MEMAT's cost (text), aguila-7b",
        source=_BRIEF,
        verified=False,
    ),
    Published(
        key="memit_edits_for_cost",
        value=1000,
        unit="edits",
        text="1,000 MEMIT edits (the batch of the cost comparison)",
        where="MEMAT's cost (text)",
        source=_BRIEF,
        verified=False,
    ),
    Published(
        key="heads_for_cost",
        value=16,
        unit="heads",
        text="16 heads (the K of the cost comparison)",
        where="MEMAT's cost (text)",
        source=_BRIEF,
        verified=False,
    ),
)

#: Figures and tables whose numbers are not transcribed (the report says so instead of guessing).
NOT_TRANSCRIBED: dict[str, str] = {
    "Fig. 7": "Jaccard histograms of the translated data set (only the number of kept cases is transcribed)",
    "Fig. 1": "cross-lingual MEMIT bars (ES/PS/NS per Jaccard group)",
    "Figs. 2/8": "per-head probe accuracy maps (only the ~80% peak is transcribed)",
    "Tables 1-2": "MEMAT vs MEMIT vs PMET, every cell",
    "Table 3": "joint vs summed bilingual editing",
    "Fig. 9": "metrics against the number of heads K",
    "Fig. 4": "metrics against the number of edits (only the cost sentence is transcribed)",
    "Fig. 10": "ITI ablation",
    "Figs. 5/6": "learning-rate sweeps of MEMIT and PMET",
    "§10 Limitations": "no number: the paper ran English and Catalan only and says its findings 'may be limited' "
                       "beyond them",
}


def published(key: str) -> Published:
    """The published number ``key``; a KeyError names the known keys."""
    for p in PUBLISHED:
        if p.key == key:
            return p
    raise KeyError(f"no published number {key!r}; known: {[p.key for p in PUBLISHED]}")
