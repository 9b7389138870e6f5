"""memat: Mass-Editing Memory with Attention in Transformers, a reproducible cross-lingual package.

The names below are the public interface (:mod:`memat.api` and the classes it returns)::

    from memat import MEMIT, MEMAT, load_model

    lm = load_model("gemma3-270m")
    delta = MEMIT.from_hparams("gemma3-270m").edit(lm, prompts=["{} plays"], subjects=["Lionel Messi"],
                                                   targets=["basketball"])
    with delta.applied(lm):
        ...

``import memat`` loads none of them (nor torch): each is imported from its module on first use (PEP 562),
so ``import memat`` is cheap and the package's ``__init__`` takes part in no import circle. The modules
themselves (``memat.memit``, ``memat.stats``, ...) are imported as usual.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "MEMIT": "memat.api",
    "PMET": "memat.api",
    "MEMAT": "memat.api",
    "as_requests": "memat.api",
    "as_cases": "memat.api",
    "EditRequest": "memat.requests",
    "MemitDelta": "memat.memit",
    "WeightDelta": "memat.memit",
    "HeadCorrections": "memat.corrections",
    "MematHparams": "memat.memat",
    "MemitHparams": "memat.hparams",
    "PmetHparams": "memat.pmet",
    "load_hparams": "memat.hparams",
    "EditCase": "memat.data.records",
    "LangView": "memat.data.records",
    "load_dataset": "memat.data",
    "load_model": "memat.models",
    "wrap_model": "memat.models",
    "evaluate_cases": "memat.evaluate",
    "summarize": "memat.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:  # AttributeError, so that `from memat import memit` still finds the submodule
        raise AttributeError(f"module 'memat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
