"""Loaders that turn the public editing data sets into :class:`~memat.data.records.EditCase` lists.

Every loader returns a :class:`LoadResult` (the cases, what was skipped and why, and the source).
Two kinds of problems are told apart:

* a **malformed** record (missing field, wrong type, empty subject or target, bad ``{}`` template,
  unequal variant lists, missing language in a MEMAT combined file) raises :class:`RecordError` naming
  the file, the ``case_id`` and the field; a file that is not valid JSON (or not a list of records)
  raises :class:`DataFileError` naming the file (and line/column for a JSON syntax error);
* a well-formed record that the paper's pipeline cannot use is **skipped** and counted under a reason
  (``LoadResult.skipped``, ``LoadResult.skipped_ids``, ``LoadResult.summary()``): chiefly a subject that
  does not occur verbatim in its prompt (``subject_not_in_prompt``; MEMIT looks up the subject's last
  token there), and a case without a requested language (``missing_language``; some BMIKE-53 records
  have only their English part, e.g. 17 of the Hebrew file). With ``strict=True`` a skip raises
  :class:`RecordError` instead.

Prompt templates follow :mod:`memat.data.records`: ``rewrite_prompt`` contains ``{}`` exactly once and
is used with ``str.format``; literal braces of the source text are escaped as ``{{`` / ``}}``.

Supported schemas
=================

EasyEdit CounterFact (``counterfact-{train,val,edit}.json``)
    ``case_id, prompt, subject, target_new, ground_truth, rephrase_prompt, locality_prompt,
    locality_ground_truth``: :func:`load_counterfact_easyedit`.

BMIKE-53 CounterFact test set (``counterfact_test_<lang>.json``, one file per language)
    ``[{"en": {...}, "<lang>": {...}}, ...]`` with ``case_id, subject, src, rephrase, old, alt, loc,
    loc_ans[, port, port_ans]`` per language; questions, not cloze prompts: :func:`load_bmike53`.
    Every file holds the same 1,031 English records; :func:`bmike53_file` picks the file of a language
    (:data:`BMIKE53_LANGS`).

ROME / MEMIT CounterFact (``counterfact.json``)
    ``{"case_id", "pararel_idx", "requested_rewrite": {"prompt", "relation_id", "target_new":
    {"str", "id"}, "target_true": {"str", "id"}, "subject"}, "paraphrase_prompts",
    "neighborhood_prompts", "attribute_prompts", "generation_prompts"}``: :func:`load_counterfact_rome`.

MEMAT (bilingual CounterFact of the paper)
    Taken from the authors' repository ``dtamayo-nlp/MEMAT`` (``Translator/
    Translation_FactualAssociations.ipynb`` builds ``catalan_CF.json`` from ``english_CF.json``;
    ``experiments/py/eval_utils_counterfact.py`` and the bilingual experiment scripts read it):

    * ``english_CF.json``: a list of ROME records (schema above).
    * ``catalan_CF.json``: a list of records, one per case, in the **variant** form::

        {"case_id": int, "pararel_idx": int, "relation_id": "P...",
         "eval_target_new":  {"requested_rewrite": {"prompt": "{}, el",
                                                    "target_new": {"str": "piano", "id": "Q5994"},
                                                    "subject": "Toko Yasuda"},
                              "paraphrase_prompts": [...], "neighborhood_prompts": [...],
                              "attribute_prompts": [...], "generation_prompts": [...]},
         "eval_target_true": {"requested_rewrite": {"prompt": "{}, la",
                                                    "target_true": {"str": "guitarra", "id": "Q6607"},
                                                    "subject": "Toko Yasuda"},
                              "paraphrase_prompts": [...], ...}}

      Each prompt list exists twice because Catalan articles agree with the object (``el piano`` /
      ``la guitarra``): the ``eval_target_new`` prompts are scored with the new target and the
      ``eval_target_true`` prompts with the true one; the edit itself uses
      ``eval_target_new.requested_rewrite``. The two subjects are normally equal.
    * ``combined_data.json`` (bilingual experiments): a list of ``{"catalan": <catalan record>,
      "english": <ROME record>}``.

    :func:`load_memat` reads (a) such a combined file, with language keys given as names
    (``"english"``, ``"catalan"``, ``"spanish"``) or codes (``"en"``, ``"ca"``, ``"es"``), each language
    record in either the ROME or the variant form; (b) a directory holding ``<language name>_CF.json``
    files (e.g. ``english_CF.json`` + ``catalan_CF.json``), joined by ``case_id``; (c) one bare list of
    single-language records. :func:`dump_memat` writes layout (a) exactly as the authors' combined
    file: English in the ROME form, every other language in the variant form. Two optional keys
    extend a language record, only when they carry information: ``"kl_prompts"`` (if different from
    :data:`KL_PROMPTS`) and ``"neighborhood_targets"`` (expected answer of each neighbourhood prompt).

    Mapping to :class:`LangView` for the variant form: ``rewrite_prompt``/``paraphrase_prompts`` come
    from ``eval_target_new``; ``rewrite_prompt_true``/``paraphrase_prompts_true`` from
    ``eval_target_true``; ``neighborhood_prompts`` from ``eval_target_true`` (they agree with the true
    answer) and ``neighborhood_prompts_new`` from ``eval_target_new``. A variant equal to its
    counterpart is stored as ``None``. If the two subjects differ, the true subject is written into
    ``rewrite_prompt_true`` (which then has no ``{}``) and kept in ``meta["subject_true"][lang]``.

``EditCase.meta`` keys set by the loaders (each only when there is something to store):
``split`` (EasyEdit), ``pararel_idx``, ``target_ids`` ``{lang: {"new": id, "true": id}}``,
``extra_prompts`` ``{lang: {"attribute_prompts", "generation_prompts"[, "..._true"]}}`` (tuples),
``subject_true`` ``{lang: str}``, ``portability`` ``{lang: {"prompt", "answer"}}`` (BMIKE-53).
"""
from __future__ import annotations

import json
import os
import random
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..io import atomic_write_text
from .jaccard import subject_jaccard, token_jaccard  # re-exported: memat.data.loaders.subject_jaccard
from .records import EditCase, LangView, RecordError
from .sources import get_source

