"""Tests of the data layer: registry, fetching, loaders, MEMAT dump/load, helpers and the ``memat data`` CLI.

Tests on the real data sets read them from ``$MEMAT_DATA_SOURCE`` (default ``<repo>/../shared/data``)
and are skipped when that folder is missing. Everything else uses small files written here.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from memat import cli
from memat.data import (
    BMIKE53_CI_LANGS,
    BMIKE53_LANGS,
    ChecksumError,
    DataFileError,
    EditCase,
    FetchError,
    LangView,
    LoadResult,
    RecordError,
    bmike53_file,
    data_dir,
    detect_format,
    dump_memat,
    ensure_all,
    ensure_dataset,
    fetch_dataset,
    load_bmike53,
    load_counterfact_easyedit,
    load_counterfact_rome,
    load_dataset,
    load_memat,
    select_cases,
    subject_jaccard,
)
from memat.data import fetch, sources
from memat.data.loaders import (
    FALLBACK_QUESTION_TEMPLATE,
    KL_PROMPTS,
    QUESTION_TEMPLATES,
    cloze_template,
    question_prompt,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("MEMAT_DATA_SOURCE") or (REPO.parent / "shared" / "data")).resolve()


def needs_shared(name: str):
    return pytest.mark.skipif(
        not (SHARED / name).is_dir(),
        reason=f"real data set {name} not found in {SHARED} (set MEMAT_DATA_SOURCE)",
    )


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# =========================================================================== registry
def test_registry_lists_every_dataset_with_pinned_files():
    assert list(sources.REGISTRY) == [
        "counterfact_easyedit_full",
        "bmike53_counterfact",
        "mpararel_ca_en",
        "globalvoices_en_ca",
        "wikitext2_raw_test",
        "catalan_cc0_sentences",
    ]
    for src in sources.REGISTRY.values():
        assert re.fullmatch(r"[0-9a-f]{40}", src.commit), src.name
        assert src.licence and src.files
        for f in src.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), (src.name, f.local)
            assert f.size > 0
    mp = sources.get_source("mpararel_ca_en")
    locals_ = [f.local for f in mp.files]
    assert len(locals_) == 158
    assert sum(p.startswith("patterns/ca/") for p in locals_) == 38
    assert sum(p.startswith("patterns/en/") for p in locals_) == 38
    assert sum(p.startswith("tuples/ca/") for p in locals_) == 41
    assert sum(p.startswith("tuples/en/") for p in locals_) == 41
    f = mp.file("patterns/ca/P103.jsonl")
    assert f.upstream == "data/mpararel_reviewed/patterns/ca/P103.jsonl"
    assert mp.url(f) == (
        "https://raw.githubusercontent.com/coastalcph/mpararel/7153b7bdc86901fbe23d0c2909a4f2d4609b09d9/"
        "data/mpararel_reviewed/patterns/ca/P103.jsonl"
    )
    bm = sources.get_source("bmike53_counterfact")
    test_files = [f.local for f in bm.files if re.fullmatch(r"counterfact_test_[a-z]+\.json", f.local)]
    assert len(test_files) == 51 and len(bm.files) == 56  # 51 English/X files + en-only, train, prompts, lang.json
    assert len(BMIKE53_LANGS) == 51 and "ca" in BMIKE53_LANGS and "es" not in BMIKE53_LANGS
    assert all(f.upstream == "data/BMIKE53/CounterFact/" + f.local for f in bm.files if f.local in test_files)
    assert bm.url("counterfact_test_he.json") == (
        "https://raw.githubusercontent.com/ercong21/MultiKnow/6e3e245bf0a17edaecfb4d71664efc1b5fb67906/"
        "data/BMIKE53/CounterFact/counterfact_test_he.json"
    )
    assert bm.file("counterfact_test_he.json").sha256 == (  # as in shared/data/bmike53_counterfact/SOURCE.md
        "c55dd94d8b634abaca38b122d4d680db2473bc5f9d0596d88e6c8adafe050c61"
    )
    wt = sources.get_source("wikitext2_raw_test").files[0]
    assert wt.sha256 == "4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c"  # stated upstream
    with pytest.raises(KeyError, match="known: counterfact_easyedit_full"):
        sources.get_source("nope")


@pytest.mark.parametrize("name", list(sources.REGISTRY))
def test_registry_matches_local_copies(name):
    if not (SHARED / name).is_dir():
        pytest.skip(f"{SHARED / name} missing (set MEMAT_DATA_SOURCE)")
    for f in sources.get_source(name).files:
        path = SHARED / name / f.local
        assert path.is_file(), path
        assert path.stat().st_size == f.size
        assert fetch.sha256_file(path) == f.sha256


# =========================================================================== data_dir resolution
def test_data_dir_resolution_order(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "sub" / "deeper").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.chdir(proj / "sub" / "deeper")
    monkeypatch.delenv(fetch.ENV_DATA_DIR, raising=False)
    assert data_dir() == proj.resolve() / "data" / "raw"
    monkeypatch.setenv(fetch.ENV_DATA_DIR, str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    # no pyproject.toml above the CWD -> ~/.cache/memat/data
    monkeypatch.delenv(fetch.ENV_DATA_DIR)
    lone = tmp_path / "lone"
    lone.mkdir()
    monkeypatch.chdir(lone)
    monkeypatch.setattr(fetch, "project_root", lambda start=None: None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "memat" / "data"


# =========================================================================== fetching (tiny fake data set)
TINY = {"a.txt": b"hello memat\n", "sub/b.jsonl": b'{"x": 1}\n{"x": 2}\n'}


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """Register a two-file data set ``tiny_test`` and give a source dir holding it."""
    files = tuple(sources.SourceFile(k, "up/" + k, sha(v), len(v)) for k, v in TINY.items())
    src = sources.DataSource("tiny_test", "someone/tiny", "0" * 40, "CC0-1.0", "test", files)
    monkeypatch.setitem(sources.REGISTRY, "tiny_test", src)
    source_dir = tmp_path / "source"
    for k, v in TINY.items():
        (source_dir / "tiny_test" / k).parent.mkdir(parents=True, exist_ok=True)
        (source_dir / "tiny_test" / k).write_bytes(v)
    monkeypatch.delenv(fetch.ENV_DATA_SOURCE, raising=False)
    return src, source_dir, tmp_path / "raw"


def _no_partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")] if root.exists() else []


def test_ensure_dataset_copies_then_reports_present(tiny):
    src, source_dir, raw = tiny
    rep = fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw)
    assert rep.path == raw / "tiny_test"
    assert rep.files == {"a.txt": "copied", "sub/b.jsonl": "copied"}
    assert (raw / "tiny_test" / "sub" / "b.jsonl").read_bytes() == TINY["sub/b.jsonl"]
    again = fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw)
    assert again.status() == "present"
    # a damaged local file is replaced from the source
    (raw / "tiny_test" / "a.txt").write_bytes(b"damaged")
    third = fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw)
    assert third.files == {"a.txt": "copied", "sub/b.jsonl": "present"}
    assert third.status() == "copied 1, present 1"
    assert (raw / "tiny_test" / "a.txt").read_bytes() == TINY["a.txt"]
    assert ensure_dataset("tiny_test", source_dir=source_dir, data_dir=raw) == raw / "tiny_test"


def test_ensure_dataset_source_dir_from_env(tiny, monkeypatch):
    _, source_dir, raw = tiny
    monkeypatch.setenv(fetch.ENV_DATA_SOURCE, str(source_dir))
    assert fetch_dataset("tiny_test", data_dir=raw).status() == "copied"


def test_corrupted_source_raises_and_leaves_no_partial_file(tiny):
    src, source_dir, raw = tiny
    bad = source_dir / "tiny_test" / "sub" / "b.jsonl"
    bad.write_bytes(b"tampered bytes")
    with pytest.raises(ChecksumError) as ei:
        ensure_dataset("tiny_test", source_dir=source_dir, data_dir=raw)
    err = ei.value
    msg = str(err)
    assert "b.jsonl" in msg
    assert err.expected == sha(TINY["sub/b.jsonl"]) and err.expected in msg
    assert err.actual == sha(b"tampered bytes") and err.actual in msg
    assert not (raw / "tiny_test" / "sub" / "b.jsonl").exists()
    assert _no_partials(raw) == []
    # the good file was written before the failure and is complete
    assert (raw / "tiny_test" / "a.txt").read_bytes() == TINY["a.txt"]


def test_download_with_fake_opener(tiny, monkeypatch):
    src, _, raw = tiny
    calls: list[str] = []

    def opener(url: str):
        calls.append(url)
        key = url.split("/up/", 1)[1]
        return TINY[key] if key == "a.txt" else io.BytesIO(TINY[key])  # bytes and a stream

    monkeypatch.setattr(fetch, "urlopen", opener)
    rep = fetch_dataset("tiny_test", data_dir=raw)
    assert rep.files == {"a.txt": "downloaded", "sub/b.jsonl": "downloaded"}
    assert calls == [
        "https://raw.githubusercontent.com/someone/tiny/" + "0" * 40 + "/up/a.txt",
        "https://raw.githubusercontent.com/someone/tiny/" + "0" * 40 + "/up/sub/b.jsonl",
    ]
    assert (raw / "tiny_test" / "a.txt").read_bytes() == TINY["a.txt"]


def test_download_wrong_sha_raises_and_leaves_nothing(tiny):
    src, _, raw = tiny
    with pytest.raises(ChecksumError, match=r"a\.txt .*expected " + sha(TINY["a.txt"])):
        ensure_dataset("tiny_test", data_dir=raw, opener=lambda url: b"not the right bytes")
    assert not (raw / "tiny_test" / "a.txt").exists()
    assert _no_partials(raw) == []


def test_offline_and_network_failures_raise_fetch_error(tiny):
    src, _, raw = tiny
    with pytest.raises(FetchError, match="offline"):
        ensure_dataset("tiny_test", data_dir=raw, offline=True)

    def broken(url):
        raise OSError("no route to host")

    with pytest.raises(FetchError, match="no route to host"):
        ensure_dataset("tiny_test", data_dir=raw, opener=broken)
    assert _no_partials(raw) == []


def test_fetch_only_the_named_files(tiny):
    src, source_dir, raw = tiny
    rep = fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw, files=["sub/b.jsonl"])
    assert rep.files == {"sub/b.jsonl": "copied"}
    assert not (raw / "tiny_test" / "a.txt").exists()
    assert ensure_dataset("tiny_test", data_dir=raw, offline=True, files=["sub/b.jsonl"]) == raw / "tiny_test"
    with pytest.raises(KeyError, match="'tiny_test' has no file 'c.txt'"):
        fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw, files=["c.txt"])
    with pytest.raises(TypeError, match="not the string"):
        fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw, files="a.txt")
    assert fetch_dataset("tiny_test", source_dir=source_dir, data_dir=raw).files == {
        "a.txt": "copied", "sub/b.jsonl": "present"}


def test_ensure_all_subset(tiny):
    _, source_dir, raw = tiny
    assert ensure_all(["tiny_test"], source_dir=source_dir, data_dir=raw) == {"tiny_test": raw / "tiny_test"}


@needs_shared("wikitext2_raw_test")
def test_ensure_real_dataset_from_shared(tmp_path):
    rep = fetch_dataset("wikitext2_raw_test", source_dir=SHARED, data_dir=tmp_path)
    assert rep.files == {"wiki.test.raw": "copied"}
    path = tmp_path / "wikitext2_raw_test" / "wiki.test.raw"
    assert fetch.sha256_file(path) == "4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c"


# =========================================================================== CLI
def test_cli_data_table(tiny, capsys):
    _, source_dir, raw = tiny
    rc = cli.main(["data", "--source-dir", str(source_dir), "--data-dir", str(raw), "tiny_test"])
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"^tiny_test\s+2\s+copied$", out, re.M), out
    assert cli.main(["data", "--data-dir", str(raw), "tiny_test"]) == 0
    assert re.search(r"^tiny_test\s+2\s+present$", capsys.readouterr().out, re.M)
    assert cli.main(["data", "--data-dir", str(raw), "no_such_set"]) == 2
    assert "unknown data set" in capsys.readouterr().err


def test_cli_data_failure_exit_code(tiny, capsys):
    _, _, raw = tiny
    assert cli.main(["data", "--data-dir", str(raw), "--offline", "tiny_test"]) == 1
    captured = capsys.readouterr()
    assert re.search(r"^tiny_test\s+2\s+FAILED$", captured.out, re.M)
    assert "offline" in captured.err


def test_cli_without_subcommand_prints_help(capsys):
    assert cli.main([]) == 2
    assert "data" in capsys.readouterr().out
    assert "data" in cli.SUBCOMMANDS


# =========================================================================== EasyEdit CounterFact (real)
@needs_shared("counterfact_easyedit_full")
def test_easyedit_edit_split_real():
    res = load_counterfact_easyedit(SHARED / "counterfact_easyedit_full")
    assert isinstance(res, LoadResult)
    assert len(res) == 10000 and res.skipped == {}
    c = res[0]
    assert c.case_id == 0 and c.meta == {"split": "edit"}
    v = c["en"]
    assert v.rewrite_prompt == "The mother tongue of {} is"
    assert v.subject == "Danielle Darrieux"
    assert (v.target_true, v.target_new) == ("French", "English")
    assert v.rewrite() == "The mother tongue of Danielle Darrieux is"
    assert v.paraphrase_prompts == ("Where Danielle Darrieux is from, people speak the language of",)
    assert v.neighborhood_prompts == ("Michel Rocard is a native speaker of",)
    assert v.neighborhood_answers() == ("French",)
    assert v.kl_prompts == ("{} is a",)
    assert res.summary() == "counterfact-edit.json: 10000 cases loaded, 0 skipped"


@needs_shared("counterfact_easyedit_full")
def test_easyedit_all_splits_real():
    folder = SHARED / "counterfact_easyedit_full"
    assert len(load_counterfact_easyedit(folder, split="train")) == 10000
    assert len(load_counterfact_easyedit(folder, split="val")) == 1919
    res = load_counterfact_easyedit(folder, split="all")
    assert [c.case_id for c in res] == list(range(21919))
    with pytest.raises(ValueError, match="split"):
        load_counterfact_easyedit(folder, split="test")


# =========================================================================== BMIKE-53 (real)
@needs_shared("bmike53_counterfact")
def test_bmike53_en_ca_real_counts_and_skips():
    res = load_bmike53(SHARED / "bmike53_counterfact" / "counterfact_test_ca.json")
    assert len(res) + res.n_skipped == 1031
    assert res.skipped == {"subject_not_in_prompt": 54}
    assert len(res) == 977
    skipped = res.skipped_ids["subject_not_in_prompt"]
    assert 4868 in skipped  # ca subject "Cihan News Agency" vs "l'Agència de Notícies Cihan"
    assert 3477 in skipped  # en subject "The U-Men" vs "... the U-Men founded?"
    assert res.summary() == "counterfact_test_ca.json: 977 cases loaded, 54 skipped (subject_not_in_prompt: 54)"
    c = res[0]
    assert c.case_id == 4482 and list(c.langs) == ["en", "ca"]
    ca = c["ca"]
    assert ca.rewrite_prompt == "Pregunta: D'on prové {}?\nResposta:"
    assert ca.rewrite() == "Pregunta: D'on prové Spike Hughes?\nResposta:"
    assert (ca.target_true, ca.target_new) == ("Londres", "Filadèlfia")
    assert ca.neighborhood_prompts == ("Pregunta: En quina ciutat va néixer Kathryn Newton?\nResposta:",)
    assert ca.neighborhood_answers() == ("Londres",)
    assert ca.kl_prompts == ("{} és un",)
    assert c["en"].rewrite_prompt.startswith("Question: ") and c["en"].rewrite_prompt.endswith("?\nAnswer:")
    assert c.meta["portability"]["ca"]["answer"] == "Cheesesteaks"


@needs_shared("bmike53_counterfact")
def test_bmike53_known_record_4868_in_english():
    res = load_bmike53(SHARED / "bmike53_counterfact" / "counterfact_test_ca.json", langs=("en",))
    assert len(res) == 1030 and res.skipped_ids == {"subject_not_in_prompt": [3477]}
    v = res.by_id()[4868]["en"]
    assert v.rewrite_prompt == "Question: What language does {} use?\nAnswer:"
    assert (v.subject, v.target_true, v.target_new) == ("Cihan News Agency", "Turkish", "Catalan")
    assert v.paraphrase_prompts == ("Question: In which language is Cihan News Agency written?\nAnswer:",)
    assert v.neighborhood_prompts == ("Question: What is the language of LibreOffice?\nAnswer:",)
    assert v.neighborhood_targets == ("Turkish",)


@needs_shared("bmike53_counterfact")
def test_bmike53_strict_and_custom_templates_real():
    path = SHARED / "bmike53_counterfact" / "counterfact_test_ca.json"
    with pytest.raises(RecordError, match="subject_not_in_prompt") as ei:
        load_bmike53(path, strict=True)
    assert "counterfact_test_ca.json" in str(ei.value)
    res = load_bmike53(path, langs=("ca",), question_templates={"ca": "P: {q} R:"}, kl_prompts={"ca": "{} era"})
    c = res[0]
    assert c["ca"].rewrite_prompt == "P: D'on prové {}? R:"
    assert c["ca"].kl_prompts == ("{} era",)
    assert len(res) == 977


@needs_shared("bmike53_counterfact")
def test_load_dataset_by_name(tmp_path):
    res = load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path)
    assert len(res) == 977 and res.skipped == {"subject_not_in_prompt": 54}
    assert (tmp_path / "bmike53_counterfact" / "counterfact_test_ca.json").is_file()
    assert not (tmp_path / "bmike53_counterfact" / "counterfact_test_de.json").exists()  # only the file read
    en_only = load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path,
                           file="counterfact_test.json", langs=("en",))
    assert len(en_only) == 1030
    if (SHARED / "counterfact_easyedit_full").is_dir():
        ee = load_dataset("counterfact_easyedit_full", source_dir=SHARED, data_dir=tmp_path, split="val")
        assert len(ee) == 1919
    with pytest.raises(ValueError, match="not an editing data set"):
        load_dataset("wikitext2_raw_test")


def _bmike_record(cid, lang_fields: dict[str, dict]) -> dict:
    base = {"subject": "Ada", "src": "Where was Ada born?", "rephrase": "Ada's birthplace?", "old": "London",
            "alt": "Paris", "loc": "Where was Bob born?", "loc_ans": "London"}
    return {lang: {"case_id": cid, **base, **over} for lang, over in lang_fields.items()}


def test_bmike53_any_language_and_fallback_template(tmp_path):
    path = write_json(tmp_path / "counterfact_test_es.json", [
        _bmike_record(1, {"en": {}, "es": {"src": "¿Dónde nació Ada?", "old": "Londres", "alt": "París"},
                          "de": {"src": "Wo wurde Ada geboren?"}, "af": {"src": "Waar is Ada gebore?"}}),
    ])
    res = load_bmike53(path, langs=("en", "es", "de", "af"))
    c = res[0]
    assert c["es"].rewrite_prompt == "Pregunta: ¿Dónde nació {}?\nRespuesta:"
    assert c["es"].kl_prompts == ("{} es un",)
    assert c["es"].target_new == "París"
    assert c["de"].rewrite_prompt == "Frage: Wo wurde {} geboren?\nAntwort:"
    # a language without its own words: the English ones
    assert "af" not in QUESTION_TEMPLATES
    assert c["af"].rewrite_prompt == "Question: Waar is {} gebore?\nAnswer:"
    assert FALLBACK_QUESTION_TEMPLATE == QUESTION_TEMPLATES["en"] == "Question: {q}\nAnswer:"
    assert c["de"].kl_prompts == KL_PROMPTS["en"]
    assert set(QUESTION_TEMPLATES) >= {"en", "ca", "es"}
    assert list(load_bmike53(path, langs=None)[0].langs) == ["en", "es", "de", "af"]


def test_bmike53_escapes_braces_and_counts_skips(tmp_path):
    path = write_json(tmp_path / "t.json", [
        _bmike_record(1, {"en": {"src": "Where was Ada {the first} born?"}, "ca": {}}),
        _bmike_record(2, {"en": {}, "ca": {"subject": "Adeta"}}),
    ])
    res = load_bmike53(path)
    assert len(res) == 1 and res.skipped_ids == {"subject_not_in_prompt": [2]}
    assert res[0]["en"].rewrite() == "Question: Where was Ada {the first} born?\nAnswer:"


# =========================================================================== BMIKE-53: one file per language
def test_bmike53_file_by_language():
    assert bmike53_file(("en", "de")) == "counterfact_test_de.json"
    assert bmike53_file(["de", "en"]) == bmike53_file(("de",)) == "counterfact_test_de.json"
    assert bmike53_file(("en", "ceb")) == "counterfact_test_ceb.json"
    # English alone, or no langs: the data set's default file (its English part is that of every file)
    assert bmike53_file(None) == bmike53_file(("en",)) == bmike53_file(("en", "ca")) == "counterfact_test_ca.json"
    assert set(BMIKE53_CI_LANGS) <= set(BMIKE53_LANGS) and len(BMIKE53_CI_LANGS) == 12
    for f in (bmike53_file(("en", x)) for x in BMIKE53_LANGS):
        sources.get_source("bmike53_counterfact").file(f)  # registered
    with pytest.raises(ValueError, match=r"no BMIKE-53 file for language 'es'; available \(each with English\): "
                                         r"af, ar, az, .*, zh$"):
        bmike53_file(("en", "es"))
    with pytest.raises(ValueError, match=r"langs=\('en', 'de', 'fr'\): each BMIKE-53 file pairs English with one"):
        bmike53_file(("en", "de", "fr"))
    with pytest.raises(ValueError, match="langs is empty"):
        bmike53_file(())
    with pytest.raises(TypeError, match="not the string 'de'"):
        bmike53_file("de")


def test_load_dataset_bmike53_language_errors_before_any_file(tmp_path):
    # the option is checked first: nothing is copied or downloaded for a bad request
    with pytest.raises(ValueError, match=r"no BMIKE-53 file for language 'xx'; available .*\bhe\b"):
        load_dataset("bmike53_counterfact", data_dir=tmp_path, offline=True, langs=("en", "xx"))
    with pytest.raises(ValueError, match=r"file='counterfact-train\.json' is not a test file of bmike53_counterfact"):
        load_dataset("bmike53_counterfact", data_dir=tmp_path, offline=True, file="counterfact-train.json")
    assert not (tmp_path / "bmike53_counterfact").exists()


def test_question_templates_native_words():
    native = {"en": ("Question", "Answer"), "ca": ("Pregunta", "Resposta"), "de": ("Frage", "Antwort"),
              "fr": ("Question", "Réponse"), "pl": ("Pytanie", "Odpowiedź"), "ru": ("Вопрос", "Ответ"),
              "el": ("Ερώτηση", "Απάντηση"), "ar": ("سؤال", "جواب"), "he": ("שאלה", "תשובה"),
              "hi": ("प्रश्न", "उत्तर"), "zh": ("问题", "答案"), "ja": ("質問", "回答"), "ko": ("질문", "답변")}
    assert set(BMIKE53_CI_LANGS) | {"en"} == set(native)
    for lang, (q, a) in native.items():
        colon = "：" if lang in ("zh", "ja") else ": "
        assert QUESTION_TEMPLATES[lang] == f"{q}{colon}{{q}}\n{a}{colon.strip()}", lang


@pytest.mark.parametrize("lang", ("en",) + BMIKE53_LANGS)
def test_every_bmike53_language_template_formats(tmp_path, lang):
    """Every language with a file gets a prompt around its question: its own words (CI languages) or English."""
    question, subject = "Wo {x} Ada?", "Ada"  # braces in a question stay literal
    template = QUESTION_TEMPLATES.get(lang, FALLBACK_QUESTION_TEMPLATE)
    pre, post = template.split("{q}")
    assert template.count("{q}") == 1 and pre.strip() and post.strip()
    assert question_prompt(question, lang) == pre + question + post
    if lang in BMIKE53_CI_LANGS or lang == "en":
        assert lang in QUESTION_TEMPLATES
    else:
        assert template == QUESTION_TEMPLATES["en"]
    if lang == "en":
        return
    path = write_json(tmp_path / f"counterfact_test_{lang}.json",
                      [_bmike_record(1, {"en": {}, lang: {"src": question, "rephrase": "Ada?", "loc": "Bob?"}})])
    view = load_bmike53(path, langs=("en", lang))[0][lang]
    assert view.rewrite_prompt == pre + "Wo {{x}} {}?" + post
    assert view.rewrite() == pre + question + post
    assert view.paraphrase_prompts == (pre + "Ada?" + post,)
    assert view.neighborhood_prompts == (pre + "Bob?" + post,)


def _source_md_table() -> dict[str, tuple[int, int]]:
    """code -> (records with an X part, % with the X subject in the X question) from SOURCE.md's table."""
    text = (SHARED / "bmike53_counterfact" / "SOURCE.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `counterfact_test_(\w+)\.json` \| \w+ \| [^|]+ \| (\d+) \| (\d+)% \|", text, re.M)
    return {code: (int(n), int(share)) for code, n, share in rows}


