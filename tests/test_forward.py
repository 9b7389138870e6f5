"""memat.forward checked against independent paths: a full forward pass traced with memat.hooks, token ids
written out by hand with the word-level test tokenizer, and an ``edit_output`` hook standing in for TailRunner."""
from __future__ import annotations

import pytest
import torch

from memat.forward import SuffixRunner, SuffixUnsupported, TailRunner, encode, hidden_at_final_norm, subject_last_index
from memat.hooks import Trace
from tiny_models import FAMILIES, make_tiny_model

# different lengths, so the batch is right-padded (the last row has 3 pads)
PROMPTS = [
    "The capital of France is Paris and the",
    "La capital de França és",
    "Michael Jordan plays basketball in the city of",
    "Paris is",
]


def _assert_close(actual, expected, msg="", rtol=1e-5, atol_rel=1e-5):
    atol = atol_rel * max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{msg}\n{m}")


def _batch(lm, prompts=PROMPTS):
    seqs = [lm.tokenizer(p).input_ids for p in prompts]
    b = encode(lm.tokenizer, seqs, lm.device)
    assert int(b.attention_mask.sum(1).min()) < b.input_ids.shape[1], "the batch must contain padding"
    return b


def _first(x):
    return x[0] if isinstance(x, tuple) else x


@torch.no_grad()
def _full_forward(lm, batch, layer=None, edit=None):
    """Full forward: (final-norm output, model logits), optionally replacing block ``layer``'s output by ``edit``."""
    def replace(out, name):
        return (edit,) + tuple(out[1:]) if isinstance(out, tuple) else edit

    traces = [Trace(lm.model, lm.spec.final_norm)]
    if edit is not None:
        traces.append(Trace(lm.model, lm.name_of("layer", layer), edit_output=replace))
    with traces[0] as tf:
        if edit is not None:
            with traces[1]:
                logits = lm.model(**batch.to_model_kwargs(), use_cache=False).logits
        else:
            logits = lm.model(**batch.to_model_kwargs(), use_cache=False).logits
    return _first(tf.output), logits


@pytest.fixture(scope="module", params=FAMILIES, ids=FAMILIES)
def lm(request):
    return make_tiny_model(request.param)


@pytest.mark.parametrize("layer", [0, 2], ids=["layer0", "middle"])
def test_tail_runner_replays_full_forward(lm, layer):
    batch = _batch(lm)
    final_ref, logits_ref = _full_forward(lm, batch)
    with Trace(lm.model, lm.name_of("layer", layer)) as tl:
        lm.model(**batch.to_model_kwargs(), use_cache=False)
    h_ref = _first(tl.output)

    runner = TailRunner(lm, layer)
    with torch.no_grad():
        h = runner.capture(batch)
        torch.testing.assert_close(h, h_ref, rtol=0, atol=0)
        _assert_close(runner.final, final_ref, msg=f"{lm.name}: captured final-norm output")
        out = runner.run(h)
        _assert_close(out, final_ref, msg=f"{lm.name} layer {layer}: TailRunner.run(h) != full forward")
        _assert_close(lm.logits(out), logits_ref, msg=f"{lm.name}: logits(run(h)) != model(...).logits")
        # the replay is pure: running it again gives the same tensor
        torch.testing.assert_close(runner.run(h), out, rtol=0, atol=0)


@pytest.mark.parametrize("layer", [0, 2], ids=["layer0", "middle"])
def test_tail_runner_modified_state_matches_edit_hook(lm, layer):
    batch = _batch(lm)
    runner = TailRunner(lm, layer)
    with torch.no_grad():
        h = runner.capture(batch)
        gen = torch.Generator().manual_seed(1)
        noise = torch.randn(h.shape, generator=gen) * h.abs().mean() * 2
        mask = torch.zeros(h.shape[:2], dtype=torch.bool)
        mask[0, 3] = mask[1, 1] = mask[2, 5] = True  # a few (row, position) pairs, as MEMIT edits them
        h_mod = h + noise * mask[..., None]
        out = runner.run(h_mod)
    final_ref, logits_ref = _full_forward(lm, batch, layer, edit=h_mod)
    _assert_close(out, final_ref, msg=f"{lm.name} layer {layer}: run(h') != full forward with the block output replaced")
    _assert_close(lm.logits(out), logits_ref, msg=f"{lm.name} layer {layer}: logits of the modified replay")
    # the modification really changes what follows (positions after an edited one in the same row)
    unmodified, _ = _full_forward(lm, batch)
    assert not torch.allclose(out[2, 5:], unmodified[2, 5:], atol=1e-3)
    # ... and nothing before it (causality): position 0..4 of row 2 are untouched
    _assert_close(out[2, :5], unmodified[2, :5], msg="positions before the edit changed")


