#!/usr/bin/env python
"""The accelerator memory plan of a paper-scale run, per phase, computed from a model config without loading
weights (issue 15, part 2). Nothing here runs on a GPU: the numbers are an analytic plan of what memat keeps
on the device in each phase, with the formula of every line printed, so that it can be checked against the
code and, on a machine with a GPU, against ``torch.cuda.max_memory_allocated``.

The model is instantiated on PyTorch's ``meta`` device (shapes, no storage), which gives the exact
parameter count and the MEMIT weight's shape; the rest comes from the presets:

* ``weights``: every parameter in ``--dtype``.
* ``key statistics``: :func:`memat.stats.layer_stats` accumulates ``k k^T`` of every edited layer in one pass,
  in float64 on the device (``len(layers) x d_ff^2 x 8`` bytes) plus one batch's activations (no grad); the
  result is returned to the CPU (host memory below), one language at a time.
* ``target vectors``: one chunk of ``batch_size`` requests, each with its random-prefix rows and one KL row;
  the backward pass runs only through the blocks after the last edited layer, over the positions from the
  subject's last token on (``--grad-positions``), the earlier ones read from the key/value cache. Saved
  activations per token and block: ``--act-per-token`` x hidden elements (12 for a Falcon block: its input,
  the norm, q, k, v, the attention output and its projection input, the MLP input, 4h pre- and post-GELU),
  plus the attention probabilities (heads x context length), in the model's dtype; logits of the target
  positions in float32.
* ``solve``: :func:`memat.memit.closed_form_update` in the preset's ``solve_dtype`` (float64) where its
  ``solve_device`` says: ``A = K K^T``, the layer's ``C`` moved there, ``A + lam C``, the LU factors
  (4 x d_ff^2 x 8 bytes), the keys and residuals. With ``solve_device: cpu`` (both presets) that is host
  memory, and the device holds only the keys and residuals of the layer before they move
  (``--solve-device model`` shows the other plan).
* ``update``: the edit's float32 updates of all edited layers (kept while applied, added in float32 and cast
  once, :func:`memat.memit.add_in_float32`) and the cast sum of the largest weight.
* ``MEMAT training``: backward through every block from the first corrected layer (``--first-head-layer``,
  0 by default: the top-K heads may sit anywhere) over a mini-batch of ``batch_size x (n_prefixes + 1)`` rows
  and their KL rows, full length (``--row-tokens``).
* ``evaluation``: forward only, one batch of prompts (``--eval-batch``) with their continuations; logits in
  float32.

The peak is the weights plus the largest phase (the phases run one after another) plus what persists
across them (the applied update; counted in every phase, so the statistics' line, computed before any edit,
is conservative). Host memory: the statistics of ``--languages`` languages stored on the CPU.

Examples::

    python benchmarks/bench_gpu_memory.py                      # Falcon-7B (Aguila-7B's architecture), paper presets
    python benchmarks/bench_gpu_memory.py --model gemma3-270m --memit-hparams gemma3-270m --memat-hparams gemma3-270m
    python benchmarks/bench_gpu_memory.py --config path/to/config.json --card-gb 40
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

GB = 1024**3  # "GB" below is 2^30 bytes (a GiB), as GPU memory is usually quoted
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8}


@dataclass
class Phase:
    name: str
    device_bytes: float
    formula: str


def falcon_7b_config():
    """Falcon-7B's config (tiiuae/falcon-7b, the architecture of projecte-aina/aguila-7b): transformers'
    ``FalconConfig`` defaults are that model (hidden 4,544, 32 layers, 71 heads, multi-query, vocabulary
    65,024), checked here so that a change of defaults in transformers cannot pass silently."""
    from transformers import FalconConfig

    cfg = FalconConfig()
    want = dict(hidden_size=4544, num_hidden_layers=32, num_attention_heads=71, vocab_size=65024, multi_query=True,
                new_decoder_architecture=False, parallel_attn=True)
    got = {k: getattr(cfg, k) for k in want}
    if got != want:
        raise SystemExit(f"transformers' FalconConfig defaults are no longer Falcon-7B's: {got} != {want}")
    return cfg


def load_config(args):
    from transformers import AutoConfig

    if args.config:
        return AutoConfig.from_pretrained(args.config)
    if args.model == "falcon-7b":
        return falcon_7b_config()
    from memat.models import DEFAULT_MODEL, embedded_checkpoint

    path = embedded_checkpoint() if args.model == DEFAULT_MODEL else args.model  # the embedded default, or a path/id
    return AutoConfig.from_pretrained(path)


def meta_model(cfg):
    """The model with shapes and no storage."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def plan(cfg, memit_hp, memat_hp, args) -> tuple[list[Phase], dict]:
    from memat.models import _head_counts, arch_spec

    model = meta_model(cfg)
    spec = arch_spec(cfg.model_type)
    n_params = sum(p.numel() for p in model.parameters())
    w_mlp = model.get_parameter(spec.mlp_out.format(0) + ".weight")
    d_out, d_in = w_mlp.shape if spec.weight_layout == "out_in" else tuple(reversed(w_mlp.shape))
    d_ff, hidden = int(d_in), int(d_out)
    n_layers = len(model.get_submodule(spec.layers))
    n_heads, n_kv, head_dim = _head_counts(cfg)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    b = BYTES[args.dtype]
    layers = list(memit_hp.layers)
    n_ctx = 1 + sum(count for _, count in memit_hp.context_templates)  # "{}" and the random prefixes
    T = args.row_tokens

    phases = []
    w = n_params * b
    phases.append(Phase("weights", w, f"{n_params:,} parameters x {b} B ({args.dtype})"))

    acc = len(layers) * d_ff**2 * 8
    stats_batch = 16 * memit_hp.mom2_max_len * (hidden + 2 * d_ff) * b
    phases.append(Phase("key statistics", acc + stats_batch,
                        f"{len(layers)} layers x d_ff^2 ({d_ff:,}^2) x 8 B (float64 sums) + one batch of 16 x "
                        f"{memit_hp.mom2_max_len} tokens"))

    rows = memit_hp.batch_size * (n_ctx + 1)  # rewrite rows in every context, and one KL row per request
    tail = n_layers - 1 - layers[-1]
    per_tok_layer = (args.act_per_token * hidden + n_heads * T) * b
    act = rows * args.grad_positions * tail * per_tok_layer
    kv = rows * T * n_layers * 2 * n_kv * head_dim * b
    logits = rows * args.grad_positions * vocab * 4 * 2
    phases.append(Phase("target vectors", act + kv + logits,
                        f"{rows} rows ({memit_hp.batch_size} requests x ({n_ctx} contexts + KL)) x "
                        f"{args.grad_positions} positions x {tail} blocks after layer {layers[-1]} x "
                        f"({args.act_per_token} x {hidden:,} + {n_heads} x {T}) x {b} B, + KV cache, + float32 logits"))

    n = args.n_edits
    where = getattr(args, "solve_device", None) or memit_hp.solve_device
    sb = BYTES[memit_hp.solve_dtype]
    solve = 4 * d_ff**2 * sb + 2 * n * d_ff * sb + n * hidden * sb
    solve_formula = (f"4 x d_ff^2 x {sb} B (A, C, A + lam C, LU; {memit_hp.solve_dtype}) + keys {n:,} x {d_ff:,} "
                     f"x {sb} B x 2 + residuals")
    if where == "model":
        phases.append(Phase("solve (one layer)", solve, solve_formula))
        host_solve = 0
    else:  # the keys and residuals of one layer, in float32, before they move to the host
        phases.append(Phase("solve (one layer, on the host)", n * (d_ff + hidden) * 4,
                            f"keys {n:,} x {d_ff:,} + residuals {n:,} x {hidden:,}, float32, before the move; "
                            f"on the host: {solve / GB:.2f} GB ({solve_formula})"))
        host_solve = solve

    mrows = memat_hp.batch_size * (memat_hp.n_prefixes + 1) * 2  # prompts with prefixes, and their KL rows
    depth = n_layers - args.first_head_layer
    m_act = mrows * T * depth * per_tok_layer
    m_logits = mrows * T * vocab * 4 * 2
    phases.append(Phase("MEMAT training", m_act + m_logits,
                        f"{mrows} rows ({memat_hp.batch_size} x ({memat_hp.n_prefixes} prefixes + 1) + KL) x {T} "
                        f"tokens x {depth} blocks x ({args.act_per_token} x {hidden:,} + {n_heads} x {T}) x {b} B + logits"))

    ev = args.eval_batch * T * (vocab * 4 + n_layers * 2 * n_kv * head_dim * b + 4 * hidden * b)
    phases.append(Phase("evaluation", ev, f"{args.eval_batch} sequences x {T} tokens: float32 logits, KV cache, activations"))

    upd = len(layers) * d_ff * hidden * 4 + d_ff * hidden * 4
    persistent = Phase("update (applied)", upd,
                       f"{len(layers)} float32 updates of {hidden:,} x {d_ff:,} + one float32 sum before the cast")
    host = args.languages * len(layers) * d_ff**2 * BYTES[memit_hp.mom2_dtype]
    info = dict(n_params=n_params, d_ff=d_ff, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
                head_dim=head_dim, vocab=vocab, host_stats=host, host_solve=host_solve, solve_device=where,
                persistent=persistent)
    return phases, info


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(widths[i]) if i in (0, len(r) - 1) else str(c).rjust(widths[i])
                              for i, c in enumerate(r))
    return "\n".join(line.rstrip() for line in [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="falcon-7b", help="falcon-7b (built from transformers' defaults), or a memat model name/path")
    ap.add_argument("--config", help="a config.json (or a folder with one) instead of --model")
    ap.add_argument("--dtype", default="float32", choices=sorted(BYTES),
                    help="the weights' dtype (default float32: paper.yaml's DTYPE, as the authors ran Aguila-7B)")
    ap.add_argument("--memit-hparams", default="aguila-7b")
    ap.add_argument("--memat-hparams", default="aguila-7b")
    ap.add_argument("--n-edits", type=int, default=1000)
    ap.add_argument("--row-tokens", type=int, default=32, help="tokens of a row: prefix, prompt and target")
    ap.add_argument("--grad-positions", type=int, default=12, help="positions from the subject's last token on")
    ap.add_argument("--act-per-token", type=int, default=12, help="saved activations per token and block, in units of hidden")
    ap.add_argument("--first-head-layer", type=int, default=0)
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--languages", type=int, default=3, help="statistics sets held in host memory (notebook 04: ca, en, their mean)")
    ap.add_argument("--card-gb", type=float, default=80.0)
    ap.add_argument("--solve-device", choices=["cpu", "model"], help="override the MEMIT preset's solve_device")
    args = ap.parse_args(argv)

    from memat.hparams import load_hparams
    from memat.memat import load_memat_hparams

    cfg = load_config(args)
    phases, info = plan(cfg, load_hparams(args.memit_hparams), load_memat_hparams(args.memat_hparams), args)
    print(f"model: {cfg.model_type}, {info['n_params'] / 1e9:.2f} B parameters, {info['n_layers']} layers, hidden "
          f"{info['hidden']:,}, d_ff {info['d_ff']:,}, {info['n_heads']} heads ({info['n_kv']} KV) x {info['head_dim']}, "
          f"vocabulary {info['vocab']:,}; {args.dtype}; {args.n_edits:,} edits")
    weights = phases[0].device_bytes
    rows = [[p.name, f"{p.device_bytes / GB:.2f}", f"{(weights + info['persistent'].device_bytes + p.device_bytes) / GB:.2f}"
             if i else f"{weights / GB:.2f}", p.formula] for i, p in enumerate(phases)]
    rows.append([info["persistent"].name, f"{info['persistent'].device_bytes / GB:.2f}", "", info["persistent"].formula])
    print(_table(["phase", "GB", "peak GB", "what"], rows))
    peak = weights + info["persistent"].device_bytes + max(p.device_bytes for p in phases[1:])
    worst = max(phases[1:], key=lambda p: p.device_bytes).name
    print(f"\npeak on the device: {peak / GB:.1f} GB (weights + applied update + {worst}); "
          f"{'fits' if peak <= args.card_gb * GB else 'does NOT fit'} one {args.card_gb:g} GB card")
    print(f"host memory for key statistics: {info['host_stats'] / GB:.1f} GB ({args.languages} sets, "
          f"{load_hparams(args.memit_hparams).mom2_dtype})"
          + (f", and {info['host_solve'] / GB:.1f} GB for one layer's solve (solve_device: cpu)" if info["host_solve"] else ""))
    print("an analytic plan, not a measurement: nothing here ran on a GPU", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