# --------------------------------------------------------------------------- constants
#: Per-language template turning a BMIKE-53 question ``{q}`` into a prompt: the language's own words for
#: "Question" and "Answer" in the English frame ``"<Question>: {q}\n<Answer>:"``, so that languages differ
#: in the words only (Chinese and Japanese write the full-width colon ``：`` without a space, as their
#: questions end in ``？``). Every language of :data:`BMIKE53_CI_LANGS` has one, plus en and es.
#: Override per call with ``load_bmike53(question_templates=...)``.
QUESTION_TEMPLATES: dict[str, str] = {
    "en": "Question: {q}\nAnswer:",
    "ca": "Pregunta: {q}\nResposta:",
    "es": "Pregunta: {q}\nRespuesta:",
    "de": "Frage: {q}\nAntwort:",
    "fr": "Question: {q}\nRéponse:",
    "pl": "Pytanie: {q}\nOdpowiedź:",
    "ru": "Вопрос: {q}\nОтвет:",
    "el": "Ερώτηση: {q}\nΑπάντηση:",
    "ar": "سؤال: {q}\nجواب:",
    "he": "שאלה: {q}\nתשובה:",
    "hi": "प्रश्न: {q}\nउत्तर:",
    "zh": "问题：{q}\n答案：",
    "ja": "質問：{q}\n回答：",
    "ko": "질문: {q}\n답변:",
}
#: Template for a language missing from :data:`QUESTION_TEMPLATES` (the other BMIKE-53 languages): the
#: English words, i.e. the English prompt frame around the language's own question, rather than
#: unchecked translations of the two words. ``lang in QUESTION_TEMPLATES`` tells whether a language gets
#: its own words.
FALLBACK_QUESTION_TEMPLATE = QUESTION_TEMPLATES["en"]

#: Default KL (essence) prompts per language, ``{}`` = subject. Unknown languages fall back to English.
KL_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": ("{} is a",),
    "ca": ("{} és un",),
    "es": ("{} es un",),
}

#: Language code -> name used as a record key in the authors' MEMAT files.
LANG_NAMES: dict[str, str] = {"en": "english", "ca": "catalan", "es": "spanish"}
_NAME_TO_CODE = {v: k for k, v in LANG_NAMES.items()}

#: Skip reason: the subject string does not occur verbatim in the prompt/question.
SUBJECT_NOT_IN_PROMPT = "subject_not_in_prompt"
#: Skip reason: a case lacks a requested language (a BMIKE-53 record with only its English part; in the
#: MEMAT directory layout, a case missing from one of the language files).
MISSING_LANGUAGE = "missing_language"

#: Registered name of the BMIKE-53 CounterFact data set (:mod:`memat.data.sources`) and its default
#: file (English and Catalan, the paper's pair).
BMIKE53_NAME = "bmike53_counterfact"
BMIKE53_DEFAULT_FILE = "counterfact_test_ca.json"
_BMIKE53_PREFIX, _BMIKE53_SUFFIX = "counterfact_test_", ".json"
#: Codes of the languages with an English/X test file ``counterfact_test_<code>.json`` in the registry
#: (51, sorted; Spanish is not among them), derived from :mod:`memat.data.sources` so that the two
#: cannot disagree.
BMIKE53_LANGS: tuple[str, ...] = tuple(sorted(
    f.local[len(_BMIKE53_PREFIX):-len(_BMIKE53_SUFFIX)]
    for f in get_source(BMIKE53_NAME).files
    if f.local.startswith(_BMIKE53_PREFIX) and f.local.endswith(_BMIKE53_SUFFIX)
))
#: The CI default languages of notebook 08 (many languages): a dozen spanning the scripts of BMIKE-53
#: (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Han, kana, Hangul); each has its own words in
#: :data:`QUESTION_TEMPLATES`.
BMIKE53_CI_LANGS: tuple[str, ...] = ("ca", "de", "fr", "pl", "ru", "el", "ar", "he", "hi", "zh", "ja", "ko")

EASYEDIT_SPLITS = ("train", "val", "edit")
_BMIKE_FIELDS = ("subject", "src", "rephrase", "old", "alt", "loc", "loc_ans")


class DataFileError(ValueError):
    """A whole file is unusable: invalid JSON, wrong top-level type, unknown format."""

    def __init__(self, source: str | os.PathLike, problem: str, lineno: int | None = None, colno: int | None = None):
        self.source, self.problem, self.lineno, self.colno = str(source), problem, lineno, colno
        where = f" (line {lineno}, column {colno})" if lineno is not None else ""
        super().__init__(f"{source}{where}: {problem}")


# --------------------------------------------------------------------------- result
@dataclass
class LoadResult:
    """Cases loaded from one source plus what was skipped and why.

    Iterable, sized and indexable like the list of cases.
    """

    cases: list[EditCase]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_ids: dict[str, list] = field(default_factory=dict)
    source: str = ""

    def __iter__(self) -> Iterator[EditCase]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> EditCase:
        return self.cases[index]

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def by_id(self) -> dict[Any, EditCase]:
        """The cases keyed by ``case_id``."""
        return {c.case_id: c for c in self.cases}

    def summary(self) -> str:
        """One line, e.g. ``counterfact_test_ca.json: 977 cases loaded, 54 skipped (subject_not_in_prompt: 54)``."""
        name = Path(self.source).name if self.source else "<records>"
        line = f"{name}: {len(self.cases)} cases loaded, {self.n_skipped} skipped"
        if self.skipped:
            line += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) + ")"
        return line


class _Ctx:
    """Validation helpers bound to one source file; collects skips."""

    def __init__(self, source: str | os.PathLike, strict: bool):
        self.source = str(source)
        self.strict = strict
        self.result = LoadResult(cases=[], source=self.source)
        self._seen: dict[Any, int] = {}

    def error(self, cid: Any, fld: str, problem: str) -> RecordError:
        return RecordError(self.source, cid, fld, problem)

    def skip(self, reason: str, cid: Any, fld: str, problem: str) -> None:
        if self.strict:
            raise self.error(cid, fld, f"{problem} (skip reason '{reason}'; strict=True)")
        self.result.skipped[reason] = self.result.skipped.get(reason, 0) + 1
        self.result.skipped_ids.setdefault(reason, []).append(cid)

    # ---- field checks ----
    def record(self, rec: Any, index: int, where: str = "") -> dict:
        if not isinstance(rec, dict):
            raise self.error(f"<record #{index}>", where or "<record>", f"expected a JSON object, got {_tname(rec)}")
        return rec

    def case_id(self, rec: Mapping, index: int, prefix: str = "") -> Any:
        fld = prefix + "case_id"
        if "case_id" not in rec:
            raise self.error(f"<record #{index}>", fld, "missing")
        cid = rec["case_id"]
        if isinstance(cid, bool) or not isinstance(cid, (int, str)) or (isinstance(cid, str) and not cid.strip()):
            raise self.error(f"<record #{index}>", fld, f"expected an int or a non-empty string, got {cid!r}")
        return cid

    def register(self, cid: Any, index: int) -> None:
        if cid in self._seen:
            raise self.error(cid, "case_id", f"duplicate case_id (records #{self._seen[cid]} and #{index})")
        self._seen[cid] = index

    def dict_(self, obj: Mapping, key: str, cid: Any, path: str) -> dict:
        if key not in obj:
            raise self.error(cid, path, "missing")
        val = obj[key]
        if not isinstance(val, dict):
            raise self.error(cid, path, f"expected a JSON object, got {_tname(val)}")
        return val

    def str_(self, obj: Mapping, key: str, cid: Any, path: str) -> str:
        if key not in obj:
            raise self.error(cid, path, "missing")
        val = obj[key]
        if not isinstance(val, str):
            raise self.error(cid, path, f"expected a string, got {_tname(val)}")
        if not val.strip():
            raise self.error(cid, path, "empty string")
        return val

    def opt_str(self, obj: Mapping, key: str, cid: Any, path: str) -> str | None:
        if obj.get(key) is None:
            return None
        return self.str_(obj, key, cid, path)

    def str_list(self, obj: Mapping, key: str, cid: Any, path: str, required: bool = True) -> tuple[str, ...]:
        if key not in obj or obj[key] is None:
            if required:
                raise self.error(cid, path, "missing")
            return ()
        val = obj[key]
        if not isinstance(val, list):
            raise self.error(cid, path, f"expected a list of strings, got {_tname(val)}")
        for i, item in enumerate(val):
            if not isinstance(item, str):
                raise self.error(cid, f"{path}[{i}]", f"expected a string, got {_tname(item)}")
            if not item.strip():
                raise self.error(cid, f"{path}[{i}]", "empty string")
        return tuple(val)

    def template(self, obj: Mapping, key: str, cid: Any, path: str) -> str:
        val = self.str_(obj, key, cid, path)
        n = _n_placeholders(val)
        if n != 1:
            raise self.error(cid, path, f"expected exactly one '{{}}' placeholder, got {val!r}")
        return val

    def target(self, obj: Mapping, key: str, cid: Any, path: str) -> tuple[str, Any]:
        """A ROME target ``{"str": ..., "id": ...}`` -> (str, id or None)."""
        t = self.dict_(obj, key, cid, path)
        return self.str_(t, "str", cid, f"{path}.str"), t.get("id")