@needs_shared("bmike53_counterfact")
def test_bmike53_every_language_file_matches_source_md():
    """Each English/X file: 1,031 records, the missing X parts and the subject-in-question share of SOURCE.md."""
    table = _source_md_table()
    assert sorted(table) == list(BMIKE53_LANGS)
    missing = {}
    for lang in BMIKE53_LANGS:
        path = SHARED / "bmike53_counterfact" / bmike53_file(("en", lang))
        res = load_bmike53(path, langs=("en", lang))
        n_x, share = table[lang]
        assert len(res) + res.n_skipped == 1031, lang
        assert res.skipped.get("missing_language", 0) == 1031 - n_x, lang
        missing[lang] = res.skipped.get("missing_language", 0)
        only_x = load_bmike53(path, langs=(lang,))
        assert only_x.skipped.get("missing_language", 0) == 1031 - n_x
        assert round(100 * len(only_x) / n_x) == share, lang  # X subject verbatim in the X question
    # SOURCE.md: "he 17, pl 2, and 1 each in hu, it, la, lv, pt, sk, sl, sq, ta, uk"
    assert {k: v for k, v in missing.items() if v} == {
        "he": 17, "pl": 2, **{k: 1 for k in ("hu", "it", "la", "lv", "pt", "sk", "sl", "sq", "ta", "uk")}}


