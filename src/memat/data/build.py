"""Build the bilingual English/Catalan CounterFact of the paper from public sources.

The MEMAT paper edits with a reduced CounterFact in English and Catalan (appendix A), made by machine
translation, word alignment to find subject and target, and rejection of translations whose target is
not at the end. Their Catalan file is not public; :func:`build_dataset` rebuilds it, deterministically
for a given seed, from

* the full English CounterFact in the EasyEdit schema (``counterfact_easyedit_full``, 21,919 cases),
* the English and Catalan ParaRel templates and the Wikidata-keyed tuples of mParaRel
  (``mpararel_ca_en``),
* a pluggable translator (:mod:`memat.data.translate`; Apertium ``eng-cat`` by default) and an
  optional word aligner (:mod:`memat.data.align`).

Pipeline, per case
------------------
1. **Relation.** The prompt with its subject replaced by ``[X]`` is matched (case-insensitively) to the
   English ParaRel templates ending in ``[Y]``. A template shared by several relations (``[X] is
   produced by`` is P176 and P178) is resolved by the mParaRel tuples: the relation whose tuples hold
   the case's (subject, true object), else its true object, else its new object. Cases whose relation
   cannot be found or stays ambiguous are counted (``relation_unmatched`` / ``relation_ambiguous``).
2. **English prompts.** Rewrite prompt: the case's own. Paraphrases (``n_paraphrase``, 2): the
   EasyEdit ``rephrase_prompt`` (one of CounterFact's own paraphrases) and other templates of the
   relation, in a seeded order. Neighbourhood (``n_neighborhood``, 10): other subjects with the same
   relation and the same true object, from CounterFact and from the mParaRel tuples, as the original
   CounterFact built them, each in a seeded template of the relation.
3. **Catalan labels.** Subject and targets from the mParaRel Catalan tuples through their Wikidata ids
   where the entity is there; otherwise a proper name is kept as written and anything else is machine
   translated on its own (``meta["label_sources"]`` says which).
4. **Translation.** Every English sentence ``prompt + " " + target`` is translated. Entity names are
   protected: the subject (and a target that is a proper name in Catalan) is replaced by a letters-only
   placeholder that keeps the name's initial letters, so the translator still elides ``de`` -> ``d'``
   before a vowel, and the Catalan label is put back afterwards (Apertium translates "Apple" as "Poma").
5. **Alignment and rejection.** The Catalan target is located in the translation: exactly, then
   accent/case-insensitively, then by the target's own translation, then fuzzily, then by the word
   aligner projecting the English target's words. A translation whose target is not found, or not at
   the end, is rejected with that reason (as the paper's pipeline did); the prompt is the text before
   the target. A case whose rewrite prompt fails, or that keeps fewer than ``min_paraphrase`` /
   ``min_neighborhood`` prompts, is rejected; every reason is counted in :class:`BuildReport`.
6. **Gender.** Each Catalan prompt is translated once with the new and once with the true target;
   where the two differ (``toca el piano`` / ``toca la guitarra``) both are kept, as the paper's
   ``eval_target_new`` / ``eval_target_true`` do.

The output is a list of :class:`~memat.data.records.EditCase` with ``en`` and ``ca`` views, written by
:func:`write_build` in the MEMAT combined schema (:func:`~memat.data.loaders.dump_memat`) beside a
``build_info.json`` holding the input fingerprint, the configuration and the report. Same inputs, same
configuration and same translator give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from ..io import atomic_write_text
from .loaders import DataFileError, KL_PROMPTS, LoadResult, dump_memat, load_counterfact_easyedit, load_memat
from .records import EditCase, LangView, target_continuation

__all__ = [
    "BuildConfig",
    "BuildReport",
    "BuildResult",
    "ParaRel",
    "REJECT_REASONS",
    "DEFAULT_NAME",
    "build_dataset",
    "built_dataset_dir",
    "ensure_built",
    "load_mpararel",
    "match_relation",
    "template_key",
    "write_build",
]

DEFAULT_NAME = "counterfact_en_ca"

#: Every reason a case can be rejected for, in the order they are checked.
REJECT_REASONS = (
    "relation_unmatched",
    "relation_ambiguous",
    "subject_not_in_prompt",
    "protected_name_lost",
    "target_not_found",
    "target_not_at_end",
    "subject_not_in_translation",
    "too_few_paraphrases",
    "too_few_neighbors",
)

_WS = re.compile(r"\s+")
_TRAILING = " \t.,;:!?\u00bb\"'"


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class BuildConfig:
    """What to build. Everything that changes the output bytes is here (and in the fingerprint).

    Attributes:
        n_cases: number of CounterFact cases drawn (seeded) from those whose relation is found;
            ``None`` takes them all (the full build). Rejected cases are not replaced.
        seed: seed of the case sample and of every template / neighbour choice.
        n_paraphrase, n_neighborhood: prompts kept per case (the paper: 2 and 10).
        min_paraphrase, min_neighborhood: fewer valid prompts than this rejects the case.
        protect_names: replace entity names by placeholders during translation.
        fuzzy: SequenceMatcher ratio for fuzzy target matching (``None``: off).
        l2: code of the translated language.
        case_ids: build only these CounterFact cases (e.g. the ones a reference translation holds);
            ``None``: all.
    """

    n_cases: int | None = 300
    seed: int = 0
    n_paraphrase: int = 2
    n_neighborhood: int = 10
    min_paraphrase: int = 1
    min_neighborhood: int = 5
    protect_names: bool = True
    fuzzy: float | None = 0.8
    l2: str = "ca"
    case_ids: tuple | None = None

    def __post_init__(self) -> None:
        if self.case_ids is not None:
            object.__setattr__(self, "case_ids", tuple(sorted(self.case_ids, key=str)))
        if self.n_cases is not None and (not isinstance(self.n_cases, int) or self.n_cases < 1):
            raise ValueError(f"BuildConfig.n_cases must be a positive int or None, got {self.n_cases!r}")
        for name in ("n_paraphrase", "n_neighborhood", "min_paraphrase", "min_neighborhood"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"BuildConfig.{name} must be an int >= 0, got {v!r}")
        if self.min_paraphrase > self.n_paraphrase:
            raise ValueError(f"BuildConfig.min_paraphrase={self.min_paraphrase} > n_paraphrase={self.n_paraphrase}")
        if self.min_neighborhood > self.n_neighborhood:
            raise ValueError(
                f"BuildConfig.min_neighborhood={self.min_neighborhood} > n_neighborhood={self.n_neighborhood}"
            )
        if self.fuzzy is not None and not 0 < self.fuzzy <= 1:
            raise ValueError(f"BuildConfig.fuzzy must be in (0, 1] or None, got {self.fuzzy!r}")


@dataclass
class BuildReport:
    """Counts of a build: what came in, what was kept, what was rejected and why."""

    n_source: int = 0
    n_selected: int = 0
    n_kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_ids: dict[str, list] = field(default_factory=dict)
    relation_counts: dict[str, int] = field(default_factory=dict)
    label_sources: dict[str, dict[str, int]] = field(default_factory=dict)
    target_match: dict[str, int] = field(default_factory=dict)
    gender_variants: dict[str, int] = field(default_factory=dict)
    n_translated: int = 0
    seconds: float = 0.0

    def reject(self, reason: str, case_id: Any) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.rejected_ids.setdefault(reason, []).append(case_id)

    def table(self) -> list[tuple[str, int]]:
        """(stage, count) rows: source, relation matching, selected, each later rejection reason, kept."""
        early = ("subject_not_in_prompt", "relation_unmatched", "relation_ambiguous")
        rows = [("CounterFact cases read", self.n_source + self.rejected.get("subject_not_in_prompt", 0))]
        rows += [(f"rejected: {r}", self.rejected.get(r, 0)) for r in early]
        rows.append(("relation found", self.n_source - self.rejected.get("relation_unmatched", 0)
                     - self.rejected.get("relation_ambiguous", 0)))
        rows.append(("selected (seeded sample)", self.n_selected))
        rows += [(f"rejected: {r}", self.rejected.get(r, 0)) for r in REJECT_REASONS if r not in early]
        rows.append(("kept", self.n_kept))
        return rows

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rejected_ids"] = {k: [str(x) for x in v[:50]] for k, v in self.rejected_ids.items()}
        return d


@dataclass
class BuildResult:
    cases: list[EditCase]
    report: BuildReport
    config: BuildConfig
    fingerprint: str
    inputs: dict[str, str]


# --------------------------------------------------------------------------- mParaRel
@dataclass
class ParaRel:
    """mParaRel templates and tuples for some languages.

    ``patterns[lang][rel]``: templates with ``[X]`` / ``[Y]``; ``tuples[lang][rel]``: ``(sub_uri,
    obj_uri, sub_label, obj_label)``; ``labels[lang][qid]``: the entity label (subjects and objects).
    """

    patterns: dict[str, dict[str, list[str]]]
    tuples: dict[str, dict[str, list[tuple[str, str, str, str]]]]
    labels: dict[str, dict[str, str]]
    files: dict[str, str]  # relative path -> sha256

    def cloze_templates(self, rel: str, lang: str = "en") -> list[str]:
        """Templates of ``rel`` with the object at the end, as ``"... {} ..."`` prompts (object removed)."""
        out = []
        for p in self.patterns.get(lang, {}).get(rel, []):
            t = p.strip()
            if t.endswith("[Y]") and t.count("[X]") == 1 and t.count("[Y]") == 1:
                body = t[: -len("[Y]")].rstrip()
                if body:
                    out.append(_sentence_case(body.replace("{", "{{").replace("}", "}}").replace("[X]", "{}")))
        return list(dict.fromkeys(out))


def _sentence_case(text: str) -> str:
    if text.startswith("{}"):
        return text
    return text[:1].upper() + text[1:]


def _read_jsonl(path: Path, root: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFileError(path, f"invalid JSON: {e.msg}", lineno=n, colno=e.colno) from None
            if not isinstance(rec, dict):
                raise DataFileError(path, f"expected a JSON object, got {type(rec).__name__}", lineno=n)
            out.append(rec)
    return out


def _field(rec: Mapping, key: str, path: Path, lineno: int) -> str:
    v = rec.get(key)
    if not isinstance(v, str) or not v.strip():
        raise DataFileError(path, f"field {key!r} must be a non-empty string, got {v!r}", lineno=lineno)
    return v


def load_mpararel(folder: str | os.PathLike, langs: Sequence[str] = ("en", "ca")) -> ParaRel:
    """Read ``patterns/<lang>/P*.jsonl`` and ``tuples/<lang>/P*.jsonl`` under ``folder``.

    A malformed line raises :class:`~memat.data.loaders.DataFileError` naming the file and line.
    """
    root = Path(folder)
    patterns: dict[str, dict[str, list[str]]] = {}
    tuples: dict[str, dict[str, list[tuple[str, str, str, str]]]] = {}
    labels: dict[str, dict[str, str]] = {}
    files: dict[str, str] = {}
    for lang in langs:
        pdir, tdir = root / "patterns" / lang, root / "tuples" / lang
        if not pdir.is_dir() or not tdir.is_dir():
            raise DataFileError(root, f"no patterns/{lang} or tuples/{lang} folder (is this the mParaRel data set?)")
        patterns[lang], tuples[lang], labels[lang] = {}, {}, {}
        for f in sorted(pdir.glob("P*.jsonl")):
            files[str(f.relative_to(root))] = _sha256(f)
            pats = []
            for n, rec in enumerate(_read_jsonl(f, root), 1):
                pats.append(_field(rec, "pattern", f, n))
            patterns[lang][f.stem] = pats
        for f in sorted(tdir.glob("P*.jsonl")):
            files[str(f.relative_to(root))] = _sha256(f)
            rows = []
            for n, rec in enumerate(_read_jsonl(f, root), 1):
                su, ou = _field(rec, "sub_uri", f, n), _field(rec, "obj_uri", f, n)
                sl, ol = _field(rec, "sub_label", f, n), _field(rec, "obj_label", f, n)
                rows.append((su, ou, sl, ol))
                labels[lang].setdefault(su, sl)
                labels[lang].setdefault(ou, ol)
            tuples[lang][f.stem] = rows
    return ParaRel(patterns, tuples, labels, files)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- relation matching
def template_key(template: str) -> str:
    """Normalised form of a prompt template for matching: ``{}``/``[X]`` unified, case and spaces folded."""
    t = template.replace("[X]", "{}").replace("{{", "{").replace("}}", "}")
    return _WS.sub(" ", t.strip().rstrip(_TRAILING.replace("'", "")).strip()).casefold()


class _RelationIndex:
    def __init__(self, pr: ParaRel):
        self.by_key: dict[str, set[str]] = defaultdict(set)
        for rel in pr.patterns.get("en", {}):
            for t in pr.cloze_templates(rel, "en"):
                self.by_key[template_key(t)].add(rel)
        self.pairs: dict[str, set[tuple[str, str]]] = {}
        self.objects: dict[str, set[str]] = {}
        for rel, rows in pr.tuples.get("en", {}).items():
            self.pairs[rel] = {(_fold(sl), _fold(ol)) for _, _, sl, ol in rows}
            self.objects[rel] = {_fold(ol) for _, _, _, ol in rows}


def _fold(s: str) -> str:
    return _WS.sub(" ", s.strip()).casefold()


def match_relation(index: _RelationIndex, rewrite_prompt: str, subject: str, target_true: str, target_new: str
                   ) -> tuple[str | None, str | None]:
    """(relation id, None) or (None, rejection reason) for one case."""
    rels = index.by_key.get(template_key(rewrite_prompt))
    if not rels:
        return None, "relation_unmatched"
    if len(rels) == 1:
        return next(iter(rels)), None
    s, t, n = _fold(subject), _fold(target_true), _fold(target_new)
    for test in (
        lambda r: (s, t) in index.pairs.get(r, ()),
        lambda r: t in index.objects.get(r, ()),
        lambda r: n in index.objects.get(r, ()),
    ):
        hits = sorted(r for r in rels if test(r))
        if len(hits) == 1:
            return hits[0], None
        if len(hits) > 1:
            rels = set(hits)
    return None, "relation_ambiguous"


# --------------------------------------------------------------------------- labels
def _is_name(text: str) -> bool:
    """A proper name: every word starts with an upper-case letter or a digit, except short particles."""
    words = [w for w in re.split(r"[\s\-]+", text.strip()) if w]
    if not words or not (words[0][:1].isupper() or words[0][:1].isdigit()):
        return False
    particles = {"of", "the", "and", "de", "du", "des", "la", "le", "von", "van", "der", "den", "di", "da",
                 "del", "y", "e", "i", "on", "in", "for", "&", "an", "al", "el", "bin", "ibn", "zu", "dos", "das"}
    return all(w[:1].isupper() or w[:1].isdigit() or w.casefold() in particles or not w[:1].isalpha() for w in words)


class _Labels:
    """English label -> Catalan label through the Wikidata ids of mParaRel."""

    def __init__(self, pr: ParaRel, l2: str):
        self.l2 = l2
        self.ca = pr.labels.get(l2, {})
        self.subj: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.obj: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.any: dict[str, Counter] = defaultdict(Counter)
        for rel, rows in pr.tuples.get("en", {}).items():
            for su, ou, sl, ol in rows:
                self.subj[rel][_fold(sl)][su] += 1
                self.obj[rel][_fold(ol)][ou] += 1
                self.any[_fold(sl)][su] += 1
                self.any[_fold(ol)][ou] += 1

    def _pick(self, counts: Counter) -> str | None:
        for qid, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if qid in self.ca:
                return self.ca[qid]
        return None

    def _fallback(self, label: str) -> str | None:
        # the same label under another relation may be another entity ("Apple" the fruit, not the
        # company): accept it only if it is a name in both languages or in neither
        found = self._pick(self.any.get(_fold(label), Counter()))
        return found if found is not None and _is_name(found) == _is_name(label) else None

    def subject(self, rel: str, label: str) -> str | None:
        return self._pick(self.subj[rel].get(_fold(label), Counter())) or self._fallback(label)

    def object(self, rel: str, label: str) -> str | None:
        return self._pick(self.obj[rel].get(_fold(label), Counter())) or self._fallback(label)


# --------------------------------------------------------------------------- translation of one sentence
@dataclass(frozen=True)
class _Unit:
    """One English sentence to translate: ``prompt`` (subject filled in) followed by ``target``."""

    prompt: str  # English prompt, subject inside
    subject_en: str
    subject_ca: str
    target_en: str
    target_ca: str
    target_mt: str  # machine translation of the target alone (fallback match)
    protect_target: bool

    def english(self) -> str:
        return self.prompt + target_continuation(self.prompt, self.target_en)


@dataclass(frozen=True)
class _Outcome:
    prompt: str | None  # Catalan prompt template with "{}" for the subject
    reason: str | None
    how: str | None = None  # how the target was found


def _protected_source(u: _Unit, protect: bool) -> tuple[str, list]:
    from .translate import protect as protect_names

    text = u.english()
    if not protect:
        return text, []
    names = [(u.subject_en, u.subject_ca, "s")]
    if u.protect_target:
        names.append((u.target_en, u.target_ca, "t"))
    # protect() replaces the last occurrence; the subject must be the one inside the prompt
    idx = u.prompt.rfind(u.subject_en)
    head, tail = text[:idx], text[idx:]
    tail_prot, ph = protect_names(tail, names)
    return head + tail_prot, ph


def _ends_with(text: str, span: tuple[int, int]) -> bool:
    return text[span[1]:].strip(_TRAILING) == ""


def _locate_target(u: _Unit, ca: str, src: str, fuzzy: float | None, aligner) -> tuple[tuple[int, int] | None, str]:
    from .align import find_name

    for how, name in (("label", u.target_ca), ("mt", u.target_mt)):
        if name:
            span = find_name(ca, name)
            if span is not None:
                return span, how
    if fuzzy is not None:
        for name in dict.fromkeys((u.target_ca, u.target_mt)):
            span = find_name(ca, name, fuzzy=fuzzy) if name else None
            if span is not None:
                return span, "fuzzy"
    if aligner is not None:
        s0 = len(src) - len(u.target_en)
        span = aligner.project_span(src, ca, (s0, len(src)))
        if span is not None:
            return span, "aligner"
    return None, "none"


def _translate_unit(u: _Unit, ca: str | None, cfg: BuildConfig, aligner) -> _Outcome:
    if ca is None:
        return _Outcome(None, "protected_name_lost")
    ca = _WS.sub(" ", ca.strip())
    span, how = _locate_target(u, ca, u.english(), cfg.fuzzy, aligner)
    if span is None:
        return _Outcome(None, "target_not_found")
    if not _ends_with(ca, span):
        return _Outcome(None, "target_not_at_end")
    prompt = ca[: span[0]]
    prompt = prompt if prompt.endswith(("'", "\u2019")) else prompt.rstrip()
    if not prompt:
        return _Outcome(None, "target_not_at_end")
    pos = prompt.rfind(u.subject_ca) if prompt.count(u.subject_ca) else -1
    if pos < 0:
        return _Outcome(None, "subject_not_in_translation")
    esc = prompt.replace("{", "{{").replace("}", "}}")
    # escaping only doubles braces, so the subject's offset moves by the braces before it
    pos_esc = pos + prompt[:pos].count("{") + prompt[:pos].count("}")
    sub_esc = u.subject_ca.replace("{", "{{").replace("}", "}}")
    template = esc[:pos_esc] + "{}" + esc[pos_esc + len(sub_esc):]
    return _Outcome(template, None, how)


# --------------------------------------------------------------------------- the build
def _sources(source_dir, data_dir, offline) -> tuple[Path, Path]:
    from .fetch import ensure_dataset

    cf = ensure_dataset("counterfact_easyedit_full", source_dir=source_dir, data_dir=data_dir, offline=offline)
    mp = ensure_dataset("mpararel_ca_en", source_dir=source_dir, data_dir=data_dir, offline=offline)
    return cf, mp


def _input_hashes(cf_dir: Path, pr: ParaRel) -> dict[str, str]:
    out = {f"counterfact_easyedit_full/{p.name}": _sha256(p) for p in sorted(cf_dir.glob("counterfact-*.json"))}
    out.update({f"mpararel_ca_en/{k}": v for k, v in sorted(pr.files.items())})
    return out


def _code_hash() -> str:
    h = hashlib.sha256()
    for mod in ("build.py", "records.py", "loaders.py"):
        h.update((Path(__file__).parent / mod).read_bytes())
    return h.hexdigest()[:16]


def build_fingerprint(inputs: Mapping[str, str], cfg: BuildConfig, translator_fp: str, aligner_fp: str) -> str:
    """sha256 over the input files' hashes, the configuration, translator, aligner and builder code."""
    payload = json.dumps(
        {"inputs": dict(inputs), "config": asdict(cfg), "translator": translator_fp, "aligner": aligner_fp,
         "code": _code_hash()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def build_dataset(
    translator,
    aligner=None,
    config: BuildConfig | None = None,
    source_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    offline: bool = False,
    counterfact: LoadResult | Sequence[EditCase] | None = None,
    pararel: ParaRel | None = None,
    progress: bool = False,
) -> BuildResult:
    """Build the bilingual data set (see the module docstring).

    ``translator``: a :class:`memat.data.translate.Translator` (wrap it in ``CachedTranslator`` to reuse
    translations across builds). ``aligner``: a :class:`memat.data.align.SimAligner` or ``None``.
    ``counterfact`` / ``pararel``: already loaded sources (tests); otherwise both data sets are taken
    from ``source_dir`` (or downloaded) through :func:`memat.data.fetch.ensure_dataset`.
    """
    cfg = config or BuildConfig()
    t0 = time.perf_counter()
    inputs: dict[str, str] = {}
    if counterfact is None or pararel is None:
        cf_dir, mp_dir = _sources(source_dir, data_dir, offline)
        if pararel is None:
            pararel = load_mpararel(mp_dir, ("en", cfg.l2))
        if counterfact is None:
            counterfact = load_counterfact_easyedit(cf_dir, split="all")
        inputs = _input_hashes(cf_dir, pararel)
    else:
        inputs = {"pararel": hashlib.sha256(json.dumps(pararel.files, sort_keys=True).encode()).hexdigest(),
                  "counterfact": hashlib.sha256(
                      json.dumps([c.to_dict() for c in counterfact], sort_keys=True, default=str).encode()
                  ).hexdigest()}
    source_cases = list(counterfact)
    report = BuildReport(n_source=len(source_cases))
    if isinstance(counterfact, LoadResult):
        for reason, n in counterfact.skipped.items():
            report.rejected[reason] = report.rejected.get(reason, 0) + n
            report.rejected_ids.setdefault(reason, []).extend(counterfact.skipped_ids.get(reason, []))

    index = _RelationIndex(pararel)
    labels = _Labels(pararel, cfg.l2)
    matched: list[tuple[EditCase, str]] = []
    for c in source_cases:
        v = c["en"]
        rel, why = match_relation(index, v.rewrite_prompt, v.subject, v.target_true, v.target_new)
        if rel is None:
            report.reject(why, c.case_id)
        else:
            matched.append((c, rel))
    if cfg.case_ids is not None:
        wanted = set(cfg.case_ids)
        matched = [(c, rel) for c, rel in matched if c.case_id in wanted]
    rng = random.Random(cfg.seed)
    if cfg.n_cases is not None and cfg.n_cases < len(matched):
        keep = sorted(rng.sample(range(len(matched)), cfg.n_cases))
        selected = [matched[i] for i in keep]
    else:
        selected = matched
    report.n_selected = len(selected)

    # neighbour pools: (relation, true object) -> English subjects (CounterFact and mParaRel)
    pool: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c, rel in matched:
        v = c["en"]
        pool[(rel, _fold(v.target_true))].add(v.subject)
    for rel, rows in pararel.tuples.get("en", {}).items():
        for _, _, sl, ol in rows:
            pool[(rel, _fold(ol))].add(sl)

    # plan every sentence of every selected case
    label_cache: dict[tuple[str, str, str], tuple[str, str]] = {}
    need_mt: set[str] = set()

    def label(kind: str, rel: str, text: str) -> tuple[str, str]:
        key = (kind, rel, text)
        if key not in label_cache:
            found = labels.subject(rel, text) if kind == "subject" else labels.object(rel, text)
            if found is not None:
                label_cache[key] = (found, "wikidata")
            elif _is_name(text):
                label_cache[key] = (text, "kept")
            else:
                label_cache[key] = (text, "mt")  # filled in after translating the labels
                need_mt.add(text)
        return label_cache[key]

    # (a) English candidates: paraphrases and neighbour subjects (templates are chosen after (c))
    plans = []
    for c, rel in selected:
        v = c["en"]
        crng = random.Random(f"{cfg.seed}:{c.case_id}")
        own = template_key(v.rewrite_prompt)
        others = [t for t in pararel.cloze_templates(rel, "en") if template_key(t) != own]
        crng.shuffle(others)
        subs = sorted(s for s in pool[(rel, _fold(v.target_true))] if _fold(s) != _fold(v.subject) and s.strip())
        crng.shuffle(subs)
        subs = subs[: 2 * cfg.n_neighborhood]
        plans.append([c, rel, v, crng, others, subs])
        # (b) labels of everything the case will mention
        label("subject", rel, v.subject)
        label("object", rel, v.target_true)
        label("object", rel, v.target_new)
        for s in subs:
            label("subject", rel, s)

    # machine translation of labels that Wikidata does not give (names kept as written)
    mt_labels: dict[str, str] = {}
    if need_mt:
        todo = sorted(need_mt)
        for src_text, out in zip(todo, translator.translate(todo)):
            mt_labels[src_text] = _WS.sub(" ", out.strip()) or src_text
    for key, (val, how) in list(label_cache.items()):
        if how == "mt":
            label_cache[key] = (mt_labels.get(val, val), "mt")
    # the target's own translation, for matching it inside sentences
    tgt_words = sorted({p[2].target_true for p in plans} | {p[2].target_new for p in plans})
    target_mt = dict(zip(tgt_words, (_WS.sub(" ", t.strip()) for t in translator.translate(tgt_words))))

    def unit(prompt_en: str, subject_en: str, rel: str, target_en: str) -> _Unit:
        subj_ca = label("subject", rel, subject_en)[0]
        tca = label("object", rel, target_en)[0]
        return _Unit(prompt_en, subject_en, subj_ca, target_en, tca, target_mt.get(target_en, ""),
                     protect_target=cfg.protect_names and _is_name(tca) and _is_name(target_en))

    from .translate import restore

    outcome: dict[_Unit, _Outcome] = {}

    def run(batch: Iterable[_Unit], desc: str) -> None:
        todo = {u: _protected_source(u, cfg.protect_names) for u in batch if u not in outcome}
        sources = list(dict.fromkeys(src for src, _ in todo.values()))
        report.n_translated += len(sources)
        translated = dict(zip(sources, translator.translate(sources)))
        for u, (src, ph) in tqdm(todo.items(), desc=desc, disable=not progress, leave=False):
            ca = translated[src]
            ca = restore(ca, ph) if ph else ca
            outcome[u] = _translate_unit(u, ca, cfg, aligner)

    # (c) which templates of each relation survive translation (target kept at the end), tried on
    # the relation's first selected case; only those serve as paraphrase and neighbour templates
    probe: dict[str, list[tuple[str, _Unit]]] = {}
    for c, rel, v, *_ in plans:
        if rel not in probe:
            probe[rel] = [(t, unit(t.format(v.subject), v.subject, rel, v.target_true))
                          for t in pararel.cloze_templates(rel, "en")]
    run((u for rows in probe.values() for _, u in rows), "checking templates")
    good = {rel: {t for t, u in rows if outcome[u].prompt is not None} for rel, rows in probe.items()}

    # (d) the case's sentences
    case_units = []
    for plan in plans:
        c, rel, v, crng, others, subs = plan
        ok = [t for t in pararel.cloze_templates(rel, "en") if t in good[rel]] or [v.rewrite_prompt]
        para_cands = [p for p in v.paraphrase_prompts if v.subject in p]
        para_cands += [t.format(v.subject) for t in others if t in good[rel]]
        own = template_key(v.rewrite_prompt)
        para_cands = [p for p in dict.fromkeys(para_cands) if template_key(p.replace(v.subject, "{}", 1)) != own]
        neigh = [(s, ok[crng.randrange(len(ok))].format(s)) for s in subs]
        plan[4], plan[5] = para_cands, neigh
        rw = v.rewrite()
        per = {
            "rewrite": [(unit(rw, v.subject, rel, v.target_new), unit(rw, v.subject, rel, v.target_true))],
            "paraphrase": [(unit(p, v.subject, rel, v.target_new), unit(p, v.subject, rel, v.target_true))
                           for p in para_cands],
            "neighborhood": [(unit(p, s, rel, v.target_new), unit(p, s, rel, v.target_true)) for s, p in neigh],
        }
        case_units.append(per)
    run((u for per in case_units for pairs in per.values() for pair in pairs for u in pair), "aligning")

    # assemble cases
    kl_ca = KL_PROMPTS.get(cfg.l2, KL_PROMPTS["en"])
    cases: list[EditCase] = []
    sources_count: dict[str, Counter] = defaultdict(Counter)
    match_count: Counter = Counter()
    variants: Counter = Counter()
    for (c, rel, v, _, para_cands, neigh), per in zip(plans, case_units):
        subj_ca, subj_src = label("subject", rel, v.subject)
        new_u, true_u = per["rewrite"][0]
        o_new, o_true = outcome[new_u], outcome[true_u]
        bad = o_new.reason or o_true.reason
        if bad:
            report.reject(bad, c.case_id)
            continue
        para = [(outcome[a], outcome[b], ea) for (a, b), ea in zip(per["paraphrase"], para_cands)
                if outcome[a].prompt and outcome[b].prompt][: cfg.n_paraphrase]
        if len(para) < cfg.min_paraphrase:
            report.reject("too_few_paraphrases", c.case_id)
            continue
        nb = [(outcome[a], outcome[b], s, p, a.subject_ca) for (a, b), (s, p) in zip(per["neighborhood"], neigh)
              if outcome[a].prompt and outcome[b].prompt][: cfg.n_neighborhood]
        if len(nb) < cfg.min_neighborhood:
            report.reject("too_few_neighbors", c.case_id)
            continue
        tnew_ca, src_new = label("object", rel, v.target_new)
        ttrue_ca, src_true = label("object", rel, v.target_true)
        for kind, src in (("subject", subj_src), ("target_new", src_new), ("target_true", src_true)):
            sources_count[kind][src] += 1
        for o in (o_new, o_true):
            match_count[o.how] += 1
        en = LangView(
            subject=v.subject,
            target_true=v.target_true,
            target_new=v.target_new,
            rewrite_prompt=v.rewrite_prompt,
            paraphrase_prompts=tuple(ea for *_, ea in para),
            neighborhood_prompts=tuple(p for _, _, _, p, _ in nb),
            kl_prompts=v.kl_prompts,
        )
        p_new = tuple(a.prompt.format(subj_ca) for a, _, _ in para)
        p_true = tuple(b.prompt.format(subj_ca) for _, b, _ in para)
        n_true = tuple(b.prompt.format(sc) for _, b, _, _, sc in nb)
        n_new = tuple(a.prompt.format(sc) for a, _, _, _, sc in nb)
        ca = LangView(
            subject=subj_ca,
            target_true=ttrue_ca,
            target_new=tnew_ca,
            rewrite_prompt=o_new.prompt,
            paraphrase_prompts=p_new,
            neighborhood_prompts=n_true,
            kl_prompts=kl_ca,
            rewrite_prompt_true=None if o_true.prompt == o_new.prompt else o_true.prompt,
            paraphrase_prompts_true=None if p_true == p_new else p_true,
            neighborhood_prompts_new=None if n_new == n_true else n_new,
        )
        if ca.rewrite_prompt_true is not None:
            variants["rewrite"] += 1
        if ca.paraphrase_prompts_true is not None:
            variants["paraphrase"] += 1
        if ca.neighborhood_prompts_new is not None:
            variants["neighborhood"] += 1
        meta = {"split": c.meta.get("split"), "label_sources": {"subject": subj_src, "target_new": src_new,
                                                                 "target_true": src_true}}
        cases.append(EditCase(case_id=c.case_id, langs={"en": en, cfg.l2: ca}, relation_id=rel,
                              source="memat.build", meta={k: val for k, val in meta.items() if val is not None}))
    report.n_kept = len(cases)
    report.relation_counts = dict(sorted(Counter(c.relation_id for c in cases).items()))
    report.label_sources = {k: dict(sorted(v.items())) for k, v in sources_count.items()}
    report.target_match = dict(sorted(match_count.items()))
    report.gender_variants = dict(sorted(variants.items()))
    report.seconds = time.perf_counter() - t0
    fp = build_fingerprint(
        inputs, cfg, getattr(translator, "fingerprint", lambda: repr(translator))(),
        aligner.fingerprint() if aligner is not None else "none",
    )
    return BuildResult(cases, report, cfg, fp, inputs)


# --------------------------------------------------------------------------- writing / loading builds
def derived_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Derived data: ``explicit`` > ``$MEMAT_DERIVED_DIR`` > ``<project>/data/derived`` > ``~/.cache/memat/derived``."""
    from .fetch import project_root

    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("MEMAT_DERIVED_DIR")
    if env:
        return Path(env).expanduser()
    root = project_root()
    return root / "data" / "derived" if root is not None else Path("~/.cache/memat/derived").expanduser()


def built_dataset_dir(name: str = DEFAULT_NAME, derived: str | os.PathLike | None = None) -> Path:
    """``<derived dir>/<name>``: where :func:`write_build` puts a build."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"dataset name {name!r}: use letters, digits, '_', '-', '.' only")
    return derived_dir(derived) / name


def write_build(result: BuildResult, name: str = DEFAULT_NAME, derived: str | os.PathLike | None = None,
                extra_info: Mapping[str, Any] | None = None) -> Path:
    """Write ``dataset.json`` (MEMAT combined schema, codes as keys) and ``build_info.json``, atomically.

    Returns the folder. ``build_info.json`` is written last, so a folder with it holds a complete build.
    """
    folder = built_dataset_dir(name, derived)
    folder.mkdir(parents=True, exist_ok=True)
    info_path = folder / "build_info.json"
    if info_path.exists():
        info_path.unlink()
    dump_memat(result.cases, folder / "dataset.json", lang_keys="codes")
    info = {
        "name": name,
        "fingerprint": result.fingerprint,
        "config": asdict(result.config),
        "inputs": result.inputs,
        "report": result.report.to_dict(),
        "table": result.report.table(),
        "n_cases": len(result.cases),
        **(dict(extra_info) if extra_info else {}),
    }
    atomic_write_text(info_path, json.dumps(info, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return folder


def read_build_info(name: str = DEFAULT_NAME, derived: str | os.PathLike | None = None) -> dict | None:
    """The ``build_info.json`` of build ``name``, or ``None`` if there is no complete build."""
    p = built_dataset_dir(name, derived) / "build_info.json"
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def load_built(name: str = DEFAULT_NAME, derived: str | os.PathLike | None = None, **kw) -> LoadResult:
    """Load a build written by :func:`write_build` (keywords go to :func:`~memat.data.loaders.load_memat`)."""
    folder = built_dataset_dir(name, derived)
    if read_build_info(name, derived) is None:
        raise FileNotFoundError(
            f"{folder}: no complete build of {name!r}. Build it with notebooks/01_dataset_translation.ipynb, "
            f"`memat data build --name {name}`, or memat.data.build.ensure_built({name!r})"
        )
    kw.setdefault("langs", ("en", "ca"))
    return load_memat(folder / "dataset.json", **kw)


def ensure_built(
    name: str = DEFAULT_NAME,
    config: BuildConfig | None = None,
    translator: str = "apertium",
    aligner: str = "none",
    source_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    derived: str | os.PathLike | None = None,
    offline: bool = False,
    progress: bool = False,
    lm=None,
) -> Path:
    """The folder of build ``name``; built first (with ``config``, default :class:`BuildConfig`) if absent."""
    folder = built_dataset_dir(name, derived)
    if read_build_info(name, derived) is not None:
        return folder
    from .align import aligner_from_spec
    from .translate import CachedTranslator, make_translator

    cache = translation_cache_file(translator, derived)
    tr = CachedTranslator(make_translator(translator), cache)
    res = build_dataset(tr, aligner_from_spec(aligner, lm=lm), config, source_dir=source_dir, data_dir=data_dir,
                        offline=offline, progress=progress)
    tr.save()
    return write_build(res, name, derived, {"translator": translator, "aligner": aligner})


def translation_cache_file(translator: str, derived: str | os.PathLike | None = None) -> Path:
    """Persistent translation cache of a translator spec (``<derived>/translation_cache/<spec>.json``)."""
    return derived_dir(derived) / "translation_cache" / f"{re.sub(r'[^A-Za-z0-9]+', '_', translator).strip('_')}.json"