def _tname(v: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(v), type(v).__name__)


# --------------------------------------------------------------------------- template helpers
def _esc(text: str) -> str:
    """Escape literal braces for ``str.format``."""
    return text.replace("{", "{{").replace("}", "}}")


def _n_placeholders(template: str) -> int:
    """Number of ``{}`` fields of a format template; -1 if it is invalid or has other fields."""
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError:
        return -1
    if any(f != "" for f in fields):
        return -1
    return len(fields)


def cloze_template(prompt: str, subject: str) -> str | None:
    """``prompt`` with the first occurrence of ``subject`` replaced by ``{}`` (other braces escaped).

    ``None`` when the subject does not occur verbatim in the prompt.
    """
    if not subject or subject not in prompt:
        return None
    before, after = prompt.split(subject, 1)
    return _esc(before) + "{}" + _esc(after)


def _split_question_template(template: str) -> tuple[str, str]:
    if template.count("{q}") != 1:
        raise ValueError(f"question template must contain '{{q}}' exactly once: {template!r}")
    pre, post = template.split("{q}")
    return pre, post


def question_prompt(question: str, lang: str, templates: Mapping[str, str] | None = None) -> str:
    """A complete prompt for a question in language ``lang`` (no placeholder)."""
    pre, post = _split_question_template(_question_template(lang, templates))
    return pre + question + post


def _question_template(lang: str, templates: Mapping[str, str] | None) -> str:
    table = {**QUESTION_TEMPLATES, **(templates or {})}
    return table.get(lang, FALLBACK_QUESTION_TEMPLATE)