@needs_shared("bmike53_counterfact")
def test_load_dataset_bmike53_de_and_he_real(tmp_path):
    de = load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path, langs=["en", "de"])
    assert Path(de.source).name == "counterfact_test_de.json"
    assert sorted(p.name for p in (tmp_path / "bmike53_counterfact").iterdir()) == ["counterfact_test_de.json"]
    assert len(de) == 953 and de.skipped == {"subject_not_in_prompt": 78}
    c = de.by_id()[4868]
    assert list(c.langs) == ["en", "de"] and c.source == "bmike53:counterfact_test_de.json"
    v = c["de"]
    assert v.rewrite_prompt == "Frage: Welche Sprache verwendet die {}?\nAntwort:"
    assert (v.subject, v.target_true, v.target_new) == ("Cihan News Agency", "Türkisch", "Katalanisch")
    assert c["en"].rewrite_prompt == "Question: What language does {} use?\nAnswer:"  # same English as the ca file

    he = load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path, langs=("en", "he"))
    assert Path(he.source).name == "counterfact_test_he.json"
    assert he.skipped == {"missing_language": 17, "subject_not_in_prompt": 64} and len(he) == 950
    assert he.skipped_ids["missing_language"][:3] == [4517, 87, 4655]
    assert he.summary() == (
        "counterfact_test_he.json: 950 cases loaded, 81 skipped (missing_language: 17, subject_not_in_prompt: 64)")
    assert not set(he.skipped_ids["missing_language"]) & {c.case_id for c in he}
    assert he.by_id()[4868]["he"].rewrite_prompt == "שאלה: באיזו שפה משתמשת {}?\nתשובה:"
    with pytest.raises(RecordError, match="skip reason 'missing_language'|skip reason 'subject_not_in_prompt'"):
        load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path, langs=("en", "he"), strict=True)


