"""memat.cache: the one content key and read-or-compute of every disk cache (key statistics, target
vectors, edits, MEMAT corrections, scaling measurements), and the registry of edit methods.

Pinned digests: :func:`snapshot` computes every cache key and writes one entry of every kind on a tiny
model; its result was computed by the code at d9c2750 (before :mod:`memat.cache` existed) and is written
out in :data:`PINNED`, so a refactoring that changes any key or file path fails here (a warm cache would
be missed). The model fingerprint is replaced by a constant, so the pins hold across torch/transformers
versions (their random initialisation and config fields vary); fingerprints themselves are not built by
the caches and are tested in test_stats.py / test_memit.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from tiny_models import make_tiny_model

from memat.data.records import EditCase, LangView
from memat.hparams import MemitHparams
from memat.memit import EditRequest, MemitDelta

REQS = [
    EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo"),
    EditRequest(1, "The home of {} is in", "Pablo Picasso", "New York"),
    EditRequest(2, "{} was born in", "Lionel Messi", "Cairo", kl_prompts=("{} is a", "The name {}")),
]
CASES = [
    EditCase(10, {"en": LangView("Danielle Darrieux", "French", "English", "The mother tongue of {} is")}),
    EditCase(11, {"en": LangView("Toyota", "Japan", "Germany", "{} is located in")}),
]
HEADS = [(1, 0), (2, 3)]
LAYERS = [1, 2]
CORPUS = "\n".join(f"the city of {w} is the capital of the country and the people speak its language {i}"
                   for i, w in enumerate(["Paris", "Rome", "Tokyo", "Cairo", "Berlin", "London", "Madrid", "Oslo"]))


def fake_fingerprints(lm, layers):
    """A constant per layer, in place of :func:`memat.stats.model_fingerprints`."""
    return {l: f"{l:x}" * 16 for l in layers}


def _hp(cls=MemitHparams):
    return cls(layers=LAYERS, v_num_grad_steps=2, batch_size=8, mom2_update_weight=1.0, context_templates=[[3, 1]])


def _stats(lm):
    return {l: torch.eye(lm.mlp_out_weight(l).shape[1]) * (1 + l) for l in LAYERS}


def _plain_delta(lm):
    w = lm.name_of("mlp_out", 1) + ".weight"
    return MemitDelta({w: torch.arange(lm.model.get_parameter(w).numel(), dtype=torch.float32).reshape(
        lm.model.get_parameter(w).shape) / 1000})


def snapshot(root: Path) -> dict:
    """Every cache key, and the relative path of every file the caches write, for fixed inputs on a tiny
    llama with ``$MEMAT_CACHE`` = ``root`` (set by the caller, with :func:`fake_fingerprints`)."""
    from memat import memit, scaling
    from memat.memat import MematHparams, _delta_key, cached_corrections, corrections_cache_key
    from memat.pmet import PmetHparams
    from memat.stats import layer_stats
    from safetensors import safe_open

    lm = make_tiny_model("llama")
    hp, php = _hp(), _hp(PmetHparams)
    stats = _stats(lm)
    mhp = MematHparams(n_steps=1, batch_size=2, n_prefixes=1, prefix_len=2, seed=1)
    ctx = memit.context_templates(lm, "en", hp.context_templates, seed=0)
    out = {}
    out["targets"] = memit.target_cache_keys(lm, REQS, hp, ctx)
    out["targets_per_request"] = memit.target_cache_keys(lm, REQS, hp, [ctx, ["{}", "The city . {}"], ctx])
    out["stats_key"] = memit.stats_key(stats)
    out["stats_key_none"] = memit.stats_key(None)
    sk = out["stats_key"]
    out["memit"] = memit.memit_cache_key(lm, REQS, hp, "en", 0, sk)
    out["memit_langs"] = memit.memit_cache_key(lm, REQS, hp, "en", 1, sk, ["en", "ca", "en"])
    out["pmet"] = memit.memit_cache_key(lm, REQS, php, "ca", 0, sk)
    out["delta_cache_key"] = memit.cached_memit(lm, REQS[:2], hp, stats, "en", progress=False).meta["cache_key"]
    out["pmet_cache_key"] = memit.cached_memit(lm, REQS[:1], php, stats, "en", progress=False).meta["cache_key"]
    delta = memit.MemitDelta({}, {"cache_key": out["delta_cache_key"]})
    out["delta_key"] = [_delta_key(None), _delta_key(delta), _delta_key(_plain_delta(lm))]
    out["corrections"] = [
        corrections_cache_key(lm, CASES, HEADS, mhp, delta, ("en",)),
        corrections_cache_key(lm, CASES, HEADS, mhp, _plain_delta(lm), ("en",), {"en": ["{}", "The city . {}"]}),
    ]
    corr, _ = cached_corrections(lm, CASES, HEADS, mhp, delta=delta, langs=("en",))
    out["corrections_cache_key"] = corr.meta["cache_key"]
    corpus = root.parent / "corpus.txt"
    corpus.write_text(CORPUS + "\n", encoding="utf-8")
    layer_stats(lm, [2, 1], str(corpus), "en", n_samples=4, max_len=16, progress=False)
    out["stats_metadata"] = {}
    for p in sorted((root / "stats").rglob("*.safetensors")):
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata())
        out["stats_metadata"][p.name] = {k: v for k, v in meta.items() if k not in ("sha256", "tokens")}
    _, rec, _ = scaling.measured_memit(lm, REQS[:1], hp, stats, "en")
    out["measured_memit"] = rec["key"]
    _, rec, _ = scaling.measured_corrections(lm, CASES[:1], HEADS[:1], mhp, delta=delta, langs=("en",))
    out["measured_corrections"] = rec["key"]
    # the context templates' cache came later (its own test is in test_requests.py)
    out["files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                          if p.is_file() and p.relative_to(root).parts[0] != "contexts")
    return out


#: :func:`snapshot` as computed by the code at d9c2750 (before memat.cache; ``git archive d9c2750 src`` into a
#: temporary directory, run with that ``src`` first on ``sys.path`` and :func:`fake_fingerprints`). With the
#: real fingerprints of the tiny model, the old and the new code also gave the same snapshot (and the same
#: tensors and metadata in every file) when this test was written.
PINNED = {
    "targets": ["ffbbe670bd745c3995d3493ab6bc69471ba9c283322e3940411b70c92518389f",
                "a493613f454320e2c80a8ad50ae27bda8d340cabb253f8cbda834344ce6b3937",
                "34df6fcb503b0938ac0c540d3385d2a49ab392285f39322e4d9d94b3d0355ff8"],
    "targets_per_request": ["ffbbe670bd745c3995d3493ab6bc69471ba9c283322e3940411b70c92518389f",
                            "e1454016266a5f82474dd4475310ae56c385086cb27439fd20737674b9a58c38",
                            "34df6fcb503b0938ac0c540d3385d2a49ab392285f39322e4d9d94b3d0355ff8"],
    "stats_key": "f3709dce857756032109be1288072555242d13f5eece7e80a1a03fcddde94c16",
    "stats_key_none": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "memit": "85de862a120dd61f251fe20bc7ea037477bc8a82ec315c96af0217d786bd476b",
    "memit_langs": "001b9d6d031aa3af2cb6d25db1d35228f7794799eb7498c8b42d5f3885c303d9",
    "pmet": "caccd5de7dff5e8bfa5f88d8f70321d556b01bff6004305371ccf57bd9d4f40c",
    "delta_cache_key": "5616ba3cd22f475158302e656b4a48bccc4f87be21859e7e841b3965eb4c7569",
    "pmet_cache_key": "3735c466d3aecab7893e9ef93d460b20fdc87b4ffabfaa192bd26a1abb8c3432",
    "delta_key": ["none",
                  "5616ba3cd22f475158302e656b4a48bccc4f87be21859e7e841b3965eb4c7569",
                  "3263a7d403114eeaf7475aeb149fafea001732c84de8b82707b67942ef96072e"],
    "corrections": ["aae9d75ccf455eb628974d863ee48f85635e6b781740badb9700f80548ac79b1",
                    "1b5c3c63f5e9cf7075ef8f59028169df40097aa03f105f91255a92ab94459936"],
    "corrections_cache_key": "aae9d75ccf455eb628974d863ee48f85635e6b781740badb9700f80548ac79b1",
    "stats_metadata": {
        f"{l}" * 16 + f"_file-c03685f27c0a08e3_en_L{l}_n4_len16_float32.safetensors": {
            "corpus": "file-c03685f27c0a08e3", "dtype": "float32", "fingerprint": f"{l}" * 16, "lang": "en",
            "layer": str(l), "max_len": "16", "model": "llama", "n_samples": "4", "skip_bos": "True"}
        for l in (1, 2)
    },
    "measured_memit": "da58ed917961838a623e0ca8b4a7e5d7d8255a252561c6ecadeb982822bff6cf",
    "measured_corrections": "dada6bd2d31e4021fadf5c7c20f53b4073a08105f256c45668dd33bfa304952b",
    "files": [
        "corrections/llama/aae9d75ccf455eb628974d863ee48f85.safetensors",
        "deltas/llama/3735c466d3aecab7893e9ef93d460b20.safetensors",
        "deltas/llama/5616ba3cd22f475158302e656b4a48bc.safetensors",
        "measured/corrections/dada6bd2d31e4021fadf5c7c20f53b40.json",
        "measured/corrections/dada6bd2d31e4021fadf5c7c20f53b40.safetensors",
        "measured/memit/da58ed917961838a623e0ca8b4a7e5d7.json",
        "measured/memit/da58ed917961838a623e0ca8b4a7e5d7.safetensors",
        "stats/llama/1111111111111111_file-c03685f27c0a08e3_en_L1_n4_len16_float32.safetensors",
        "stats/llama/2222222222222222_file-c03685f27c0a08e3_en_L2_n4_len16_float32.safetensors",
        "targets/llama/a493613f454320e2c80a8ad50ae27bda.safetensors",
        "targets/llama/ffbbe670bd745c3995d3493ab6bc6947.safetensors",
    ],
}


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    import memat.stats

    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("MEMAT_CACHE", str(root))
    monkeypatch.setattr(memat.stats, "model_fingerprints", fake_fingerprints)
    return root


# --------------------------------------------------------------------------------------------------
# (a) every key and path as before memat.cache
# --------------------------------------------------------------------------------------------------


def test_keys_and_paths_are_those_of_d9c2750(cache_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = snapshot(cache_root)
    assert got.keys() == PINNED.keys()
    for k in PINNED:
        assert got[k] == PINNED[k], k
    assert not [p for p in cache_root.rglob("*") if ".part" in p.name]


def test_content_key_and_tensors_key():
    from memat.cache import canonical_json, content_key, tensors_key

    payload = {"b": [1, 2.5, None], "a": {"y": Path("/x"), "x": "é"}}
    assert canonical_json(payload) == json.dumps(payload, sort_keys=True, default=str)
    assert content_key(payload) == hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    assert content_key(payload, ["p"]) == hashlib.sha256((canonical_json(payload) + '["p"]').encode()).hexdigest()
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    h = hashlib.sha256(b"w" + t.float().numpy().tobytes() + b"3" + t.T.float().contiguous().numpy().tobytes())
    assert tensors_key([("w", t), (3, t.T)]) == h.hexdigest()


def test_entry_path_layouts(tmp_path, monkeypatch):
    from memat.cache import entry_path

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    key = "0123456789abcdef" * 4
    assert entry_path("deltas", key, "org/model") == tmp_path / "deltas" / "org__model" / f"{key[:32]}.safetensors"
    assert entry_path("stats", model="m", name="fp_x") == tmp_path / "stats" / "m" / "fp_x.safetensors"
    assert entry_path("memit", key, root=tmp_path / "r", suffix=".json") == tmp_path / "r" / "memit" / f"{key[:32]}.json"


# --------------------------------------------------------------------------------------------------
# (b) a corrupt entry of every kind is reported, recomputed and rewritten; (c) errors of the computation
# propagate and leave no file
# --------------------------------------------------------------------------------------------------

KINDS = ["stats", "targets", "deltas", "corrections", "measured"]


class _Kind:
    """One entry of a cache kind on a tiny llama: ``run(i)`` computes or loads entry ``i`` (0 or 1: other
    inputs), ``calls`` counts the computations, ``file(i)`` is the file a corruption hits."""

    def __init__(self, kind, root, monkeypatch):
        import memat.memat as mm
        import memat.stats as stats_mod
        from memat import memit, scaling
        from memat.memat import MematHparams, cached_corrections

        self.kind, self.root, self.calls = kind, root, []
        lm = make_tiny_model("llama")
        hp, stats = _hp(), _stats(lm)
        mhp = MematHparams(n_steps=1, batch_size=2, n_prefixes=1, prefix_len=2, seed=1)
        ctx = memit.context_templates(lm, "en", hp.context_templates, seed=0)
        corpus = root.parent / "corpus.txt"
        corpus.write_text(CORPUS + "\n", encoding="utf-8")
        module, fn = {"stats": (stats_mod, "compute_second_moments"), "targets": (memit, "compute_targets"),
                      "deltas": (memit, "compute_memit"), "corrections": (mm, "train_corrections"),
                      "measured": (memit, "compute_memit")}[kind]
        self.real = getattr(module, fn)
        self.fail = False

        def counted(*a, **k):
            self.calls.append(1)
            if self.fail:
                raise RuntimeError("the computation failed")
            return self.real(*a, **k)

        monkeypatch.setattr(module, fn, counted)
        self.run = {
            "stats": lambda i: stats_mod.layer_stats(lm, [1 + i], str(corpus), "en", n_samples=4, max_len=16,
                                                     progress=False)[1 + i],
            "targets": lambda i: memit.cached_targets(lm, REQS[i:i + 1], hp, ctx, progress=False),
            "deltas": lambda i: memit.cached_memit(lm, REQS[i:i + 1], hp, stats, "en", progress=False),
            "corrections": lambda i: cached_corrections(lm, CASES[i:i + 1], HEADS, mhp, langs=("en",))[0],
            "measured": lambda i: scaling.measured_memit(lm, REQS[i:i + 1], hp, stats, "en")[0],
        }[kind]
        self.folder = root / {"measured": "measured/memit"}.get(kind, kind)
        self.files = {}

    def first(self, i):
        """Compute entry ``i``, remember its file."""
        before = set(self.folder.rglob("*.safetensors")) if self.folder.exists() else set()
        out = self.run(i)
        (self.files[i],) = set(self.folder.rglob("*.safetensors")) - before
        return out


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, MemitDelta):
        return a.deltas.keys() == b.deltas.keys() and all(torch.equal(a.deltas[k], b.deltas[k]) for k in a.deltas)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if hasattr(a, "vectors"):  # HeadCorrections
        return a.heads == b.heads and torch.equal(a.vectors, b.vectors)
    return a == b


@pytest.mark.parametrize("how", ["truncated", "garbage", "other key"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupt_entry_is_reported_recomputed_and_rewritten(cache_root, monkeypatch, kind, how):
    k = _Kind(kind, cache_root, monkeypatch)
    first = k.first(0)
    assert len(k.calls) == 1
    path = k.files[0]
    if how == "truncated":
        bad = path
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        bad = path
        bad.write_bytes(b"not a cache entry")
    else:  # a well-formed entry of other inputs under this entry's name
        k.first(1)
        assert len(k.calls) == 2
        if kind == "measured":  # the key is in the record
            bad = path.with_suffix(".json")
            bad.write_bytes(k.files[1].with_suffix(".json").read_bytes())
        else:
            bad = path
            bad.write_bytes(k.files[1].read_bytes())
    n = len(k.calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = k.run(0)
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1, msgs
    assert str(bad) in msgs[0] and msgs[0].endswith("; recomputing")
    if how == "other key":
        assert " cannot be used (CacheEntryError: " in msgs[0]
    else:
        assert " is unreadable (" in msgs[0]
    assert len(k.calls) == n + 1  # recomputed
    assert _same(again, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: read back without a warning or a computation
        third = k.run(0)
    assert len(k.calls) == n + 1 and _same(third, first)
    assert not [p for p in cache_root.rglob("*") if ".part" in p.name]


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_of_the_computation_propagates_and_writes_nothing(cache_root, monkeypatch, kind):
    k = _Kind(kind, cache_root, monkeypatch)
    k.fail = True
    with pytest.raises(RuntimeError, match="the computation failed"):
        k.run(0)
    assert len(k.calls) == 1
    assert not k.folder.exists() or not [p for p in k.folder.rglob("*") if p.is_file()]
    assert not [p for p in cache_root.rglob("*") if ".part" in p.name]


# --------------------------------------------------------------------------------------------------
# memat.cache.cached itself
# --------------------------------------------------------------------------------------------------


def _text_io():
    return (lambda v, p: Path(p).write_text(v, encoding="utf-8")), (lambda p: Path(p).read_text(encoding="utf-8"))


def test_cached_computes_once_then_loads(tmp_path):
    from memat.cache import cached

    save, load = _text_io()
    calls = []

    def compute():
        calls.append(1)
        return f"value {len(calls)}"

    assert cached("k", "a" * 40, compute, save, load, root=tmp_path) == ("value 1", True)
    assert (tmp_path / "k" / f"{'a' * 32}.safetensors").read_text() == "value 1"
    assert cached("k", "a" * 40, compute, save, load, root=tmp_path) == ("value 1", False)
    assert cached("k", "a" * 40, compute, save, load, root=tmp_path, refresh=True) == ("value 2", True)
    assert cached("k", "a" * 40, compute, save, load, root=tmp_path) == ("value 2", False)
    assert len(calls) == 2


def test_cached_reports_a_load_error_but_not_compute_or_save_errors(tmp_path):
    from memat.cache import cached

    save, load = _text_io()
    path = tmp_path / "k" / "key.safetensors"
    path.parent.mkdir()
    path.write_bytes(b"\xff\xfe")  # not UTF-8: load fails
    with pytest.warns(UserWarning, match=rf"k cache {path} is unreadable \(UnicodeDecodeError: .*\); recomputing"):
        assert cached("k", "key", lambda: "fresh", save, load, root=tmp_path) == ("fresh", True)
    assert path.read_text() == "fresh"

    path.write_bytes(b"\xff\xfe")

    def broken():
        raise KeyError("inside compute")

    with pytest.warns(UserWarning, match="is unreadable"), pytest.raises(KeyError, match="inside compute"):
        cached("k", "key", broken, save, load, root=tmp_path)
    assert path.read_bytes() == b"\xff\xfe"  # left as it was

    def half_written(v, p):
        Path(p).write_text(v[:2])
        raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space left"):
        cached("k", "other", lambda: "value", half_written, load, root=tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.safetensors"]  # no partial file



# --------------------------------------------------------------------------------------------------
# (d) the edit method of a hyperparameters class
# --------------------------------------------------------------------------------------------------


def test_the_registry_picks_pmet_for_pmet_hparams_and_memit_for_memit_hparams():
    import dataclasses

    from memat import memit, pmet
    from memat.cache import edit_method

    assert edit_method(_hp()) is memit._edit_memit
    assert edit_method(_hp(pmet.PmetHparams)) is pmet._edit_pmet

    @dataclasses.dataclass
    class MyPmet(pmet.PmetHparams):  # a subclass without its own method: its parent's
        extra: int = 0

    assert edit_method(_hp(MyPmet)) is pmet._edit_pmet
    with pytest.raises(TypeError, match="no edit method for hyperparameters of type dict"):
        edit_method({"layers": [1]})


def test_memit_never_imports_pmet():
    """No import of memat.pmet anywhere in memit.py (no cycle), and cached_memit works with pmet never
    imported; importing pmet (which any PmetHparams needs) registers PMET."""
    import ast
    import subprocess
    import sys

    import memat.memit

    tree = ast.parse(Path(memat.memit.__file__).read_text(encoding="utf-8"))
    imported = [(n.module, [a.name for a in n.names]) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [(a.name, []) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m, names in imported if "pmet" in (m or "") or "pmet" in names], imported

    code = """if True:
        import sys
        import torch
        from tiny_models import make_tiny_model
        import memat
        by_package = "memat.pmet" in sys.modules  # the package's own imports are not memit's
        from memat import memit
        from memat.cache import edit_method
        from memat.hparams import MemitHparams
        assert by_package or "memat.pmet" not in sys.modules, "memit imported pmet"
        hp = MemitHparams(layers=[1, 2], v_num_grad_steps=1, batch_size=8, mom2_update_weight=1.0,
                          context_templates=[[3, 1]], mom2_adjustment=False)
        lm = make_tiny_model("llama")
        req = [memit.EditRequest(0, "{} lives in", "Michael Jordan", "Tokyo")]
        d = memit.cached_memit(lm, req, hp, None, "en", progress=False, cache=False)
        assert d.meta.get("method") is None and (by_package or "memat.pmet" not in sys.modules)
        from memat.pmet import PmetHparams, _edit_pmet
        assert edit_method(PmetHparams(layers=[1])) is _edit_pmet
        print("ok")
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(memat.memit.__file__).parents[1]),
                                                        str(Path(__file__).parent)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
