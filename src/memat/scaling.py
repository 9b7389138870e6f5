"""The scaling experiment (MEMAT paper, Fig. 4): how many edits, on which facts, at what cost.

* :func:`edit_sizes`: the paper's schedule of edit counts, ``n_i = round(exp(ln(n_max) * i / steps))``
  (``steps=16``, ``n_max=10000``: ``i=8`` gives 100, ``i=16`` gives 10,000).
* :func:`disjoint_sets`: the facts the MEMAT corrections are trained on, and nested edited sets that never
  contain them.
* :func:`measure`: wall time and peak memory of a block, on the device the work runs on.
"""
from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Measurement", "disjoint_sets", "edit_sizes", "measure", "rss_mb"]


# --------------------------------------------------------------------------------------------------
# schedule and case sets
# --------------------------------------------------------------------------------------------------


def _as_int(x, name: str) -> int:
    if isinstance(x, bool):
        raise TypeError(f"{name} must be an integer, got {x!r}")
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)) and math.isfinite(x) and float(x).is_integer():
        return int(x)
    raise ValueError(f"{name} must be an integer, got {x!r}")


def edit_sizes(i_values: Sequence[int], n_max: int = 10000, steps: int = 16) -> list[int]:
    """Edit counts ``round(exp(ln(n_max) * i / steps))`` for each ``i`` (in the order given, one per ``i``;
    equal counts for small ``i`` are kept, e.g. ``i=0`` gives 1).

    Raises ValueError naming the value for an ``i`` outside ``[0, steps]`` or not an integer.
    """
    n_max = _as_int(n_max, "n_max")
    steps = _as_int(steps, "steps")
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if isinstance(i_values, (int, np.integer)):
        i_values = [i_values]
    out = []
    for raw in i_values:
        i = _as_int(raw, "i")
        if not 0 <= i <= steps:
            raise ValueError(f"i={raw!r} is outside [0, steps={steps}]")
        out.append(round(math.exp(math.log(n_max) * i / steps)))
    return out


def disjoint_sets(cases: Sequence, sizes: Sequence[int], n_train: int, seed: int = 0) -> tuple[list, dict[int, list]]:
    """Correction-training cases and nested edited sets, disjoint from them.

    One seeded permutation of ``cases`` (``numpy.random.default_rng(seed)``): its first ``n_train``
    entries are the training cases, and each edited set of size ``n`` is the first ``n`` of the rest, so a
    larger set contains every smaller one and no edited set contains a training case.

    Returns ``(train_cases, {n: edited cases})``. Raises ValueError when there are fewer than
    ``n_train + max(sizes)`` cases, or when case ids repeat (disjointness is by ``case_id``).
    """
    cases = list(cases)
    n_train = _as_int(n_train, "n_train")
    if n_train < 0:
        raise ValueError(f"n_train must be >= 0, got {n_train}")
    if isinstance(sizes, (int, np.integer)):
        sizes = [sizes]
    sizes = [_as_int(n, "sizes entry") for n in sizes]
    if not sizes:
        raise ValueError("sizes is empty")
    bad = [n for n in sizes if n < 1]
    if bad:
        raise ValueError(f"edited set sizes must be >= 1, got {bad}")
    ids = [getattr(c, "case_id", c) for c in cases]
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen and i not in dup:
                dup.append(i)
            seen.add(i)
        raise ValueError(f"case ids repeat ({dup[:10]}): training and edited sets could share a fact")
    need = n_train + max(sizes)
    if need > len(cases):
        raise ValueError(
            f"not enough cases: n_train={n_train} + the largest edited set {max(sizes)} = {need} are needed, "
            f"{len(cases)} available"
        )
    perm = np.random.default_rng(seed).permutation(len(cases))
    train = [cases[j] for j in perm[:n_train]]
    rest = [cases[j] for j in perm[n_train:]]
    return train, {n: rest[:n] for n in sizes}


# --------------------------------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------------------------------

_MB = 1024.0 * 1024.0


def _proc_status_rss() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) * 1024.0 / _MB  # kB
    except OSError:
        return None
    return None


def _rss_reader():
    """(name, fn -> current RSS in MB) of the first working method: /proc/self/status, then psutil."""
    if _proc_status_rss() is not None:
        return "rss:/proc/self/status", _proc_status_rss
    try:
        import psutil

        proc = psutil.Process(os.getpid())
        return "rss:psutil", lambda: proc.memory_info().rss / _MB
    except Exception:  # noqa: BLE001 - psutil missing or unusable
        return None, None