def _bmike_digest(res) -> str:
    rows = [[c.case_id, c.source, {lang: [v.subject, v.target_true, v.target_new, v.rewrite_prompt,
             list(v.paraphrase_prompts), list(v.neighborhood_prompts), list(v.neighborhood_answers()),
             list(v.kl_prompts)] for lang, v in c.langs.items()}, c.meta] for c in res]
    return sha(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode())


@needs_shared("bmike53_counterfact")
def test_bmike53_en_ca_unchanged_by_the_language_files(tmp_path):
    """Notebook 01's call gives exactly the cases of the code before the 50 other files were registered.

    The digests were computed with that code (commit 858a60c) on the same call.
    """
    res = load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path, langs=("en", "ca"))
    assert sha(json.dumps([c.case_id for c in res]).encode()) == (
        "cd78286ade4e0ed7a6dd016341ab651e470cd82c0cac8d6ce1c1fbaec1d56f90")
    assert _bmike_digest(res) == "44ede460cbc7ddd639c7ce2c70d5f73c1f63ffa2e386221575fb12f1bd97ad2f"
    assert res.skipped == {"subject_not_in_prompt": 54}
    assert res.skipped_ids["subject_not_in_prompt"][:5] == [4519, 4527, 4574, 4612, 222]
    assert _bmike_digest(load_dataset("bmike53_counterfact", source_dir=SHARED, data_dir=tmp_path)) == _bmike_digest(res)


