"""One record type for an editing case seen in several languages.

An :class:`EditCase` holds, for each language code (``"en"``, ``"ca"``, ...), a :class:`LangView`
with everything needed to edit the fact in that language and to evaluate it there.

Prompt conventions
------------------
* ``rewrite_prompt`` and every ``kl_prompts`` entry contain the placeholder ``{}`` exactly once; it is
  replaced by the view's ``subject``.
* Paraphrase and neighbourhood prompts are complete strings (their subject is already inside).
* Targets are scored as continuations: ``prompt + " " + target``, except after an elided article or
  preposition (a prompt ending in an apostrophe, Catalan ``d'`` / ``l'``), where no space is inserted:
  ``"... ciutadà d'" + "Itàlia"``, nor after a Han or kana character or full-width punctuation (Chinese
  and Japanese: ``"答案：" + "伦敦"``; Korean writes spaces and ends its prompts in ASCII ``:``).
  :func:`target_continuation` is the one place that rule lives.
* Languages with grammatical agreement (Catalan articles) may need a different prompt for each target.
  Every prompt kind therefore has the prompts used with the **new** target and the ones used with the
  **true** target, of equal length; when a language needs no variant both tuples are the same
  (the paper's ``eval_target_new`` / ``eval_target_true``).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, asdict
from typing import Mapping


ELISION_MARKS = ("'", "\u2019")


def _no_space_after(ch: str) -> bool:
    """Whether a target follows ``ch`` without a space: an elision mark, a Han or kana character, or
    full-width punctuation (Chinese and Japanese write no spaces between words: "答案：" + "伦敦")."""
    if ch in ELISION_MARKS:
        return True
    if unicodedata.east_asian_width(ch) not in ("W", "F"):
        return False
    return unicodedata.category(ch).startswith("P") or unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA"))


def target_continuation(prompt: str, target: str) -> str:
    """The text appended to ``prompt`` to score or edit ``target`` (see the module docstring)."""
    target = target.strip()
    return target if prompt and _no_space_after(prompt[-1]) else " " + target


class RecordError(ValueError):
    """A malformed record: the message names the source, the case_id and the field."""

    def __init__(self, source: str, case_id, field_name: str, problem: str):
        self.source, self.case_id, self.field_name, self.problem = source, case_id, field_name, problem
        super().__init__(f"{source}: case_id={case_id}: field '{field_name}': {problem}")


@dataclass(frozen=True)
class LangView:
    subject: str
    target_true: str
    target_new: str
    rewrite_prompt: str  # with "{}" for the subject; the variant agreeing with target_new
    paraphrase_prompts: tuple[str, ...] = ()
    neighborhood_prompts: tuple[str, ...] = ()
    kl_prompts: tuple[str, ...] = ("{} is a",)
    # variants used when scoring the *true* target (None -> same as the prompts above)
    rewrite_prompt_true: str | None = None
    paraphrase_prompts_true: tuple[str, ...] | None = None
    # neighbourhood prompts agree with the true target; variants for scoring the new target
    neighborhood_prompts_new: tuple[str, ...] | None = None
    # expected answer of each neighbourhood prompt (None -> target_true for all)
    neighborhood_targets: tuple[str, ...] | None = None

    # ---- derived views used by editing and evaluation ----
    def rewrite(self) -> str:
        """The rewrite prompt with the subject filled in (the text MEMIT edits on)."""
        return self.rewrite_prompt.format(self.subject)

    def prompt_pairs(self, kind: str) -> list[tuple[str, str]]:
        """(prompt used with target_new, prompt used with target_true) for a prompt kind."""
        if kind == "rewrite":
            true = self.rewrite_prompt_true or self.rewrite_prompt
            return [(self.rewrite_prompt.format(self.subject), true.format(self.subject))]
        if kind == "paraphrase":
            true = self.paraphrase_prompts_true or self.paraphrase_prompts
            return list(zip(self.paraphrase_prompts, true))
        if kind == "neighborhood":
            new = self.neighborhood_prompts_new or self.neighborhood_prompts
            return list(zip(new, self.neighborhood_prompts))
        raise ValueError(f"unknown prompt kind {kind!r}; expected 'rewrite', 'paraphrase' or 'neighborhood'")

    def neighborhood_answers(self) -> tuple[str, ...]:
        return self.neighborhood_targets or tuple(self.target_true for _ in self.neighborhood_prompts)


@dataclass(frozen=True)
class EditCase:
    case_id: int | str
    langs: Mapping[str, LangView]
    relation_id: str | None = None
    source: str = ""
    meta: Mapping[str, object] = field(default_factory=dict)

    def __getitem__(self, lang: str) -> LangView:
        try:
            return self.langs[lang]
        except KeyError:
            raise KeyError(
                f"case_id={self.case_id} has no language {lang!r} (has: {sorted(self.langs)})"
            ) from None

    def to_dict(self) -> dict:
        return asdict(self)
