"""Key statistics (memat.stats): E[k k^T] against keys traced by hand, the corpus split, and the on-disk cache."""
from __future__ import annotations

import math
import random
import warnings

import pytest
import torch

import memat.stats as stats_mod
from memat.hooks import TraceDict
from memat.stats import HELDOUT_LINES, compute_second_moments, corpus_lines, heldout_lines, layer_stats, model_fingerprint
from tiny_models import VOCAB_WORDS, make_tiny_model


def _texts(n=11, seed=0):
    rng = random.Random(seed)
    vocab = [w for w in VOCAB_WORDS if w.isalpha()]
    # lengths 3..25 words: batches are padded, and max_len=16 truncates some
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 25))) for _ in range(n)]


@torch.no_grad()
def _hand_second_moments(lm, layers, texts, max_len, skip_bos=True):
    """Each text alone (no padding at all), keys at every position but the BOS, summed in float64."""
    names = {l: lm.name_of("mlp_out", l) for l in layers}
    acc, count = {l: 0.0 for l in layers}, 0
    for t in texts:
        ids = lm.tokenizer(t).input_ids[:max_len]
        with TraceDict(lm.model, list(names.values()), retain_input=True) as td:
            lm.model(input_ids=torch.tensor([ids]))
        keep = torch.tensor([not (skip_bos and i == lm.tokenizer.bos_token_id) for i in ids])
        for l, n in names.items():
            k = td[n].input[0].double()
            assert k.shape[0] == len(ids)
            k = k[keep]
            acc[l] = acc[l] + k.T @ k
        count += int(keep.sum())
    return {l: a / count for l, a in acc.items()}, count


@pytest.mark.parametrize("family", ["llama", "gpt2", "falcon"])
def test_second_moments_by_hand(family):
    lm = make_tiny_model(family)
    texts = _texts()
    layers = [1, 3]
    got, count = compute_second_moments(lm, layers, texts, max_len=16, batch_size=4, progress=False)
    ref, ref_count = _hand_second_moments(lm, layers, texts, max_len=16)
    assert count == ref_count
    d_in = lm.mlp_out_weight(1).shape[1]
    for l in layers:
        assert got[l].dtype == torch.float64 and got[l].shape == (d_in, d_in)
        torch.testing.assert_close(got[l], ref[l], rtol=1e-5, atol=1e-6 * float(ref[l].abs().max()))
    assert not torch.allclose(got[1], got[3], rtol=1e-2)  # different layers, different statistics


