"""The embedded default model (Gemma 3 270M, Q4_K_M GGUF de-quantised to float32 and cached).

Slow: the first ``load_model("gemma3-270m")`` converts the GGUF (about a minute); later loads read the
cache (a few seconds). Run with ``pytest -m slow`` or simply ``pytest tests/test_embedded_model.py``.

What the model knows was probed by greedy decoding (the quantised 270M model is weak):

* ``"The capital of France is"`` continues ``" the capital of"`` (no Paris within 3 tokens), so the English
  fact is asked as ``"The capital of France is the city of"`` -> ``" Paris"`` (first token, logit margin 2.4).
* ``"La capital de França és"`` continues ``" una de les capital es"`` (no París within 5 tokens), so the
  Catalan fact is asked as a question, ``"Pregunta: Quina és la capital de França?\\nResposta:"`` ->
  ``" París"`` (first token).

Both original prompts are still decoded and printed (``-s`` shows them), not asserted.
"""
from __future__ import annotations

import pytest
import torch

from test_models import batch_for, check_attn_heads, check_final_logits, check_mlp_out, check_post_mlp_norm

pytestmark = pytest.mark.slow

ENGLISH_PROMPT = "The capital of France is the city of"
CATALAN_PROMPT = "Pregunta: Quina és la capital de França?\nResposta:"
PROBE_PROMPTS = ["The capital of France is", "La capital de França és"]  # the natural prompts; printed only


@pytest.fixture(scope="module")
def embedded():
    from memat.models import load_model

    return load_model("gemma3-270m", device="cpu")


@torch.no_grad()
def greedy_tokens(lm, prompt: str, n: int) -> list[str]:
    """The next ``n`` greedily decoded tokens of ``prompt``, each decoded on its own."""
    ids = lm.tokenizer(prompt, return_tensors="pt").input_ids.to(lm.device)
    out = []
    for _ in range(n):
        nxt = lm.model(input_ids=ids, use_cache=False).logits[0, -1].argmax()
        out.append(lm.tokenizer.decode([int(nxt)]))
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return out


def test_geometry(embedded):
    lm = embedded
    assert lm.config.model_type == "gemma3_text"
    assert (lm.n_layers, lm.n_heads, lm.n_kv_heads, lm.head_dim) == (18, 4, 1, 256)
    assert lm.hidden_size == 640
    assert lm.dtype == torch.float32 and not lm.model.training
    assert all(not p.requires_grad for p in lm.model.parameters())
    assert lm.spec.post_mlp_norm is not None


def test_english_fact(embedded):
    for p in PROBE_PROMPTS[:1]:
        print(f"{p!r} -> {greedy_tokens(embedded, p, 3)}")
    toks = greedy_tokens(embedded, ENGLISH_PROMPT, 3)
    print(f"{ENGLISH_PROMPT!r} -> {toks}")
    assert any(t.strip() == "Paris" for t in toks), toks


def test_catalan_fact(embedded):
    for p in PROBE_PROMPTS[1:]:
        print(f"{p!r} -> {greedy_tokens(embedded, p, 5)}")
    toks = greedy_tokens(embedded, CATALAN_PROMPT, 5)
    print(f"{CATALAN_PROMPT!r} -> {toks}")
    assert any(t.strip() in ("París", "Paris") for t in toks), toks


