"""The GPU memory plan (benchmarks/bench_gpu_memory.py) on Falcon-7B's config, built on the meta device."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_memory", ROOT / "benchmarks" / "bench_gpu_memory.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_falcon_7b_plan_from_shapes_alone(bench, capsys):
    from memat.hparams import load_hparams
    from memat.memat import load_memat_hparams

    args = bench.argparse.Namespace(dtype="bfloat16", n_edits=1000, row_tokens=32, grad_positions=12, act_per_token=12,
                                    first_head_layer=0, eval_batch=64, languages=3)
    phases, info = bench.plan(bench.falcon_7b_config(), load_hparams("aguila-7b"), load_memat_hparams("aguila-7b"), args)
    # by hand: embeddings (tied with the unembedding) 65,024 x 4,544; per block the norm (2 x 4,544), fused
    # QKV with one KV head 4,544 x (4,544 + 2 x 64), the dense 4,544^2, the MLP 2 x 4,544 x 18,176; ln_f
    per_block = 2 * 4544 + 4544 * (4544 + 2 * 64) + 4544**2 + 2 * 4544 * 18176
    assert info["n_params"] == 65024 * 4544 + 32 * per_block + 2 * 4544 == 6_921_720_704
    assert (info["hidden"], info["d_ff"], info["n_layers"], info["n_heads"], info["n_kv"], info["vocab"]) == (
        4544, 18176, 32, 71, 1, 65024)
    by = {p.name: p.device_bytes for p in phases}
    assert by["weights"] == 6_921_720_704 * 2
    assert by["key statistics"] >= 5 * 18176**2 * 8  # five float64 accumulators on the device
    # the presets solve on the host: one layer's keys and residuals on the device, the LU's 4 x d_ff^2 float64 there
    assert by["solve (one layer, on the host)"] == 1000 * (18176 + 4544) * 4
    assert info["host_solve"] >= 4 * 18176**2 * 8 and info["solve_device"] == "cpu"
    args.solve_device = "model"
    by_model = {p.name: p.device_bytes for p in bench.plan(bench.falcon_7b_config(), load_hparams("aguila-7b"),
                                                           load_memat_hparams("aguila-7b"), args)[0]}
    assert by_model["solve (one layer)"] == info["host_solve"]
    assert info["host_stats"] == 3 * 5 * 18176**2 * 4  # three float32 sets on the host
    assert bench.main(["--card-gb", "80"]) == 0
    out = capsys.readouterr().out
    assert "fits one 80 GB card" in out and "6.92 B parameters" in out and "for one layer's solve (solve_device: cpu)" in out
    bench.main(["--card-gb", "20"])
    assert "does NOT fit one 20 GB card" in capsys.readouterr().out
