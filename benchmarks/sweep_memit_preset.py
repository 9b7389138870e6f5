"""Measured sweep behind the embedded model's MEMIT preset (configs/memit/gemma3-270m.yaml).

For each target-vector setting (layers, v_lr) the target vectors are optimised once; each solve setting
(mom2_update_weight) then reuses them. Every row reports efficacy/paraphrase/neighbourhood success in
both languages and the held-out NLL cost, on the same cases as notebook 02's defaults.

    python benchmarks/sweep_memit_preset.py --n-edits 24 --lrs 5 --weights 100,300,1000
"""
from __future__ import annotations

import argparse
import itertools
import time

from memat import evaluate, experiments, memit, models, stats
from memat.data import load_dataset
from memat.hparams import load_hparams


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--base", default="gemma3-270m", help="preset the sweep starts from")
    ap.add_argument("--l1", default="ca")
    ap.add_argument("--l2", default="en")
    ap.add_argument("--n-edits", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layer-sets", default="4-8", help="e.g. '4-8;3-7' (inclusive ranges or comma lists)")
    ap.add_argument("--lrs", default="5")
    ap.add_argument("--weights", default="100,300,1000")
    ap.add_argument("--heldout", type=int, default=50)
    ap.add_argument("--source-dir", default=None)
    ap.add_argument("--out", default="sweep_memit_gemma3-270m", help="results/<out>.json")
    a = ap.parse_args(argv)

    def layers_of(spec):
        if "-" in spec:
            lo, hi = map(int, spec.split("-"))
            return list(range(lo, hi + 1))
        return [int(x) for x in spec.split(",")]

    lm = models.load_model(a.model)
    ds = load_dataset("bmike53_counterfact", source_dir=a.source_dir, langs=(a.l1, a.l2))
    cases, _ = experiments.select_by_jaccard(ds.cases, a.l1, a.l2, lm.tokenizer, a.n_edits, a.seed)
    held = {l: stats.heldout_lines("globalvoices", l, a.heldout, source_dir=a.source_dir) for l in (a.l1, a.l2)}

    def measure(tag):
        df = evaluate.evaluate_cases(lm, cases, [a.l1, a.l2], progress=False)
        s = evaluate.summarize(df)
        row = {f"{r.metric}({r.lang})": round(r.mean, 1) for r in s.itertuples() if r.metric in ("ES", "PS", "NS")}
        row.update({f"NLL({l})": round(evaluate.heldout_nll(lm, t), 3) for l, t in held.items()})
        return row

    rows = [{"setting": "unedited", **measure("unedited")}]
    print(rows[0], flush=True)
    requests = memit.requests_from_cases(cases, a.l1)
    for layer_spec, lr in itertools.product(a.layer_sets.split(";"), [float(x) for x in a.lrs.split(",")]):
        layers = layers_of(layer_spec)
        hp = load_hparams(a.base, layers=layers, v_lr=lr)
        contexts = memit.context_templates(lm, a.l1, hp.context_templates, seed=a.seed)
        t0 = time.perf_counter()
        zs, _, logs = memit.compute_targets(lm, requests, hp, contexts, progress=False)
        t_z = time.perf_counter() - t0
        mom2 = stats.layer_stats(lm, layers, hp.mom2_corpus[a.l1], a.l1, hp.mom2_n_samples, max_len=hp.mom2_max_len,
                                 dtype=hp.mom2_dtype, source_dir=a.source_dir, progress=False)
        for w in [float(x) for x in a.weights.split(",")]:
            hp_w = load_hparams(a.base, layers=layers, v_lr=lr, mom2_update_weight=w)
            t1 = time.perf_counter()
            delta = memit.compute_memit(lm, requests, hp_w, stats=mom2, contexts=contexts, progress=False, targets=(zs, logs))
            t_solve = time.perf_counter() - t1
            with delta.applied(lm):
                row = {"setting": f"layers {layer_spec}, v_lr {lr:g}, mom2_update_weight {w:g}",
                       "layers": layers, "v_lr": lr, "mom2_update_weight": w, **measure("edit"),
                       "targets_s": round(t_z, 1), "solve_s": round(t_solve, 1)}
            rows.append(row)
            print(row, flush=True)
    path = experiments.write_results(a.out, {"args": vars(a), "case_ids": [c.case_id for c in cases], "rows": rows})
    cols = [k for k in rows[-1] if k not in ("layers", "v_lr", "mom2_update_weight")]
    print("\n" + " | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