# =========================================================================== malformed records
def _easyedit(cid=7, **over):
    rec = {"case_id": cid, "prompt": "The capital of France is", "subject": "France", "target_new": "Rome",
           "ground_truth": "Paris", "rephrase_prompt": "France's capital is", "locality_prompt": "The capital of Italy is",
           "locality_ground_truth": "Rome"}
    rec.update(over)
    return rec


@pytest.mark.parametrize(
    "over, fld, problem",
    [
        ({"target_new": ""}, "target_new", "empty string"),
        ({"ground_truth": "   "}, "ground_truth", "empty string"),
        ({"subject": 3}, "subject", "expected a string"),
        ({"rephrase_prompt": ["a"]}, "rephrase_prompt", "expected a string"),
    ],
)
def test_easyedit_malformed_record(tmp_path, over, fld, problem):
    path = write_json(tmp_path / "broken_easyedit.json", [_easyedit(1), _easyedit(7, **over)])
    with pytest.raises(RecordError) as ei:
        load_counterfact_easyedit(path)
    msg = str(ei.value)
    assert "broken_easyedit.json" in msg and "case_id=7" in msg and f"'{fld}'" in msg and problem in msg
    assert ei.value.case_id == 7 and ei.value.field_name == fld


def test_easyedit_missing_field_and_case_id(tmp_path):
    rec = _easyedit(7)
    del rec["target_new"]
    path = write_json(tmp_path / "m.json", [rec])
    with pytest.raises(RecordError, match=r"m\.json: case_id=7: field 'target_new': missing"):
        load_counterfact_easyedit(path)
    rec = _easyedit(7)
    del rec["case_id"]
    path = write_json(tmp_path / "n.json", [_easyedit(1), rec])
    with pytest.raises(RecordError, match=r"n\.json: case_id=<record #1>: field 'case_id': missing"):
        load_counterfact_easyedit(path)
    path = write_json(tmp_path / "d.json", [_easyedit(1), _easyedit(1)])
    with pytest.raises(RecordError, match="duplicate case_id"):
        load_counterfact_easyedit(path)


