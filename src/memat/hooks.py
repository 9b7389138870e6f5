"""Context managers that read or edit module inputs and outputs (after baukit's ``nethook``).

Every hook is registered on ``__enter__`` and removed on ``__exit__``, exceptions included, so a model
is never left with a stray hook. ``stop=True`` aborts the forward pass right after the module has run
(by raising :class:`StopForward`, which the context manager swallows): the cheap way to read an early
layer without paying for the rest of the network.

Example::

    with TraceDict(model, ["model.layers.3.mlp.down_proj"], retain_input=True, stop=True) as td:
        model(**batch)
    keys = td["model.layers.3.mlp.down_proj"].input
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable, Iterable

import torch

__all__ = ["StopForward", "Trace", "TraceDict", "get_module", "recursive_copy"]


class StopForward(Exception):
    """Raised inside a hook to stop the forward pass; swallowed by the Trace that raised it."""


def get_module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule with dotted ``name``; a clear error listing close names if it is absent."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules()]
        stem = name.rsplit(".", 1)[0]
        near = [n for n in names if n.startswith(stem)][:10]
        raise LookupError(f"module {name!r} not found in {type(model).__name__}; near names: {near}") from None


def recursive_copy(x, clone: bool = False, detach: bool = False):
    if isinstance(x, torch.Tensor):
        if detach:
            x = x.detach()
        if clone:
            x = x.clone()
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(recursive_copy(v, clone, detach) for v in x)
    if isinstance(x, dict):
        return type(x)({k: recursive_copy(v, clone, detach) for k, v in x.items()})
    return x


def _first_tensor(x):
    return x[0] if isinstance(x, (tuple, list)) else x


class Trace(contextlib.AbstractContextManager):
    """Hook one module.

    Args:
        module: the model, or the module itself when ``layer`` is None.
        layer: dotted name of the submodule inside ``module``.
        retain_output / retain_input: keep the output / the first positional input as ``.output`` / ``.input``.
        clone, detach: copy what is retained (so later in-place changes don't alter it). ``clone`` is on by
            default: some models modify a module's output in place after the hook has run (Falcon's
            ``mlp_output += attention_output`` in the parallel-attention block), which would silently
            change an uncloned ``.output``.
        edit_output: ``fn(output, layer_name) -> output`` replacing the module's output.
        edit_input: ``fn(input, layer_name) -> input`` replacing the first positional input.
        stop: raise :class:`StopForward` after the module ran (the trace swallows it on exit); a
            callable is asked after each call and stops the pass when it returns True.

    Only the hooks with work to do are registered: the forward pre-hook when the input is edited or
    retained, the forward hook when the output is edited or retained or ``stop`` is set (one of them in
    any case). ``fired`` is set once the module has run, or, without a forward hook, when it is called.
    An input-editing trace (``retain_output=False``) is thus exactly one forward pre-hook.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        layer: str | None = None,
        retain_output: bool = True,
        retain_input: bool = False,
        clone: bool = True,
        detach: bool = False,
        edit_output: Callable | None = None,
        edit_input: Callable | None = None,
        stop: bool | Callable[[], bool] = False,
    ):
        self.layer = layer
        self.fired = False
        self.module = get_module(module, layer) if layer is not None else module
        self.input = None
        self.output = None
        self._handles: list = []
        trace = self

        self._needs_post = bool(retain_output or edit_output is not None or stop)
        self._needs_pre = bool(edit_input is not None or retain_input or not self._needs_post)

        def pre_hook(m, args, kwargs):
            if not trace._needs_post:
                trace.fired = True
            if edit_input is not None:
                if args:
                    args = (edit_input(args[0], layer),) + tuple(args[1:])
                elif "hidden_states" in kwargs:
                    kwargs = dict(kwargs, hidden_states=edit_input(kwargs["hidden_states"], layer))
            if retain_input:
                x = args[0] if args else kwargs.get("hidden_states")
                trace.input = recursive_copy(x, clone=clone, detach=detach)
            return args, kwargs

        def hook(m, args, output):
            if edit_output is not None:
                output = edit_output(output, layer)
            if retain_output:
                trace.output = recursive_copy(output, clone=clone, detach=detach)
            trace.fired = True
            if stop is True or (callable(stop) and stop()):
                raise StopForward()
            return output

        self._pre = pre_hook
        self._post = hook

    def __enter__(self):
        self._handles = []
        try:
            if self._needs_pre:
                self._handles.append(self.module.register_forward_pre_hook(self._pre, with_kwargs=True))
            if self._needs_post:
                self._handles.append(self.module.register_forward_hook(self._post))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return exc_type is not None and issubclass(exc_type, StopForward)

    def close(self):
        for h in self._handles:
            h.remove()
        self._handles = []


class TraceDict(OrderedDict, contextlib.AbstractContextManager):
    """Hook several modules at once: ``td[name]`` is the :class:`Trace` of that module.

    With ``stop=True`` the forward pass stops as soon as every module of ``layers`` has run once
    (whatever their execution order), which is how a forward is cut after the deepest layer needed.
    ``edit_output`` receives ``(output, name)`` so one function can serve every layer.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        layers: Iterable[str],
        retain_output: bool = True,
        retain_input: bool = False,
        clone: bool = True,
        detach: bool = False,
        edit_output: Callable | None = None,
        edit_input: Callable | None = None,
        stop: bool = False,
    ):
        super().__init__()
        layers = list(dict.fromkeys(layers))
        def all_fired() -> bool:
            if all(t.fired for t in self.values()):
                for t in self.values():  # ready for the next forward pass in the same block
                    t.fired = False
                return True
            return False

        for name in layers:
            self[name] = Trace(
                module,
                name,
                retain_output=retain_output,
                retain_input=retain_input,
                clone=clone,
                detach=detach,
                edit_output=edit_output,
                edit_input=edit_input,
                stop=all_fired if stop else False,
            )

    def __enter__(self):
        entered = []
        try:
            for t in self.values():
                t.__enter__()
                entered.append(t)
        except BaseException:
            for t in entered:
                t.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        for t in reversed(list(self.values())):
            t.close()
        return exc_type is not None and issubclass(exc_type, StopForward)
