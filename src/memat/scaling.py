"""The scaling experiment (MEMAT paper, Fig. 4): how many edits, on which facts, at what cost.

* :func:`edit_sizes`: the paper's schedule of edit counts, ``n_i = round(exp(ln(n_max) * i / steps))``
  (``steps=16``, ``n_max=10000``: ``i=8`` gives 100, ``i=16`` gives 10,000).
* :func:`disjoint_sets`: the facts the MEMAT corrections are trained on, and nested edited sets that never
  contain them.
* :func:`measure`: wall time and peak memory of a block, on the device the work runs on.
* :func:`measured_cache`, :func:`measured_memit`, :func:`measured_corrections`: compute a result once under
  :func:`measure`, keep it on disk with its measurement, and report that measurement on later runs, which
  load the result instead of computing it (a re-run of the notebook reports what an edit costs, not what
  loading it from the cache costs).
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Measurement", "disjoint_sets", "edit_sizes", "measure", "measured_cache", "measured_corrections",
           "measured_memit", "release_memory", "rss_mb"]


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


def release_memory() -> bool:
    """Collect garbage and hand freed heap memory back to the OS (glibc ``malloc_trim(0)``), so that a
    following RSS measurement starts from what is really in use, not from pages an earlier step freed but
    the allocator kept. Returns whether ``malloc_trim`` could be called (False off glibc)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def measure(device=None, interval: float = 0.05, release: bool = True):
    """Context manager measuring the wall time and peak memory of its block::

        with measure(lm) as m:          # a LoadedModel, a torch.device, a string or None (CPU)
            delta = compute_memit(...)
        m.seconds, m.peak_mb, m.method

    On a CUDA device the peak is ``torch.cuda.max_memory_allocated(device)`` after
    ``reset_peak_memory_stats(device)`` at entry (synchronised at entry and exit). Elsewhere the process's
    RSS is sampled every ``interval`` seconds by a background thread (and at entry and exit), and
    ``peak_mb`` is its highest value minus the value at entry. With ``release`` (default), the memory an
    earlier step freed is handed back to the OS first (:func:`release_memory`), so the growth is not hidden
    by pages the allocator kept; CUDA: ``torch.cuda.empty_cache()``. The record is filled also when the
    block raises.
    """
    import torch

    if not interval > 0:
        raise ValueError(f"interval must be > 0, got {interval}")
    dev = _resolve_device(device)
    rec = Measurement(device=str(dev))
    if release:
        release_memory()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        if release:
            torch.cuda.empty_cache()
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


# --------------------------------------------------------------------------------------------------
# results computed once, with their cost
# --------------------------------------------------------------------------------------------------


def _measured_root(root) -> Path:
    if root is not None:
        return Path(root)
    from .paths import cache_dir

    return cache_dir() / "measured"


def _read_record(path: Path, key: str) -> dict:
    """The record :func:`measured_cache` wrote at ``path`` for ``key``; raises
    :class:`~memat.cache.UnreadableFile` naming it when it cannot be read, is not a JSON object or is of
    another key (the result is then computed again, never silently)."""
    from .cache import UnreadableFile, check_key

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        check_key(record.get("key"), key)
    except (OSError, ValueError) as e:  # missing, unreadable, not UTF-8, not JSON, not an object, another key
        raise UnreadableFile(path, e) from e
    return record


