"""The scaling experiment's schedule, case sets and resource measurement (memat.scaling)."""
from __future__ import annotations

import time
from collections import namedtuple

import numpy as np
import pytest
import torch
from tiny_models import make_tiny_model

from memat import scaling
from memat.scaling import disjoint_sets, edit_sizes, measure

Case = namedtuple("Case", "case_id subject")


# --------------------------------------------------------------------------------------------------
# edit_sizes
# --------------------------------------------------------------------------------------------------


def test_edit_sizes_paper_schedule():
    assert edit_sizes([16, 8, 0]) == [10000, 100, 1]
    # ln(10000) * i / 16 = ln(10) * i / 4: n_i = 10^(i/4), written out for i = 0..16
    want = [1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000, 1778, 3162, 5623, 10000]
    assert edit_sizes(range(17)) == want
    assert want == [round(10 ** (i / 4)) for i in range(17)]
    assert edit_sizes([4, 4, 2]) == [10, 10, 3]  # one per i, in order, repeats kept
    assert edit_sizes([2], n_max=100, steps=2) == [100]
    assert edit_sizes([1], n_max=100, steps=2) == [10]
    assert edit_sizes([np.int64(12), 12.0]) == [1000, 1000]


@pytest.mark.parametrize("bad, match", [(17, r"i=17 is outside \[0, steps=16\]"), (-1, r"i=-1 is outside"),
                                        (2.5, r"i must be an integer, got 2.5"), ("3", r"i must be an integer, got '3'")])
def test_edit_sizes_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        edit_sizes([0, bad])


