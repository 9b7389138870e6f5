#!/usr/bin/env python
"""Benchmark one MEMIT batch on the embedded model: today's target optimisation against the suffix method,
and batched against one edit at a time.

For the same edits, the same hyperparameters, the same context templates (generated once) and the same
key statistics (computed or loaded once, timed separately), each variant runs in a fresh process:

* ``full``: every edit's target vector optimised together (``batch_size = n_edits``), each step replaying
  the blocks after the last edited layer over every position (``compute_targets(method="full")``, the
  implementation before 2026-12), then the solve;
* ``suffix``: the same, each step over the positions from the subject's last token on, the earlier ones
  in the key/value cache, finished requests leaving the batch (``method="suffix"``, the default);
* ``batched``: the default method, all edits together (as ``suffix``; kept for the batched/single ratio);
* ``single``: one edit at a time (``batch_size = 1``), then the solve.

Per variant: wall time of :func:`memat.memit.compute_targets` and of the whole edit (targets + the
closed-form solve of :func:`memat.memit.compute_memit`), peak RSS (and peak CUDA memory on a GPU), and
the efficacy success ES of the edited model on the rewrite prompts in the edit language. Also the max
abs difference between the two variants' target vectors (identical in exact arithmetic).

The table goes to stdout, progress bars and logs to stderr. See ``benchmarks/README.md``.

Example::

    python benchmarks/bench_memit.py --n-edits 8 --json results/bench_memit.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> (batch_size of the target optimisation (None: n_edits), compute_targets method)
VARIANTS = {"full": (None, "full"), "suffix": (None, "suffix"), "batched": (None, "suffix"), "single": (1, "suffix")}
DEFAULT_HPARAMS = "gemma3-270m"
FALLBACK_HPARAMS = "aguila-7b"  # used while the gemma3-270m preset does not exist yet
MIB = 1024.0


# --------------------------------------------------------------------------- memory helpers
def _maxrss_kib() -> float:
    """Peak RSS of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform == "darwin" else float(r)


def _rss_kib() -> float:
    """Current RSS of this process in KiB (/proc, else psutil, else the peak so far)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1024.0
    except Exception:
        return _maxrss_kib()


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0), so that ru_maxrss
    read later is the peak of what follows, not of model loading. False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return _maxrss_kib() <= _rss_kib() * 1.05 + 1024


# --------------------------------------------------------------------------- shared setup
def _log(tag: str, msg: str) -> None:
    print(f"[bench_memit:{tag}] {msg}", file=sys.stderr, flush=True)


def _hparams(spec: dict, batch_size: int | None = None):
    from memat.hparams import load_hparams

    over = dict(spec["overrides"])
    if batch_size is not None:
        over["batch_size"] = batch_size
    return load_hparams(spec["hparams"], **over)


def _load_cases(spec: dict, case_ids=None):
    from memat.data import load_dataset, select_cases
    from memat.data.loaders import EDIT_DATASETS

    kw = {}
    if spec["dataset"] in EDIT_DATASETS:
        kw["source_dir"] = spec["source_dir"]
        if spec["dataset"] == "counterfact_easyedit_full":
            kw["lang"] = spec["lang"]
    res = load_dataset(spec["dataset"], **kw)
    pool = [c for c in res if spec["lang"] in c.langs]
    if case_ids is not None:
        by_id = {c.case_id: c for c in pool}
        return [by_id[i] for i in case_ids]
    if len(pool) < spec["n_edits"]:
        raise SystemExit(f"{spec['dataset']}: only {len(pool)} cases have language {spec['lang']!r}, "
                         f"fewer than --n-edits {spec['n_edits']}")
    return select_cases(pool, spec["n_edits"], seed=spec["seed"])


def _sync(lm) -> None:
    import torch

    if lm.device.type == "cuda":
        torch.cuda.synchronize(lm.device)


def _es(lm, cases, lang: str, progress: bool, method: str = "shared") -> float:
    from memat.evaluate import evaluate_cases, summarize

    # never from the score cache: the evaluation is one of the timed phases
    df = evaluate_cases(lm, cases, [lang], progress=progress, kinds=("rewrite",), method=method, cache=False)
    s = summarize(df)
    return float(s.loc[s.metric == "ES", "mean"].iloc[0])


def _load_model(spec: dict, tag: str):
    import torch
    from memat.models import load_model

    torch.manual_seed(spec["seed"])
    _log(tag, f"loading model {spec['model']} (device={spec['device'] or 'default'})")
    t = time.perf_counter()
    lm = load_model(spec["model"], device=spec["device"])
    _sync(lm)
    return lm, time.perf_counter() - t


def _make_resident(lm) -> None:
    """Read every parameter and buffer once. Checkpoints are memory-mapped: without this, weight pages
    are faulted in during the edit and would be counted as the edit's extra memory."""
    import torch

    with torch.no_grad():
        for t in [*lm.model.parameters(), *lm.model.buffers()]:
            if t.numel():
                t.detach().sum()


