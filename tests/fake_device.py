"""A fake second device for tests of models split over devices (``device_map``), on a CPU-only machine.

``split_model(lm)`` puts the second half of ``lm``'s blocks and its final norm on ``FAKE`` (``cpu:1``):
their parameters and buffers become :class:`OnFake` tensors, which hold their data on the CPU but report
``cpu:1`` as their device, and every block gets a forward pre-hook that moves its tensor arguments there,
as accelerate's ``AlignDevicesHook`` does for a model dispatched with ``device_map``. Inside
:class:`FakeDevice` (a ``TorchFunctionMode``), ``.to("cpu:1")`` / ``device="cpu:1"`` create ``OnFake``
tensors and ``.to("cpu")`` brings them back, with gradients flowing both ways.

An operation that mixes an ``OnFake`` tensor with an ordinary one (of at least one dimension) raises
``RuntimeError("tensors on two devices ...")``, as CUDA does for tensors on two GPUs; as on CUDA, CPU index
tensors may index a tensor on the other device. The arithmetic is the CPU's own, so a split model computes
bit for bit what the unsplit one does: tests compare the two.
"""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

FAKE = torch.device("cpu", 1)
_CPU = torch.device("cpu")
_aten = torch.ops.aten
# as on CUDA: CPU index tensors may index a tensor on another device
_INDEXING = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default, _aten._index_put_impl_.default}


class OnFake(torch.Tensor):
    """A CPU tensor that reports ``FAKE`` as its device."""

    @staticmethod
    def __new__(cls, data: torch.Tensor):
        r = torch.Tensor._make_wrapper_subclass(cls, data.shape, strides=data.stride(), dtype=data.dtype,
                                                device=FAKE, requires_grad=data.requires_grad)
        r.data_ = data
        return r

    def __repr__(self):
        return f"OnFake({self.data_!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = set()

        def look(x):
            if isinstance(x, OnFake):
                devices.add("fake")
            elif isinstance(x, torch.Tensor) and x.dim() > 0:
                devices.add("cpu")
            return x

        tree_map(look, (args[0], args[2:], kwargs) if func in _INDEXING else (args, kwargs))
        if func is _aten._to_copy.default:
            dev = kwargs.get("device")
            out = func(args[0].data_, **{k: v for k, v in kwargs.items() if k != "device"})
            return OnFake(out) if dev is None or torch.device(dev) == FAKE else out
        if len(devices) > 1:
            raise RuntimeError(f"tensors on two devices (cpu and the fake {FAKE}) in {func}")
        if kwargs.get("device") is not None and torch.device(kwargs["device"]) == FAKE:
            kwargs = {**kwargs, "device": _CPU}
        args, kwargs = tree_map(lambda x: x.data_ if isinstance(x, OnFake) else x, (args, kwargs))
        out = func(*args, **kwargs)
        if func is _aten._local_scalar_dense.default:
            return out
        return tree_map(_wrap, out)


def _wrap(x):
    return OnFake(x) if isinstance(x, torch.Tensor) and not isinstance(x, OnFake) else x


class _ToFake(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return OnFake(x.detach().clone())

    @staticmethod
    def backward(ctx, g):
        return g.data_ if isinstance(g, OnFake) else g


class _FromFake(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.data_.detach().clone()

    @staticmethod
    def backward(ctx, g):
        return _wrap(g)


def _target(func, args, kwargs):
    """(device, dtype) a ``Tensor.to`` / ``Tensor.cpu`` call asks for (None: unchanged)."""
    if func is torch.Tensor.cpu:
        return _CPU, None
    dev, dtype = kwargs.get("device"), kwargs.get("dtype")
    for a in args[1:]:
        if isinstance(a, torch.Tensor):
            dev, dtype = a.device, a.dtype
        elif isinstance(a, torch.dtype):
            dtype = a
        elif isinstance(a, (str, torch.device, int)):
            dev = a
    return (torch.device(dev) if dev is not None else None), dtype


class FakeDevice(TorchFunctionMode):
    """Moves to and from ``FAKE`` and factory functions with ``device=FAKE``; see the module docstring."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.Tensor.to, torch.Tensor.cpu) and args and isinstance(args[0], torch.Tensor):
            dev, dtype = _target(func, args, kwargs)
            x = args[0]
            if dev is not None and (dev == FAKE) != isinstance(x, OnFake):
                if dtype is not None:
                    x = x.to(dtype)
                return _ToFake.apply(x) if dev == FAKE else _FromFake.apply(x)
            if dev is not None and isinstance(x, OnFake):
                return x if dtype is None else x.to(dtype)
        dev = kwargs.get("device")
        if isinstance(dev, (str, torch.device)) and torch.device(dev) == FAKE:
            kwargs["device"] = _CPU
            return tree_map(_wrap, func(*args, **kwargs))
        return func(*args, **kwargs)


def _move(x, dev):
    return tree_map(lambda t: t.to(dev) if isinstance(t, torch.Tensor) and t.device != dev else t, x)


def split_model(lm, first: int | None = None) -> list[str]:
    """Blocks ``first..`` (default: the second half) and the final norm of ``lm`` onto ``FAKE``, and the
    unembedding too unless it is tied to the input embeddings (then it stays with them on the CPU, as
    accelerate keeps tied weights together); each moved module and the unembedding move their inputs to
    their own device. Returns the names of the modules moved. Use inside :class:`FakeDevice`."""
    n = lm.n_layers
    first = n // 2 if first is None else first
    names = [lm.name_of("layer", j) for j in range(first, n)] + [lm.spec.final_norm]
    if lm.module("unembed").weight is not lm.model.get_input_embeddings().weight:
        names.append(lm.spec.unembed)
    for name in names:
        mod = lm.model.get_submodule(name)
        for full, p in list(mod.named_parameters()):
            owner, _, attr = full.rpartition(".")
            setattr(mod.get_submodule(owner) if owner else mod, attr, torch.nn.Parameter(OnFake(p.data), requires_grad=p.requires_grad))
        for full, b in list(mod.named_buffers()):
            owner, _, attr = full.rpartition(".")
            (mod.get_submodule(owner) if owner else mod)._buffers[attr] = OnFake(b)
        mod.register_forward_pre_hook(lambda m, a, k: (_move(a, FAKE), _move(k, FAKE)), with_kwargs=True)
    unembed = lm.model.get_submodule(lm.spec.unembed)
    if lm.spec.unembed not in names:
        unembed.register_forward_pre_hook(lambda m, a, k: (_move(a, _CPU), _move(k, _CPU)), with_kwargs=True)
    return names