def test_hidden_at_final_norm_equals_traced_output(lm):
    batch = _batch(lm)
    final_ref, logits_ref = _full_forward(lm, batch)
    calls = []
    handle = lm.module("unembed").register_forward_hook(lambda *a: calls.append(1))
    try:
        h = hidden_at_final_norm(lm, batch)
    finally:
        handle.remove()
    assert calls == [], "hidden_at_final_norm ran the unembedding"
    _assert_close(h, final_ref, msg=f"{lm.name}: hidden_at_final_norm")
    _assert_close(lm.logits(h), logits_ref, msg=f"{lm.name}: logits(hidden_at_final_norm)")


# --------------------------------------------------------------------------------------------------
# subject_last_index: the word-level tokenizer gives one id per word, after <bos>
# --------------------------------------------------------------------------------------------------


def _ids(tok, words):
    return [tok.bos_token_id] + tok.convert_tokens_to_ids(words)


@pytest.mark.parametrize(
    "template, subject, words, index",
    [
        ("{} lives in", "Michael Jordan", ["Michael", "Jordan", "lives", "in"], 2),  # subject at the start
        ("The home of {} is in", "Pablo Picasso", ["The", "home", "of", "Pablo", "Picasso", "is", "in"], 5),  # middle
        ("The capital of {}", "France", ["The", "capital", "of", "France"], 4),  # end
        ("La capital de {} és", "França", ["La", "capital", "de", "França", "és"], 4),
        ("In Paris . {} was born in", "Lionel Messi", ["In", "Paris", ".", "Lionel", "Messi", "was", "born", "in"], 5),
    ],
)
def test_subject_last_index(tiny_tokenizer, template, subject, words, index):
    ids, idx = subject_last_index(tiny_tokenizer, template, subject)
    assert ids == _ids(tiny_tokenizer, words)
    assert idx == index
    assert tiny_tokenizer.convert_ids_to_tokens(ids[idx]) == subject.split()[-1]


@pytest.mark.parametrize("template", ["Michael Jordan lives in", "{} and {} live in"])
def test_subject_last_index_needs_one_placeholder(tiny_tokenizer, template):
    with pytest.raises(ValueError, match="exactly once") as e:
        subject_last_index(tiny_tokenizer, template, "Michael Jordan")
    assert repr(template) in str(e.value)


def test_encode_right_pads(tiny_tokenizer):
    b = encode(tiny_tokenizer, [[1, 5, 6], [1, 7]], "cpu")
    assert b.input_ids.tolist() == [[1, 5, 6], [1, 7, tiny_tokenizer.pad_token_id]]
    assert b.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b.lengths.tolist() == [3, 2]
    with pytest.raises(ValueError):
        encode(tiny_tokenizer, [], "cpu")


# --------------------------------------------------------------------------------------------------
# SuffixRunner: prefix in the key/value cache, replay of the suffix only
# --------------------------------------------------------------------------------------------------

SPLITS = [3, 1, 6, 0]  # per row of PROMPTS: where the intervention sits (0: no prefix at all)
_WIDE_WINDOW = {"gemma2": 64, "gemma3_text": 64, "gemma3": 64}  # the tiny configs' window is 4 tokens


def _suffix_model(family, attn):
    lm = make_tiny_model(family, **({"sliding_window": _WIDE_WINDOW[family]} if family in _WIDE_WINDOW and family != "gemma3" else {}))
    if family == "gemma3":
        lm.model.config.text_config.sliding_window = _WIDE_WINDOW[family]
    if attn != "eager":
        lm.model.set_attn_implementation(attn)
    return lm


