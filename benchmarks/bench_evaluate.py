#!/usr/bin/env python
"""Benchmark the CounterFact evaluation on the embedded model: today's scorer against the shared-prompt one.

For the same cases and languages, :func:`memat.evaluate.evaluate_cases` runs

* ``separate``: every (prompt, target) pair as its own sequence (``method="separate"``, the scorer
  before 2026-12), no disk cache;
* ``shared``: each distinct prompt once, every target after it scored from its key/value cache
  (``method="shared"``, the default), no disk cache;
* ``cached``: ``shared`` a second time with the on-disk score cache (``cache="auto"``, the default for a
  model without hooks): what every later notebook pays for the unedited model.

Each phase is timed (wall clock) and its peak RSS read (the kernel's high-water mark is reset before each
phase on Linux), and the scores of ``shared`` are compared with ``separate``. The table goes to stdout.

Example::

    python benchmarks/bench_evaluate.py --n-cases 16
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def _maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--dataset", default="counterfact_en_ca", help="data set name (default: notebook 01's build)")
    p.add_argument("--langs", default="ca,en")
    p.add_argument("--n-cases", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source-dir", default=os.environ.get("MEMAT_DATA_SOURCE") or None)
    args = p.parse_args(argv)
    import numpy as np
    import torch

    from memat.data import load_dataset, select_cases
    from memat.evaluate import evaluate_cases
    from memat.models import load_model

    langs = [l.strip() for l in args.langs.split(",") if l.strip()]
    lm = load_model(args.model)
    with torch.no_grad():
        for t in lm.model.parameters():
            t.sum()  # weights resident before the first phase
    kw = {"source_dir": args.source_dir} if args.dataset != "counterfact_en_ca" else {}
    pool = [c for c in load_dataset(args.dataset, **kw) if all(l in c.langs for l in langs)]
    if len(pool) < args.n_cases:
        raise SystemExit(f"{args.dataset}: {len(pool)} cases have {langs}, fewer than --n-cases {args.n_cases}")
    cases = select_cases(pool, args.n_cases, seed=args.seed)

    rows, frames = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_evaluate-") as cache:
        for name, method, use_cache in (("separate", "separate", False), ("shared", "shared", False),
                                        ("shared (fill cache)", "shared", "auto"), ("cached", "shared", "auto")):
            if use_cache:  # score files in a temporary folder, never the user's cache
                os.environ["MEMAT_CACHE"] = cache
            _reset_peak()
            t = time.perf_counter()
            df = evaluate_cases(lm, cases, langs, progress=False, method=method, cache=use_cache)
            dt = time.perf_counter() - t
            frames[name] = df
            rows.append((name, dt, _maxrss_mib(), len(df)))
    ref = frames["separate"]
    n_cl = len(cases) * len(langs)
    print(f"evaluation benchmark: model={args.model} ({lm.device}, {lm.dtype}, {torch.get_num_threads()} threads), "
          f"dataset={args.dataset}, {len(cases)} cases x {langs} = {n_cl} case-languages, "
          f"{len(ref)} prompts (each scored with the new and the true target)")
    print()
    w = max(len(r[0]) for r in rows)
    print(f"{'phase'.ljust(w)} | time (s) | s per case-language | speed-up | peak RSS (MiB) | max |dp| vs separate")
    print("-" * (w + 86))
    for name, dt, rss, n in rows:
        dp = float(np.abs(np.exp(-frames[name].nll_new) - np.exp(-ref.nll_new)).max())
        dp = max(dp, float(np.abs(np.exp(-frames[name].nll_true) - np.exp(-ref.nll_true)).max()))
        print(f"{name.ljust(w)} | {dt:8.2f} | {dt / n_cl:19.3f} | {rows[0][1] / dt:7.2f}x | {rss:14.0f} | {dp:.2e}")
    same_acc = all((frames[n].acc_new.values == ref.acc_new.values).all() and
                   (frames[n].acc_true.values == ref.acc_true.values).all() for n in frames)
    print()
    print(f"greedy accuracy identical in every phase: {same_acc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
