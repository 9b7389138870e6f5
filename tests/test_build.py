"""The bilingual data set builder (memat.data.build) on a hand-made world with a fake translator."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memat.data.build import (
    BuildConfig,
    DataFileError,
    build_dataset,
    load_built,
    load_mpararel,
    match_relation,
    read_build_info,
    template_key,
    write_build,
    _RelationIndex,
)
from memat.data.loaders import load_counterfact_easyedit, load_memat
from memat.data.records import target_continuation
from memat.data.translate import FunctionTranslator

# ---------------------------------------------------------------- a small world
PATTERNS = {
    "en": {
        "P103": ["the mother tongue of [X] is [Y]", "the native language of [X] is [Y]", "[Y] is the mother tongue of [X]",
                 "[X] natively speaks [Y]"],
        "P1303": ["[X] plays the [Y]", "[X] performs on the [Y]", "[X] is a musician who plays the [Y]"],
        "P176": ["[X] is produced by [Y]", "[X] is manufactured by [Y]", "[X] is a product of [Y]"],
        "P178": ["[X] is produced by [Y]", "[X] is developed by [Y]"],
    },
    "ca": {"P103": ["la llengua materna de [X] és [Y]"], "P1303": ["[X] toca [Y]"], "P176": ["[X] és produït per [Y]"],
           "P178": ["[X] és desenvolupat per [Y]"]},
}
# (sub_uri, obj_uri, en subject, en object, ca subject, ca object)
TUPLES = {
    "P103": [("Q1", "Q150", "Danielle Darrieux", "French", "Danielle Darrieux", "francès"),
             ("Q2", "Q150", "Michel Rocard", "French", "Michel Rocard", "francès"),
             ("Q3", "Q150", "Jean Gabin", "French", "Jean Gabin", "francès"),
             ("Q4", "Q150", "Albert Camus", "French", "Albert Camus", "francès"),
             ("Q5", "Q1860", "Winston Churchill", "English", "Winston Churchill", "anglès"),
             ("Q6", "Q1860", "Isaac Newton", "English", "Isaac Newton", "anglès"),
             ("Q7", "Q1860", "Ada Lovelace", "English", "Ada Lovelace", "anglès")],
    "P1303": [("Q10", "Q6607", "Toko Yasuda", "guitar", "Toko Yasuda", "guitarra"),
              ("Q11", "Q6607", "Jimi Hendrix", "guitar", "Jimi Hendrix", "guitarra"),
              ("Q12", "Q6607", "Eric Clapton", "guitar", "Eric Clapton", "guitarra"),
              ("Q13", "Q5994", "Glenn Gould", "piano", "Glenn Gould", "piano"),
              ("Q14", "Q5994", "Elton John", "piano", "Elton John", "piano")],
    "P176": [("Q20", "Q53268", "Toyota Camry", "Toyota", "Toyota Camry", "Toyota"),
             ("Q21", "Q53268", "Toyota Prius", "Toyota", "Toyota Prius", "Toyota"),
             ("Q22", "Q312", "iPhone", "Apple", "iPhone", "Apple"),
             ("Q23", "Q312", "iPad", "Apple", "iPad", "Apple")],
    "P178": [("Q30", "Q2283", "Windows", "Microsoft", "Windows", "Microsoft")],
}
CF = [
    # case_id, prompt, subject, target_new, ground_truth, rephrase
    (0, "The mother tongue of Danielle Darrieux is", "Danielle Darrieux", "English", "French",
     "The native language of Danielle Darrieux is"),
    (1, "Toko Yasuda plays the", "Toko Yasuda", "piano", "guitar", "Toko Yasuda performs on the"),
    (2, "Toyota Camry is produced by", "Toyota Camry", "Apple", "Toyota", "Toyota Camry is manufactured by"),
    (3, "Isaac Newton natively speaks", "Isaac Newton", "French", "English", "The mother tongue of Isaac Newton is"),
    (4, "Glenn Gould likes to cook", "Glenn Gould", "pasta", "rice", "Glenn Gould cooks"),
    (5, "Jimi Hendrix plays the", "Jimi Hendrix", "piano", "guitar", "Jimi Hendrix performs on the"),
    (6, "Apple Watch is produced by", "Apple Watch", "Toyota", "Apple", "Apple Watch is manufactured by"),
]

# a word/phrase dictionary translator; "natively speaks" is reordered so the object moves to the front
PHRASES = [
    ("is a musician who plays the guitar", "és un músic que toca la guitarra"),
    ("is a musician who plays the piano", "és un músic que toca el piano"),
    ("performs on the guitar", "actua amb la guitarra"), ("performs on the piano", "actua amb el piano"),
    ("plays the guitar", "toca la guitarra"), ("plays the piano", "toca el piano"),
    ("the mother tongue of", "la llengua materna de"), ("the native language of", "la llengua nativa de"),
    ("is produced by", "és produït per"), ("is manufactured by", "és fabricat per"),
    ("is a product of", "és un producte de"), ("is developed by", "és desenvolupat per"),
    ("is", "és"), ("French", "francès"), ("English", "anglès"), ("guitar", "guitarra"), ("piano", "piano"),
    ("Apple", "Poma"),
]


def fake_mt(text: str) -> str:
    m = re.fullmatch(r"(.+?) natively speaks (.+)", text)
    if m:  # reorders: the object is no longer at the end
        return f"{fake_mt(m.group(2))} és la llengua de {m.group(1)}"
    out = text
    for en, ca in PHRASES:
        out = re.sub(rf"(?<![\w']){re.escape(en)}(?![\w'])", ca, out, flags=re.I)
    out = re.sub(r"\bde ([AEIOUaeiouÀÈÉÍÒÓÚàèéíòóú])", r"d'\1", out)  # Catalan elision
    return out[:1].upper() + out[1:]


@pytest.fixture()
def world(tmp_path: Path):
    root = tmp_path / "mpararel"
    for lang, rels in PATTERNS.items():
        d = root / "patterns" / lang
        d.mkdir(parents=True)
        for rel, pats in rels.items():
            (d / f"{rel}.jsonl").write_text("".join(json.dumps({"pattern": p}) + "\n" for p in pats))
    for lang, (si, oi) in (("en", (2, 3)), ("ca", (4, 5))):
        d = root / "tuples" / lang
        d.mkdir(parents=True)
        for rel, rows in TUPLES.items():
            (d / f"{rel}.jsonl").write_text("".join(
                json.dumps({"sub_uri": r[0], "obj_uri": r[1], "sub_label": r[si], "obj_label": r[oi], "lineid": i}) + "\n"
                for i, r in enumerate(rows)))
    cf = tmp_path / "counterfact-edit.json"
    cf.write_text(json.dumps([
        {"case_id": c, "prompt": p, "subject": s, "target_new": tn, "ground_truth": tt, "rephrase_prompt": r,
         "locality_prompt": "x", "locality_ground_truth": "y"} for c, p, s, tn, tt, r in CF]))
    return load_mpararel(root), load_counterfact_easyedit(cf), root


def build(world, **cfg):
    pr, cf, _ = world
    kw = dict(n_cases=None, min_neighborhood=1, n_neighborhood=3, min_paraphrase=1)
    kw.update(cfg)
    return build_dataset(FunctionTranslator(fake_mt, name="fake"), None, BuildConfig(**kw), counterfact=cf, pararel=pr)


# ---------------------------------------------------------------- relation matching
def test_template_key_folds_case_space_and_placeholder():
    assert template_key("The mother tongue of {} is") == template_key("the  mother tongue of [X] is")
    assert template_key("{} plays the") != template_key("{} plays")


def test_relation_matching_known_prompts(world):
    pr, _, _ = world
    idx = _RelationIndex(pr)
    assert match_relation(idx, "The mother tongue of {} is", "Someone", "French", "English") == ("P103", None)
    assert match_relation(idx, "{} performs on the", "X", "guitar", "piano") == ("P1303", None)
    # shared template: resolved by the tuples (subject + true object, then object)
    assert match_relation(idx, "{} is produced by", "Toyota Camry", "Toyota", "Apple") == ("P176", None)
    assert match_relation(idx, "{} is produced by", "Office", "Microsoft", "Apple") == ("P178", None)
    assert match_relation(idx, "{} is produced by", "Thing", "Nokia", "Sony") == (None, "relation_ambiguous")
    assert match_relation(idx, "{} likes to cook", "X", "rice", "pasta") == (None, "relation_unmatched")


# ---------------------------------------------------------------- the build
def test_build_keeps_translatable_cases_and_counts_rejections(world):
    res = build(world)
    ids = {c.case_id for c in res.cases}
    assert ids == {0, 1, 2, 5, 6}
    assert res.report.rejected["relation_unmatched"] == 1  # case 4 (no template)
    assert res.report.rejected["target_not_at_end"] == 1  # case 3 (the fake translator reorders)
    assert res.report.rejected_ids["target_not_at_end"] == [3]
    assert res.report.n_kept == 5 and res.report.n_selected == 6
    rows = dict(res.report.table())
    assert rows["kept"] == 5 and rows["rejected: relation_unmatched"] == 1


def test_catalan_views_labels_prompts_and_elision(world):
    cases = {c.case_id: c for c in build(world).cases}
    ca = cases[0]["ca"]
    assert (ca.subject, ca.target_new, ca.target_true) == ("Danielle Darrieux", "anglès", "francès")
    assert ca.rewrite_prompt == "La llengua materna de {} és"
    assert ca.rewrite() == "La llengua materna de Danielle Darrieux és"
    assert ca.paraphrase_prompts[0] == "La llengua nativa de Danielle Darrieux és"
    assert cases[0].relation_id == "P103"
    assert cases[0].meta["label_sources"] == {"subject": "wikidata", "target_new": "wikidata", "target_true": "wikidata"}
    # neighbours: other subjects with the same relation and true object, never the case's own subject
    nb = cases[0]["en"].neighborhood_prompts
    assert nb and all("Danielle Darrieux" not in p for p in nb)
    assert all(any(s in p for s in ("Michel Rocard", "Jean Gabin", "Albert Camus")) for p in nb)
    assert all(any(s in p for s in ("Michel Rocard", "Jean Gabin", "Albert Camus")) for p in cases[0]["ca"].neighborhood_prompts)
    assert len(cases[0]["en"].neighborhood_prompts) == len(cases[0]["ca"].neighborhood_prompts) == 3


def test_name_protection_keeps_entities(world):
    cases = {c.case_id: c for c in build(world).cases}
    ca = cases[2]["ca"]  # Toyota Camry: Toyota -> Apple; the fake translates "Apple" as "Poma"
    assert ca.target_new == "Apple" and ca.target_true == "Toyota"
    assert ca.rewrite_prompt == "{} és produït per"
    assert not any("Poma" in p for p in ca.paraphrase_prompts + ca.neighborhood_prompts)
    assert cases[6]["ca"].subject == "Apple Watch" and cases[6]["ca"].target_true == "Apple"
    assert cases[6]["ca"].rewrite() == "Apple Watch és produït per"
    # without protection the subject is mistranslated ("Poma Watch") and the case is rejected
    res = build(world, protect_names=False)
    assert 6 not in {c.case_id for c in res.cases}
    assert 6 in res.report.rejected_ids.get("subject_not_in_translation", [])


def test_gender_variants_kept_when_prompts_differ(world):
    cases = {c.case_id: c for c in build(world).cases}
    ca = cases[1]["ca"]  # piano (el) vs guitarra (la)
    assert ca.target_new == "piano" and ca.target_true == "guitarra"
    assert ca.rewrite_prompt == "{} toca el"
    assert ca.rewrite_prompt_true == "{} toca la"
    assert ca.prompt_pairs("rewrite") == [("Toko Yasuda toca el", "Toko Yasuda toca la")]
    new, true = zip(*ca.prompt_pairs("neighborhood"))
    assert all(p.endswith(" el") for p in new) and all(p.endswith(" la") for p in true)
    # English has no variants; languages without agreement differences store None
    assert cases[1]["en"].rewrite_prompt_true is None
    assert cases[0]["ca"].rewrite_prompt_true is None


def test_elided_prompt_joins_target_without_space():
    assert target_continuation("ciutadà d'", "Itàlia") == "Itàlia"
    assert target_continuation("ciutadà de", "França") == " França"


def test_same_seed_same_bytes_and_round_trip(world, tmp_path):
    a, b = build(world, seed=3), build(world, seed=3)
    pa = write_build(a, "t", tmp_path / "d1")
    pb = write_build(b, "t", tmp_path / "d2")
    assert (pa / "dataset.json").read_bytes() == (pb / "dataset.json").read_bytes()
    assert a.fingerprint == b.fingerprint
    info = read_build_info("t", tmp_path / "d1")
    assert info["fingerprint"] == a.fingerprint and info["n_cases"] == len(a.cases)
    back = load_built("t", tmp_path / "d1")
    assert [c.case_id for c in back.cases] == [c.case_id for c in a.cases]
    orig = {c.case_id: c for c in a.cases}
    for c in back.cases:
        for lang in ("en", "ca"):
            assert c[lang].prompt_pairs("rewrite") == orig[c.case_id][lang].prompt_pairs("rewrite")
            assert c[lang].prompt_pairs("neighborhood") == orig[c.case_id][lang].prompt_pairs("neighborhood")
            assert c[lang].target_new == orig[c.case_id][lang].target_new
    # another seed changes the choices (and the fingerprint)
    c = build(world, seed=4)
    assert c.fingerprint != a.fingerprint


def test_sampling_is_seeded(world):
    a = build(world, n_cases=2, seed=1)
    b = build(world, n_cases=2, seed=1)
    assert [c.case_id for c in a.cases] == [c.case_id for c in b.cases]
    assert a.report.n_selected == 2


def test_bad_source_file_names_path_and_line(world, tmp_path):
    _, _, root = world
    bad = root / "tuples" / "en" / "P103.jsonl"
    lines = bad.read_text().splitlines()
    lines[2] = '{"sub_uri": "Q3", "obj_uri": '  # truncated JSON on line 3
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError) as e:
        load_mpararel(root)
    assert str(bad) in str(e.value) and "line 3" in str(e.value)
    lines[2] = '{"sub_uri": "Q3", "obj_uri": "Q150", "sub_label": "", "obj_label": "French"}'
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"sub_label.*line 3|line 3.*sub_label"):
        load_mpararel(root)


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="n_cases"):
        BuildConfig(n_cases=0)
    with pytest.raises(ValueError, match="min_neighborhood"):
        BuildConfig(n_neighborhood=2, min_neighborhood=3)
    with pytest.raises(ValueError, match="fuzzy"):
        BuildConfig(fuzzy=1.5)


def test_written_file_is_memat_schema(world, tmp_path):
    res = build(world)
    folder = write_build(res, "t", tmp_path)
    raw = json.loads((folder / "dataset.json").read_text())
    assert set(raw[0]) == {"en", "ca"}
    assert "eval_target_new" in raw[1]["ca"] and "requested_rewrite" in raw[1]["en"]
    assert len(load_memat(folder / "dataset.json").cases) == len(res.cases)


def test_missing_build_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_dataset_translation"):
        load_built("nothing_here", tmp_path)


def test_cross_relation_label_must_keep_name_status():
    from memat.data.build import ParaRel, _Labels

    pr = ParaRel(
        patterns={"en": {}, "ca": {}},
        tuples={"en": {"P186": [("Q40", "Q89", "cider", "Apple")], "P103": [("Q1", "Q150", "Jean Gabin", "French")]},
                "ca": {"P186": [("Q40", "Q89", "sidra", "poma")], "P103": [("Q1", "Q150", "Jean Gabin", "francès")]}},
        labels={"en": {"Q89": "Apple", "Q150": "French", "Q1": "Jean Gabin"},
                "ca": {"Q89": "poma", "Q150": "francès", "Q1": "Jean Gabin"}},
        files={},
    )
    lab = _Labels(pr, "ca")
    assert lab.object("P186", "Apple") == "poma"  # same relation: Wikidata knows best
    assert lab.object("P176", "Apple") is None  # another relation: the fruit is not the company
    assert lab.object("P27", "French") is None  # a name in English, not in Catalan, from another relation
    assert lab.subject("P19", "Jean Gabin") == "Jean Gabin"  # a name in both: accepted


def test_a_named_build_loads_with_the_raw_data_keywords(world, tmp_path, monkeypatch):
    """load_dataset(<any build name>, source_dir=...) as for the default build: the raw-data keywords say
    where to build from and are not needed (nor passed on) to read a build already made."""
    from memat.data import load_dataset

    monkeypatch.setenv("MEMAT_DERIVED_DIR", str(tmp_path / "derived"))
    a = build(world, seed=3)
    write_build(a, "other_build")
    back = load_dataset("other_build", source_dir=tmp_path / "nowhere", offline=True)
    assert [c.case_id for c in back.cases] == [c.case_id for c in a.cases]
