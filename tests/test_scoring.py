"""memat.evaluate.score_continuations: the shared-prompt scorer against the one-sequence-per-pair reference
(and that against a hand-written forward), and the on-disk score cache (keyed by weights and prompts, never
used for a model with hooks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import memat.evaluate as ev
from memat.evaluate import has_hooks, score_continuations, weights_fingerprint
from memat.hooks import Trace
from tiny_models import make_tiny_model

PAIRS = [
    ("The capital of France is", "Paris"),
    ("The capital of France is", "Rome and the city"),  # same prompt, a multi-token target
    ("Michael Jordan plays", "basketball"),
    ("La capital de França és", "París"),
    ("Paris is", "a city of the"),
    ("Paris", "is"),
    ("Michael Jordan plays", "football in the"),
]
_WIDE = {"gemma2": 64, "gemma3_text": 64}  # the tiny configs' sliding window (4) is shorter than these rows


def _model(family, attn="eager"):
    lm = make_tiny_model(family, **({"sliding_window": _WIDE[family]} if family in _WIDE else {}))
    if attn != "eager":
        lm.model.set_attn_implementation(attn)
    return lm


@torch.no_grad()
def _hand_scores(lm, pairs):
    """One unpadded sequence per pair, logits read off the model's own output."""
    tok = lm.tokenizer
    nll, acc = [], []
    for prompt, target in pairs:
        p = tok(prompt)["input_ids"]
        t = tok(" " + target, add_special_tokens=False)["input_ids"]
        logits = lm.model(input_ids=torch.tensor([p + t[:-1]])).logits[0, len(p) - 1 :].float()
        lp = F.log_softmax(logits, -1)
        nll.append(float(-lp[torch.arange(len(t)), torch.tensor(t)].mean()))
        acc.append(bool((logits.argmax(-1) == torch.tensor(t)).all()))
    return np.array(nll), np.array(acc)


@pytest.mark.parametrize("family,attn", [("llama", "eager"), ("llama", "sdpa"), ("gpt2", "eager"), ("falcon", "eager"),
                                         ("gemma3_text", "sdpa"), ("gemma2", "eager"), ("gpt_neox", "eager"),
                                         ("gptj", "eager"), ("qwen3", "sdpa"), ("mistral", "eager")])
@pytest.mark.parametrize("batch_size", [2, 32])
def test_shared_scores_equal_separate_and_hand_forward(family, attn, batch_size):
    """Scores equal to 1e-5 in probability (and relative NLL), accuracy identical; batches of 2 split the
    pairs of one prompt across nothing (a prompt's targets always stay together) but vary the padding."""
    lm = _model(family, attn)
    nll_h, acc_h = _hand_scores(lm, PAIRS)
    nll_s, acc_s = score_continuations(lm, PAIRS, batch_size=batch_size, method="separate", cache=False)
    nll_c, acc_c = score_continuations(lm, PAIRS, batch_size=batch_size, method="shared", cache=False)
    for name, nll, acc in (("separate", nll_s, acc_s), ("shared", nll_c, acc_c)):
        np.testing.assert_allclose(np.exp(-nll), np.exp(-nll_h), rtol=0, atol=1e-5, err_msg=f"{family} {name}")
        np.testing.assert_allclose(nll, nll_h, rtol=1e-5, atol=1e-6, err_msg=f"{family} {name}")
        assert (acc == acc_h).all(), (family, name, acc, acc_h)
    assert len(set(np.round(nll_h, 3))) > 3  # the pairs really score differently


@pytest.mark.parametrize("family,attn", [("llama", "sdpa"), ("gpt2", "eager"), ("falcon", "eager"),
                                         ("gemma3_text", "sdpa"), ("gemma2", "eager"), ("qwen3", "sdpa")])
@pytest.mark.parametrize("row_tokens,batch_size", [(6, 2), (12, 32), (12, 64)])
def test_token_tree_rows_split_and_padded_give_the_hand_scores(family, attn, row_tokens, batch_size, monkeypatch):
    """Small tries: paths split over several packed rows (a path longer than a row gets its own), one to
    four rows per forward padded to the longest; the tree path really runs (the fallback would fail)."""
    lm = _model(family, attn)
    nll_h, acc_h = _hand_scores(lm, PAIRS)
    trees, _ = ev._pack(ev._encode_pairs(lm.tokenizer, PAIRS), row_tokens)
    assert len(trees) > 2 and len({len(t) for t in trees}) > 1
    monkeypatch.setattr(ev, "_score_separate", lambda *a, **k: pytest.fail("fell back to the separate scorer"))
    nll, acc = ev._score_shared(lm, ev._encode_pairs(lm.tokenizer, PAIRS), batch_size, False, row_tokens=row_tokens)
    np.testing.assert_allclose(nll, nll_h, rtol=1e-5, atol=1e-6, err_msg=family)
    assert (acc == acc_h).all()