def rss_mb() -> float | None:
    """Current resident set size of this process in MB (None where it cannot be read)."""
    fn = _rss_reader()[1]
    return fn() if fn else None


def _ru_maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / _MB if sys.platform == "darwin" else r / 1024.0  # bytes on macOS, kB on Linux


@dataclass
class Measurement:
    """Filled by :func:`measure` when its block exits.

    Attributes:
        seconds: wall time of the block (``time.perf_counter``).
        peak_mb: the headline number. CUDA: ``torch.cuda.max_memory_allocated`` since entry (the peak
            reset at entry), i.e. everything allocated on the device at the peak, the model's weights
            included. CPU: the peak growth of the process's resident set over its value at entry.
        baseline_mb: memory at entry (CUDA: ``memory_allocated``; CPU: RSS).
        peak_abs_mb: the absolute peak (CUDA: ``max_memory_allocated``; CPU: highest sampled RSS).
        ru_maxrss_mb: the process's lifetime peak RSS (``getrusage``) at exit, for reference (CPU and CUDA).
        method: ``"cuda:max_memory_allocated"``, ``"rss:/proc/self/status"``, ``"rss:psutil"``, or
            ``"ru_maxrss"`` when RSS cannot be sampled (then peak_mb is the growth of the lifetime peak,
            which stays 0 while the process is below an earlier peak).
        device: the device measured; n_samples: RSS samples taken (CPU).
    """

    seconds: float = float("nan")
    peak_mb: float = float("nan")
    baseline_mb: float = float("nan")
    peak_abs_mb: float = float("nan")
    ru_maxrss_mb: float = float("nan")
    method: str = ""
    device: str = ""
    n_samples: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _resolve_device(device):
    import torch

    if device is None:
        return torch.device("cpu")
    if hasattr(device, "model") and hasattr(device, "device") and not isinstance(device, (str, torch.device)):
        device = device.device  # a LoadedModel
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"measure: device {dev} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@contextlib.contextmanager
def measure(device=None, interval: float = 0.05):
    """Context manager measuring the wall time and peak memory of its block::

        with measure(lm) as m:          # a LoadedModel, a torch.device, a string or None (CPU)
            delta = compute_memit(...)
        m.seconds, m.peak_mb, m.method

    On a CUDA device the peak is ``torch.cuda.max_memory_allocated(device)`` after
    ``reset_peak_memory_stats(device)`` at entry (synchronised at entry and exit). Elsewhere the process's
    RSS is sampled every ``interval`` seconds by a background thread (and at entry and exit), and
    ``peak_mb`` is its highest value minus the value at entry. The record is filled also when the block
    raises.
    """
    import torch

    if not interval > 0:
        raise ValueError(f"interval must be > 0, got {interval}")
    dev = _resolve_device(device)
    rec = Measurement(device=str(dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        rec.method = "cuda:max_memory_allocated"
        rec.baseline_mb = torch.cuda.memory_allocated(dev) / _MB
        t0 = time.perf_counter()
        try:
            yield rec
        finally:
            torch.cuda.synchronize(dev)
            rec.seconds = time.perf_counter() - t0
            rec.peak_abs_mb = torch.cuda.max_memory_allocated(dev) / _MB
            rec.peak_mb = rec.peak_abs_mb
            rec.ru_maxrss_mb = _ru_maxrss_mb()
        return

    method, read = _rss_reader()
    if read is None:
        rec.method = "ru_maxrss"
        rec.baseline_mb = _ru_maxrss_mb()
        t0 = time.perf_counter()
        try:
            yield rec
        finally:
            rec.seconds = time.perf_counter() - t0
            rec.ru_maxrss_mb = rec.peak_abs_mb = _ru_maxrss_mb()
            rec.peak_mb = rec.peak_abs_mb - rec.baseline_mb
        return

    rec.method = method
    state = {"peak": read(), "n": 1}
    rec.baseline_mb = state["peak"]
    stop = threading.Event()

    def sample():
        while not stop.wait(interval):
            v = read()
            if v is not None:
                state["peak"] = max(state["peak"], v)
                state["n"] += 1

    thread = threading.Thread(target=sample, name="memat-measure", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    try:
        yield rec
    finally:
        v = read()
        rec.seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
        if v is not None:
            state["peak"] = max(state["peak"], v)
            state["n"] += 1
        rec.peak_abs_mb = state["peak"]
        rec.peak_mb = state["peak"] - rec.baseline_mb
        rec.n_samples = state["n"]
        rec.ru_maxrss_mb = _ru_maxrss_mb()