# --------------------------------------------------------------------------- worker: preparation
def _run_prep(spec: dict) -> dict:
    """Select the cases, generate the context templates, compute/load the key statistics once."""
    import torch
    import memat.stats as mstats
    from memat.memit import context_templates

    tag = "prep"
    lm, load_s = _load_model(spec, tag)
    hp = _hparams(spec, spec["n_edits"])
    bad = [l for l in hp.layers if not 0 <= l < lm.n_layers]
    if bad:
        raise SystemExit(f"hparams layers {bad} out of range for {lm.name} ({lm.n_layers} layers)")
    cases = _load_cases(spec)
    _log(tag, f"{len(cases)} cases: {[c.case_id for c in cases]}")
    contexts = context_templates(lm, spec["lang"], hp.context_templates, seed=spec["seed"])

    stats_info = {"used": bool(hp.mom2_adjustment), "cached": None, "seconds": None, "layers_computed": []}
    if hp.mom2_adjustment:
        corpus = hp.mom2_corpus.get(spec["lang"])
        if corpus is None:
            raise SystemExit(f"hparams mom2_corpus has no corpus for language {spec['lang']!r}: {hp.mom2_corpus}")
        computed: list[int] = []
        orig = getattr(mstats, "compute_second_moments", None)  # called by layer_stats for cache misses

        def counting(lm_, layers, *a, **k):  # records which layers missed the cache
            computed.extend(layers)
            return orig(lm_, layers, *a, **k)

        if orig is not None:
            mstats.compute_second_moments = counting
        try:
            _log(tag, f"key statistics: {corpus} ({spec['lang']}), n={hp.mom2_n_samples}, layers {hp.layers}")
            t = time.perf_counter()
            stats = mstats.layer_stats(
                lm, hp.layers, corpus, spec["lang"], hp.mom2_n_samples, max_len=hp.mom2_max_len,
                dtype=hp.mom2_dtype, source_dir=spec["source_dir"], progress=spec["progress"],
            )
            _sync(lm)
            stats_info["seconds"] = time.perf_counter() - t
        finally:
            if orig is not None:
                mstats.compute_second_moments = orig
        stats_info["layers_computed"] = sorted(set(computed))
        if orig is None:
            stats_info["cached"] = "unknown"
        else:
            stats_info["cached"] = "no" if set(computed) >= set(hp.layers) else ("partial" if computed else "yes")
        stats_info["corpus"] = corpus
        torch.save({int(l): s.detach().cpu() for l, s in stats.items()}, spec["stats_path"])

    _log(tag, "ES before editing")
    es_before = _es(lm, cases, spec["lang"], spec["progress"])
    return {
        "case_ids": [c.case_id for c in cases],
        "contexts": contexts,
        "stats": stats_info,
        "es_before": es_before,
        "model_load_s": load_s,
        "device": str(lm.device),
        "dtype": str(lm.dtype).replace("torch.", ""),
        "n_layers": lm.n_layers,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "hparams": hp.to_dict(),
    }