def test_easyedit_skip_and_strict(tmp_path):
    path = write_json(tmp_path / "s.json", [_easyedit(1), _easyedit(2, subject="Germany"), _easyedit(3)])
    res = load_counterfact_easyedit(path)
    assert [c.case_id for c in res] == [1, 3]
    assert res.skipped == {"subject_not_in_prompt": 1} and res.skipped_ids == {"subject_not_in_prompt": [2]}
    assert res.summary() == "s.json: 2 cases loaded, 1 skipped (subject_not_in_prompt: 1)"
    with pytest.raises(RecordError) as ei:
        load_counterfact_easyedit(path, strict=True)
    assert ei.value.case_id == 2 and ei.value.field_name == "subject" and "s.json" in str(ei.value)


def test_invalid_json_names_file_and_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n {"case_id": 1,\n  "prompt": oops}\n]\n', encoding="utf-8")
    for loader in (load_counterfact_easyedit, load_bmike53, load_counterfact_rome, load_memat, load_dataset):
        with pytest.raises(DataFileError) as ei:
            loader(path)
        assert "bad.json" in str(ei.value) and "line 3" in str(ei.value)
        assert (ei.value.lineno, ei.value.colno) == (3, 13)
    path.write_text('{"not": "a list"}', encoding="utf-8")
    with pytest.raises(DataFileError, match="expected a JSON list"):
        load_counterfact_rome(path)


def test_bmike53_missing_language_skipped_or_raises(tmp_path):
    # a record with only its English part (upstream has some) is a counted skip, an error under strict=True
    path = write_json(tmp_path / "nolang.json", [_bmike_record(5, {"en": {}, "ca": {}}), _bmike_record(9, {"en": {}})])
    res = load_bmike53(path)
    assert [c.case_id for c in res] == [5]
    assert res.skipped == {"missing_language": 1} and res.skipped_ids == {"missing_language": [9]}
    assert res.summary() == "nolang.json: 1 cases loaded, 1 skipped (missing_language: 1)"
    assert [c.case_id for c in load_bmike53(path, langs=("en",))] == [5, 9]
    with pytest.raises(RecordError, match="missing_language") as ei:
        load_bmike53(path, strict=True)
    assert ei.value.field_name == "ca" and ei.value.case_id == 9
    assert "nolang.json" in str(ei.value) and "case_id=9" in str(ei.value)
    # a record lacking the language and with the subject missing from its question counts once, as missing
    path = write_json(tmp_path / "both.json", [_bmike_record(9, {"en": {"subject": "Adeta"}}),
                                               _bmike_record(5, {"en": {}, "ca": {}})])
    assert load_bmike53(path).skipped_ids == {"missing_language": [9]}
    # a language that no record has is the wrong file, not 1031 skips
    with pytest.raises(DataFileError, match=r"nolang\.json: no record has language 'de'.*languages: en, ca"):
        load_bmike53(tmp_path / "nolang.json", langs=("en", "de"))
    with pytest.raises(TypeError, match="not the string"):
        load_bmike53(path, langs="ca")
    path = write_json(tmp_path / "null.json", [{"en": _bmike_record(5, {"en": {}})["en"], "ca": None}])
    with pytest.raises(RecordError, match=r"case_id=5: field 'ca': expected a JSON object, got null"):
        load_bmike53(path)
    path = write_json(tmp_path / "emptyalt.json", [_bmike_record(5, {"en": {}, "ca": {"alt": ""}})])
    with pytest.raises(RecordError, match=r"case_id=5: field 'ca\.alt': empty string"):
        load_bmike53(path)
    path = write_json(tmp_path / "ids.json", [_bmike_record(5, {"en": {}, "ca": {"case_id": 6}})])
    with pytest.raises(RecordError, match=r"field 'ca\.case_id'"):
        load_bmike53(path)


# =========================================================================== ROME CounterFact (fixture)
def test_rome_fixture():
    res = load_counterfact_rome(FIXTURES / "counterfact_rome_sample.json")
    assert [c.case_id for c in res] == [0, 1, 2] and res.skipped == {}
    c0 = res[0]
    assert c0.relation_id == "P103"
    v = c0["en"]
    assert v.rewrite_prompt == "The mother tongue of {} is"
    assert (v.target_true, v.target_new) == ("French", "English")
    assert len(v.paraphrase_prompts) == 2 and len(v.neighborhood_prompts) == 3
    assert v.neighborhood_answers() == ("French",) * 3
    assert c0.meta["pararel_idx"] == 2796
    assert c0.meta["target_ids"] == {"en": {"new": "Q1860", "true": "Q150"}}
    assert c0.meta["extra_prompts"]["en"]["generation_prompts"][0] == "Danielle Darrieux's mother tongue is"
    # subject containing braces is inserted literally
    assert res[1]["en"].rewrite() == "Toko Yasuda's band {Rebel}, that was created in"
    # optional fields absent
    assert res[2].relation_id is None and res[2].meta == {}


