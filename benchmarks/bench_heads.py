#!/usr/bin/env python
"""Benchmark the head-localisation steps of MEMAT against the MEMIT edit they follow, on the embedded model.

On the same cases (``experiments.select_by_jaccard`` as in notebooks 02 and 03), in one process and in
this order, the wall clock of:

* ``memit``: the MEMIT edit in L1 (:func:`memat.memit.cached_memit` with ``cache=False``: target vectors
  and the closed-form solve; the key statistics are loaded or computed beforehand and timed apart);
* ``collect``: the per-head outputs of the probe sentences in L2 under that edit
  (:func:`memat.heads.collect_probe_data`, ``refine=False``);
* ``collect+refine``: the same with the appendix-D refinement (adds one scoring pass over the rewrite
  prompts in L2);
* ``probes``: one logistic probe per (layer, head) (:func:`memat.heads.train_probes`);
* ``memat (split)``, ``memat (full)``: the MEMAT head corrections for the K best heads
  (:func:`memat.memat.train_corrections`, preset ``--memat-hparams`` with ``n_epochs`` set by ``--epochs``),
  the MEMIT delta applied, once per ``--train-methods`` entry: ``split`` (the default method: each row's
  positions before its corrected one run once, without gradient) and ``full`` (every position, forward and
  backward); after the table, the speed-up of split over full and the largest difference of their corrections.

The table goes to stdout (the last column divides each time by the MEMIT time), progress bars and log
lines to stderr. The machine's load changes wall times by tens of percent: compare rows of one run.

Example::

    python benchmarks/bench_heads.py --n-edits 8 --json results/bench_heads.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def _log(msg: str) -> None:
    print(f"[bench_heads] {msg}", file=sys.stderr, flush=True)


def _table(header: list[str], rows: list[list[str]], n_text: int = 1) -> str:
    """Plain-text table; the first ``n_text`` columns left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: " | ".join(c.rjust(w) if i >= n_text else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])