# --------------------------------------------------------------------------- worker: one variant
def _run_variant(spec: dict) -> dict:
    import torch
    from memat.memit import compute_memit, compute_targets, requests_from_cases

    tag = spec["variant"]
    lm, load_s = _load_model(spec, tag)
    _make_resident(lm)
    _sync(lm)
    rss_after_load = _rss_kib()
    maxrss_load = _maxrss_kib()
    hwm_reset = _reset_peak_rss()
    cuda = lm.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(lm.device)
        cuda_after_load = torch.cuda.memory_allocated(lm.device)

    hp = _hparams(spec, spec["batch_size"])
    cases = _load_cases(spec, spec["case_ids"])
    reqs = requests_from_cases(cases, spec["lang"])
    contexts = spec["contexts"]
    stats = None
    if hp.mom2_adjustment:
        stats = {int(l): s.to(lm.device) for l, s in torch.load(spec["stats_path"], weights_only=True).items()}

    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    _log(tag, f"target vectors of {len(reqs)} edits, batch_size={hp.batch_size}")
    t0 = time.perf_counter()
    zs, _inits, logs = compute_targets(lm, reqs, hp, contexts, progress=spec["progress"], method=spec["method"])
    _sync(lm)
    t1 = time.perf_counter()
    _log(tag, "solve (keys, residuals, weight updates)")
    import memat.memit as memit_mod

    keys_s = [0.0]
    real_keys = memit_mod._keys_and_states

    def timed_keys(*a, **k):  # the keys (and current states) of each layer: one forward pass per layer
        t = time.perf_counter()
        try:
            return real_keys(*a, **k)
        finally:
            _sync(lm)
            keys_s[0] += time.perf_counter() - t

    memit_mod._keys_and_states = timed_keys
    try:
        delta = compute_memit(lm, reqs, hp, stats=stats, contexts=contexts, lang=spec["lang"],
                              progress=spec["progress"], targets=(zs, logs))
    finally:
        memit_mod._keys_and_states = real_keys
    _sync(lm)
    t2 = time.perf_counter()
    peak_rss = _maxrss_kib()
    cuda_peak = torch.cuda.max_memory_allocated(lm.device) if cuda else None
    load2 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    _log(tag, "ES after editing")
    eval_method = "separate" if spec["method"] == "full" else "shared"  # today's path against the new one
    with delta.applied(lm):
        t3 = time.perf_counter()
        es = _es(lm, cases, spec["lang"], spec["progress"], eval_method)
        eval_s = time.perf_counter() - t3

    torch.save(zs.detach().cpu(), spec["out_prefix"] + ".targets.pt")
    torch.save({k: v.detach().cpu() for k, v in delta.deltas.items()}, spec["out_prefix"] + ".delta.pt")
    out = {
        "variant": tag,
        "method": spec["method"],
        "nll_end_mean": sum(l["nll_end"] for l in logs) / len(logs),
        "steps_mean": sum(l["steps"] for l in logs) / len(logs),
        "batch_size": hp.batch_size,
        "n_edits": len(reqs),
        "targets_s": t1 - t0,
        "keys_s": keys_s[0],
        "solve_s": t2 - t1,
        "eval_method": eval_method,
        "eval_s": eval_s,
        "total_s": t2 - t0,
        "model_load_s": load_s,
        "rss_after_load_mib": rss_after_load / MIB,
        "peak_rss_load_mib": maxrss_load / MIB,
        "peak_rss_mib": peak_rss / MIB,
        "extra_peak_mib": (peak_rss - rss_after_load) / MIB,
        "peak_rss_incl_eval_mib": _maxrss_kib() / MIB,
        "peak_reset_after_load": hwm_reset,
        "es": es,
        "target_logs": logs,
        "loadavg_1min": [load1, load2],
        "device": str(lm.device),
    }
    if cuda:
        out["cuda_after_load_mib"] = cuda_after_load / MIB**2
        out["cuda_peak_mib"] = cuda_peak / MIB**2
        out["cuda_extra_peak_mib"] = (cuda_peak - cuda_after_load) / MIB**2
    return out


def _worker_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result = _run_prep(spec) if spec["role"] == "prep" else _run_variant(spec)
    Path(spec["result_path"]).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- parent process
def _spawn(spec: dict, tmp: Path, name: str) -> dict:
    """Run one worker in a fresh interpreter (its own ru_maxrss); its stdout goes to our stderr."""
    spec = dict(spec, result_path=str(tmp / f"{name}.result.json"))
    spec_path = tmp / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(spec_path)]
    proc = subprocess.run(cmd, stdout=sys.stderr, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"bench_memit: worker '{name}' failed (exit code {proc.returncode}); see stderr above")
    return json.loads(Path(spec["result_path"]).read_text(encoding="utf-8"))


def _resolve_hparams(name: str | None) -> str:
    from memat.hparams import find_config

    if name is not None:
        return name
    try:
        find_config(DEFAULT_HPARAMS)
        return DEFAULT_HPARAMS
    except FileNotFoundError:
        _log("main", f"hparams preset {DEFAULT_HPARAMS!r} not found; falling back to {FALLBACK_HPARAMS!r}")
        return FALLBACK_HPARAMS


