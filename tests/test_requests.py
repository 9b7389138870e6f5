"""Edit requests and their token rows (memat.requests): cases become requests in one place, the contexts'
normalisation names the request at fault, the row builder checked token by token against hand counts, and
an edit tokenises its prompts once, not once per edited layer.

Token ids are written out word by word here (the word-level test tokenizer gives one id per word or
punctuation mark after <bos>), so the references share no code with the builder.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from tiny_models import make_tiny_model, make_tokenizer

import memat
import memat.api
import memat.memat
import memat.memit
import memat.requests as rq
from memat.data.records import EditCase, LangView
from memat.hparams import MemitHparams
from memat.requests import EditRequest, Rows, build_rows, per_request_contexts, resolve_requests, tokenize_request

SRC = Path(memat.requests.__file__).parent

CASES = [
    EditCase(7, {"en": LangView("Michael Jordan", "America", "Tokyo", "{} lives in"),
                 "ca": LangView("Michael Jordan", "Amèrica", "Tòquio", "{} viu a", kl_prompts=("{} és un",))}),
    EditCase(8, {"en": LangView("Pablo Picasso", "Paris", "New York", "The home of {} is in",
                                kl_prompts=("{} is a", "The name of {}")),
                 "ca": LangView("Pablo Picasso", "París", "Londres", "{} va morir a", kl_prompts=("{} és un",))}),
]
REQS = [
    EditRequest(7, "{} lives in", "Michael Jordan", "Tokyo"),
    EditRequest(8, "The home of {} is in", "Pablo Picasso", "New York", ("{} is a", "The name of {}")),
]
CONTEXTS = ["{}", "The city . {}"]


def _ids(tok, words: str, bos: bool = True) -> list[int]:
    """Token ids of space-separated ``words``, by hand (unknown words are <unk>)."""
    ids = [tok.convert_tokens_to_ids(w) for w in words.split()]
    return ([tok.bos_token_id] if bos else []) + ids


def _fields(rows: Rows) -> dict:
    return {k: getattr(rows, k) for k in ("seqs", "positions", "item_of_row", "items", "first_row", "nll_rows",
                                          "kl_rows", "tgt_row", "tgt_pos", "tgt_id")}


# --------------------------------------------------------------------------------------------------
# cases -> requests, in one place
# --------------------------------------------------------------------------------------------------
def test_cases_and_requests_give_the_same_rows():
    tok = make_tokenizer()
    from_cases = resolve_requests(CASES, "en", "test")
    assert from_cases == REQS and resolve_requests(REQS, None) == REQS
    ctxs = per_request_contexts(CONTEXTS, REQS)
    assert _fields(build_rows(tok, from_cases, ctxs)) == _fields(build_rows(tok, REQS, ctxs))
    # a mixed list is resolved item by item; cases need a language
    assert resolve_requests([CASES[0], REQS[1]], "en") == REQS
    with pytest.raises(ValueError, match="compute_memit: pass lang="):
        resolve_requests(CASES, None, "compute_memit")
    with pytest.raises(KeyError, match="case_id=7 has no language 'fr'"):
        resolve_requests(CASES, "fr")
    # MEMAT's rows are the rows of the cases' requests, language by language
    mctx = {"en": ["The city . {}"], "ca": ["El món . {}", "{}"]}
    got = memat.memat.training_rows(make_tiny_model("llama"), CASES, ("en", "ca"), mctx, "prompt_last")
    reqs = [rq.request_of(c, lg) for c in CASES for lg in ("en", "ca")]
    ref = build_rows(tok, reqs, [mctx[lg] for _ in CASES for lg in ("en", "ca")], "prompt_last", "text",
                     items=[(c.case_id, lg) for c in CASES for lg in ("en", "ca")])
    assert _fields(got) == _fields(ref)


def test_no_module_but_requests_turns_cases_into_requests():
    """No ``isinstance(..., EditCase)`` outside memat.requests (in the algorithms and the API), and the
    request module sits below the algorithms: it imports none of memit, pmet, memat or api."""
    for name in ("memit", "pmet", "memat", "api", "scaling"):
        tree = ast.parse((SRC / f"{name}.py").read_text(encoding="utf-8"))
        checks = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "isinstance"
                  and "EditCase" in ast.unparse(n.args[1])]
        assert not checks, (name, [ast.unparse(c) for c in checks])
    tree = ast.parse((SRC / "requests.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"memit", "pmet", "memat", "api"}, imported


def test_old_names_are_the_new_objects():
    assert memat.memit.EditRequest is EditRequest is memat.EditRequest
    for name in ("context_templates", "per_request_contexts", "requests_from_cases", "CONTEXT_SEEDS"):
        assert getattr(memat.memit, name) is getattr(rq, name), name
    assert memat.api.as_requests is rq.as_requests and memat.api.as_cases is rq.as_cases
    assert memat.memit.MemitDelta is memat.memit.WeightDelta is memat.WeightDelta is memat.MemitDelta
    assert memat.memat.TrainRows is Rows


# --------------------------------------------------------------------------------------------------
# contexts
# --------------------------------------------------------------------------------------------------
def test_context_errors_name_the_request():
    a, b = ["{}", "The city . {}"], ["{}", "El món . {}"]
    assert per_request_contexts(a, REQS) == [tuple(a)] * 2
    assert per_request_contexts([a, b], REQS) == [tuple(a), tuple(b)]
    assert per_request_contexts(per_request_contexts([a, b], REQS), REQS) == [tuple(a), tuple(b)]  # idempotent
    with pytest.raises(ValueError, match=r"contexts of request 1 \(case_id=8\): 1 templates .*same layout"):
        per_request_contexts([a, b[1:]], REQS)
    with pytest.raises(ValueError, match=r"contexts of request 1 \(case_id=8\): template 'El món' must contain"):
        per_request_contexts([a, ["{}", "El món"]], REQS)
    with pytest.raises(ValueError, match=r"contexts of request 1: template"):  # only the number of requests given
        per_request_contexts([a, ["{}", "El {x} {}"]], 2)
    with pytest.raises(ValueError, match=r"contexts: template 'The {} {}'"):
        per_request_contexts(["{}", "The {} {}"], REQS)
    with pytest.raises(ValueError, match="1 per-request lists for 2 requests"):
        per_request_contexts([a], REQS)
    with pytest.raises(TypeError, match="string"):
        per_request_contexts("{}", REQS)


# --------------------------------------------------------------------------------------------------
# the row builder, by hand
# --------------------------------------------------------------------------------------------------
def test_memit_rows_by_hand():
    tok = make_tokenizer()
    rows = build_rows(tok, REQS, per_request_contexts(CONTEXTS, REQS))
    # request 0: "{} lives in" / Michael Jordan -> Tokyo; request 1: two-token target "New York" (New is <unk>)
    seqs = [
        _ids(tok, "Michael Jordan lives in"),                 # row 0: bare prompt (target "Tokyo": nothing appended)
        _ids(tok, "The city . Michael Jordan lives in"),      # row 1
        _ids(tok, "Michael Jordan is a"),                     # row 2: KL
        _ids(tok, "The home of Pablo Picasso is in New"),     # row 3: + target[:-1]
        _ids(tok, "The city . The home of Pablo Picasso is in New"),  # row 4
        _ids(tok, "Pablo Picasso is a"),                      # row 5: KL
        _ids(tok, "The name of Pablo Picasso"),               # row 6: KL
    ]
    assert rows.seqs == seqs
    # subject-last tokens (index 0 is <bos>), in rewrite and KL rows alike
    assert rows.positions == [2, 5, 2, 5, 8, 2, 5]
    assert [tok.convert_ids_to_tokens(s[p]) for s, p in zip(rows.seqs, rows.positions)] == \
        ["Jordan", "Jordan", "Jordan", "Picasso", "Picasso", "Picasso", "Picasso"]
    assert rows.item_of_row == [0, 0, 0, 1, 1, 1, 1] and rows.items == [7, 8]
    assert rows.first_row == [0, 3] and rows.nll_rows == [0, 1, 3, 4] and rows.kl_rows == [2, 5, 6]
    assert rows.kl_item == [0, 1, 1]
    # each target token is predicted at the position before it: the prompt's last token, then the target's
    new, york, tokyo = (tok.convert_tokens_to_ids(w) for w in ("New", "York", "Tokyo"))
    assert rows.tgt_row == [0, 1, 3, 3, 4, 4]
    assert rows.tgt_pos == [4, 7, 7, 8, 10, 11]
    assert rows.tgt_id == [tokyo, tokyo, new, york, new, york]
    for r, p, t in zip(rows.tgt_row, rows.tgt_pos, rows.tgt_id):
        if p + 1 < len(rows.seqs[r]):
            assert rows.seqs[r][p + 1] == t  # teacher forcing: the next input is the scored token


@pytest.mark.parametrize("position", ["prompt_last", "input_last"])
def test_memat_positions_by_hand(position):
    tok = make_tokenizer()
    rows = build_rows(tok, REQS[1:], [["The city . {}"]], position, "text")
    prompt = _ids(tok, "The city . The home of Pablo Picasso is in")
    assert rows.seqs[0] == prompt + [tok.convert_tokens_to_ids("New")]
    assert rows.positions[0] == (len(prompt) - 1 if position == "prompt_last" else len(prompt))
    assert rows.seqs[1:] == [_ids(tok, "Pablo Picasso is a"), _ids(tok, "The name of Pablo Picasso")]
    assert rows.positions[1:] == [4, 5]  # the KL prompts' last tokens
    assert rows.tgt_pos == [len(prompt) - 1, len(prompt)]


def test_the_target_follows_the_template_or_the_text():
    """MEMIT decides the target's leading space after the prompt template, MEMAT after the filled text: they
    differ when the template ends with the subject and the subject with an elision mark."""
    seen = []

    class Recording:
        def __init__(self, tok):
            self.tok = tok

        def __call__(self, text, add_special_tokens=True):
            seen.append((text, add_special_tokens))
            return self.tok(text, add_special_tokens=add_special_tokens)

    tok = Recording(make_tokenizer())
    q = EditRequest(0, "La ciutat de {}", "l'", "Itàlia", ())
    for after, expected in (("template", " Itàlia"), ("text", "Itàlia")):
        seen.clear()
        tokenize_request(tok, q, ["{}"], "prompt_last", after)
        assert [t for t, bos in seen if not bos] == [expected], (after, seen)


def test_an_empty_target_is_named():
    tok = make_tokenizer()
    with pytest.raises(ValueError, match="case_id=3: target_new ' ' tokenises to nothing"):
        tokenize_request(tok, EditRequest(3, "{} plays", "Lionel Messi", " "), ["{}"])
    with pytest.raises(ValueError, match=r"case_id=3 \(ca\): target_new"):
        tokenize_request(tok, EditRequest(3, "{} juga", "Lionel Messi", " "), ["{}"], "prompt_last", "text",
                         name="case_id=3 (ca)")
    with pytest.raises(ValueError, match="position must be one of"):
        tokenize_request(tok, REQS[0], ["{}"], "last")


# --------------------------------------------------------------------------------------------------
# an edit tokenises once, whatever the number of layers
# --------------------------------------------------------------------------------------------------
def _count_tokenizer_calls(monkeypatch, lm) -> list:
    calls = []
    cls = type(lm.tokenizer)
    real = cls.__call__

    def counting(self, *a, **k):
        calls.append(a[0] if a else k.get("text"))
        return real(self, *a, **k)

    monkeypatch.setattr(cls, "__call__", counting)
    return calls


@pytest.mark.parametrize("method", ["memit", "pmet"])
def test_an_edit_tokenises_each_prompt_once_not_once_per_layer(monkeypatch, method):
    from memat.pmet import PmetHparams, compute_pmet

    lm = make_tiny_model("llama")
    calls = _count_tokenizer_calls(monkeypatch, lm)
    rq.tokenize_requests(lm.tokenizer, REQS, per_request_contexts(CONTEXTS, REQS))
    once = len(calls)
    plain = len(REQS) * 2 if method == "pmet" else 0  # PMET's plain prompts (FFN contribution), also once
    counts = []
    for layers in ([2], [1, 2], [0, 1, 2]):
        calls.clear()
        if method == "memit":
            hp = MemitHparams(layers=layers, v_num_grad_steps=1, batch_size=1, mom2_adjustment=False)
            memat.memit.compute_memit(lm, REQS, hp, contexts=CONTEXTS, progress=False)
        else:
            hp = PmetHparams(layers=layers, v_num_grad_steps=1, batch_size=1, mom2_adjustment=False)
            compute_pmet(lm, REQS, hp, contexts=CONTEXTS, progress=False)
        counts.append(len(calls))
    assert counts == [once + plain] * 3, (once, counts)


def test_given_tokens_must_be_of_the_requests():
    lm = make_tiny_model("llama")
    ctxs = per_request_contexts(CONTEXTS, REQS)
    tokens = rq.tokenize_requests(lm.tokenizer, REQS, ctxs)
    hp = MemitHparams(layers=[1], v_num_grad_steps=1, mom2_adjustment=False)
    with pytest.raises(ValueError, match="tokens are of other requests"):
        memat.memit.compute_targets(lm, REQS[:1], hp, ctxs[:1], progress=False, tokens=tokens[1:])
    z, _, _ = memat.memit.compute_targets(lm, REQS, hp, ctxs, progress=False, tokens=tokens)
    z_ref, _, _ = memat.memit.compute_targets(lm, REQS, hp, CONTEXTS, progress=False)
    assert torch.equal(z, z_ref)


def test_context_templates_are_cached_under_a_complete_key(tmp_path, monkeypatch):
    """The second call reads the file (no generation) and returns the same templates; another seed, language,
    spec or weights generate again; cache=False and a hooked model never touch the cache."""
    import torch
    from tiny_models import make_tiny_model

    from memat.requests import context_templates

    monkeypatch.setenv("MEMAT_CACHE", str(tmp_path))
    lm = make_tiny_model("llama")
    calls = []
    real = lm.model.generate
    monkeypatch.setattr(lm.model, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = context_templates(lm, "en", [[4, 2]], seed=0)
    assert len(calls) == 2 and a[0] == "{}" and len(a) == 3
    assert context_templates(lm, "en", [[4, 2]], seed=0) == a and len(calls) == 2
    assert context_templates(lm, "en", [[4, 2]], seed=0, cache=False) == a and len(calls) == 4
    files = list((tmp_path / "contexts").rglob("*.json"))
    assert len(files) == 1
    n = len(calls)
    context_templates(lm, "en", [[4, 2]], seed=1)
    context_templates(lm, "ca", [[4, 2]], seed=0)
    context_templates(lm, "en", [[5, 2]], seed=0)
    assert len(calls) == n + 6 and len(list((tmp_path / "contexts").rglob("*.json"))) == 4
    emb = lm.model.get_input_embeddings().weight
    orig = emb[5, 0].item()
    with torch.no_grad():
        emb[5, 0] += 1.0
    context_templates(lm, "en", [[4, 2]], seed=0)
    assert len(calls) == n + 8
    h = lm.model.register_forward_hook(lambda *args: None)
    try:
        context_templates(lm, "en", [[4, 2]], seed=0)
    finally:
        h.remove()
    assert len(calls) == n + 10 and len(list((tmp_path / "contexts").rglob("*.json"))) == 5
    # a damaged file is reported and generated again
    files[0].write_text("{not json", encoding="utf-8")
    with torch.no_grad():
        emb[5, 0] = orig  # the first weights again, bit for bit
    import pytest as _pytest

    with _pytest.warns(UserWarning, match="context templates cache .* is unreadable"):
        again = context_templates(lm, "en", [[4, 2]], seed=0)
    assert again[0] == "{}" and len(again) == 3