def test_intervention_sites(embedded):
    """Checks (a)-(d) of test_models.py on the real model, at the first, a middle and the last layer."""
    lm = embedded
    batch = batch_for(lm, ["The capital of France is", "La capital de França és París"])
    for layer in (0, lm.n_layers // 2, lm.n_layers - 1):
        check_mlp_out(lm, batch, layer)
        check_attn_heads(lm, batch, layer)
        assert check_post_mlp_norm(lm, batch, layer)
    check_final_logits(lm, batch)


def test_memit_edit_on_embedded_model(embedded):
    """Integration: the embedded preset edits two Catalan facts; the rewrite prompts then prefer the new
    targets, the weights come back bit for bit, and a saved delta reloads to the same edit."""
    import os
    import tempfile

    from memat.data import EditCase, LangView
    from memat.evaluate import evaluate_cases
    from memat.hparams import load_hparams
    from memat.memit import MemitDelta, compute_memit

    lm = embedded
    cases = [
        EditCase(1, {"ca": LangView("França", "París", "Roma", "Pregunta: Quina és la capital de {}?\nResposta:",
                                    kl_prompts=("{} és un",))}),
        EditCase(2, {"ca": LangView("Alemanya", "Berlín", "Lisboa", "Pregunta: Quina és la capital d'{}?\nResposta:",
                                    kl_prompts=("{} és un",))}),
    ]
    before_df = evaluate_cases(lm, cases, ["ca"], progress=False, kinds=("rewrite",))
    assert not before_df.success.all(), "the unedited model should not already prefer the new targets"
    hp = load_hparams("gemma3-270m", mom2_adjustment=False, mom2_update_weight=1.0)  # identity prior
    state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    delta = compute_memit(lm, cases, hp, lang="ca", contexts=["{}"], progress=False)
    with delta.applied(lm):
        after = evaluate_cases(lm, cases, ["ca"], progress=False, kinds=("rewrite",))
    assert after.success.all(), after[["case_id", "nll_new", "nll_true"]]
    assert all(torch.equal(v, state[k]) for k, v in lm.model.state_dict().items())
    with tempfile.TemporaryDirectory() as d:
        path = delta.save(os.path.join(d, "delta.safetensors"))
        again = MemitDelta.load(path)
    assert set(again.deltas) == set(delta.deltas)
    assert all(torch.equal(again.deltas[k], delta.deltas[k]) for k in delta.deltas)


def test_shared_scoring_equals_separate_on_embedded_model(embedded):
    """The shared-prompt scorer on the real model (sdpa attention, 262k vocabulary, float32): every
    probability within 1e-5 of the one-sequence-per-pair scores, the same greedy accuracy."""
    import numpy as np

    from memat.evaluate import score_continuations

    pairs = [("The capital of France is the city of", "Paris"), ("The capital of France is the city of", "Rome"),
             ("Pregunta: Quina és la capital de França?\nResposta:", "París"),
             ("Pregunta: Quina és la capital de França?\nResposta:", "Barcelona i Girona"),
             ("Danielle Darrieux's mother tongue is", "French"), ("Danielle Darrieux's mother tongue is", "English"),
             ("La llengua materna de Danielle Darrieux és el", "francès")]
    nll_s, acc_s = score_continuations(embedded, pairs, method="separate", cache=False)
    nll_c, acc_c = score_continuations(embedded, pairs, method="shared", cache=False)
    np.testing.assert_allclose(np.exp(-nll_c), np.exp(-nll_s), rtol=0, atol=1e-5)
    np.testing.assert_allclose(nll_c, nll_s, rtol=1e-5, atol=1e-5)
    assert (acc_c == acc_s).all()


def test_suffix_targets_equal_full_on_embedded_model(embedded):
    """Target vectors of the suffix method against today's full replay on the real model, 3 steps
    (relative difference observed ~1e-6 after 20 steps; tolerance 1e-4 of |z|)."""
    import dataclasses

    from memat.hparams import load_hparams
    from memat.memit import EditRequest, compute_targets

    hp = dataclasses.replace(load_hparams("gemma3-270m"), v_num_grad_steps=3)
    reqs = [EditRequest(0, "The capital of {} is the city of", "France", "Rome"),
            EditRequest(1, "La llengua materna de {} és el", "Danielle Darrieux", "anglès")]
    ctx = ["{}", "El 26 de novembre, en el Teatre. {}", "Jo vaig dir que no. {}"]
    zf, initf, _ = compute_targets(embedded, reqs, hp, ctx, progress=False, method="full")
    zs, inits, _ = compute_targets(embedded, reqs, hp, ctx, progress=False, method="suffix")
    scale = float(zf.abs().max())
    torch.testing.assert_close(inits, initf, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(zs, zf, rtol=1e-4, atol=1e-4 * scale)
    assert float((zf - initf).norm(dim=-1).min()) > 0