def _parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--set expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])


def _max_abs_diffs(tmp: Path, a: str, b: str) -> dict:
    import torch

    za = torch.load(tmp / f"{a}.targets.pt", weights_only=True).double()
    zb = torch.load(tmp / f"{b}.targets.pt", weights_only=True).double()
    da = torch.load(tmp / f"{a}.delta.pt", weights_only=True)
    db = torch.load(tmp / f"{b}.delta.pt", weights_only=True)
    dw = max(float((da[k].double() - db[k].double()).abs().max()) for k in da)
    dw_scale = max(float(da[k].double().abs().max()) for k in da)
    return {
        "targets_max_abs_diff": float((za - zb).abs().max()),
        "targets_max_abs": float(za.abs().max()),
        "delta_w_max_abs_diff": dw,
        "delta_w_max_abs": dw_scale,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(
            "Time one MEMIT batch on the embedded model with the target vectors optimised together "
            "('batched') or one edit at a time ('single'): same edits, hyperparameters, context templates "
            "and key statistics; each variant in a fresh process for its peak memory. Table to stdout."
        ),
    )
    p.add_argument("--model", default="gemma3-270m", help="model name or path for memat.models.load_model (default: %(default)s)")
    p.add_argument("--hparams", default=None,
                   help=f"MEMIT preset name or YAML path (default: {DEFAULT_HPARAMS}; {FALLBACK_HPARAMS} while that preset does not exist)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter, value parsed as YAML (repeatable), e.g. --set layers=[4,5,6,7,8] "
                        "--set mom2_n_samples=2000; batch_size is set by each variant")
    p.add_argument("--n-edits", type=int, default=8, help="edits in the MEMIT batch (default: %(default)s)")
    p.add_argument("--lang", default="ca", help="edit language (default: %(default)s)")
    p.add_argument("--dataset", default="bmike53_counterfact", help="editing data set name or path (default: %(default)s)")
    p.add_argument("--source-dir", default=os.environ.get("MEMAT_DATA_SOURCE") or None,
                   help="local copy of the raw data sets (default: $MEMAT_DATA_SOURCE)")
    p.add_argument("--seed", type=int, default=0, help="case selection and context generation seed (default: %(default)s)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: CUDA if available, else CPU)")
    p.add_argument("--variants", default="full,suffix",
                   help="comma-separated subset of: %s (default: %%(default)s)" % ", ".join(VARIANTS))
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker_main(args.worker)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise SystemExit(f"--variants: expected distinct names among {list(VARIANTS)}, got {args.variants!r}")
    if args.n_edits < 1:
        raise SystemExit("--n-edits must be >= 1")
    overrides = _parse_overrides(args.overrides)
    if "batch_size" in overrides:
        _log("main", "ignoring --set batch_size: each variant sets its own")
        overrides.pop("batch_size")
    hparams = _resolve_hparams(args.hparams)
    from memat.hparams import HparamsError, load_hparams

    try:  # fail fast on a bad preset or override, before loading any model
        load_hparams(hparams, **overrides)
    except (HparamsError, FileNotFoundError) as e:
        raise SystemExit(f"bench_memit: {e}") from None

    base = {
        "model": args.model, "device": args.device, "hparams": hparams, "overrides": overrides,
        "lang": args.lang, "dataset": args.dataset, "source_dir": args.source_dir,
        "n_edits": args.n_edits, "seed": args.seed, "progress": not args.no_progress,
    }
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_memit-") as td:
        tmp = Path(td)
        prep = _spawn(dict(base, role="prep", stats_path=str(tmp / "stats.pt")), tmp, "prep")
        for v in variants:
            bs = VARIANTS[v][0] or args.n_edits
            spec = dict(base, role="variant", variant=v, batch_size=bs, method=VARIANTS[v][1], case_ids=prep["case_ids"],
                        contexts=prep["contexts"], stats_path=str(tmp / "stats.pt"), out_prefix=str(tmp / v))
            results[v] = _spawn(spec, tmp, v)
        diffs = _max_abs_diffs(tmp, "batched", "single") if {"batched", "single"} <= set(results) else None
        full_vs_suffix = _max_abs_diffs(tmp, "full", "suffix") if {"full", "suffix"} <= set(results) else None
    tmp_keep = None

    cuda = any("cuda_peak_mib" in r for r in results.values())
    header = ["variant", "edits", "targets time (s)", "keys (s)", "solve incl. keys (s)", "total time (s)", "mean steps",
              "final NLL", "peak RSS (MiB)", "extra peak (MiB)", "ES eval (s)", "ES (%)"]
    if cuda:
        header += ["peak CUDA (MiB)", "extra CUDA (MiB)"]
    rows = []
    for v, r in results.items():
        row = [f"{v} ({r['method']}, batch_size={r['batch_size']})", str(r["n_edits"]), f"{r['targets_s']:.2f}",
               f"{r['keys_s']:.2f}", f"{r['solve_s']:.2f}", f"{r['total_s']:.2f}", f"{r['steps_mean']:.1f}",
               f"{r['nll_end_mean']:.4f}", f"{r['peak_rss_mib']:.0f}", f"{r['extra_peak_mib']:.0f}",
               f"{r['eval_s']:.2f} ({r['eval_method']})", f"{r['es']:.1f}"]
        if cuda:
            row += [f"{r.get('cuda_peak_mib', float('nan')):.0f}", f"{r.get('cuda_extra_peak_mib', float('nan')):.0f}"]
        rows.append(row)

    st = prep["stats"]
    hp = prep["hparams"]
    print(f"MEMIT benchmark: model={args.model} ({prep['device']}, {prep['dtype']}, {prep['torch_threads']} torch threads), "
          f"hparams={hparams}{' ' + json.dumps(overrides) if overrides else ''}, layers={hp['layers']}, "
          f"lang={args.lang}, dataset={args.dataset}, seed={args.seed}")
    print(f"edits: {prep['case_ids']}; context templates: {len(prep['contexts'])}")
    if st["used"]:
        print(f"statistics (cached={st['cached']}): {st['seconds']:.2f} s "
              f"({st['corpus']}, n={hp['mom2_n_samples']}, layers {hp['layers']}; computed once, shared by the variants)")
    else:
        print("statistics: not used (mom2_adjustment=false)")
    print(f"ES before editing: {prep['es_before']:.1f} %")
    print()
    print(_table(header, rows))
    print()
    if "full" in results and "suffix" in results:
        f_, x_ = results["full"], results["suffix"]
        dz = full_vs_suffix
        print(f"speed-up suffix over full (today): targets {f_['targets_s'] / x_['targets_s']:.2f}x, "
              f"whole edit {f_['total_s'] / x_['total_s']:.2f}x; final target NLL {f_['nll_end_mean']:.4f} -> "
              f"{x_['nll_end_mean']:.4f}; ES {f_['es']:.1f} -> {x_['es']:.1f}")
        if dz:
            print(f"max abs difference of target vectors full vs suffix: {dz['targets_max_abs_diff']:.3g} "
                  f"(max |z| = {dz['targets_max_abs']:.3g})")
    if "batched" in results and "single" in results:
        b, s = results["batched"], results["single"]
        print(f"speed ratio single/batched (targets): {s['targets_s'] / b['targets_s']:.2f}, "
              f"(total): {s['total_s'] / b['total_s']:.2f}")
        print(f"max abs difference of target vectors single vs batched: {diffs['targets_max_abs_diff']:.3g} "
              f"(max |z| = {diffs['targets_max_abs']:.3g}); of weight updates: {diffs['delta_w_max_abs_diff']:.3g} "
              f"(max |dW| = {diffs['delta_w_max_abs']:.3g})")
    if not all(r["peak_reset_after_load"] for r in results.values()):
        print("note: the RSS high-water mark could not be reset after model loading; peak RSS may be that of loading")
    loads = [x for r in results.values() for x in r["loadavg_1min"] if x is not None]
    if loads:
        print(f"1-min load average during the runs: {min(loads):.2f}..{max(loads):.2f} on {os.cpu_count()} CPUs")

    if args.json:
        payload = {
            "command": [os.path.basename(sys.executable), *sys.argv],
            "args": {k: v for k, v in vars(args).items() if k != "worker"},
            "hparams_name": hparams,
            "overrides": overrides,
            "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
            "prep": prep,
            "variants": results,
            "comparison": diffs,
            "full_vs_suffix": full_vs_suffix,
        }
        if "batched" in results and "single" in results:
            payload["speed_ratio_single_over_batched"] = {
                "targets": results["single"]["targets_s"] / results["batched"]["targets_s"],
                "total": results["single"]["total_s"] / results["batched"]["total_s"],
            }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
        _log("main", f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