def test_token_tree_shares_prefixes():
    """The trie holds each shared prefix once: BOS for all, a prompt for its two targets."""
    lm = make_tiny_model("llama")
    enc = ev._encode_pairs(lm.tokenizer, PAIRS)
    (tree,), where = ev._pack(enc, 10_000)
    paths = [p + t[:-1] for p, t in enc]
    distinct_prefixes = {tuple(x[:k]) for x in paths for k in range(1, len(x) + 1)}
    assert len(tree) == len(distinct_prefixes) < sum(map(len, paths))
    for (r, path), x in zip(where, paths):
        assert [tree.tokens[k] for k in path] == x and [tree.depth[k] for k in path] == list(range(len(x)))


@pytest.mark.parametrize("family,overrides", [("gemma3_text", {}), ("falcon", {"alibi": True})])
def test_tree_scorer_falls_back_where_it_cannot_run(family, overrides, monkeypatch):
    """A sliding window shorter than a path (the tiny Gemma's 4 tokens; the 4-D mask would bypass it) and
    ALiBi (built from a 2-D mask) are scored one sequence per pair, equal to the model's own forward."""
    lm = make_tiny_model(family, **overrides)
    called = []
    real = ev._score_separate
    monkeypatch.setattr(ev, "_score_separate", lambda *a, **k: called.append(1) or real(*a, **k))
    nll, acc = score_continuations(lm, PAIRS, method="shared", cache=False)
    assert called
    nll_h, acc_h = _hand_scores(lm, PAIRS)
    np.testing.assert_allclose(nll, nll_h, rtol=1e-5, atol=1e-6)
    assert (acc == acc_h).all()


def test_score_methods_and_cache_option_are_checked():
    lm = make_tiny_model("llama")
    with pytest.raises(ValueError, match="method must be one of"):
        score_continuations(lm, PAIRS, method="packed")
    with pytest.raises(ValueError, match="cache must be"):
        score_continuations(lm, PAIRS, cache="yes")
    with pytest.raises(ValueError, match="tokenises to nothing"):
        score_continuations(lm, [("Paris is", "")], cache=False)


def test_scores_cache_reads_back_and_follows_the_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    first = score_continuations(lm, PAIRS)
    files = list((tmp_path / "scores").rglob("*.npz"))
    assert len(files) == 1

    def boom(*a, **k):
        raise AssertionError("scored again although the cache holds these scores")

    monkeypatch.setattr(ev, "_score_shared", boom)
    again = score_continuations(lm, PAIRS)
    np.testing.assert_array_equal(again[0], first[0])
    # other prompts, or changed weights: a different key (computed, not read)
    with pytest.raises(AssertionError, match="scored again"):
        score_continuations(lm, PAIRS[:3])
    w = lm.model.get_parameter(lm.name_of("mlp_out", 1) + ".weight")
    fp = weights_fingerprint(lm)
    with torch.no_grad():
        w.mul_(1.5)
    assert weights_fingerprint(lm) != fp
    with pytest.raises(AssertionError, match="scored again"):
        score_continuations(lm, PAIRS)


def test_scores_cache_is_not_used_with_hooks(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("gpt2")
    plain = score_continuations(lm, PAIRS)
    site = lm.name_of("mlp_out", 1)
    with Trace(lm.model, site, edit_output=lambda out, name: out * 3.0):
        assert has_hooks(lm.model)
        hooked = score_continuations(lm, PAIRS)  # auto: computed, not read from the plain model's entry
        with pytest.raises(ValueError, match="forward hooks"):
            score_continuations(lm, PAIRS, cache=True)
    assert not has_hooks(lm.model)
    assert np.abs(hooked[0] - plain[0]).max() > 1e-3
    assert len(list((tmp_path / "scores").rglob("*.npz"))) == 1


def test_corrupt_scores_cache_is_reported_and_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    ref = score_continuations(lm, PAIRS)
    (path,) = list((tmp_path / "scores").rglob("*.npz"))
    path.write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="unreadable"):
        got = score_continuations(lm, PAIRS)
    np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=0)


def test_fingerprint_memo_rereads_only_changed_tensors_and_agrees_with_a_fresh_hash(monkeypatch):
    """The per-tensor memo: after an in-place change and its undo, and after a weight is replaced by a new
    tensor, the digest equals one computed from scratch (memo cleared), and only the changed tensor is
    hashed again."""
    from memat import evaluate as ev
    from memat import stats

    lm = make_tiny_model("llama")
    base = weights_fingerprint(lm)
    calls = []
    real = stats.tensor_hash_bytes
    monkeypatch.setattr(stats, "tensor_hash_bytes", lambda t: calls.append(t.shape) or real(t))
    w = lm.model.get_parameter(lm.name_of("mlp_out", 1) + ".weight")
    with torch.no_grad():
        w.mul_(2.0)  # exact, and undone exactly below
    edited = weights_fingerprint(lm)
    assert edited != base and calls == [w.shape]  # one tensor read again
    ev._TENSOR_DIGESTS.clear()
    assert weights_fingerprint(lm) == edited  # from scratch: the same digest
    with torch.no_grad():
        w.div_(2.0)
    assert weights_fingerprint(lm) == base
    # a replaced tensor (a new object, version 0) is hashed again even if it reuses a freed one's id
    mod = lm.model.get_submodule(lm.name_of("mlp_out", 1))
    mod.weight = torch.nn.Parameter(w.detach().clone() * 3.0)
    del w
    assert weights_fingerprint(lm) not in (base, edited)