def test_several_layers_in_one_pass_equal_separate_passes():
    lm = make_tiny_model("llama")
    texts = _texts(9)
    calls = []
    h = lm.model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        both, n_both = compute_second_moments(lm, [0, 2], texts, max_len=16, batch_size=4, progress=False)
        assert len(calls) == math.ceil(len(texts) / 4), "one forward pass per batch serves every layer"
        only0, n0 = compute_second_moments(lm, [0], texts, max_len=16, batch_size=4, progress=False)
        only2, n2 = compute_second_moments(lm, [2], texts, max_len=16, batch_size=4, progress=False)
    finally:
        h.remove()
    assert n_both == n0 == n2
    torch.testing.assert_close(both[0], only0[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(both[2], only2[2], rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------------
# corpus files
# --------------------------------------------------------------------------------------------------


def _write_corpus(path, n, seed=0):
    rng = random.Random(seed)
    vocab = [w for w in VOCAB_WORDS if w.isalpha()]
    lines = [f"line {i} " + " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 12))) for i in range(n)]
    junk = ["", "   ", " = Heading of a section = ", "too short"]  # never prose
    text = []
    for i, ln in enumerate(lines):
        text.append(ln)
        text.append(junk[i % len(junk)])
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return lines


def test_corpus_lines_split_small_file(tmp_path):
    f = tmp_path / "small.txt"
    lines = _write_corpus(f, 30)
    assert corpus_lines(str(f), "en") == lines[:15]  # a small corpus: first half for statistics
    assert corpus_lines(str(f), "en", n=4) == lines[:4]
    assert heldout_lines(str(f), "en", n=100) == lines[15:]
    assert heldout_lines(str(f), "en", n=3) == lines[15:18]


def test_corpus_lines_split_large_file(tmp_path):
    f = tmp_path / "large.txt"
    lines = _write_corpus(f, 2 * HELDOUT_LINES + 50)
    usable = corpus_lines(str(f), "ca")
    assert usable == lines[:-HELDOUT_LINES]
    held = heldout_lines(str(f), "ca", n=10_000)
    assert held == lines[-HELDOUT_LINES:]
    assert not set(usable) & set(held)


def test_unknown_corpus_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus"):
        corpus_lines(str(tmp_path / "missing.txt"), "en")


# --------------------------------------------------------------------------------------------------
# layer_stats and its cache
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    lines = _write_corpus(corpus, 40)
    return tmp_path / "cache", str(corpus), lines


@pytest.fixture
def count_computes(monkeypatch):
    real = stats_mod.compute_second_moments
    calls = []

    def counted(lm, layers, *a, **k):
        calls.append(list(layers))
        return real(lm, layers, *a, **k)

    monkeypatch.setattr(stats_mod, "compute_second_moments", counted)
    return calls


def _files(cache_root):
    return sorted((cache_root / "stats").rglob("*.safetensors"))


def _forbid_compute(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the cache was expected to be used")

    monkeypatch.setattr(stats_mod, "compute_second_moments", fail)


def test_layer_stats_values_cache_write_and_load(cache, monkeypatch, count_computes):
    root, corpus, lines = cache
    lm = make_tiny_model("llama")
    got = layer_stats(lm, [2, 0], corpus, "en", n_samples=8, max_len=16, progress=False)
    assert list(got) == [0, 2] and count_computes == [[0, 2]]
    ref, _ = _hand_second_moments(lm, [0, 2], lines[:8], max_len=16)  # the first n usable lines
    for l in (0, 2):
        assert got[l].dtype == torch.float32
        torch.testing.assert_close(got[l].double(), ref[l], rtol=1e-5, atol=1e-6 * float(ref[l].abs().max()))
    files = _files(root)
    assert len(files) == 2 and not list((root / "stats").rglob(".tmp-*"))

    _forbid_compute(monkeypatch)
    again = layer_stats(lm, [0, 2], corpus, "en", n_samples=8, max_len=16, progress=False)
    for l in (0, 2):
        assert torch.equal(again[l], got[l])


def test_layer_stats_float64(cache, count_computes):
    _, corpus, _ = cache
    lm = make_tiny_model("gpt2")
    got = layer_stats(lm, [1], corpus, "en", n_samples=5, max_len=16, dtype="float64", progress=False)
    assert got[1].dtype == torch.float64 and got[1].shape == (64, 64)


def test_truncated_cache_is_recomputed(cache, count_computes, monkeypatch):
    root, corpus, _ = cache
    lm = make_tiny_model("llama")
    first = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    (path,) = _files(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="unreadable"):
        second = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    assert count_computes == [[1], [1]]
    assert torch.equal(second[1], first[1])
    _forbid_compute(monkeypatch)  # the recomputed result was written back, intact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    assert torch.equal(third[1], first[1])


def test_altered_cache_fails_checksum_and_is_recomputed(cache, count_computes):
    from safetensors import safe_open
    from safetensors.torch import save_file

    root, corpus, _ = cache
    lm = make_tiny_model("llama")
    first = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    (path,) = _files(root)
    with safe_open(str(path), framework="pt") as f:
        meta, mom2 = f.metadata(), f.get_tensor("mom2")
    save_file({"mom2": mom2 * 2}, str(path), metadata=meta)  # valid file, same metadata, different numbers
    with pytest.warns(UserWarning, match="checksum"):
        second = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    assert count_computes == [[1], [1]]
    assert torch.equal(second[1], first[1])


def test_cache_misses_on_changed_samples_or_weights(cache, count_computes):
    root, corpus, _ = cache
    lm = make_tiny_model("llama")
    a = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    b = layer_stats(lm, [1], corpus, "en", n_samples=6, max_len=16, progress=False)
    assert len(count_computes) == 2 and len(_files(root)) == 2
    assert not torch.allclose(a[1], b[1])
    layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=32, progress=False)
    assert len(count_computes) == 3

    # weights after the deepest requested layer do not feed its keys: same fingerprint, cache hit
    fp = model_fingerprint(lm, 1)
    with torch.no_grad():
        lm.model.get_parameter(lm.name_of("mlp_out", 3) + ".weight").add_(1.0)
    assert model_fingerprint(lm, 1) == fp
    layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    assert len(count_computes) == 3

    # a weight that feeds the keys: new fingerprint, recomputed, different numbers
    with torch.no_grad():
        lm.model.get_parameter(lm.name_of("mlp_out", 0) + ".weight").mul_(1.5)
    assert model_fingerprint(lm, 1) != fp
    c = layer_stats(lm, [1], corpus, "en", n_samples=8, max_len=16, progress=False)
    assert len(count_computes) == 4
    assert not torch.allclose(a[1], c[1])


def test_cache_does_not_depend_on_the_machine(tmp_path, monkeypatch, count_computes):
    """A statistics cache filled on one machine serves another with the same model and corpus: the model is
    fingerprinted without the directory it was loaded from, and a corpus file by its content, not its
    path (an edited file is a new corpus)."""
    import shutil

    from memat.models import load_model

    src = make_tiny_model("llama")
    got = {}
    for name in ("a", "b"):  # a machine: its cache dir, its copy of the checkpoint and of the corpus
        root = tmp_path / name
        monkeypatch.setenv("MEMAT_CACHE", str(root / "cache"))
        (root / "models").mkdir(parents=True)
        src.model.save_pretrained(root / "models" / "m")
        src.tokenizer.save_pretrained(root / "models" / "m")
        lm = load_model(str(root / "models" / "m"), device="cpu")
        lm.name = "tiny"  # the folder name under stats/ (a local model is named by its path)
        corpus = root / "data" / "corpus.txt"
        corpus.parent.mkdir()
        _write_corpus(corpus, 40)
        if name == "b":
            shutil.copytree(tmp_path / "a" / "cache", root / "cache")  # machine a's cache, moved over
        got[name] = layer_stats(lm, [1, 2], str(corpus), "en", n_samples=8, max_len=16, progress=False)
    assert count_computes == [[1, 2]]  # machine b read machine a's statistics
    assert all(torch.equal(got["a"][l], got["b"][l]) for l in (1, 2))
    assert [f.name for f in _files(tmp_path / "a" / "cache")] == [f.name for f in _files(tmp_path / "b" / "cache")]
    _write_corpus(corpus, 40, seed=1)  # the same path, other text: recomputed
    layer_stats(lm, [1, 2], str(corpus), "en", n_samples=8, max_len=16, progress=False)
    assert count_computes == [[1, 2], [1, 2]]


def test_use_cache_false_never_touches_disk(cache, count_computes):
    root, corpus, _ = cache
    lm = make_tiny_model("llama")
    layer_stats(lm, [1], corpus, "en", n_samples=4, max_len=16, use_cache=False, progress=False)
    layer_stats(lm, [1], corpus, "en", n_samples=4, max_len=16, use_cache=False, progress=False)
    assert len(count_computes) == 2
    assert not (root / "stats").exists()


def test_too_few_lines_warns(cache):
    _, corpus, _ = cache
    lm = make_tiny_model("llama")
    with pytest.warns(UserWarning, match="only 20 usable lines"):
        layer_stats(lm, [0], corpus, "en", n_samples=50, max_len=8, progress=False)


def test_layer_stats_for_passes_the_hparams_recipe(monkeypatch):
    """layer_stats_for is layer_stats with the hparams' layers, corpus of the language, sample count, length
    and dtype (what every notebook wrote out in eight arguments); overrides and errors name the option."""
    from memat import stats
    from memat.hparams import MemitHparams

    calls = []
    monkeypatch.setattr(stats, "layer_stats", lambda *a, **k: calls.append((a, k)) or {"ok": True})
    hp = MemitHparams(layers=[1, 2], mom2_corpus={"en": "wikitext2", "ca": "catalan_cc0"}, mom2_n_samples=7,
                      mom2_max_len=32, mom2_dtype="float64")
    assert stats.layer_stats_for("LM", hp, "ca", source_dir="/x") == {"ok": True}
    assert calls[-1] == (("LM", [1, 2], "catalan_cc0", "ca", 7),
                         {"max_len": 32, "dtype": "float64", "use_cache": True, "source_dir": "/x", "progress": True})
    stats.layer_stats_for("LM", hp, "en", corpus="my.txt", n_samples=3, use_cache=False, progress=False)
    assert calls[-1][0] == ("LM", [1, 2], "my.txt", "en", 3) and calls[-1][1]["use_cache"] is False
    with pytest.raises(ValueError, match=r"no key-statistics corpus for language 'de'.*\['ca', 'en'\]"):
        stats.layer_stats_for("LM", hp, "de")
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        stats.layer_stats_for("LM", hp, "en", n_samples=0)


def _fingerprints_afresh(lm, layers):
    """model_fingerprints before it remembered anything: every tensor hashed in named_parameters order."""
    import hashlib

    from memat.stats import config_fingerprint_json, tensor_hash_bytes

    base = hashlib.sha256(config_fingerprint_json(lm.model.config).encode())
    per_block, prefix = {}, lm.spec.layers + "."
    for name, p in lm.model.named_parameters():
        if name.startswith(lm.spec.unembed) or name.startswith(lm.spec.final_norm):
            continue
        if name.startswith(prefix):
            j = int(name[len(prefix):].split(".", 1)[0])
            if j > max(layers):
                continue
            h = per_block.setdefault(j, hashlib.sha256())
        else:
            h = base
        h.update(name.encode())
        h.update(tensor_hash_bytes(p))
    out = {}
    for l in layers:
        h = base.copy()
        for j in range(l + 1):
            if j in per_block:
                h.update(per_block[j].digest())
        out[l] = h.hexdigest()[:16]
    return out


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_remembered_fingerprints_equal_hashing_afresh_and_follow_every_change(family):
    from memat.stats import model_fingerprints

    lm = make_tiny_model(family)
    layers = [0, 1, 2, 3]
    first = model_fingerprints(lm, layers)
    assert first == _fingerprints_afresh(lm, layers) == model_fingerprints(lm, layers)
    assert model_fingerprints(lm, [1]) == {1: first[1]}
    w = lm.model.get_parameter(lm.name_of("mlp_out", 2) + ".weight")
    with torch.no_grad():
        w.add_(0.5)  # in place: the version counter moves
        edited = model_fingerprints(lm, layers)
        assert edited == _fingerprints_afresh(lm, layers)
        assert [edited[l] == first[l] for l in layers] == [True, True, False, False]
        w.sub_(0.5)
    # the same values again (re-read: the counter moved), unless the subtraction did not restore every bit
    assert model_fingerprints(lm, layers) == _fingerprints_afresh(lm, layers)
    emb = lm.model.get_input_embeddings().weight
    with torch.no_grad():
        emb[3, 0] += 1.0
    assert all(model_fingerprints(lm, layers)[l] != first[l] for l in layers)
    # a replaced tensor (a new object) is read, even at the same version
    lm.model.get_submodule(lm.name_of("mlp_out", 0)).weight = torch.nn.Parameter(torch.zeros_like(
        lm.model.get_parameter(lm.name_of("mlp_out", 0) + ".weight")), requires_grad=False)
    assert model_fingerprints(lm, layers) == _fingerprints_afresh(lm, layers)