def test_edit_sizes_other_errors():
    with pytest.raises(ValueError, match="n_max must be >= 1"):
        edit_sizes([1], n_max=0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        edit_sizes([0], steps=0)
    with pytest.raises(TypeError):
        edit_sizes([True])


# --------------------------------------------------------------------------------------------------
# disjoint_sets
# --------------------------------------------------------------------------------------------------


def _cases(n):
    return [Case(1000 + i, f"s{i}") for i in range(n)]


def test_disjoint_sets_properties():
    cases = _cases(60)
    sizes = [1, 5, 20, 45]
    train, sets = disjoint_sets(cases, sizes, n_train=15, seed=3)
    assert len(train) == 15 and sorted(sets) == sizes
    train_ids = {c.case_id for c in train}
    for n in sizes:
        ids = [c.case_id for c in sets[n]]
        assert len(ids) == n == len(set(ids))
        assert not train_ids & set(ids)
    for a, b in zip(sizes, sizes[1:]):
        assert sets[b][:a] == sets[a]  # nested prefixes
    # all of it is one permutation: training first, then the edited order
    assert len(train_ids | {c.case_id for c in sets[45]}) == 60
    # seeded and reproducible; another seed draws other cases
    assert disjoint_sets(cases, sizes, 15, seed=3) == (train, sets)
    train2, _ = disjoint_sets(cases, sizes, 15, seed=4)
    assert [c.case_id for c in train2] != [c.case_id for c in train]
    # the draw does not depend on the sizes asked for
    assert disjoint_sets(cases, [5], 15, seed=3)[1][5] == sets[5]
    # not sorted: a real permutation
    assert [c.case_id for c in sets[45]] != sorted(c.case_id for c in sets[45])


def test_disjoint_sets_no_training_and_exact_fit():
    cases = _cases(10)
    train, sets = disjoint_sets(cases, [10], n_train=0, seed=0)
    assert train == [] and sorted(c.case_id for c in sets[10]) == [c.case_id for c in cases]
    train, sets = disjoint_sets(cases, [4, 7], n_train=3, seed=0)
    assert len(train) + len(sets[7]) == 10


def test_disjoint_sets_errors():
    cases = _cases(30)
    with pytest.raises(ValueError, match=r"n_train=10 \+ the largest edited set 25 = 35 are needed, 30 available"):
        disjoint_sets(cases, [5, 25], n_train=10, seed=0)
    with pytest.raises(ValueError, match=r"case ids repeat \(\[1000\]\)"):
        disjoint_sets(cases + cases[:1], [5], 1)
    with pytest.raises(ValueError, match=r"sizes must be >= 1, got \[0\]"):
        disjoint_sets(cases, [0, 5], 1)
    with pytest.raises(ValueError, match="n_train must be >= 0"):
        disjoint_sets(cases, [5], -1)
    with pytest.raises(ValueError, match="sizes is empty"):
        disjoint_sets(cases, [], 1)


# --------------------------------------------------------------------------------------------------
# measure
# --------------------------------------------------------------------------------------------------


def test_measure_cpu_peak_of_a_freed_allocation():
    """A 200 MB tensor allocated and freed inside the block: only the background sampler can see it."""
    with measure("cpu") as m:
        x = torch.ones(50_000_000)  # 200 MB, every page touched
        time.sleep(0.3)
        del x
        time.sleep(0.1)
    assert m.method.startswith("rss:") and m.device == "cpu"
    assert m.peak_mb >= 150, m
    assert m.peak_abs_mb == pytest.approx(m.baseline_mb + m.peak_mb)
    assert m.ru_maxrss_mb >= m.peak_abs_mb - 1  # lifetime peak is at least the sampled one
    assert m.n_samples >= 3 and m.seconds >= 0.4


def test_measure_wall_time_and_small_peak():
    with measure() as m:
        time.sleep(0.2)
    assert 0.2 <= m.seconds < 5 and m.peak_mb < 50
    assert set(m.to_dict()) >= {"seconds", "peak_mb", "method", "device", "ru_maxrss_mb"}


def test_measure_fills_the_record_when_the_block_raises():
    with pytest.raises(RuntimeError, match="boom"), measure() as m:
        time.sleep(0.05)
        raise RuntimeError("boom")
    assert m.seconds >= 0.05 and not np.isnan(m.peak_mb)


def test_measure_device_from_a_loaded_model():
    lm = make_tiny_model("llama")
    with measure(lm) as m:
        pass
    assert m.device == "cpu" and m.method.startswith("rss:")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"), measure("cuda:0"):
            pass


def test_measure_fallbacks(monkeypatch):
    psutil = pytest.importorskip("psutil")
    monkeypatch.setattr(scaling, "_proc_status_rss", lambda: None)
    with measure() as m:
        x = np.ones(25_000_000)  # 200 MB
        time.sleep(0.2)
        del x
    assert m.method == "rss:psutil" and m.peak_mb >= 150
    monkeypatch.setattr(scaling, "_rss_reader", lambda: (None, None))
    with measure() as m:
        time.sleep(0.01)
    assert m.method == "ru_maxrss" and m.peak_mb >= 0 and m.ru_maxrss_mb > 0
    assert psutil is not None


# --------------------------------------------------------------------------------------------------
# release_memory and the measured cache
# --------------------------------------------------------------------------------------------------


def test_release_memory_and_measure_without_it():
    assert isinstance(scaling.release_memory(), bool)
    with measure(release=False) as m:
        time.sleep(0.05)
    assert m.seconds >= 0.05 and m.peak_mb >= 0


def _tensor_io():
    from safetensors.torch import load_file, save_file

    return (lambda r, p: save_file(r, str(p))), (lambda p: load_file(str(p)))


def test_measured_cache_computes_once_and_reports_the_first_measurement(tmp_path):
    save, load = _tensor_io()
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return {"x": torch.arange(6.0) * len(calls)}

    r1, rec1, fresh1 = scaling.measured_cache("t", "k" * 40, compute, save, load, root=tmp_path)
    assert fresh1 and len(calls) == 1 and rec1["measurement"]["seconds"] >= 0.2
    assert rec1["key"] == "k" * 40 and rec1["torch_threads"] >= 1
    assert (tmp_path / "t" / f"{'k' * 32}.safetensors").is_file() and (tmp_path / "t" / f"{'k' * 32}.json").is_file()
    r2, rec2, fresh2 = scaling.measured_cache("t", "k" * 40, compute, save, load, root=tmp_path)
    assert not fresh2 and len(calls) == 1 and rec2 == rec1  # the cost of computing, not of loading
    assert torch.equal(r2["x"], r1["x"])
    # another key, or refresh: computed again
    _, _, fresh3 = scaling.measured_cache("t", "j" * 40, compute, save, load, root=tmp_path)
    r4, _, fresh4 = scaling.measured_cache("t", "k" * 40, compute, save, load, root=tmp_path, refresh=True)
    assert fresh3 and fresh4 and len(calls) == 3 and torch.equal(r4["x"], torch.arange(6.0) * 3)
    # a record for another key under the same file name (a 32-character prefix clash), or a lost result: recompute
    _, _, fresh5 = scaling.measured_cache("t", "k" * 32 + "other", compute, save, load, root=tmp_path)
    assert fresh5 and len(calls) == 4
    (tmp_path / "t" / f"{'j' * 32}.safetensors").unlink()
    _, _, fresh6 = scaling.measured_cache("t", "j" * 40, compute, save, load, root=tmp_path)
    assert fresh6 and len(calls) == 5
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        scaling.measured_cache("t", "", compute, save, load, root=tmp_path)


@pytest.mark.parametrize("suffix, content", [
    ("json", b"{not json"), ("json", b"[1, 2]"), ("json", b"\xff\xfe not UTF-8"),
    ("safetensors", b"not a safetensors file"),
])
def test_an_unreadable_measured_entry_is_reported_and_recomputed(tmp_path, suffix, content):
    """A corrupt record or result file is named in a warning (with the error), computed again under
    :func:`measure` and overwritten; the result is the fresh computation's."""
    import re
    import warnings

    save, load = _tensor_io()
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(6.0)}

    r1, _, _ = scaling.measured_cache("t", "k" * 40, compute, save, load, root=tmp_path)
    bad = tmp_path / "t" / f"{'k' * 32}.{suffix}"
    bad.write_bytes(content)
    with pytest.warns(UserWarning, match=rf"measured cache .*{re.escape(bad.name)} is unreadable \(\w+: .*\); recomputing"):
        r2, rec2, fresh2 = scaling.measured_cache("t", "k" * 40, compute, save, load, root=tmp_path)
    assert fresh2 and len(calls) == 2 and torch.equal(r2["x"], r1["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: read back without a warning or a computation
        r3, rec3, fresh3 = scaling.measured_cache("t", "k" * 40, compute, save, load, root=tmp_path)
    assert not fresh3 and len(calls) == 2 and rec3 == rec2 and torch.equal(r3["x"], r1["x"])


def test_measured_cache_does_not_swallow_errors_of_the_computation(tmp_path):
    """Only reading the cache is guarded: an error of ``compute`` (here after a corrupt record) or of
    ``save`` reaches the caller."""
    save, load = _tensor_io()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / f"{'k' * 32}.json").write_text("{not json")
    (tmp_path / "t" / f"{'k' * 32}.safetensors").write_bytes(b"")

    def broken():
        raise RuntimeError("the computation failed")

    with pytest.warns(UserWarning, match="is unreadable"), pytest.raises(RuntimeError, match="the computation failed"):
        scaling.measured_cache("t", "k" * 40, broken, save, load, root=tmp_path)
    def full_disk(result, path):
        raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space left"):
        scaling.measured_cache("t", "j" * 40, lambda: {"x": torch.ones(2)}, full_disk, load, root=tmp_path)


def test_measured_memit_recomputes_a_corrupt_edit(tmp_path, monkeypatch):
    """A MEMIT edit whose stored result is corrupt is reported, computed again from scratch and equals the
    first (fresh) computation."""
    import re

    from memat.hparams import MemitHparams
    from memat.memit import EditRequest

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = MemitHparams(layers=layers, v_num_grad_steps=2, batch_size=8, mom2_update_weight=1.0, context_templates=[[3, 1]])
    reqs = [EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo")]
    d1, _, fresh1 = scaling.measured_memit(lm, reqs, hp, stats, "en")
    (result,) = (tmp_path / "measured" / "memit").glob("*.safetensors")
    result.write_bytes(result.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match=re.escape(result.name)):
        d2, _, fresh2 = scaling.measured_memit(lm, reqs, hp, stats, "en")
    assert fresh1 and fresh2
    assert d1.deltas.keys() == d2.deltas.keys() and all(torch.equal(d1.deltas[k], d2.deltas[k]) for k in d1.deltas)
    _, _, fresh3 = scaling.measured_memit(lm, reqs, hp, stats, "en")
    assert not fresh3


def test_measured_cache_default_root_is_the_memat_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    save, load = _tensor_io()
    scaling.measured_cache("t", "abc", lambda: {"x": torch.ones(2)}, save, load)
    assert (tmp_path / "measured" / "t" / "abc.safetensors").is_file()


def test_measured_memit_is_from_scratch_then_loaded(tmp_path, monkeypatch):
    import memat.memit as memit_mod
    from memat.hparams import MemitHparams
    from memat.memit import EditRequest

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    layers = [1, 2]
    stats = {l: torch.eye(lm.mlp_out_weight(l).shape[1]) for l in layers}
    hp = MemitHparams(layers=layers, v_num_grad_steps=2, batch_size=8, mom2_update_weight=1.0, context_templates=[[3, 1]])
    reqs = [EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo"),
            EditRequest(1, "{} was born in", "Lionel Messi", "Cairo")]
    calls = []
    real = memit_mod.compute_memit
    monkeypatch.setattr(memit_mod, "compute_memit", lambda *a, **k: calls.append(k.get("targets")) or real(*a, **k))

    d1, rec1, fresh1 = scaling.measured_memit(lm, reqs, hp, stats, "en")
    assert fresh1 and calls == [None]  # the target vectors were optimised, not taken from a cache
    assert not (tmp_path / "targets").exists() and not (tmp_path / "deltas").exists()
    assert rec1["measurement"]["seconds"] > 0 and rec1["measurement"]["device"] == "cpu"
    d2, rec2, fresh2 = scaling.measured_memit(lm, reqs, hp, stats, "en")
    assert not fresh2 and len(calls) == 1 and rec2 == rec1
    assert d1.deltas.keys() == d2.deltas.keys() and all(torch.equal(d1.deltas[k], d2.deltas[k]) for k in d1.deltas)
    assert d2.meta["case_ids"] == [0, 1]
    # the same edit as memit.cached_memit computes
    ref = memit_mod.cached_memit(lm, reqs, hp, stats, "en", progress=False, cache=False)
    assert all(torch.equal(ref.deltas[k], d2.deltas[k]) for k in ref.deltas)
    # other statistics or requests: another edit
    _, _, fresh3 = scaling.measured_memit(lm, reqs, hp, {l: 2 * s for l, s in stats.items()}, "en")
    _, _, fresh4 = scaling.measured_memit(lm, reqs[:1], hp, stats, "en")
    assert fresh3 and fresh4


def test_measured_corrections_trained_once_then_loaded(tmp_path, monkeypatch):
    import memat.memat as mm
    from memat.data.records import EditCase, LangView
    from memat.memat import MematHparams

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("gemma3_text")
    cases = [EditCase(10, {"en": LangView("Toyota", "Japan", "Germany", "{} is located in", kl_prompts=("{} is a",))}),
             EditCase(11, {"en": LangView("Lionel Messi", "football", "basketball", "{} plays", kl_prompts=("{} is a",))})]
    heads = [(1, 0), (2, 3)]
    hp = MematHparams(lr=0.05, n_steps=2, batch_size=2, seed=3, n_prefixes=1, prefix_len=3)
    calls = []
    real = mm.train_corrections
    monkeypatch.setattr(mm, "train_corrections", lambda *a, **k: calls.append(1) or real(*a, **k))
    (c1, log1), rec1, fresh1 = scaling.measured_corrections(lm, cases, heads, hp, langs="en")
    (c2, log2), rec2, fresh2 = scaling.measured_corrections(lm, cases, heads, hp, langs=("en",))
    assert fresh1 and not fresh2 and len(calls) == 1 and rec2 == rec1
    assert c2.heads == heads and c2.vectors.dtype == torch.float32 and torch.equal(c1.vectors, c2.vectors)
    assert [s["loss"] for s in log1["steps"]] == [s["loss"] for s in log2["steps"]] and len(log2["steps"]) == 2
    assert not (tmp_path / "corrections").exists()  # kept in the measured cache only
