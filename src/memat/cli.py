"""Command-line interface: ``memat <subcommand> ...``.

Subcommands are registered in :data:`SUBCOMMANDS`: a name mapped to a function that adds its parser
to the subparsers object and sets ``func`` (the handler, ``(args) -> int``) as a default. To add one::

    def _add_model(sub):
        p = sub.add_parser("model", help="...")
        p.set_defaults(func=_cmd_model)

    SUBCOMMANDS["model"] = _add_model

``memat report`` and ``memat reproduce`` are defined beside their code (``add_subcommand`` and
``run_command`` of :mod:`memat.report` and :mod:`memat.reproduce`, which ``python -m memat.report`` /
``python -m memat.reproduce`` use too), so that neither imports this module back. The other handlers
import what they need lazily; no module imported here imports torch, so ``memat data`` never does.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from . import report, reproduce

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
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if available, else CPU)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, ... (default: bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of model and tokenizer")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code from the hub")
    p.set_defaults(func=_cmd_model)


def _cmd_model(args: argparse.Namespace) -> int:
    from .models import EMBEDDED_ALIASES, embedded_checkpoint, load_model

    if args.name in EMBEDDED_ALIASES:
        print(f"embedded checkpoint: {embedded_checkpoint(refresh=args.refresh)}")
    kwargs = {"revision": args.revision} if args.revision else {}
    if args.trust_remote_code:
        kwargs["trust_remote_code"] = True
    lm = load_model(args.name, dtype=args.dtype, device=args.device, **kwargs)
    rows = [
        ("device / dtype", f"{lm.device} / {str(lm.dtype).removeprefix('torch.')}"),
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


# --------------------------------------------------------------------------- memat reproduce
def _add_reproduce(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """``memat reproduce`` (:func:`memat.reproduce.add_subcommand`), its ``--dry-run-model`` served by
    :mod:`memat.dryrun` (which imports memat.reproduce, so the runner cannot import it back)."""
    reproduce.add_subcommand(sub)
    sub.choices["reproduce"].set_defaults(func=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    derive = None
    if getattr(args, "dry_run_model", None):
        from .dryrun import derive_from_args

        derive = derive_from_args(args)
    return reproduce.run_command(args, derive=derive)


# --------------------------------------------------------------------------- entry point
#: Subcommand name -> function adding its parser (and ``func`` default) to the subparsers.
SUBCOMMANDS: dict[str, AddParser] = {
    "data": _add_data,
    "model": _add_model,
    "build": _add_build,
    "report": report.add_subcommand,
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
