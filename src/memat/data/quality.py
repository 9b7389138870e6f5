"""Quality report of a translated data set (notebook 01).

* :func:`reference_agreement`: agreement of the Catalan subjects and targets with an independent
  translation (BMIKE-53's Catalan CounterFact) on the cases both hold;
* :func:`side_by_side`: a seeded sample of cases, English beside Catalan;
* :func:`jaccard_frame`: token-set Jaccard of English vs Catalan subject, relation (prompt without its
  subject) and targets under a tokenizer (the paper's Fig. 7), with the Fig. 1 groups.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

import pandas as pd

from .align import normalize
from .jaccard import jaccard_group, token_jaccard
from .records import EditCase

__all__ = ["jaccard", "jaccard_frame", "reference_agreement", "side_by_side"]


def jaccard(tokenizer: Any, a: str, b: str) -> float:
    """Token-set Jaccard of two strings as they appear after a space (:func:`memat.data.jaccard.token_jaccard`)."""
    return token_jaccard(tokenizer, a.strip(), b.strip())


def _relation_text(template: str) -> str:
    return " ".join(template.replace("{}", " ").split())


def jaccard_frame(cases: Sequence[EditCase], tokenizer: Any, l1: str = "en", l2: str = "ca") -> pd.DataFrame:
    """One row per case: Jaccard of subject, relation, target_new, target_true; subject group (Fig. 1)."""
    rows = []
    for c in cases:
        a, b = c[l1], c[l2]
        j = jaccard(tokenizer, a.subject, b.subject)
        rows.append({
            "case_id": c.case_id,
            "relation_id": c.relation_id,
            "subject": j,
            "relation": jaccard(tokenizer, _relation_text(a.rewrite_prompt), _relation_text(b.rewrite_prompt)),
            "target_new": jaccard(tokenizer, a.target_new, b.target_new),
            "target_true": jaccard(tokenizer, a.target_true, b.target_true),
            "group": jaccard_group(j),
        })
    return pd.DataFrame(rows)


def reference_agreement(
    cases: Sequence[EditCase], reference: Sequence[EditCase], l1: str = "en", l2: str = "ca"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement with a reference translation on shared cases.

    Cases are paired by ``case_id`` when their ``l1`` subjects are equal. Two strings agree when
    they are equal after :func:`memat.data.align.normalize` (case, accents and spaces folded).
    Returns (summary per field: n, agree, rate %), (every shared case with both versions).
    """
    ref = {r.case_id: r for r in reference if l1 in r.langs and l2 in r.langs}
    rows = []
    for c in cases:
        r = ref.get(c.case_id)
        if r is None or normalize(r[l1].subject) != normalize(c[l1].subject):
            continue
        row: dict[str, Any] = {"case_id": c.case_id, "relation_id": c.relation_id}
        for f in ("subject", "target_new", "target_true"):
            ours, theirs = getattr(c[l2], f), getattr(r[l2], f)
            # BMIKE-53 keeps CounterFact's targets: compare only when the English targets are the same
            same_en = normalize(getattr(c[l1], f)) == normalize(getattr(r[l1], f))
            row[f"{f}_ours"], row[f"{f}_ref"] = ours, theirs
            row[f"{f}_agree"] = (normalize(ours) == normalize(theirs)) if same_en else None
        rows.append(row)
    detail = pd.DataFrame(rows)
    summary = []
    for f in ("subject", "target_new", "target_true"):
        col = detail[f"{f}_agree"].dropna() if len(detail) else pd.Series([], dtype=bool)
        n = int(len(col))
        agree = int(col.astype(bool).sum()) if n else 0
        summary.append({"field": f, "n_shared": n, "agree": agree, "rate_%": round(100 * agree / n, 1) if n else None})
    return pd.DataFrame(summary), detail


def side_by_side(cases: Sequence[EditCase], n: int = 20, seed: int = 0, l1: str = "en", l2: str = "ca") -> pd.DataFrame:
    """``n`` random cases (seeded): rewrite prompt with both targets, one paraphrase and one neighbour."""
    pool = list(cases)
    pick = sorted(random.Random(seed).sample(range(len(pool)), min(n, len(pool))))
    rows = []
    for i in pick:
        c = pool[i]
        a, b = c[l1], c[l2]
        pa, pb = a.prompt_pairs("rewrite")[0], b.prompt_pairs("rewrite")[0]
        rows.append({
            "case_id": c.case_id,
            "relation": c.relation_id,
            l1: f"{pa[0]} [{a.target_new} | {a.target_true}]",
            l2: f"{pb[0]} [{b.target_new}]" + (f" / {pb[1]} [{b.target_true}]" if pb[1] != pb[0] else f" [{b.target_true}]"),
            f"paraphrase_{l2}": b.paraphrase_prompts[0] if b.paraphrase_prompts else "",
            f"neighbour_{l2}": b.neighborhood_prompts[0] if b.neighborhood_prompts else "",
        })
    return pd.DataFrame(rows)
