"""Command-line interface: ``memat <subcommand> ...``.

Subcommands are registered in :data:`SUBCOMMANDS`: a name mapped to a function that adds its parser
to the subparsers object and sets ``func`` (the handler, ``(args) -> int``) as a default. To add one::

    def _add_model(sub):
        p = sub.add_parser("model", help="...")
        p.set_defaults(func=_cmd_model)

    SUBCOMMANDS["model"] = _add_model

Handlers import what they need lazily so that ``memat data`` never imports torch.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

AddParser = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


# --------------------------------------------------------------------------- memat data
def _add_data(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "data",
        help="copy or download the registered raw data sets, verified by sha256",
        description=(
            "Make the named raw data sets (default: all) present in the data directory. Each file is "
            "kept if present with the right sha256, else copied from --source-dir ($MEMAT_DATA_SOURCE), "
            "else downloaded from its pinned GitHub URL."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="data set names (default: all registered)")
    p.add_argument("--source-dir", default=None, help="local copy holding <NAME>/<files> (default: $MEMAT_DATA_SOURCE)")
    p.add_argument("--data-dir", default=None, help="destination (default: $MEMAT_DATA_DIR or <project>/data/raw)")
    p.add_argument("--offline", action="store_true", help="never download; fail if a file cannot be copied")
    p.add_argument("--list", action="store_true", help="only list the registered data sets")
    p.set_defaults(func=_cmd_data)


def _cmd_data(args: argparse.Namespace) -> int:
    from .data.fetch import ChecksumError, FetchError, data_dir, fetch_dataset
    from .data.sources import REGISTRY

    if args.list:
        rows = [(s.name, str(len(s.files)), f"{s.size / 1e6:.1f} MB", s.repo) for s in REGISTRY.values()]
        _print_table(("name", "files", "size", "repository"), rows)
        return 0
    names = args.names or list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        print(f"memat data: unknown data set(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    print(f"data directory: {data_dir(args.data_dir)}")
    rows, failed = [], 0
    for name in names:
        try:
            rep = fetch_dataset(name, source_dir=args.source_dir, data_dir=args.data_dir, offline=args.offline)
            rows.append((name, str(len(rep.files)), rep.status()))
        except (ChecksumError, FetchError, OSError) as exc:
            failed += 1
            rows.append((name, str(len(REGISTRY[name].files)), "FAILED"))
            print(f"memat data: {name}: {exc}", file=sys.stderr)
    _print_table(("name", "files", "status"), rows)
    return 1 if failed else 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)).rstrip())
    for r in rows:
        print(line.format(*r).rstrip())


# --------------------------------------------------------------------------- memat model
def _add_model(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "model",
        help="prepare a model (the embedded default is converted once from GGUF to a cached checkpoint)",
        description="Load a model by Hugging Face id, local path or 'gemma3-270m' and print its intervention sites.",
    )
    p.add_argument("name", nargs="?", default="gemma3-270m", help="model id, path, or gemma3-270m (default)")
    p.add_argument("--refresh", action="store_true", help="re-convert the embedded GGUF even if cached")
    p.set_defaults(func=_cmd_model)


def _cmd_model(args: argparse.Namespace) -> int:
    from .models import EMBEDDED_ALIASES, embedded_checkpoint, load_model

    if args.name in EMBEDDED_ALIASES:
        print(f"embedded checkpoint: {embedded_checkpoint(refresh=args.refresh)}")
    lm = load_model(args.name, device="cpu")
    rows = [
        ("model_type", lm.config.model_type),
        ("layers", str(lm.n_layers)),
        ("heads / kv heads / head dim", f"{lm.n_heads} / {lm.n_kv_heads} / {lm.head_dim}"),
        ("mlp_out (MEMIT)", lm.spec.mlp_out),
        ("attn_out (heads)", lm.spec.attn_out),
        ("post_mlp_norm", str(lm.spec.post_mlp_norm)),
        ("final_norm / unembed", f"{lm.spec.final_norm} / {lm.spec.unembed}"),
    ]
    _print_table(("property", "value"), rows)
    return 0


# --------------------------------------------------------------------------- memat build
def _add_build(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "build",
        help="build the bilingual English/Catalan CounterFact (notebook 01 without the report)",
        description=(
            "Translate CounterFact into Catalan with mParaRel labels, name protection, alignment and "
            "rejection (memat.data.build), and write <derived>/<NAME>/dataset.json + build_info.json."
        ),
    )
    p.add_argument("--name", default="counterfact_en_ca", help="build name (default: counterfact_en_ca)")
    p.add_argument("--n-cases", default="300", help="cases drawn from CounterFact, or 'all' (default: 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--translator", default="apertium", help="apertium[:pair] | ctranslate2:<dir> | hf:<id or dir>")
    p.add_argument("--aligner", default="none", help="none | simalign (embedded model) | simalign:<dir>[@layer]")
    p.add_argument("--source-dir", default=None, help="local copy of the raw data (default: $MEMAT_DATA_SOURCE)")
    p.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    p.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    import shutil

    from .data.build import BuildConfig, built_dataset_dir, ensure_built, read_build_info

    n = None if args.n_cases == "all" else int(args.n_cases)
    if args.force and built_dataset_dir(args.name).exists():
        shutil.rmtree(built_dataset_dir(args.name))
    lm = None
    if args.aligner == "simalign":
        from .models import load_model

        lm = load_model("gemma3-270m")
    folder = ensure_built(args.name, BuildConfig(n_cases=n, seed=args.seed), translator=args.translator,
                          aligner=args.aligner, source_dir=args.source_dir, progress=True, lm=lm)
    info = read_build_info(args.name)
    print(f"{folder}: {info['n_cases']} cases (fingerprint {info['fingerprint'][:12]})")
    _print_table(("stage", "cases"), [(k, str(v)) for k, v in info["table"]])
    return 0


# --------------------------------------------------------------------------- memat report
def _add_report(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "report",
        help="build paper.md (the paper as this package reproduces it) from results/*.json and figures/",
        description=(
            "Write paper.md: for each figure and table of the paper, our figure, tables computed from "
            "results/*.json, the published numbers beside ours (memat.published), the setting of our run, "
            "and which of the paper's claims hold on our model. Sections whose results are missing say "
            "'not run yet'. A section whose results also exist as results/<name>_full.json (the larger run "
            "of configs/reproduce/cpu-full.yaml) shows both runs and judges its claims on the full one. "
            "Same inputs, same bytes; written atomically."
        ),
    )
    p.add_argument("--out", default=None, help="output file (default: <project>/paper.md)")
    p.add_argument("--results-dir", default=None, help="results folder (default: <project>/results)")
    p.add_argument("--figures-dir", default=None, help="figures folder (default: <project>/figures)")
    p.add_argument("--suffix", default="", help="results of another run: results/<name><SUFFIX>.json (e.g. _aguila)")
    p.add_argument("--stdout", action="store_true", help="print the report instead of writing it")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report, write_report

    if args.stdout:
        sys.stdout.write(build_report(results_dir=args.results_dir, figures_dir=args.figures_dir, suffix=args.suffix))
        return 0
    out = write_report(args.out, results_dir=args.results_dir, figures_dir=args.figures_dir, suffix=args.suffix)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- memat reproduce
def _add_reproduce(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "reproduce",
        help="run the notebooks in order with papermill into runs/ (resumable), then rebuild paper.md",
        description=(
            "Run the notebooks of a reproduce config in order, each only if its code, parameters, the memat "
            "package or its inputs changed since its last successful run (stamps in <runs_dir>/.stamps), "
            "then rebuild the report. A failing notebook stops the run and is left executed in runs/."
        ),
    )
    p.add_argument("--config", default="configs/reproduce/cpu.yaml",
                   help="reproduce config (default: configs/reproduce/cpu.yaml; paper scale: configs/reproduce/paper.yaml)")
    p.add_argument("--plan", action="store_true", help="only print which notebooks would run and why")
    p.add_argument("--force", action="store_true", help="run the (selected) notebooks even if up to date")
    p.add_argument("--only", action="append", metavar="NAME", default=None,
                   help="consider only this notebook (repeatable); with --force, re-run just it")
    p.add_argument("--no-report", action="store_true", help="do not rebuild the report at the end")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import ConfigError, NotebookFailed, load_config, reproduce

    try:
        config = load_config(args.config)
        reproduce(config, force=args.force, only=args.only, plan_only=args.plan, report=not args.no_report)
    except ConfigError as exc:
        print(f"memat reproduce: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"memat reproduce: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- entry point
#: Subcommand name -> function adding its parser (and ``func`` default) to the subparsers.
SUBCOMMANDS: dict[str, AddParser] = {
    "data": _add_data,
    "model": _add_model,
    "build": _add_build,
    "report": _add_report,
    "reproduce": _add_reproduce,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``memat`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="memat", description="MEMAT reproduction tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``memat`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
