"""One CPU instruction set for every numeric library, so that a notebook run on one x86 machine gives the
same floats as on another (a leaf module: it imports neither torch nor anything from memat).

Float32 results depend on the vector width of the kernels a library picks for the CPU it finds: MKL's
matrix products, ATen's reductions and softmax, oneDNN and OpenBLAS each dispatch AVX-512 code on a CPU
that has it and AVX2 code on one that does not, and sum in a different order. On this project's CPU
notebooks that moved one probe's validation accuracy by 1/44 between an Intel machine with AVX-512 and an
AMD EPYC with AVX2 (2026-12-03), which changed the 16th head of a top-16 and notebook 08's counts: the
committed outputs could pass ``pytest --nbval`` on one kind of machine and fail on the other.

:data:`PINNED` asks each library for its AVX2 path, which every x86-64 CPU of the last decade has:
``MKL_CBWR=AVX2`` is MKL's conditional numerical reproducibility mode (the same results on any CPU with
AVX2), ``ATEN_CPU_CAPABILITY=avx2`` caps torch's own kernels, ``ONEDNN_MAX_CPU_ISA=AVX2`` oneDNN's and
``OPENBLAS_CORETYPE=Haswell`` OpenBLAS's (numpy, scipy, scikit-learn). They must be in the environment
before the libraries load: ``make`` exports them, ``memat reproduce`` sets them for each notebook's kernel,
``tests/conftest.py`` and ``notebooks/conftest.py`` for the tests and nbval's kernels; a value already set is kept (``setdefault``).
Measured on the AVX2 machine: bit-identical to not pinning (logits of the embedded model, an sgemm, a
logistic fit); ``MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default`` changes them, so the variables act.
GPU kernels are unaffected; on an AVX-512 CPU the pinned path is somewhat slower.
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["PINNED", "pin"]

PINNED: dict[str, str] = {
    "MKL_CBWR": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}


def pin(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set every variable of :data:`PINNED` that ``environ`` (default ``os.environ``) does not set; returns
    the ones it set."""
    env = os.environ if environ is None else environ
    added = {k: v for k, v in PINNED.items() if k not in env}
    env.update(added)
    return added