def measured_cache(
    name: str,
    key: str,
    compute: Callable[[], Any],
    save: Callable[[Any, Path], Any],
    load: Callable[[Path], Any],
    device=None,
    refresh: bool = False,
    root: str | os.PathLike | None = None,
) -> tuple[Any, dict, bool]:
    """``compute()`` once under :func:`measure`, its result and its measurement kept on disk.

    The first call for ``key`` (or any call with ``refresh=True``) runs ``compute()`` under
    ``measure(device)``, then writes the result with ``save(result, path)`` (a temporary file renamed to
    ``<root>/<name>/<key[:32]>.safetensors``) and a record beside it (``.json``: the key, the
    :class:`Measurement` as a dict, torch's CPU thread count). Later calls return ``load(path)`` and the
    recorded measurement, so they report what computing the result cost. ``root`` defaults to
    ``<memat cache dir>/measured``. A missing result file is computed; an entry that cannot be used (a
    record missing, unreadable or of another key, from a clash of the 32-character file name; a result
    file ``load`` fails on) is reported (``warnings.warn`` naming the file) and recomputed
    (:func:`memat.cache.cached`). Errors of ``compute`` and ``save`` are not caught.

    Returns ``(result, record, fresh)``: ``record["measurement"]`` is the measurement, ``fresh`` is True
    when the result was computed by this call.
    """
    import torch

    from .cache import cached, entry_path
    from .io import atomic_write_text

    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string, got {key!r}")
    root = _measured_root(root)
    rec_path = entry_path(name, key, root=root, suffix=".json")

    def run():
        with measure(device) as m:
            result = compute()
        return result, {"key": key, "name": name, "measurement": m.to_dict(), "torch_threads": torch.get_num_threads()}

    def store(entry, path):
        save(entry[0], path)
        atomic_write_text(rec_path, json.dumps(entry[1], indent=1) + "\n")

    def read(path):
        record = _read_record(rec_path, key)
        return load(path), record

    (result, record), fresh = cached(name, key, run, store, read, root=root, refresh=refresh, label="measured")
    return result, record, fresh


def measured_memit(lm, cases, hp, stats, lang: str, refresh: bool = False, root=None):
    """A MEMIT (or PMET, for :class:`~memat.pmet.PmetHparams`) edit of ``cases`` in ``lang`` computed **from
    scratch** (no cached target vectors or delta: :func:`memat.memit.cached_memit` with ``cache=False``) under
    :func:`measure` the first time, and loaded with that measurement afterwards (:func:`measured_cache`,
    keyed by :func:`memat.memit.memit_cache_key`: model weights, device, dtype, hyperparameters, requests,
    language and statistics). Returns ``(delta, record, fresh)``."""
    from . import memit
    from .requests import resolve_requests

    requests = resolve_requests(cases, lang, "measured_memit")
    key = memit.memit_cache_key(lm, requests, hp, lang, 0, memit.stats_key(stats))
    return measured_cache(
        "memit", key,
        compute=lambda: memit.cached_memit(lm, requests, hp, stats, lang, progress=False, cache=False),
        save=lambda d, p: d.save(p),
        load=lambda p: memit.WeightDelta.load(p, device=lm.device),
        device=lm, refresh=refresh, root=root,
    )


def measured_corrections(lm, cases, heads, hp, delta=None, langs: Sequence[str] = ("en",), refresh: bool = False,
                         root=None):
    """MEMAT head corrections (:func:`memat.memat.train_corrections`) trained under :func:`measure` the first
    time, loaded with that measurement afterwards (:func:`measured_cache`, keyed by
    :func:`memat.memat.corrections_cache_key`). Returns ``((corrections, training log), record, fresh)``."""
    import torch

    from .memat import HeadCorrections, corrections_cache_key, train_corrections

    langs = (langs,) if isinstance(langs, str) else tuple(langs)
    cases = list(cases)
    key = corrections_cache_key(lm, cases, heads, hp, delta, langs)

    def save(result, path):
        corr, log = result
        corr.meta["train_log"] = log
        corr.save(path)

    def load(path):
        corr = HeadCorrections.load(path, lm=lm)
        corr.vectors = corr.vectors.to(torch.float32)
        return corr, corr.meta.get("train_log", {})

    return measured_cache(
        "corrections", key,
        compute=lambda: train_corrections(lm, cases, heads, hp, delta=delta, langs=langs),
        save=save, load=load, device=lm, refresh=refresh, root=root,
    )
