"""Shared test set-up: puts ``tests/`` on ``sys.path`` (so ``from tiny_models import ...`` works from any
test, whatever pytest's import mode) and provides the tiny-model fixtures.

Fixtures:
    tiny_tokenizer   the offline word-level tokenizer of ``tiny_models.make_tokenizer()`` (session-wide; read-only).
    tiny_lm          a fresh tiny ``LoadedModel``, parametrised over every family of ``tiny_models.FAMILIES``
                     (a test asking for it runs once per family; ids are the family names).
    family           the family name of the current ``tiny_lm`` parameter.

Torch runs single-threaded in tests (``MEMAT_TEST_THREADS`` overrides): the tiny models' matrices are so
small that intra-op threads only add synchronisation, and on a busy 2-core machine a 4-layer forward
took 0.5 s with 2 threads against 2 ms with one.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# before torch, numpy or a notebook kernel loads: one CPU instruction set (memat.cpuenv)
_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
from memat.cpuenv import pin  # noqa: E402  (a leaf module: imports neither torch nor numpy)

pin()

import pytest  # noqa: E402
import torch  # noqa: E402

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from tiny_models import FAMILIES, make_tiny_model, make_tokenizer  # noqa: E402

torch.set_num_threads(int(os.environ.get("MEMAT_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_tokenizer()


@pytest.fixture(params=FAMILIES, ids=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def tiny_lm(family, tiny_tokenizer):
    return make_tiny_model(family, tokenizer=tiny_tokenizer)
