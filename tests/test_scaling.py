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
