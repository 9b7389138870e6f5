"""memat.cpuenv: one CPU instruction set for MKL, torch, oneDNN and OpenBLAS wherever notebooks or tests run."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from memat.cpuenv import PINNED, pin

ROOT = Path(__file__).resolve().parents[1]


def test_pin_sets_only_what_is_unset():
    env = {"MKL_CBWR": "COMPATIBLE", "PATH": "/bin"}
    added = pin(env)
    assert env["MKL_CBWR"] == "COMPATIBLE" and env["PATH"] == "/bin"
    assert added == {k: v for k, v in PINNED.items() if k != "MKL_CBWR"}
    assert all(env[k] == v for k, v in added.items())
    assert pin(env) == {}


def test_the_makefile_exports_the_same_values():
    """`make test`, `make notebooks` and `make reproduce` (and so .ci/run) pin what memat.cpuenv says."""
    exported = dict(re.findall(r"^export (\w+) \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M))
    assert {k: exported.get(k) for k in PINNED} == PINNED


def test_this_session_and_its_notebook_kernels_are_pinned():
    """conftest pins before torch loads; a subprocess (a kernel) inherits it, and torch reports the cap."""
    for k in PINNED:
        assert os.environ.get(k), k
    if os.environ["ATEN_CPU_CAPABILITY"] != "avx2":
        return  # the user chose another value
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out in {"AVX2", "DEFAULT", "NO AVX"}, out  # never AVX512 (a CPU without AVX2 reports less)


def test_the_notebook_runner_sets_them_for_its_kernels(monkeypatch):
    from memat.reproduce import _run_env

    for k in PINNED:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    with _run_env("figures"):
        inside = {k: os.environ.get(k) for k in PINNED}
    assert inside == {**PINNED, "OPENBLAS_CORETYPE": "Zen"}
    assert {k: os.environ.get(k) for k in PINNED} == {**{k: None for k in PINNED}, "OPENBLAS_CORETYPE": "Zen"}
