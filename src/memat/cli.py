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


# --------------------------------------------------------------------------- entry point
#: Subcommand name -> function adding its parser (and ``func`` default) to the subparsers.
SUBCOMMANDS: dict[str, AddParser] = {
    "data": _add_data,
    "model": _add_model,
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