def _kl_table(overrides: Mapping[str, str | Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    table = dict(KL_PROMPTS)
    for lang, val in (overrides or {}).items():
        table[lang] = (val,) if isinstance(val, str) else tuple(val)
    for lang, prompts in table.items():
        for p in prompts:
            if _n_placeholders(p) != 1:
                raise ValueError(f"KL prompt for {lang!r} must contain '{{}}' exactly once: {p!r}")
    return table


def kl_prompts_for(lang: str, overrides: Mapping[str, str | Sequence[str]] | None = None) -> tuple[str, ...]:
    """KL prompts of a language (overrides > :data:`KL_PROMPTS` > English)."""
    table = _kl_table(overrides)
    return table.get(lang, table["en"])


def _lang_code(key: str) -> str:
    return _NAME_TO_CODE.get(key.lower(), key)


# --------------------------------------------------------------------------- file reading
def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataFileError(path, f"invalid JSON: {e.msg}", e.lineno, e.colno) from e
    except UnicodeDecodeError as e:
        raise DataFileError(path, f"not UTF-8 text: {e}") from e


def _read_records(path: Path) -> list:
    data = _read_json(path)
    if not isinstance(data, list):
        raise DataFileError(path, f"expected a JSON list of records at top level, got {_tname(data)}")
    return data


# --------------------------------------------------------------------------- EasyEdit CounterFact
def load_counterfact_easyedit(
    path_or_dir: str | os.PathLike,
    split: str = "edit",
    lang: str = "en",
    kl_prompt: str = "{} is a",
    strict: bool = False,
) -> LoadResult:
    """Load CounterFact in the EasyEdit schema.

    ``path_or_dir`` is a file, or a directory holding ``counterfact-{train,val,edit}.json``; then
    ``split`` picks one (``"edit"``, ``"train"``, ``"val"``) or ``"all"`` (every split, sorted by
    ``case_id``). ``rewrite_prompt`` is ``prompt`` with the first occurrence of ``subject`` replaced by
    ``{}``; a record whose subject is not in its prompt is skipped (``subject_not_in_prompt``).
    """
    if _n_placeholders(kl_prompt) != 1:
        raise ValueError(f"kl_prompt must contain '{{}}' exactly once: {kl_prompt!r}")
    p = Path(path_or_dir)
    if p.is_dir():
        if split == "all":
            files = [(p / f"counterfact-{s}.json", s) for s in EASYEDIT_SPLITS]
        elif split in EASYEDIT_SPLITS:
            files = [(p / f"counterfact-{split}.json", split)]
        else:
            raise ValueError(f"split must be one of {EASYEDIT_SPLITS + ('all',)}, got {split!r}")
    else:
        files = [(p, _easyedit_split_of(p))]
    parts = [_easyedit_records(_read_records(f), f, s, lang, kl_prompt, strict) for f, s in files]
    if len(parts) == 1:
        return parts[0]
    merged = LoadResult(cases=[], source=str(p))
    seen: dict[Any, str] = {}
    for part in parts:
        for c in part.cases:
            if c.case_id in seen:
                raise RecordError(part.source, c.case_id, "case_id", f"duplicate case_id (also in {seen[c.case_id]})")
            seen[c.case_id] = part.source
        merged.cases.extend(part.cases)
        for k, v in part.skipped.items():
            merged.skipped[k] = merged.skipped.get(k, 0) + v
            merged.skipped_ids.setdefault(k, []).extend(part.skipped_ids[k])
    merged.cases.sort(key=lambda c: (str(type(c.case_id)), c.case_id))
    return merged


def _easyedit_split_of(path: Path) -> str | None:
    for s in EASYEDIT_SPLITS:
        if path.name == f"counterfact-{s}.json":
            return s
    return None


def _easyedit_records(
    records: list, path: Path, split: str | None, lang: str, kl_prompt: str, strict: bool
) -> LoadResult:
    ctx = _Ctx(path, strict)
    tag = f"counterfact_easyedit:{path.name}"
    for i, raw in enumerate(records):
        rec = ctx.record(raw, i)
        cid = ctx.case_id(rec, i)
        ctx.register(cid, i)
        prompt = ctx.str_(rec, "prompt", cid, "prompt")
        subject = ctx.str_(rec, "subject", cid, "subject")
        target_new = ctx.str_(rec, "target_new", cid, "target_new")
        target_true = ctx.str_(rec, "ground_truth", cid, "ground_truth")
        rephrase = ctx.str_(rec, "rephrase_prompt", cid, "rephrase_prompt")
        loc = ctx.str_(rec, "locality_prompt", cid, "locality_prompt")
        loc_gt = ctx.str_(rec, "locality_ground_truth", cid, "locality_ground_truth")
        rewrite = cloze_template(prompt, subject)
        if rewrite is None:
            ctx.skip(SUBJECT_NOT_IN_PROMPT, cid, "subject", f"subject {subject!r} not found in prompt {prompt!r}")
            continue
        view = LangView(
            subject=subject,
            target_true=target_true,
            target_new=target_new,
            rewrite_prompt=rewrite,
            paraphrase_prompts=(rephrase,),
            neighborhood_prompts=(loc,),
            kl_prompts=(kl_prompt,),
            neighborhood_targets=(loc_gt,),
        )
        meta = {"split": split} if split else {}
        ctx.result.cases.append(EditCase(case_id=cid, langs={lang: view}, source=tag, meta=meta))
    return ctx.result


# --------------------------------------------------------------------------- BMIKE-53
def load_bmike53(
    path: str | os.PathLike,
    langs: Sequence[str] | None = ("en", "ca"),
    question_templates: Mapping[str, str] | None = None,
    kl_prompts: Mapping[str, str | Sequence[str]] | None = None,
    strict: bool = False,
) -> LoadResult:
    """Load a BMIKE-53 CounterFact test file (``[{"en": {...}, "<lang>": {...}}, ...]``).

    ``langs``: languages to keep (``None``: every language key of each record). Each question becomes
    a prompt with the per-language template (:data:`QUESTION_TEMPLATES` updated by
    ``question_templates``; :data:`FALLBACK_QUESTION_TEMPLATE` for other languages). The rewrite prompt
    is the templated ``src`` with the subject replaced by ``{}``; ``paraphrase_prompts`` =
    (templated ``rephrase``,), ``neighborhood_prompts`` = (templated ``loc``,) with
    ``neighborhood_targets`` = (``loc_ans``,); ``port``/``port_ans`` go to ``meta["portability"]``.
    Skipped and counted (see :class:`LoadResult`): a record without a requested language
    (``missing_language``; upstream has such records, e.g. 17 in the Hebrew file), then a record whose
    subject does not occur verbatim in its ``src`` in a kept language (``subject_not_in_prompt``).
    A requested language that no record of the file has raises :class:`DataFileError` (wrong file).
    """
    p = Path(path)
    return _bmike53_records(_read_records(p), p, langs, question_templates, kl_prompts, strict)


def bmike53_file(langs: Sequence[str] | None = None) -> str:
    """The BMIKE-53 test file (local name in ``bmike53_counterfact``) that holds the languages ``langs``.

    Each file pairs the same English records with one other language, so ``langs`` may hold English
    and at most one other code of :data:`BMIKE53_LANGS`: ``("en", "de")`` or ``("de",)`` ->
    ``counterfact_test_de.json``. ``None`` or English alone -> ``counterfact_test_ca.json``, the data
    set's default file (its English part is the same in every file). Raises ``ValueError`` naming
    ``langs`` and listing the available codes otherwise.
    """
    if langs is None:
        return BMIKE53_DEFAULT_FILE
    if isinstance(langs, str):
        raise TypeError(
            f"langs must be a sequence of language codes such as ('en', {langs!r}), not the string {langs!r}"
        )
    codes = list(dict.fromkeys(langs))
    if not codes:
        raise ValueError(f"langs is empty; give English and/or one of: {', '.join(BMIKE53_LANGS)}")
    others = [c for c in codes if c != "en"]
    unknown = [c for c in others if c not in BMIKE53_LANGS]
    if unknown:
        raise ValueError(
            f"langs={tuple(langs)!r}: no BMIKE-53 file for language {unknown[0]!r}; "
            f"available (each with English): {', '.join(BMIKE53_LANGS)}"
        )
    if len(others) > 1:
        raise ValueError(
            f"langs={tuple(langs)!r}: each BMIKE-53 file pairs English with one language, so langs holds "
            f"'en' and at most one of {', '.join(BMIKE53_LANGS)}; load the languages one at a time"
        )
    return f"{_BMIKE53_PREFIX}{others[0]}{_BMIKE53_SUFFIX}" if others else BMIKE53_DEFAULT_FILE


def _bmike53_records(
    records: list,
    path: Path,
    langs: Sequence[str] | None,
    question_templates: Mapping[str, str] | None,
    kl_prompts: Mapping[str, str | Sequence[str]] | None,
    strict: bool,
) -> LoadResult:
    kl_table = _kl_table(kl_prompts)
    for tmpl in (question_templates or {}).values():
        _split_question_template(tmpl)
    if langs is not None:
        if isinstance(langs, str):
            raise TypeError(f"langs must be a sequence of language codes, not the string {langs!r}")
        in_file = list(dict.fromkeys(k for r in records if isinstance(r, dict) for k in r))
        absent = [lang for lang in langs if lang not in in_file]
        if absent:
            raise DataFileError(
                path, f"no record has language {absent[0]!r} (langs={tuple(langs)!r}); "
                f"the file's languages: {', '.join(map(str, in_file)) or 'none'}"
            )
    ctx = _Ctx(path, strict)
    tag = f"bmike53:{path.name}"
    for i, raw in enumerate(records):
        rec = ctx.record(raw, i)
        keep = list(langs) if langs is not None else list(rec)
        if not keep:
            raise ctx.error(f"<record #{i}>", "<record>", "no language keys")
        # the case_id is read from the first kept language present, else from any language part
        # (a record skipped for a missing language is still named by its case_id)
        present = [k for k in keep if isinstance(rec.get(k), dict)]
        id_lang = present[0] if present else next((k for k, v in rec.items() if isinstance(v, dict)), None)
        if id_lang is None:
            raise ctx.error(f"<record #{i}>", "<record>", f"no language part (keys: {', '.join(map(str, rec))})")
        cid = ctx.case_id(rec[id_lang], i, prefix=f"{id_lang}.")
        for lang in (k for k in keep if k in rec):
            if not isinstance(rec[lang], dict):
                raise ctx.error(cid, lang, f"expected a JSON object, got {_tname(rec[lang])}")
            other = ctx.case_id(rec[lang], i, prefix=f"{lang}.")
            if other != cid:
                raise ctx.error(cid, f"{lang}.case_id", f"case_id {other!r} differs from {cid!r}")
        ctx.register(cid, i)
        lacking = [lang for lang in keep if lang not in rec]
        if lacking:
            ctx.skip(
                MISSING_LANGUAGE, cid, lacking[0],
                f"record has no {lacking[0]!r} part (has: {', '.join(map(str, rec))})",
            )
            continue

        fields: dict[str, dict[str, str]] = {}
        ports: dict[str, tuple[str | None, str | None]] = {}
        for lang in keep:
            r = rec[lang]
            fields[lang] = {k: ctx.str_(r, k, cid, f"{lang}.{k}") for k in _BMIKE_FIELDS}
            ports[lang] = (ctx.opt_str(r, "port", cid, f"{lang}.port"), ctx.opt_str(r, "port_ans", cid, f"{lang}.port_ans"))

        missing = [lang for lang in keep if fields[lang]["subject"] not in fields[lang]["src"]]
        if missing:
            lang = missing[0]
            ctx.skip(
                SUBJECT_NOT_IN_PROMPT,
                cid,
                f"{lang}.subject",
                f"subject {fields[lang]['subject']!r} not found in src {fields[lang]['src']!r}",
            )
            continue

        views: dict[str, LangView] = {}
        portability: dict[str, dict[str, str]] = {}
        for lang in keep:
            f = fields[lang]
            pre, post = _split_question_template(_question_template(lang, question_templates))
            cloze = cloze_template(f["src"], f["subject"])
            assert cloze is not None  # checked above
            views[lang] = LangView(
                subject=f["subject"],
                target_true=f["old"],
                target_new=f["alt"],
                rewrite_prompt=_esc(pre) + cloze + _esc(post),
                paraphrase_prompts=(pre + f["rephrase"] + post,),
                neighborhood_prompts=(pre + f["loc"] + post,),
                kl_prompts=kl_table.get(lang, kl_table["en"]),
                neighborhood_targets=(f["loc_ans"],),
            )
            port, port_ans = ports[lang]
            if port is not None and port_ans is not None:
                portability[lang] = {"prompt": pre + port + post, "answer": port_ans}
        meta = {"portability": portability} if portability else {}
        ctx.result.cases.append(EditCase(case_id=cid, langs=views, source=tag, meta=meta))
    return ctx.result


# --------------------------------------------------------------------------- ROME / MEMAT language records
@dataclass
class _Parsed:
    view: LangView
    relation_id: str | None
    pararel_idx: Any
    target_ids: dict[str, Any]
    extra: dict[str, tuple[str, ...]]
    subject_true: str | None


def _parse_rome(ctx: _Ctx, rec: Mapping, cid: Any, lang: str, prefix: str, kl_default: tuple[str, ...]) -> _Parsed:
    rr = ctx.dict_(rec, "requested_rewrite", cid, prefix + "requested_rewrite")
    rp = prefix + "requested_rewrite."
    prompt = ctx.template(rr, "prompt", cid, rp + "prompt")
    subject = ctx.str_(rr, "subject", cid, rp + "subject")
    t_new, id_new = ctx.target(rr, "target_new", cid, rp + "target_new")
    t_true, id_true = ctx.target(rr, "target_true", cid, rp + "target_true")
    relation_id = ctx.opt_str(rr, "relation_id", cid, rp + "relation_id")
    view = LangView(
        subject=subject,
        target_true=t_true,
        target_new=t_new,
        rewrite_prompt=prompt,
        paraphrase_prompts=ctx.str_list(rec, "paraphrase_prompts", cid, prefix + "paraphrase_prompts"),
        neighborhood_prompts=ctx.str_list(rec, "neighborhood_prompts", cid, prefix + "neighborhood_prompts"),
        kl_prompts=_kl_ext(ctx, rec, cid, prefix, kl_default),
        neighborhood_targets=None,
    )
    view = _with_neighborhood_targets(ctx, rec, cid, prefix, view)
    extra = {
        k: v
        for k in ("attribute_prompts", "generation_prompts")
        if (v := ctx.str_list(rec, k, cid, prefix + k, required=False))
    }
    return _Parsed(view, relation_id, rec.get("pararel_idx"), _ids(id_new, id_true), extra, None)


def _parse_variants(ctx: _Ctx, rec: Mapping, cid: Any, lang: str, prefix: str, kl_default: tuple[str, ...]) -> _Parsed:
    n = ctx.dict_(rec, "eval_target_new", cid, prefix + "eval_target_new")
    t = ctx.dict_(rec, "eval_target_true", cid, prefix + "eval_target_true")
    pn, pt = prefix + "eval_target_new.", prefix + "eval_target_true."
    rn = ctx.dict_(n, "requested_rewrite", cid, pn + "requested_rewrite")
    rt = ctx.dict_(t, "requested_rewrite", cid, pt + "requested_rewrite")
    prompt_new = ctx.template(rn, "prompt", cid, pn + "requested_rewrite.prompt")
    prompt_true = ctx.template(rt, "prompt", cid, pt + "requested_rewrite.prompt")
    subject = ctx.str_(rn, "subject", cid, pn + "requested_rewrite.subject")
    subject_true = ctx.str_(rt, "subject", cid, pt + "requested_rewrite.subject")
    t_new, id_new = ctx.target(rn, "target_new", cid, pn + "requested_rewrite.target_new")
    t_true, id_true = ctx.target(rt, "target_true", cid, pt + "requested_rewrite.target_true")

    lists: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for k in ("paraphrase_prompts", "neighborhood_prompts"):
        a = ctx.str_list(n, k, cid, pn + k)
        b = ctx.str_list(t, k, cid, pt + k)
        if len(a) != len(b):
            raise ctx.error(cid, pt + k, f"has {len(b)} prompts but {pn + k} has {len(a)}; variants must pair up")
        lists[k] = (a, b)
    extra: dict[str, tuple[str, ...]] = {}
    for k in ("attribute_prompts", "generation_prompts"):
        a = ctx.str_list(n, k, cid, pn + k, required=False)
        b = ctx.str_list(t, k, cid, pt + k, required=False)
        if a:
            extra[k] = a
        if b and b != a:
            extra[k + "_true"] = b

    rewrite_true: str | None = prompt_true
    if subject_true != subject:
        rewrite_true = prompt_true.replace("{}", _esc(subject_true), 1)
    para_new, para_true = lists["paraphrase_prompts"]
    neigh_new, neigh_true = lists["neighborhood_prompts"]
    view = LangView(
        subject=subject,
        target_true=t_true,
        target_new=t_new,
        rewrite_prompt=prompt_new,
        paraphrase_prompts=para_new,
        neighborhood_prompts=neigh_true,
        kl_prompts=_kl_ext(ctx, rec, cid, prefix, kl_default),
        rewrite_prompt_true=None if rewrite_true == prompt_new else rewrite_true,
        paraphrase_prompts_true=None if para_true == para_new else para_true,
        neighborhood_prompts_new=None if neigh_new == neigh_true else neigh_new,
    )
    view = _with_neighborhood_targets(ctx, rec, cid, prefix, view)
    relation_id = ctx.opt_str(rec, "relation_id", cid, prefix + "relation_id")
    return _Parsed(
        view, relation_id, rec.get("pararel_idx"), _ids(id_new, id_true), extra,
        subject_true if subject_true != subject else None,
    )


def _kl_ext(ctx: _Ctx, rec: Mapping, cid: Any, prefix: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if "kl_prompts" not in rec:
        return default
    prompts = ctx.str_list(rec, "kl_prompts", cid, prefix + "kl_prompts")
    for j, p in enumerate(prompts):
        if _n_placeholders(p) != 1:
            raise ctx.error(cid, f"{prefix}kl_prompts[{j}]", f"expected exactly one '{{}}' placeholder, got {p!r}")
    return prompts


def _with_neighborhood_targets(ctx: _Ctx, rec: Mapping, cid: Any, prefix: str, view: LangView) -> LangView:
    if rec.get("neighborhood_targets") is None:
        return view
    targets = ctx.str_list(rec, "neighborhood_targets", cid, prefix + "neighborhood_targets")
    if len(targets) != len(view.neighborhood_prompts):
        raise ctx.error(
            cid, prefix + "neighborhood_targets",
            f"has {len(targets)} answers for {len(view.neighborhood_prompts)} neighbourhood prompts",
        )
    return replace(view, neighborhood_targets=targets)


def _ids(id_new: Any, id_true: Any) -> dict[str, Any]:
    return {k: v for k, v in (("new", id_new), ("true", id_true)) if v is not None}


def _parse_lang_record(
    ctx: _Ctx, rec: Any, cid: Any, lang: str, prefix: str, kl_table: Mapping[str, tuple[str, ...]]
) -> _Parsed:
    if not isinstance(rec, dict):
        raise ctx.error(cid, prefix.rstrip(".") or "<record>", f"expected a JSON object, got {_tname(rec)}")
    kl_default = kl_table.get(lang, kl_table["en"])
    if "eval_target_new" in rec or "eval_target_true" in rec:
        return _parse_variants(ctx, rec, cid, lang, prefix, kl_default)
    if "requested_rewrite" in rec:
        return _parse_rome(ctx, rec, cid, lang, prefix, kl_default)
    raise ctx.error(cid, prefix + "requested_rewrite", "missing (and no eval_target_new/eval_target_true either)")


def _build_case(cid: Any, parsed: Mapping[str, _Parsed], tag: str) -> EditCase:
    relation_id = next((p.relation_id for p in parsed.values() if p.relation_id), None)
    pararel = next((p.pararel_idx for p in parsed.values() if p.pararel_idx is not None), None)
    meta: dict[str, Any] = {}
    if pararel is not None:
        meta["pararel_idx"] = pararel
    ids = {lang: p.target_ids for lang, p in parsed.items() if p.target_ids}
    if ids:
        meta["target_ids"] = ids
    extra = {lang: p.extra for lang, p in parsed.items() if p.extra}
    if extra:
        meta["extra_prompts"] = extra
    subj_true = {lang: p.subject_true for lang, p in parsed.items() if p.subject_true is not None}
    if subj_true:
        meta["subject_true"] = subj_true
    return EditCase(
        case_id=cid, langs={lang: p.view for lang, p in parsed.items()}, relation_id=relation_id, source=tag, meta=meta
    )


# --------------------------------------------------------------------------- ROME CounterFact
def load_counterfact_rome(
    path: str | os.PathLike,
    lang: str = "en",
    kl_prompt: str = "{} is a",
    strict: bool = False,
) -> LoadResult:
    """Load CounterFact in the original ROME/MEMIT schema (English).

    ``rewrite_prompt`` is ``requested_rewrite.prompt`` (must contain ``{}`` once); paraphrase and
    neighbourhood prompts are copied; attribute/generation prompts, ``pararel_idx`` and the Wikidata
    ids of the targets go to ``meta``.
    """
    p = Path(path)
    return _rome_records(_read_records(p), p, lang, kl_prompt, strict)


def _rome_records(records: list, path: Path, lang: str, kl_prompt: str, strict: bool) -> LoadResult:
    if _n_placeholders(kl_prompt) != 1:
        raise ValueError(f"kl_prompt must contain '{{}}' exactly once: {kl_prompt!r}")
    ctx = _Ctx(path, strict)
    tag = f"counterfact_rome:{path.name}"
    kl_table = {lang: (kl_prompt,), "en": (kl_prompt,)}
    for i, raw in enumerate(records):
        rec = ctx.record(raw, i)
        cid = ctx.case_id(rec, i)
        ctx.register(cid, i)
        if "requested_rewrite" not in rec:
            raise ctx.error(cid, "requested_rewrite", "missing")
        parsed = _parse_lang_record(ctx, rec, cid, lang, "", kl_table)
        ctx.result.cases.append(_build_case(cid, {lang: parsed}, tag))
    return ctx.result


# --------------------------------------------------------------------------- MEMAT
def load_memat(
    path: str | os.PathLike,
    langs: Sequence[str] | None = ("en", "ca"),
    kl_prompts: Mapping[str, str | Sequence[str]] | None = None,
    strict: bool = False,
) -> LoadResult:
    """Load the MEMAT bilingual CounterFact (see the module docstring for the schema and layouts).

    ``path``: a combined file (list of ``{"english": {...}, "catalan": {...}}``; codes ``"en"``/``"ca"``
    also accepted), a directory with ``<language name>_CF.json`` files, or one bare single-language
    file. ``langs``: language codes to keep (``None``: all available).
    """
    p = Path(path)
    kl_table = _kl_table(kl_prompts)
    if p.is_dir():
        return _memat_dir(p, langs, kl_table, strict)
    return _memat_records(_read_records(p), p, langs, kl_table, strict)


def _memat_records(
    records: list, path: Path, langs: Sequence[str] | None, kl_table: Mapping[str, tuple[str, ...]], strict: bool
) -> LoadResult:
    if records and isinstance(records[0], dict) and (
        "requested_rewrite" in records[0] or "eval_target_new" in records[0]
    ):
        return _memat_single(records, path, langs, kl_table, strict)
    ctx = _Ctx(path, strict)
    tag = f"memat:{path.name}"
    for i, raw in enumerate(records):
        rec = ctx.record(raw, i)
        by_code = {_lang_code(k): k for k in rec}
        keep = list(langs) if langs is not None else list(by_code)
        present = [c for c in keep if c in by_code and isinstance(rec[by_code[c]], dict)]
        cid = (
            ctx.case_id(rec[by_code[present[0]]], i, prefix=f"{by_code[present[0]]}.") if present else f"<record #{i}>"
        )
        parsed: dict[str, _Parsed] = {}
        for code in keep:
            if code not in by_code:
                raise ctx.error(
                    cid, LANG_NAMES.get(code, code),
                    f"language {code!r} missing from record (keys: {', '.join(map(str, rec))})",
                )
            key = by_code[code]
            lrec = rec[key]
            if isinstance(lrec, dict):
                other = ctx.case_id(lrec, i, prefix=f"{key}.")
                if other != cid:
                    raise ctx.error(cid, f"{key}.case_id", f"case_id {other!r} differs from {cid!r}")
            parsed[code] = _parse_lang_record(ctx, lrec, cid, code, f"{key}.", kl_table)
        ctx.register(cid, i)
        ctx.result.cases.append(_build_case(cid, parsed, tag))
    return ctx.result


def _single_lang_of(path: Path, first: Mapping) -> str:
    stem = path.stem.lower()
    for name, code in _NAME_TO_CODE.items():
        if stem.startswith(name):
            return code
    return "ca" if "eval_target_new" in first else "en"


def _memat_single(
    records: list, path: Path, langs: Sequence[str] | None, kl_table: Mapping[str, tuple[str, ...]], strict: bool
) -> LoadResult:
    lang = _single_lang_of(path, records[0])
    if langs is not None and list(langs) != [lang]:
        raise DataFileError(
            path,
            f"holds single-language records (language {lang!r}); requested langs={tuple(langs)}. Pass "
            f"langs=({lang!r},) or give the directory holding every <language>_CF.json file",
        )
    ctx = _Ctx(path, strict)
    tag = f"memat:{path.name}"
    for i, raw in enumerate(records):
        rec = ctx.record(raw, i)
        cid = ctx.case_id(rec, i)
        ctx.register(cid, i)
        parsed = _parse_lang_record(ctx, rec, cid, lang, "", kl_table)
        ctx.result.cases.append(_build_case(cid, {lang: parsed}, tag))
    return ctx.result


def _memat_dir(path: Path, langs: Sequence[str] | None, kl_table: Mapping[str, tuple[str, ...]], strict: bool) -> LoadResult:
    available = {
        _lang_code(f.name[: -len("_CF.json")]): f for f in sorted(path.glob("*_CF.json")) if f.is_file()
    }
    keep = list(langs) if langs is not None else sorted(available, key=lambda c: (c != "en", c))
    missing = [c for c in keep if c not in available]
    if missing or not keep:
        raise DataFileError(
            path,
            f"no <language>_CF.json file for {missing or 'any language'} "
            f"(expected e.g. {', '.join(LANG_NAMES.get(c, c) + '_CF.json' for c in (missing or ['en', 'ca']))}; "
            f"found {', '.join(f.name for f in available.values()) or 'none'})",
        )
    parts = {c: _memat_single(_read_records(available[c]), available[c], [c], kl_table, strict) for c in keep}
    ctx = _Ctx(path, strict)
    result = ctx.result
    for part in parts.values():
        for k, v in part.skipped.items():
            result.skipped[k] = result.skipped.get(k, 0) + v
            result.skipped_ids.setdefault(k, []).extend(part.skipped_ids[k])
    index = {c: part.by_id() for c, part in parts.items()}
    all_ids = list(dict.fromkeys(cid for part in parts.values() for cid in (c.case_id for c in part.cases)))
    for cid in all_ids:
        lacking = [c for c in keep if cid not in index[c]]
        if lacking:
            ctx.skip(MISSING_LANGUAGE, cid, lacking[0], f"no record in {available[lacking[0]].name}")
            continue
        cases = [index[c][cid] for c in keep]
        meta: dict[str, Any] = {}
        for case in cases:
            for k, v in case.meta.items():
                if isinstance(v, dict) and isinstance(meta.get(k), dict):
                    meta[k] = {**meta[k], **v}
                else:
                    meta.setdefault(k, v)
        result.cases.append(
            EditCase(
                case_id=cid,
                langs={c: index[c][cid][c] for c in keep},
                relation_id=next((c.relation_id for c in cases if c.relation_id), None),
                source=f"memat:{path.name}",
                meta=meta,
            )
        )
    return result


def dump_memat(
    cases: Iterable[EditCase], path: str | os.PathLike, lang_keys: str = "names", indent: int | None = 1
) -> Path:
    """Write cases in the MEMAT combined schema (readable by :func:`load_memat`), atomically.

    ``lang_keys="names"`` writes ``"english"``/``"catalan"``/``"spanish"`` as the authors'
    ``combined_data.json`` (other languages by code); ``"codes"`` writes ``"en"``/``"ca"``. English is
    written in the ROME form (unless it has target-specific variants), every other language in the
    ``eval_target_new``/``eval_target_true`` form. Returns the path written.
    """
    if lang_keys not in ("names", "codes"):
        raise ValueError(f"lang_keys must be 'names' or 'codes', got {lang_keys!r}")
    out = []
    for case in cases:
        rec: dict[str, Any] = {}
        for lang, view in case.langs.items():
            key = LANG_NAMES.get(lang, lang) if lang_keys == "names" else lang
            rec[key] = _memat_lang_record(case, lang, view)
        out.append(rec)
    dest = Path(path)
    text = json.dumps(out, ensure_ascii=False, indent=indent)
    _atomic_write_text(dest, text + "\n")
    return dest


def _memat_lang_record(case: EditCase, lang: str, view: LangView) -> dict[str, Any]:
    meta = case.meta or {}
    ids = dict(meta.get("target_ids", {}).get(lang, {}))  # type: ignore[union-attr]
    extra = dict(meta.get("extra_prompts", {}).get(lang, {}))  # type: ignore[union-attr]
    subject_true = meta.get("subject_true", {}).get(lang)  # type: ignore[union-attr]

    def target(text: str, which: str) -> dict[str, Any]:
        return {"str": text, **({"id": ids[which]} if which in ids else {})}

    rec: dict[str, Any] = {"case_id": case.case_id}
    if "pararel_idx" in meta:
        rec["pararel_idx"] = meta["pararel_idx"]
    has_variants = (
        view.rewrite_prompt_true is not None
        or view.paraphrase_prompts_true is not None
        or view.neighborhood_prompts_new is not None
        or subject_true is not None
    )
    if lang == "en" and not has_variants:
        rr: dict[str, Any] = {"prompt": view.rewrite_prompt}
        if case.relation_id is not None:
            rr["relation_id"] = case.relation_id
        rr.update(target_new=target(view.target_new, "new"), target_true=target(view.target_true, "true"),
                  subject=view.subject)
        rec.update(
            requested_rewrite=rr,
            paraphrase_prompts=list(view.paraphrase_prompts),
            neighborhood_prompts=list(view.neighborhood_prompts),
            attribute_prompts=list(extra.get("attribute_prompts", ())),
            generation_prompts=list(extra.get("generation_prompts", ())),
        )
    else:
        if case.relation_id is not None:
            rec["relation_id"] = case.relation_id
        prompt_true = view.rewrite_prompt_true or view.rewrite_prompt
        if subject_true is not None:
            prompt_true = prompt_true.replace(_esc(subject_true), "{}", 1)
        rec["eval_target_new"] = {
            "requested_rewrite": {"prompt": view.rewrite_prompt, "target_new": target(view.target_new, "new"),
                                  "subject": view.subject},
            "paraphrase_prompts": list(view.paraphrase_prompts),
            "neighborhood_prompts": list(view.neighborhood_prompts_new or view.neighborhood_prompts),
            "attribute_prompts": list(extra.get("attribute_prompts", ())),
            "generation_prompts": list(extra.get("generation_prompts", ())),
        }
        rec["eval_target_true"] = {
            "requested_rewrite": {"prompt": prompt_true, "target_true": target(view.target_true, "true"),
                                  "subject": subject_true if subject_true is not None else view.subject},
            "paraphrase_prompts": list(view.paraphrase_prompts_true or view.paraphrase_prompts),
            "neighborhood_prompts": list(view.neighborhood_prompts),
            "attribute_prompts": list(extra.get("attribute_prompts_true", extra.get("attribute_prompts", ()))),
            "generation_prompts": list(extra.get("generation_prompts_true", extra.get("generation_prompts", ()))),
        }
    if tuple(view.kl_prompts) != KL_PROMPTS.get(lang, KL_PROMPTS["en"]):
        rec["kl_prompts"] = list(view.kl_prompts)
    if view.neighborhood_targets is not None:
        rec["neighborhood_targets"] = list(view.neighborhood_targets)
    return rec


def _atomic_write_text(dest: Path, text: str) -> None:
    atomic_write_text(dest, text)


# --------------------------------------------------------------------------- format detection / dispatch
#: Registered data set name -> default file inside its folder (None: the folder itself).
EDIT_DATASETS: dict[str, str | None] = {
    "counterfact_easyedit_full": None,
    BMIKE53_NAME: BMIKE53_DEFAULT_FILE,
}


_FORMAT_KWARGS: dict[str, set[str]] = {
    "rome": {"lang", "kl_prompt", "strict"},
    "easyedit": {"lang", "kl_prompt", "strict"},
    "bmike53": {"langs", "question_templates", "kl_prompts", "strict"},
    "memat": {"langs", "kl_prompts", "strict"},
}


def detect_format(records: Any, source: str | os.PathLike = "<records>") -> str:
    """Schema of a parsed JSON list: ``"rome"``, ``"memat"``, ``"bmike53"`` or ``"easyedit"``."""
    if not isinstance(records, list):
        raise DataFileError(source, f"expected a JSON list of records at top level, got {_tname(records)}")
    if not records:
        raise DataFileError(source, "no records: cannot detect the format of an empty list")
    first = records[0]
    if not isinstance(first, dict):
        raise DataFileError(source, f"first record is a {_tname(first)}, not an object")
    if "requested_rewrite" in first:
        return "rome"
    if "eval_target_new" in first:
        return "memat"
    if "rephrase_prompt" in first:
        return "easyedit"
    inner = [v for v in first.values() if isinstance(v, dict)]
    if inner and len(inner) == len(first):
        if any("requested_rewrite" in v or "eval_target_new" in v for v in inner):
            return "memat"
        if any("src" in v for v in inner):
            return "bmike53"
    raise DataFileError(source, f"unknown record schema (first record keys: {', '.join(map(str, first))})")


def load_path(path: str | os.PathLike, **kw: Any) -> LoadResult:
    """Load an editing data set from a path, the format detected from the content.

    A directory with ``counterfact-*.json`` (EasyEdit) or ``*_CF.json`` (MEMAT) files, or a JSON file in
    any supported schema (:func:`detect_format`); keywords are those of the format's loader. For BMIKE-53
    and MEMAT files without ``langs``, every language of the first record is kept. Registered names
    (and builds) are resolved by :func:`memat.data.dataset.load_dataset`, which calls this for paths.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: neither a registered data set ({', '.join(EDIT_DATASETS)}) nor an existing path")
    if p.is_dir():
        if any((p / f"counterfact-{s}.json").is_file() for s in EASYEDIT_SPLITS):
            return load_counterfact_easyedit(p, **kw)
        if any(p.glob("*_CF.json")):
            return load_memat(p, **kw)
        raise DataFileError(p, "directory holds neither counterfact-{train,val,edit}.json nor *_CF.json files")
    records = _read_json(p)
    fmt = detect_format(records, p)
    allowed = _FORMAT_KWARGS[fmt]
    if set(kw) - allowed:
        raise TypeError(f"{p} is in the {fmt} schema; unexpected keyword(s) {sorted(set(kw) - allowed)} "
                        f"(accepted: {sorted(allowed)})")
    if fmt == "rome":
        return _rome_records(records, p, kw.get("lang", "en"), kw.get("kl_prompt", "{} is a"), kw.get("strict", False))
    if fmt == "easyedit":
        split = _easyedit_split_of(p)
        return _easyedit_records(
            records, p, split, kw.get("lang", "en"), kw.get("kl_prompt", "{} is a"), kw.get("strict", False)
        )
    if fmt == "bmike53":
        langs = kw.get("langs", tuple(records[0]))
        return _bmike53_records(
            records, p, langs, kw.get("question_templates"), kw.get("kl_prompts"), kw.get("strict", False)
        )
    langs = kw.get("langs")
    if "langs" not in kw and "eval_target_new" not in records[0] and "requested_rewrite" not in records[0]:
        codes = [_lang_code(k) for k in records[0]]
        langs = tuple(sorted(codes, key=lambda c: (c != "en", codes.index(c))))
    return _memat_records(records, p, langs, _kl_table(kw.get("kl_prompts")), kw.get("strict", False))


# --------------------------------------------------------------------------- helpers on loaded cases
def select_cases(cases: Iterable[EditCase], n: int | None, seed: int = 0) -> list[EditCase]:
    """A deterministic sample of ``n`` cases (same ``seed`` -> same sample) in their input order.

    ``n=None`` or ``n >= len(cases)`` returns every case.
    """
    pool = list(cases)
    if n is None or n >= len(pool):
        return pool
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    keep = sorted(random.Random(seed).sample(range(len(pool)), n))
    return [pool[i] for i in keep]


__all__ = [
    "QUESTION_TEMPLATES",
    "FALLBACK_QUESTION_TEMPLATE",
    "KL_PROMPTS",
    "LANG_NAMES",
    "SUBJECT_NOT_IN_PROMPT",
    "MISSING_LANGUAGE",
    "BMIKE53_LANGS",
    "BMIKE53_CI_LANGS",
    "bmike53_file",
    "DataFileError",
    "LoadResult",
    "cloze_template",
    "question_prompt",
    "kl_prompts_for",
    "load_counterfact_easyedit",
    "load_bmike53",
    "load_counterfact_rome",
    "load_memat",
    "dump_memat",
    "detect_format",
    "load_path",
    "select_cases",
    "subject_jaccard",
    "token_jaccard",
]