def test_rome_malformed(tmp_path):
    good = json.loads((FIXTURES / "counterfact_rome_sample.json").read_text())
    bad = json.loads(json.dumps(good))
    bad[1]["requested_rewrite"]["prompt"] = "no placeholder here"
    with pytest.raises(RecordError, match=r"r\.json: case_id=1: field 'requested_rewrite\.prompt'"):
        load_counterfact_rome(write_json(tmp_path / "r.json", bad))
    bad = json.loads(json.dumps(good))
    bad[0]["requested_rewrite"]["target_new"] = "English"
    with pytest.raises(RecordError, match=r"case_id=0: field 'requested_rewrite\.target_new': expected a JSON object"):
        load_counterfact_rome(write_json(tmp_path / "r2.json", bad))
    bad = json.loads(json.dumps(good))
    bad[2]["requested_rewrite"]["target_true"]["str"] = ""
    with pytest.raises(RecordError, match=r"case_id=2: field 'requested_rewrite\.target_true\.str': empty"):
        load_counterfact_rome(write_json(tmp_path / "r3.json", bad))
    bad = json.loads(json.dumps(good))
    bad[0]["neighborhood_prompts"][1] = 5
    with pytest.raises(RecordError, match=r"field 'neighborhood_prompts\[1\]'"):
        load_counterfact_rome(write_json(tmp_path / "r4.json", bad))


# =========================================================================== MEMAT (fixture in the authors' schema)
def test_memat_fixture_variants():
    res = load_memat(FIXTURES / "memat_sample.json")
    assert [c.case_id for c in res] == [2, 3]
    c = res[0]
    assert list(c.langs) == ["en", "ca"] and c.relation_id == "P1303"
    ca = c["ca"]
    assert (ca.target_true, ca.target_new) == ("guitarra", "piano")
    assert ca.prompt_pairs("rewrite") == [("Toko Yasuda, el", "Toko Yasuda, la")]
    assert ca.prompt_pairs("paraphrase")[0] == ("Toko Yasuda, tocant al", "Toko Yasuda, tocant a la")
    # neighbourhood: (prompt for the new target, prompt for the true target)
    assert ca.prompt_pairs("neighborhood")[0] == ("Paul McCartney toca el", "Paul McCartney toca la")
    assert ca.kl_prompts == ("{} és un",)
    en = c["en"]
    assert en.rewrite_prompt_true is None and en.prompt_pairs("rewrite") == [("Toko Yasuda, the",) * 2]
    assert c.meta["extra_prompts"]["ca"]["generation_prompts_true"] == ("Toko Yasuda és conegut per la",)
    # differing true subject is kept
    c3 = res[1]
    assert c3["ca"].prompt_pairs("rewrite") == [
        ("Universitat Autònoma de Madrid, que es troba a", "La Universitat Autònoma es troba a")
    ]
    assert c3.meta["subject_true"] == {"ca": "Universitat Autònoma"}
    only_ca = load_memat(FIXTURES / "memat_sample.json", langs=("ca",))
    assert list(only_ca[0].langs) == ["ca"]


def test_memat_round_trip(tmp_path):
    res = load_memat(FIXTURES / "memat_sample.json")
    for keys in ("names", "codes"):
        out = dump_memat(res, tmp_path / f"rt_{keys}.json", lang_keys=keys)
        raw = json.loads(out.read_text(encoding="utf-8"))
        assert set(raw[0]) == ({"english", "catalan"} if keys == "names" else {"en", "ca"})
        back = load_memat(out)
        assert [replace(c, source="") for c in back] == [replace(c, source="") for c in res]
    # the file written follows the authors' layout: English in ROME form, Catalan in variant form
    raw = json.loads((tmp_path / "rt_names.json").read_text(encoding="utf-8"))
    assert raw[0]["english"]["requested_rewrite"]["prompt"] == "{}, the"
    assert raw[0]["catalan"]["eval_target_true"]["requested_rewrite"]["target_true"] == {"str": "guitarra", "id": "Q6607"}
    assert raw[1]["catalan"]["eval_target_true"]["requested_rewrite"] == {
        "prompt": "La {} es troba a", "target_true": {"str": "Espanya", "id": "Q29"}, "subject": "Universitat Autònoma"}
    assert _no_partials(tmp_path) == []


def test_memat_round_trip_of_built_cases(tmp_path):
    en = LangView("Ada {X}", "London", "Paris", "Where was {} born?", ("Ada's birthplace is",),
                  ("Bob was born in",), neighborhood_targets=("Leeds",))
    ca = LangView("Ada", "Londres", "París", "{} va néixer a", ("El lloc de naixement d'Ada és",),
                  ("En Bob va néixer a",), kl_prompts=("{} era",), rewrite_prompt_true="{} va néixer al")
    cases = [EditCase(case_id="c1", langs={"en": en, "ca": ca}, relation_id="P19")]
    back = load_memat(dump_memat(cases, tmp_path / "built.json"))
    assert back[0].langs == cases[0].langs and back[0].relation_id == "P19" and back[0].case_id == "c1"
    raw = json.loads((tmp_path / "built.json").read_text(encoding="utf-8"))
    assert raw[0]["catalan"]["kl_prompts"] == ["{} era"] and "kl_prompts" not in raw[0]["english"]
    assert raw[0]["english"]["neighborhood_targets"] == ["Leeds"]