def _edited_full_forward(lm, batch, layer, splits, delta):
    """Independent reference: one ordinary padded forward pass with ``delta[i]`` added to block ``layer``'s
    output at (row i, position splits[i]) by an edit hook; final-norm output [B, T, d]."""
    rows = torch.arange(len(splits))
    pos = torch.tensor(splits)

    def add(out, name):
        h = _first(out)
        h = h.index_put((rows, pos), delta, accumulate=True)
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h

    with Trace(lm.model, lm.spec.final_norm) as tf, Trace(lm.model, lm.name_of("layer", layer), edit_output=add):
        lm.model(**batch.to_model_kwargs(), use_cache=False)
    return _first(tf.output)


@pytest.mark.parametrize("family,attn", [("llama", "eager"), ("llama", "sdpa"), ("gpt2", "eager"), ("falcon", "eager"),
                                         ("gemma3_text", "sdpa"), ("gemma3", "eager"), ("gpt_neox", "eager"),
                                         ("gptj", "eager"), ("qwen3", "sdpa")])
def test_suffix_runner_values_and_gradients_match_full_forward(family, attn):
    """Outputs at every suffix position and the gradient of a loss over them with respect to the added
    vectors equal those of a full padded forward with the vectors added by a hook (float32; the observed
    differences are ~1e-7 relative, the tolerance is 1e-5), rows of different lengths and an empty prefix
    (split 0) included; nothing before a row's split is ever read."""
    lm = _suffix_model(family, attn)
    layer = 1
    batch = _batch(lm)
    seqs = [batch.input_ids[i, : int(batch.lengths[i])].tolist() for i in range(len(PROMPTS))]
    runner = SuffixRunner(lm, layer)
    h0 = runner.capture(seqs, SPLITS)
    d = h0.shape[-1]
    gen = torch.Generator().manual_seed(3)
    delta = (torch.randn(len(seqs), d, generator=gen) * float(h0.abs().mean()) * 3).requires_grad_(True)
    weights = torch.randn(len(seqs), h0.shape[1], d, generator=gen)
    lens = runner.suffix_lengths

    h = h0.clone()
    h[:, 0] = h[:, 0] + delta
    out = runner.run(h)
    valid = torch.arange(h0.shape[1])[None, :] < lens[:, None]
    loss = (out * weights * valid[..., None]).sum()
    (g,) = torch.autograd.grad(loss, delta)

    delta_ref = delta.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        ref = _edited_full_forward(lm, batch, layer, SPLITS, delta_ref)
    ref_suffix = torch.zeros_like(out)
    for i, k in enumerate(SPLITS):
        n = len(seqs[i]) - k
        ref_suffix[i, :n] = ref[i, k : k + n]
    loss_ref = (ref_suffix * weights * valid[..., None]).sum()
    (g_ref,) = torch.autograd.grad(loss_ref, delta_ref)
    _assert_close(out.detach() * valid[..., None], ref_suffix.detach(), msg=f"{family}/{attn}: suffix outputs")
    _assert_close(g, g_ref, msg=f"{family}/{attn}: gradients", rtol=1e-4, atol_rel=1e-5)
    assert float(g.abs().min(dim=-1).values.max()) > 0  # every row's vector receives a gradient

    # a replay does not consume the prefix cache: a second run gives the same outputs
    torch.testing.assert_close(runner.run(h.detach()), out.detach(), rtol=0, atol=0)
    # keeping rows 2 and 0 gives those rows' outputs
    runner.select(torch.tensor([2, 0]))
    sub = runner.run(h.detach()[[2, 0]])
    _assert_close(sub, out.detach()[[2, 0]], msg=f"{family}/{attn}: outputs after select")


def test_suffix_runner_refuses_rows_beyond_a_sliding_window():
    lm = make_tiny_model("gemma3_text")  # sliding window of 4 tokens
    batch = _batch(lm)
    seqs = [batch.input_ids[i, : int(batch.lengths[i])].tolist() for i in range(len(PROMPTS))]
    with pytest.raises(SuffixUnsupported, match="sliding window 4"):
        SuffixRunner(lm, 1).capture(seqs, SPLITS)


def test_suffix_runner_checks_splits():
    lm = make_tiny_model("llama")
    with pytest.raises(ValueError, match="row 0: split 5 outside its 3 tokens"):
        SuffixRunner(lm, 1).capture([[1, 5, 6]], [5])
