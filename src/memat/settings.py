"""The paper's setting names (``"CE"``, ``"CC*"``): which language is edited and which one the heads serve.

A setting is two letters, ``C`` (Catalan, ``ca``) or ``E`` (English, ``en``): the **edit language** (L1), then
the **evaluation language** (L2) of notebook 03's head localization, i.e. the language whose prompts the
heads were probed on after an L1 edit and in which MEMAT's corrections of that setting are trained (the
report's "the language the heads are trained in"). Every setting's rows are still evaluated in both
languages (their ``lang`` column). A trailing ``*`` marks the **recycled** rows (``CC*``, ``CE*``):
corrections trained on case set A applied to case set B. MEMIT and PMET rows carry the edit letter alone
(``"C"``, ``"E"``): :func:`letter_lang` reads it.

The letters stand for the run's two languages in order, ``LANGS = ["ca", "en"]`` in the notebooks ("C and E
of the setting names, in this order"), which every function here takes as ``langs``::

    s = Setting.parse("CE*")
    s.edit_lang, s.eval_lang, s.recycled, str(s)   # ('ca', 'en', True, 'CE*')
    Setting.from_langs("en", "ca").name            # 'EC'

A leaf module: it imports nothing from memat, so any layer can use it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

__all__ = ["DEFAULT_LANGS", "LETTERS", "RECYCLED_MARK", "Setting", "letter_lang", "letter_langs"]

#: The setting letters, in the order of ``langs``.
LETTERS: tuple[str, str] = ("C", "E")
#: What ``C`` and ``E`` stand for unless told otherwise (the paper's Catalan and English).
DEFAULT_LANGS: tuple[str, str] = ("ca", "en")
#: The suffix of a recycled setting.
RECYCLED_MARK = "*"

_NAME = re.compile(r"([CE])([CE])(\*?)")
_FORM = "two letters out of C, E (the edit language, then the evaluation language), optionally followed by '*' " \
        "(recycled corrections), e.g. 'CE' or 'CE*'"


def letter_langs(langs: Sequence[str] = DEFAULT_LANGS) -> dict[str, str]:
    """``{"C": langs[0], "E": langs[1]}`` (the notebooks' ``dict(zip("CE", LANGS))``), checked: two different
    non-empty language codes."""
    if isinstance(langs, str):
        raise ValueError(f"langs {langs!r}: expected two language codes (what C and E stand for), e.g. ['ca', 'en']")
    codes = tuple(langs)
    if len(codes) != 2 or not all(isinstance(c, str) and c for c in codes) or codes[0] == codes[1]:
        raise ValueError(f"langs {list(codes)!r}: expected two different language codes (what C and E stand for), "
                         "e.g. ['ca', 'en']")
    return dict(zip(LETTERS, codes))


def letter_lang(letter: str, langs: Sequence[str] = DEFAULT_LANGS) -> str:
    """The language of one setting letter (``"C"`` -> ``"ca"``), e.g. the edit letter of a MEMIT row."""
    table = letter_langs(langs)
    if not isinstance(letter, str) or letter not in table:
        raise ValueError(f"setting letter {letter!r}: expected one of {', '.join(LETTERS)}")
    return table[letter]


@dataclass(frozen=True)
class Setting:
    """One setting: the letters of its edit and evaluation languages, whether it is recycled, and what the
    letters stand for (``langs``). Build it with :meth:`parse` or :meth:`from_langs`; ``str()`` gives the name."""

    edit_letter: str
    eval_letter: str
    recycled: bool = False
    langs: tuple[str, str] = DEFAULT_LANGS

    def __post_init__(self) -> None:
        object.__setattr__(self, "langs", tuple(letter_langs(self.langs).values()))
        for what, letter in (("edit", self.edit_letter), ("evaluation", self.eval_letter)):
            if not isinstance(letter, str) or letter not in LETTERS:
                raise ValueError(f"setting {what} letter {letter!r}: expected one of {', '.join(LETTERS)}")
        if not isinstance(self.recycled, bool):
            raise ValueError(f"setting recycled={self.recycled!r}: expected True or False")

    @classmethod
    def parse(cls, name: str, langs: Sequence[str] = DEFAULT_LANGS) -> "Setting":
        """``"CE"``, ``"CE*"`` ... -> :class:`Setting`; anything else is a :class:`ValueError` naming it."""
        if not isinstance(name, str):
            raise ValueError(f"setting {name!r} is a {type(name).__name__}, not a str: expected {_FORM}")
        m = _NAME.fullmatch(name)
        if m is None:
            raise ValueError(f"setting {name!r}: expected {_FORM}")
        return cls(m.group(1), m.group(2), bool(m.group(3)), tuple(langs))

    @classmethod
    def from_langs(cls, edit_lang: str, eval_lang: str, recycled: bool = False,
                   langs: Sequence[str] = DEFAULT_LANGS) -> "Setting":
        """The setting that edits in ``edit_lang`` and evaluates (trains its heads) in ``eval_lang``."""
        letter = {code: k for k, code in letter_langs(langs).items()}
        for what, code in (("edit", edit_lang), ("evaluation", eval_lang)):
            if code not in letter:
                raise ValueError(f"{what} language {code!r}: expected one of {', '.join(letter)} (C and E)")
        return cls(letter[edit_lang], letter[eval_lang], recycled, tuple(langs))

    @property
    def name(self) -> str:
        """``"CE"``, or ``"CE*"`` when recycled."""
        return self.edit_letter + self.eval_letter + (RECYCLED_MARK if self.recycled else "")

    def __str__(self) -> str:
        return self.name

    @property
    def edit_lang(self) -> str:
        """The language edited (L1): ``"ca"`` for ``CE``."""
        return letter_lang(self.edit_letter, self.langs)

    @property
    def eval_lang(self) -> str:
        """The evaluation language of the heads (L2): ``"en"`` for ``CE``; the corrections are trained in it."""
        return letter_lang(self.eval_letter, self.langs)

    @property
    def crosslingual(self) -> bool:
        """Whether the two languages differ (``CE``, ``EC``)."""
        return self.edit_letter != self.eval_letter

    @property
    def base(self) -> "Setting":
        """The same setting not recycled (``CE*`` -> ``CE``)."""
        return Setting(self.edit_letter, self.eval_letter, False, self.langs)

    def recycle(self) -> "Setting":
        """The same setting recycled (``CE`` -> ``CE*``)."""
        return Setting(self.edit_letter, self.eval_letter, True, self.langs)
