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
