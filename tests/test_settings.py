"""memat.settings: the paper's setting names (CE, CC*), parsed, checked and formatted."""
import re

import pytest

from memat.settings import DEFAULT_LANGS, Setting, letter_lang, letter_langs


@pytest.mark.parametrize("name, edit, evl, recycled, cross", [
    ("CC", "ca", "ca", False, False),
    ("CE", "ca", "en", False, True),
    ("EC", "en", "ca", False, True),
    ("EE", "en", "en", False, False),
    ("CC*", "ca", "ca", True, False),
    ("CE*", "ca", "en", True, True),
])
def test_parse_and_format(name, edit, evl, recycled, cross):
    s = Setting.parse(name)
    assert (s.edit_lang, s.eval_lang, s.recycled, s.crosslingual) == (edit, evl, recycled, cross)
    assert str(s) == s.name == name
    assert Setting.from_langs(edit, evl, recycled) == s
    assert s.base.name == name.rstrip("*") and s.base.recycle() == Setting.parse(name.rstrip("*") + "*")


@pytest.mark.parametrize("bad", ["", "C", "CEE", "ce", "CX", "XE", "CE**", "*CE", " CE", "CE ", "C*E"])
def test_a_bad_name_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match=re.escape(f"setting {bad!r}: expected two letters out of C, E")):
        Setting.parse(bad)


def test_bad_letters_languages_and_types():
    with pytest.raises(ValueError, match="is a int, not a str"):
        Setting.parse(12)
    with pytest.raises(ValueError, match="setting edit letter 'X'"):
        Setting("X", "E")
    with pytest.raises(ValueError, match="recycled=1"):
        Setting("C", "E", 1)
    with pytest.raises(ValueError, match="evaluation language 'de'"):
        Setting.from_langs("ca", "de")
    with pytest.raises(ValueError, match="setting letter 'CE'"):
        letter_lang("CE")
    for langs in ("ca", ["ca"], ["ca", "ca"], ["ca", ""]):
        with pytest.raises(ValueError, match="expected two"):
            letter_langs(langs)


def test_the_letters_stand_for_the_runs_languages():
    assert letter_langs() == {"C": "ca", "E": "en"} == dict(zip("CE", DEFAULT_LANGS))
    assert letter_lang("E") == "en" and letter_lang("C", ["es", "en"]) == "es"
    s = Setting.parse("CE*", langs=["es", "en"])
    assert (s.edit_lang, s.eval_lang, s.langs) == ("es", "en", ("es", "en"))
    assert Setting.from_langs("en", "es", langs=("es", "en")).name == "EC"
    assert Setting.parse("CE", ["es", "en"]) != Setting.parse("CE")  # the same name in another pair of languages


def test_leaf_module():
    import ast
    from pathlib import Path

    import memat.settings as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("memat") for m in imported)
    assert all(not isinstance(n, ast.ImportFrom) or n.level == 0 for n in ast.walk(tree))  # no relative imports