def _sync(lm) -> None:
    import torch

    if lm.device.type == "cuda":
        torch.cuda.synchronize(lm.device)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(
            "Time head collection, probe training and MEMAT correction training against the MEMIT edit "
            "they follow, on the same cases and model. Table to stdout."
        ),
    )
    p.add_argument("--model", default="gemma3-270m", help="model name or path for memat.models.load_model (default: %(default)s)")
    p.add_argument("--hparams", default="gemma3-270m", help="MEMIT preset name or YAML path (default: %(default)s)")
    p.add_argument("--memat-hparams", default="gemma3-270m", help="MEMAT preset name or YAML path (default: %(default)s)")
    p.add_argument("--n-edits", type=int, default=8, help="edited cases (default: %(default)s)")
    p.add_argument("--l1", default="ca", help="edit language (default: %(default)s)")
    p.add_argument("--l2", default="en", help="probed language (default: %(default)s)")
    p.add_argument("--train-langs", default=None,
                   help="comma-separated languages of the MEMAT training prompts (default: L1,L2)")
    p.add_argument("--kinds", default="rewrite,paraphrase", help="prompt kinds of the probe sentences (default: %(default)s)")
    p.add_argument("--k", type=int, default=16, help="heads corrected by MEMAT (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=1, help="MEMAT training epochs (default: %(default)s)")
    p.add_argument("--train-methods", default="split,full",
                   help="train_corrections methods timed, comma-separated (default: %(default)s)")
    p.add_argument("--cached-edit", action="store_true",
                   help="take the MEMIT edit from the on-disk cache when there (its time is then a load, not an edit)")
    p.add_argument("--val-fraction", type=float, default=0.3, help="cases held out by the probes (default: %(default)s)")
    p.add_argument("--dataset", default="counterfact_en_ca", help="bilingual editing data set (default: %(default)s)")
    p.add_argument("--source-dir", default=os.environ.get("MEMAT_DATA_SOURCE") or None,
                   help="local copy of the raw data sets (default: $MEMAT_DATA_SOURCE)")
    p.add_argument("--seed", type=int, default=0, help="case selection, probe split and MEMAT seed (default: %(default)s)")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if available, else CPU)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_edits < 2:
        raise SystemExit("--n-edits must be >= 2 (the probes need a training and a validation case)")
    if args.k < 1 or args.epochs < 1:
        raise SystemExit("--k and --epochs must be >= 1")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    methods = tuple(dict.fromkeys(m.strip() for m in args.train_methods.split(",") if m.strip()))
    train_langs = tuple(dict.fromkeys(
        l.strip() for l in (args.train_langs or f"{args.l1},{args.l2}").split(",") if l.strip()))
    progress = not args.no_progress

    import torch

    from memat import experiments, heads, memit, models, stats
    from memat.hparams import load_hparams
    from memat.memat import TRAIN_METHODS, load_memat_hparams, select_heads, train_corrections

    if not methods or any(m not in TRAIN_METHODS for m in methods):
        raise SystemExit(f"--train-methods: a comma-separated list out of {', '.join(TRAIN_METHODS)}, got {args.train_methods!r}")

    hp = load_hparams(args.hparams)
    mhp = load_memat_hparams(args.memat_hparams, n_epochs=args.epochs, n_steps=None, seed=args.seed)
    torch.manual_seed(args.seed)

    _log(f"loading {args.model}")
    lm = models.load_model(args.model, device=args.device)
    langs = tuple(dict.fromkeys((args.l1, args.l2, *train_langs)))
    ds = experiments.load_cases(args.dataset, langs, source_dir=args.source_dir)
    cases, _ = experiments.select_by_jaccard(ds.cases, args.l1, args.l2, lm.tokenizer, args.n_edits, args.seed)
    _log(f"{len(cases)} cases: {[c.case_id for c in cases]}")

    times: dict[str, float] = {}
    t = time.perf_counter()
    mom2 = stats.layer_stats(lm, hp.layers, hp.mom2_corpus[args.l1], args.l1, hp.mom2_n_samples,
                             max_len=hp.mom2_max_len, dtype=hp.mom2_dtype, source_dir=args.source_dir,
                             progress=progress)
    _sync(lm)
    stats_s = time.perf_counter() - t

    def timed(name, fn):
        _log(name)
        t0 = time.perf_counter()
        out = fn()
        _sync(lm)
        times[name] = time.perf_counter() - t0
        return out

    delta = timed("memit", lambda: memit.cached_memit(lm, cases, hp, mom2, args.l1, progress=progress,
                                                      cache=args.cached_edit))
    data = timed("collect", lambda: heads.collect_probe_data(lm, cases, args.l2, kinds=kinds, refine=False,
                                                             delta=delta, progress=progress))
    refined = timed("collect+refine", lambda: heads.collect_probe_data(lm, cases, args.l2, kinds=kinds, refine=True,
                                                                       delta=delta, progress=progress))
    res = timed("probes", lambda: heads.train_probes(data, args.val_fraction, args.seed))
    top = select_heads(res, args.k)
    trained = {m: timed(f"memat ({m})", lambda m=m: train_corrections(lm, cases, top, mhp, delta=delta, langs=train_langs,
                                                                       progress=progress, method=m))
               for m in methods}
    corr, log = trained[methods[0]]

    n_probes = res.accuracy.size
    what = {
        "memit": f"MEMIT edit in {args.l1}: {len(cases)} edits, layers {hp.layers} (targets + solve)",
        "collect": f"head outputs in {args.l2}: {len(data)} sentences x {lm.n_layers} layers",
        "collect+refine": f"the same + refinement: {refined.n_kept}/{len(cases)} cases kept, {len(refined)} sentences",
        "probes": f"{n_probes} logistic probes ({res.n_train} train / {res.n_val} val sentences)",
        **{f"memat ({m})": f"MEMAT corrections: K={corr.k} heads, {args.epochs} epoch(s), {log['n_steps']} steps, "
                           f"langs {','.join(train_langs)}; final loss {trained[m][1]['steps'][-1]['loss']:.4f}"
           for m in methods},
    }
    rows = [[name, what[name], f"{s:.2f}", f"{s / times['memit']:.2f}"] for name, s in times.items()]
    best_l, best_h, best = res.best()
    print(f"head-localisation benchmark: model={args.model} ({lm.device}, {str(lm.dtype).replace('torch.', '')}, "
          f"{torch.get_num_threads()} torch threads), {lm.n_layers} layers x {lm.n_heads} heads, "
          f"MEMIT hparams={args.hparams}, MEMAT hparams={args.memat_hparams}, dataset={args.dataset}, seed={args.seed}")
    print(f"edits: {[c.case_id for c in cases]}")
    print(f"statistics ({hp.mom2_corpus[args.l1]}, {args.l1}, n={hp.mom2_n_samples}; loaded or computed once, not in the table): "
          f"{stats_s:.2f} s")
    print()
    print(_table(["step", "what", "time (s)", "x MEMIT"], rows, n_text=2))
    print()
    print(f"best probe: layer {best_l} head {best_h}, validation accuracy {best:.2f}")
    if {"split", "full"} <= set(methods):
        a, b = trained["split"][0].vectors, trained["full"][0].vectors
        print(f"MEMAT training, split over full: {times['memat (full)'] / times['memat (split)']:.2f}x faster; "
              f"max |omega split - omega full| = {float((a - b).abs().max()):.3g} (max |omega| = {float(b.abs().max()):.3g})")
    if hasattr(os, "getloadavg"):
        print(f"1-min load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    if args.json:
        payload = {
            "command": [os.path.basename(sys.executable), *sys.argv],
            "args": vars(args),
            "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
            "case_ids": [c.case_id for c in cases],
            "stats_s": stats_s,
            "times_s": times,
            "what": what,
            "heads": [list(h) for h in top],
            "probe_best": {"layer": best_l, "head": best_h, "accuracy": best},
            "memat_log": {k: v for k, v in log.items() if k != "contexts"},
            "memat_logs": {m: {k: v for k, v in lg.items() if k != "contexts"} for m, (_, lg) in trained.items()},
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
        _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