def test_memat_directory_layout_and_single_files(tmp_path):
    combined = json.loads((FIXTURES / "memat_sample.json").read_text(encoding="utf-8"))
    folder = tmp_path / "drive"
    folder.mkdir()
    write_json(folder / "english_CF.json", [r["english"] for r in combined])
    write_json(folder / "catalan_CF.json", [combined[0]["catalan"]])  # case 3 failed translation
    res = load_memat(folder)
    assert [c.case_id for c in res] == [2]
    assert res.skipped_ids == {"missing_language": [3]}
    assert res[0]["ca"].prompt_pairs("rewrite") == [("Toko Yasuda, el", "Toko Yasuda, la")]
    with pytest.raises(DataFileError, match=r"langs=\('ca',\)"):
        load_memat(folder / "catalan_CF.json")
    single = load_memat(folder / "catalan_CF.json", langs=("ca",))
    assert list(single[0].langs) == ["ca"]
    assert len(load_dataset(folder)) == 1
    with pytest.raises(DataFileError, match="spanish_CF.json"):
        load_memat(folder, langs=("en", "es"))


def test_memat_malformed(tmp_path):
    combined = json.loads((FIXTURES / "memat_sample.json").read_text(encoding="utf-8"))
    bad = json.loads(json.dumps(combined))
    bad[0]["catalan"]["eval_target_true"]["paraphrase_prompts"].pop()
    with pytest.raises(RecordError, match=r"mm\.json: case_id=2: field 'catalan\.eval_target_true\.paraphrase_prompts'"):
        load_memat(write_json(tmp_path / "mm.json", bad))
    bad = json.loads(json.dumps(combined))
    del bad[1]["catalan"]
    with pytest.raises(RecordError) as ei:
        load_memat(write_json(tmp_path / "mm2.json", bad))
    assert ei.value.case_id == 3 and ei.value.field_name == "catalan"
    bad = json.loads(json.dumps(combined))
    bad[1]["catalan"]["case_id"] = 4
    with pytest.raises(RecordError, match="differs"):
        load_memat(write_json(tmp_path / "mm3.json", bad))


# =========================================================================== format detection
def test_detect_format_and_dispatch(tmp_path):
    rome = json.loads((FIXTURES / "counterfact_rome_sample.json").read_text())
    memat_ = json.loads((FIXTURES / "memat_sample.json").read_text(encoding="utf-8"))
    bmike = [_bmike_record(1, {"en": {}, "ca": {}})]
    easy = [_easyedit(1)]
    assert detect_format(rome) == "rome"
    assert detect_format(memat_) == "memat"
    assert detect_format([r["catalan"] for r in memat_]) == "memat"
    assert detect_format(bmike) == "bmike53"
    assert detect_format([{"en": bmike[0]["en"]}]) == "bmike53"
    assert detect_format(easy) == "easyedit"
    with pytest.raises(DataFileError, match="unknown record schema"):
        detect_format([{"foo": 1}], "x.json")
    with pytest.raises(DataFileError, match="empty"):
        detect_format([], "x.json")

    assert load_dataset(FIXTURES / "counterfact_rome_sample.json")[0].source == "counterfact_rome:counterfact_rome_sample.json"
    m = load_dataset(FIXTURES / "memat_sample.json")
    assert list(m[0].langs) == ["en", "ca"] and m[0]["ca"].rewrite_prompt_true == "{}, la"
    b = load_dataset(write_json(tmp_path / "b.json", bmike))
    assert list(b[0].langs) == ["en", "ca"] and b[0]["ca"].rewrite_prompt == "Pregunta: Where was {} born?\nResposta:"
    e = load_dataset(write_json(tmp_path / "counterfact-val.json", easy))
    assert e[0]["en"].rewrite_prompt == "The capital of {} is" and e[0].meta == {"split": "val"}
    with pytest.raises(FileNotFoundError, match="neither a registered data set"):
        load_dataset(tmp_path / "missing.json")


# =========================================================================== helpers
def _cases(n):
    v = LangView("S", "t", "n", "{} is")
    return [EditCase(case_id=i, langs={"en": v}) for i in range(n)]


def test_select_cases_deterministic_and_ordered():
    cases = _cases(50)
    a = select_cases(cases, 10, seed=3)
    assert len(a) == 10
    ids = [c.case_id for c in a]
    assert ids == sorted(ids)
    assert ids == [c.case_id for c in select_cases(cases, 10, seed=3)]
    assert ids != [c.case_id for c in select_cases(cases, 10, seed=4)]
    assert len(select_cases(cases, 100, seed=0)) == 50 and len(select_cases(cases, None, seed=0)) == 50
    assert select_cases(LoadResult(cases=cases), 0, seed=1) == []
    with pytest.raises(ValueError):
        select_cases(cases, -1, seed=0)


class FakeTokenizer:
    """Word-level ids; records the calls so the test can check the text and the flags."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.calls: list[tuple[str, bool]] = []

    def encode(self, text, add_special_tokens=True):
        self.calls.append((text, add_special_tokens))
        ids = [self.vocab.setdefault(w, len(self.vocab) + 10) for w in text.split(" ") if w]
        return ([1] if add_special_tokens else []) + ids

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self.encode(text, add_special_tokens)}


class EncodeOnly:
    def __init__(self):
        self.inner = FakeTokenizer()

    def encode(self, text, add_special_tokens=True):
        return self.inner.encode(text, add_special_tokens)


def test_subject_jaccard():
    case = EditCase(case_id=1, langs={
        "en": LangView("Cihan News Agency", "t", "n", "{} x"),
        "ca": LangView("Agència de Notícies Cihan", "t", "n", "{} x"),
        "es": LangView("Cihan News Agency", "t", "n", "{} x"),
    })
    tok = FakeTokenizer()
    # {Cihan, News, Agency} vs {Agència, de, Notícies, Cihan}: 1 shared of 6
    assert subject_jaccard(case, "en", "ca", tok) == pytest.approx(1 / 6)
    assert subject_jaccard(case, "en", "es", tok) == 1.0
    assert tok.calls[0] == (" Cihan News Agency", False)  # leading space, no special tokens
    assert subject_jaccard(case, "en", "ca", EncodeOnly()) == pytest.approx(1 / 6)


def test_cloze_template_escapes():
    assert cloze_template("a {b} Ada c Ada", "Ada") == "a {{b}} {} c Ada"
    assert cloze_template("nothing", "Ada") is None


def test_load_dataset_rejects_foreign_keywords():
    with pytest.raises(TypeError, match="rome schema; unexpected keyword"):
        load_dataset(FIXTURES / "counterfact_rome_sample.json", langs=("en",))
