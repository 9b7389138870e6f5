"""Word alignment for the dataset translation pipeline: find an entity of an English sentence in its translation.

The builder (:mod:`memat.data.build`) translates English prompts into Catalan and must find the subject
and the target inside the machine translation. It tries, in order,

1. :func:`find_name` with a known translation of the name (exact, then case/accent-insensitive, then,
   optionally, fuzzy), and
2. a word aligner (:class:`SimAligner`) that projects the character span of the English entity onto
   the translation.

Pieces
------
* :func:`split_words` - words and punctuation with character offsets (elisions split after the
  apostrophe: ``"d'Itàlia"`` -> ``"d'"``, ``"Itàlia"``).
* :func:`normalize` - casefold, strip accents, unify apostrophes, collapse spaces.
* :func:`find_name` - character span of a name in a sentence, never cutting a word.
* :class:`Encoder` - the protocol of a contextual (sub)word encoder; :class:`HFEncoder` implements it
  over any Hugging Face model (encoder-only such as mBERT / XLM-R, encoder-decoder (its encoder) or a
  causal LM such as the memat model being edited).
* :class:`SimAligner` - SimAlign (Jalili Sabet et al., 2020, "SimAlign: High Quality Word Alignments
  without Parallel Training Data using Static and Contextualized Embeddings"): mutual argmax
  ("argmax", the paper's *Argmax*) or the iterative variant ("itermax") over the cosine similarity of
  contextual (sub)word vectors.
* :func:`aligner_from_spec` - build an aligner from a configuration string (``"none"``, ``"simalign"``,
  ``"simalign@<layer>"``, ``"simalign:<model>"``, ``"simalign:<model>@<layer>"``).

Everything is deterministic: no sampling, ties broken by index (``torch.argmax`` returns the first
maximum), models run in ``torch.no_grad()`` and nothing depends on the device beyond float rounding.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import torch

from ..devices import default_device

__all__ = [
    "ALIGN_VERSION",
    "Encoder",
    "HFEncoder",
    "SimAligner",
    "Word",
    "aligner_from_spec",
    "find_name",
    "normalize",
    "split_words",
]

#: bumped whenever a change here can change an alignment or a span (part of :meth:`SimAligner.fingerprint`)
ALIGN_VERSION = 1

# --------------------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------------------

_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # combining marks (NFD text)
_APOSTROPHES = "'\u2019\u02bc"  # ' ’ ʼ
_JOINERS = "\\-\u2010\u2011\u00b7\u2027"  # hyphens, Catalan middle dot (col·lecció), hyphenation point
_ALNUM = rf"(?:[^\W_][{_MARKS}]*)+"  # letters/digits, each with its combining marks
_WORD_RE = re.compile(rf"{_ALNUM}(?:(?:[{_JOINERS}{_APOSTROPHES}]|(?<=\d)[.,](?=\d)){_ALNUM})*|\S")
_APOS_RE = re.compile(f"[{_APOSTROPHES}]")

#: pieces after an apostrophe that are clitics of the word before it (English ``John's``, ``don't``,
#: ``we'll``; Catalan ``porta'l``, ``anar-se'n``): the apostrophe starts the clitic instead of ending an
#: elision. Compared casefolded.
CLITICS = frozenset({"s", "t", "d", "m", "l", "n", "re", "ve", "ll", "ls", "ns"})


@dataclass(frozen=True)
class Word:
    """A word of a sentence: ``sentence[start:end] == text``."""

    text: str
    start: int
    end: int


def _is_punct(text: str) -> bool:
    """True for a word with no letter or digit (a punctuation mark or symbol)."""
    return not any(ch.isalnum() for ch in text)


def _split_token(text: str, start: int) -> list[Word]:
    """Split one word token at its internal apostrophes (elision vs clitic, see :func:`split_words`)."""
    cuts = []
    for m in _APOS_RE.finditer(text):
        nxt = _APOS_RE.search(text, m.end())
        right = text[m.end(): nxt.start() if nxt else len(text)]
        cuts.append(m.start() if right.casefold() in CLITICS else m.end())
    out, prev = [], 0
    for c in [*cuts, len(text)]:
        if c > prev:
            out.append(Word(text[prev:c], start + prev, start + c))
            prev = c
    return out


def split_words(text: str) -> list[Word]:
    """Split ``text`` into words and punctuation marks, with character offsets.

    Rules (kept simple on purpose; both sides of an alignment are split the same way):

    * A word is a run of letters and digits (with their combining marks), possibly joined by hyphens
      (``"Jean-Paul"``, ``"anar-se"`` stay one word), by the Catalan middle dot (``"col·lecció"``) or,
      between digits, by ``.`` / ``,`` (``"3.5"``, ``"1,000"``).
    * Every other non-space character is a word of its own: ``"Inc."`` -> ``"Inc"``, ``"."``;
      ``"..."`` -> three words; quotes and brackets are separate.
    * An apostrophe (``'``, ``’`` or ``ʼ``) between letters splits the word. By default it is an
      *elision* and stays with the left part: ``"d'Itàlia"`` -> ``"d'"``, ``"Itàlia"``; ``"l'home"`` ->
      ``"l'"``, ``"home"``; ``"qu'il"`` -> ``"qu'"``, ``"il"``. When the part after it is a clitic of
      :data:`CLITICS` (``s t d m l n re ve ll ls ns``) the apostrophe starts the clitic instead:
      ``"Darrieux's"`` -> ``"Darrieux"``, ``"'s"``; ``"porta'l"`` -> ``"porta"``, ``"'l"``.

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"split_words: text must be a str, got {type(text).__name__}")
    words: list[Word] = []
    for m in _WORD_RE.finditer(text):
        tok = m.group()
        if len(tok) > 1 and _APOS_RE.search(tok):
            words.extend(_split_token(tok, m.start()))
        else:
            words.append(Word(tok, m.start(), m.end()))
    return words


# --------------------------------------------------------------------------------------------------
# normalisation and name search
# --------------------------------------------------------------------------------------------------

_CHAR_MAP = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "\u2010": "-", "\u2011": "-"}


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """One character folded: typographic apostrophes/hyphens unified, casefolded, NFKD, marks dropped."""
    ch = _CHAR_MAP.get(ch, ch)
    s = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold())
    return "".join(c for c in s if not unicodedata.combining(c))


def _normalize_with_map(text: str) -> tuple[str, list[int]]:
    """:func:`normalize` plus, for each output character, the index of the input character it came from."""
    out: list[str] = []
    src: list[int] = []
    for i, ch in enumerate(text):
        for c in _fold_char(ch):
            if c.isspace():
                if out and out[-1] != " ":
                    out.append(" ")
                    src.append(i)
            else:
                out.append(c)
                src.append(i)
    if out and out[-1] == " ":
        out.pop()
        src.pop()
    return "".join(out), src


def normalize(text: str) -> str:
    """Fold ``text`` for comparison: casefold, strip accents, unify apostrophes, collapse spaces.

    Each character is casefolded and decomposed (NFKD, so ligatures and full-width forms become plain
    letters) and combining marks are dropped (``"Itàlia"`` -> ``"italia"``, ``"Straße"`` ->
    ``"strasse"``). Typographic apostrophes (``’ ‘ ʼ``) become ``'`` and the Unicode hyphens U+2010/11
    become ``-``. Runs of whitespace become one space; leading and trailing whitespace is removed.

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize: text must be a str, got {type(text).__name__}")
    return _normalize_with_map(text)[0]


def _occurrences(haystack: str, needle: str) -> list[int]:
    """Start indices of every (possibly overlapping) occurrence of ``needle``."""
    out, i = [], haystack.find(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


def _check_fuzzy(fuzzy) -> float | None:
    if fuzzy is None:
        return None
    if isinstance(fuzzy, bool) or not isinstance(fuzzy, (int, float)) or not 0.0 < float(fuzzy) <= 1.0:
        raise ValueError(f"find_name: fuzzy must be None or a float in (0, 1], got {fuzzy!r}")
    return float(fuzzy)


def find_name(sentence: str, name: str, fuzzy: float | None = None) -> tuple[int, int] | None:
    """The character span ``(start, end)`` of ``name`` in ``sentence``, or ``None``.

    Strategies, in order (the first that finds a span wins):

    1. exact substring match;
    2. match after :func:`normalize` (case, accents, apostrophe style and spacing folded), mapped
       back to the original characters (a trailing combining mark belongs to the span);
    3. if ``fuzzy`` is given: the run of consecutive words of :func:`split_words` (starting and ending
       with a word that is not punctuation) whose normalised text has the highest
       ``difflib.SequenceMatcher`` ratio with the normalised name, if that ratio is ``>= fuzzy``.

    A span never cuts a word of :func:`split_words` in half: ``"Rome"`` is not found in ``"Romeo"``
    (but ``"Itàlia"`` is found in ``"d'Itàlia"``, whose words are ``"d'"`` and ``"Itàlia"``). When
    several spans qualify the **last** one is returned (the pipeline looks for targets, which sit at
    the end of a prompt); equal fuzzy ratios also go to the span that starts later, then ends later.

    Args:
        sentence: the text to search.
        name: the name to find; surrounding whitespace is ignored.
        fuzzy: ``None`` (no fuzzy matching) or the minimal similarity ratio, a float in ``(0, 1]``.

    Raises:
        TypeError: ``sentence`` or ``name`` is not a string.
        ValueError: ``name`` is empty or blank; ``fuzzy`` is not ``None`` or in ``(0, 1]``.
    """
    if not isinstance(sentence, str):
        raise TypeError(f"find_name: sentence must be a str, got {type(sentence).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"find_name: name must be a str, got {type(name).__name__}")
    threshold = _check_fuzzy(fuzzy)
    name = name.strip()
    if not name:
        raise ValueError("find_name: name is empty")

    words = split_words(sentence)
    inside = [False] * (len(sentence) + 1)  # inside[k]: position k is strictly inside a word
    for w in words:
        for k in range(w.start + 1, w.end):
            inside[k] = True

    def whole(start: int, end: int) -> bool:
        return not inside[start] and not inside[end]

    # 1. exact
    for s in reversed(_occurrences(sentence, name)):
        if whole(s, s + len(name)):
            return s, s + len(name)

    # 2. normalised, mapped back to the original offsets
    norm_sent, index = _normalize_with_map(sentence)
    norm_name = normalize(name)
    if norm_name:
        for s in reversed(_occurrences(norm_sent, norm_name)):
            start = index[s]
            end = index[s + len(norm_name) - 1] + 1
            while end < len(sentence) and _fold_char(sentence[end]) == "":  # trailing combining marks
                end += 1
            if whole(start, end):
                return start, end

    # 3. fuzzy: best run of consecutive words
    if threshold is None or not norm_name:
        return None
    best: tuple[float, int, int] | None = None
    n_target = len(norm_name)
    for i, wi in enumerate(words):
        if _is_punct(wi.text):
            continue
        for j in range(i, len(words)):
            wj = words[j]
            cand = normalize(sentence[wi.start: wj.end])
            # SequenceMatcher.ratio() <= 2 * min(a, b) / (a + b): longer runs can only get worse
            if len(cand) > n_target and 2.0 * n_target / (len(cand) + n_target) < threshold:
                break
            if _is_punct(wj.text):
                continue
            ratio = difflib.SequenceMatcher(None, cand, norm_name, autojunk=False).ratio()
            key = (ratio, wi.start, wj.end)
            if ratio >= threshold and (best is None or key > best):
                best = key
    return None if best is None else (best[1], best[2])


# --------------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------------


@runtime_checkable
class Encoder(Protocol):
    """A contextual encoder of a pre-split sentence.

    ``encode(words)`` returns, for each word, a float tensor ``[n_subwords_i, d]`` (``n_subwords_i >= 1``,
    the same ``d`` for every word); ``fingerprint()`` identifies the encoder and its settings (used in
    cache keys, so two encoders giving different vectors must have different fingerprints).
    """

    def encode(self, words: Sequence[str]) -> list[torch.Tensor]: ...

    def fingerprint(self) -> str: ...


class LoadedLM(Protocol):
    """What :meth:`HFEncoder.from_loaded` reads of a loaded causal LM; :class:`memat.models.LoadedModel` has it.

    A structural type, so that the data layer names the model it aligns with without importing
    :mod:`memat.models` (which is above it).
    """

    model: Any
    tokenizer: Any
    n_layers: int


def _check_words(words, arg: str, where: str) -> list[str]:
    """A list copy of ``words``; a bare string or a non-string / empty item is an error naming ``arg``."""
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise TypeError(f"{where}: {arg} must be a sequence of words (list of str), got {type(words).__name__}")
    out = list(words)
    for i, w in enumerate(out):
        if not isinstance(w, str):
            raise TypeError(f"{where}: {arg}[{i}] must be a str, got {type(w).__name__}")
        if not w.strip():
            raise ValueError(f"{where}: {arg}[{i}] is an empty word")
    return out


def _fill_empty(groups: list[list[int]]) -> list[list[int]]:
    """Give every word without a token the nearest token: the previous word's last, else the next word's first."""
    out = [list(g) for g in groups]
    for i, g in enumerate(out):
        if g:
            continue
        prev = next((out[k][-1] for k in range(i - 1, -1, -1) if groups[k]), None)
        if prev is not None:
            g.append(prev)
        else:
            nxt = next((groups[k][0] for k in range(i + 1, len(groups)) if groups[k]), None)
            if nxt is not None:
                g.append(nxt)
    return out


def _map_tokens_to_words(
    word_spans: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]], special: Sequence[int]
) -> list[list[int]]:
    """Token positions of each word, from a fast tokenizer's offsets.

    A token belongs to every word its character range overlaps (a token covering two words is shared);
    special tokens and zero-width tokens belong to none. A word that no token overlaps gets the nearest
    token (see :func:`_fill_empty`). Positions are in increasing order.
    """
    groups: list[list[int]] = [[] for _ in word_spans]
    for t, ((s, e), sp) in enumerate(zip(offsets, special)):
        if sp or e <= s:
            continue
        for w, (ws, we) in enumerate(word_spans):
            if s < we and e > ws:
                groups[w].append(t)
    return _fill_empty(groups)


def _n_hidden_layers(model) -> int | None:
    """Number of transformer blocks whose outputs ``hidden_states`` holds (the encoder's for seq2seq)."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    if getattr(config, "is_encoder_decoder", False):
        for attr in ("encoder_layers", "num_encoder_layers", "num_layers"):
            if isinstance(getattr(config, attr, None), int):
                return int(getattr(config, attr))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(text, attr, None), int):
            return int(getattr(text, attr))
    return None


class HFEncoder:
    """:class:`Encoder` over a Hugging Face model: the hidden states of one layer, one vector per subword.

    Works with encoder-only models (mBERT, XLM-R), encoder-decoder models (their encoder) and causal LMs
    (the memat model, see :meth:`from_loaded`). ``encode(words)`` joins the words with single spaces,
    tokenizes the sentence once and runs the model once (``torch.no_grad()``), then maps each subword
    vector of ``hidden_states[layer]`` to the word(s) it covers:

    * fast tokenizers: through ``return_offsets_mapping`` (a token overlapping two words is shared);
    * other tokenizers: each word is tokenized on its own, with a leading space except the first, and
      the pieces are concatenated between the special tokens the tokenizer adds to a sentence.

    Special tokens (BOS, CLS, SEP, ...) are never returned; a word with no token of its own gets the
    vector of the nearest one. Vectors are returned as float32 on the CPU.

    Args:
        model: a Hugging Face ``PreTrainedModel`` (preferably in eval mode: dropout makes encodings random).
        tokenizer: its tokenizer.
        layer: index into ``hidden_states``: 0 = embedding output, ``n`` = output of block ``n``
            (``num_hidden_layers`` = last, after the final norm in most families). Negative values count
            from the end as in Python (``-1`` = last).
        name: a label for :meth:`fingerprint` (default: the model's ``name_or_path``).

    Raises:
        TypeError: ``layer`` is not an int.
        ValueError: ``layer`` is outside ``[-(n + 1), n]`` for a model with ``n`` blocks.
    """

    def __init__(self, model, tokenizer, layer: int, name: str = ""):
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"HFEncoder: layer must be an int, got {type(layer).__name__}")
        n = _n_hidden_layers(model)
        if n is not None:
            if not -(n + 1) <= layer <= n:
                raise ValueError(
                    f"HFEncoder: layer={layer} is out of range for a model with {n} layers "
                    f"(hidden_states has {n + 1} entries: 0 = embeddings, {n} = last layer)"
                )
            layer = layer % (n + 1)
        self.model = model
        self.tokenizer = tokenizer
        self.layer = layer
        self.n_layers = n
        self.name = name or str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)
        self._warned_training = False

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        layer: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float32,
    ) -> "HFEncoder":
        """Load a model and its tokenizer by Hugging Face id or local directory.

        ``AutoModel`` is tried first (encoder-only and encoder-decoder models, and the base model of most
        causal LMs); if it fails, ``AutoModelForCausalLM``. The model is put in eval mode on ``device``
        (default: :func:`memat.devices.default_device`, never hard-coded).

        ``layer`` defaults to ``num_hidden_layers // 2``. SimAlign (Jalili Sabet et al., 2020) uses layer
        8 of 12 for mBERT and XLM-R base, i.e. two thirds of the depth: pass ``layer=8`` to reproduce it.
        """
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        if not isinstance(name_or_path, str) or not name_or_path.strip():
            raise ValueError(f"HFEncoder.from_pretrained: name_or_path must be a non-empty str, got {name_or_path!r}")
        if isinstance(dtype, str):
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"HFEncoder.from_pretrained: dtype={dtype!r} is not a torch dtype")
            dtype = getattr(torch, dtype)
        dev = torch.device(device) if device is not None else default_device()
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        try:
            model = AutoModel.from_pretrained(name_or_path, dtype=dtype)
        except Exception as e_auto:  # noqa: BLE001 - any failure: try the causal-LM class
            try:
                model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
            except Exception as e_causal:
                raise ValueError(
                    f"HFEncoder.from_pretrained: cannot load {name_or_path!r} with AutoModel ({e_auto}) "
                    f"nor with AutoModelForCausalLM ({e_causal})"
                ) from e_causal
        model.to(dev)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        if layer is None:
            n = _n_hidden_layers(model)
            if n is None:
                raise ValueError(f"HFEncoder.from_pretrained: cannot tell the number of layers of {name_or_path!r}; pass layer=")
            layer = n // 2
        return cls(model, tokenizer, layer, name=name_or_path)

    @classmethod
    def from_loaded(cls, lm: "LoadedLM", layer: int | None = None) -> "HFEncoder":
        """An encoder over a :class:`memat.models.LoadedModel` (a causal LM): its hidden states at ``layer``.

        ``layer`` defaults to ``lm.n_layers // 2``. The model is used as it is (device, dtype, weights):
        encode before editing it if the alignments must not depend on the edit.
        """
        for attr in ("model", "tokenizer", "n_layers"):
            if not hasattr(lm, attr):
                raise TypeError(f"HFEncoder.from_loaded: lm must be a memat.models.LoadedModel (no .{attr}), got {type(lm).__name__}")
        if layer is None:
            layer = int(lm.n_layers) // 2
        return cls(lm.model, lm.tokenizer, layer, name=str(getattr(lm, "name", "") or ""))

    # ---------------------------------------------------------------- encoding
    def _input_device(self) -> torch.device:
        emb = self.model.get_input_embeddings() if hasattr(self.model, "get_input_embeddings") else None
        if emb is not None and getattr(emb, "weight", None) is not None:
            return emb.weight.device
        return next(self.model.parameters()).device

    def _tokenize_fast(self, words: list[str]) -> tuple[list[int], list[list[int]]]:
        text = " ".join(words)
        spans, pos = [], 0
        for w in words:
            spans.append((pos, pos + len(w)))
            pos += len(w) + 1
        enc = self.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = list(enc["input_ids"])
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        special = list(enc.get("special_tokens_mask") or [0] * len(ids))
        return ids, _map_tokens_to_words(spans, offsets, special)

    def _tokenize_slow(self, words: list[str]) -> tuple[list[int], list[list[int]]]:
        tok = self.tokenizer
        specials = set(getattr(tok, "all_special_ids", []) or [])
        full = list(tok(" ".join(words), add_special_tokens=True)["input_ids"])
        n_pre = 0
        while n_pre < len(full) and full[n_pre] in specials:
            n_pre += 1
        n_post = 0
        while n_post < len(full) - n_pre and full[len(full) - 1 - n_post] in specials:
            n_post += 1
        ids = full[:n_pre]
        groups: list[list[int]] = []
        for i, w in enumerate(words):
            piece = [t for t in tok(w if i == 0 else " " + w, add_special_tokens=False)["input_ids"] if t not in specials]
            groups.append(list(range(len(ids), len(ids) + len(piece))))
            ids.extend(piece)
        ids.extend(full[len(full) - n_post:] if n_post else [])
        return ids, _fill_empty(groups)

    def _hidden_states(self, ids: list[int]) -> torch.Tensor:
        model = self.model
        if self.model.training and not self._warned_training:
            warnings.warn("HFEncoder: the model is in training mode; dropout makes encodings random (call model.eval())")
            self._warned_training = True
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._input_device())
        mask = torch.ones_like(input_ids)
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            runner = model.get_encoder()
        else:
            # the base model: no unembedding of a large vocabulary for logits nobody reads
            runner = getattr(model, "base_model", None)
            runner = model if runner is None else runner
        with torch.no_grad():
            out = runner(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        hs = getattr(out, "hidden_states", None)
        if hs is None:
            raise RuntimeError(f"HFEncoder: {type(runner).__name__} returned no hidden_states")
        if not -len(hs) <= self.layer < len(hs):
            raise ValueError(f"HFEncoder: layer={self.layer} is out of range (hidden_states has {len(hs)} entries)")
        return hs[self.layer][0]

    def encode(self, words: Sequence[str]) -> list[torch.Tensor]:
        """One float32 CPU tensor ``[n_subwords_i, d]`` per word (``n_subwords_i >= 1``); ``[]`` for no words.

        Raises:
            TypeError / ValueError: ``words`` is a bare string, or holds a non-string or an empty word.
        """
        words = _check_words(words, "words", "HFEncoder.encode")
        if not words:
            return []
        if getattr(self.tokenizer, "is_fast", False):
            ids, groups = self._tokenize_fast(words)
        else:
            ids, groups = self._tokenize_slow(words)
        if not ids or not any(groups):
            raise ValueError(f"HFEncoder.encode: the tokenizer produced no tokens for the words {words!r}")
        h = self._hidden_states(ids).detach().to(device="cpu", dtype=torch.float32)
        return [h[g] for g in groups]

    def fingerprint(self) -> str:
        """Model label, family, size, dtype, vocabulary size and layer (what changes the vectors)."""
        config = getattr(self.model, "config", None)
        model_type = getattr(config, "model_type", type(self.model).__name__)
        try:
            p = next(self.model.parameters())
            dtype, n_params = str(p.dtype).replace("torch.", ""), sum(q.numel() for q in self.model.parameters())
        except StopIteration:  # pragma: no cover - a model without parameters
            dtype, n_params = "none", 0
        try:
            vocab = len(self.tokenizer)
        except TypeError:  # pragma: no cover
            vocab = -1
        return (
            f"hf:{self.name}|type={model_type}|layers={self.n_layers}|params={n_params}|dtype={dtype}"
            f"|vocab={vocab}|layer={self.layer}"
        )

    def __repr__(self) -> str:
        return f"HFEncoder({self.name!r}, layer={self.layer})"


# --------------------------------------------------------------------------------------------------
# SimAlign
# --------------------------------------------------------------------------------------------------


def _similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SimAlign's similarity ``(cos + 1) / 2`` in [0, 1], in float64 (rows of ``x`` vs rows of ``y``)."""
    x = torch.nn.functional.normalize(x.to(torch.float64), dim=-1, eps=1e-12)
    y = torch.nn.functional.normalize(y.to(torch.float64), dim=-1, eps=1e-12)
    return (x @ y.T + 1.0) / 2.0


def _mutual_argmax(sim: torch.Tensor) -> torch.Tensor:
    """Bool matrix of the cells that are the argmax of their row and of their column (first on ties)."""
    m, n = sim.shape
    fwd = torch.zeros(m, n, dtype=torch.bool)
    fwd[torch.arange(m), sim.argmax(dim=1)] = True
    bwd = torch.zeros(m, n, dtype=torch.bool)
    bwd[sim.argmax(dim=0), torch.arange(n)] = True
    return fwd & bwd


def _itermax(sim: torch.Tensor, alpha: float = 0.9, max_count: int = 2) -> torch.Tensor:
    """SimAlign's *IterMax*, as in the reference implementation (``SentenceAligner.iter_max``).

    Start from the mutual argmax. Then, up to ``max_count - 1`` times: re-weight the similarity (cells
    whose row and column are both unaligned: weight ``min(1, 2 * alpha)``; exactly one of them aligned:
    ``alpha``; both aligned: 0), add the mutual argmax of the re-weighted matrix restricted to cells not
    in an aligned row *and* column, and stop early when nothing is added. Matrices with a side of at
    most 2 get the plain mutual argmax, and so do rounds where every row or every column is aligned
    (both as in the reference).
    """
    m, n = sim.shape
    inter = _mutual_argmax(sim).to(sim.dtype)
    if min(m, n) <= 2:
        return inter > 0
    count = 1
    while count < max_count:
        mask_x = 1.0 - inter.sum(1, keepdim=True).clamp(0.0, 1.0).expand(m, n)
        mask_y = 1.0 - inter.sum(0, keepdim=True).clamp(0.0, 1.0).expand(m, n)
        mask = (alpha * mask_x + alpha * mask_y).clamp(0.0, 1.0)
        mask_zeros = 1.0 - (1.0 - mask_x) * (1.0 - mask_y)
        if mask_x.sum() < 1.0 or mask_y.sum() < 1.0:
            mask = mask * 0.0
            mask_zeros = mask_zeros * 0.0
        new_sim = sim * mask
        fwd = torch.zeros(m, n, dtype=sim.dtype)
        fwd[torch.arange(m), new_sim.argmax(dim=1)] = 1.0
        bwd = torch.zeros(m, n, dtype=sim.dtype)
        bwd[new_sim.argmax(dim=0), torch.arange(n)] = 1.0
        new_inter = fwd * mask_zeros * bwd * mask_zeros
        if torch.equal(inter + new_inter, inter):
            break
        inter = inter + new_inter
        count += 1
    return inter > 0


class SimAligner:
    """SimAlign word aligner (Jalili Sabet et al., 2020) over any :class:`Encoder`.

    ``align(src, tgt)`` encodes both sentences, computes SimAlign's similarity ``(cos + 1) / 2`` between
    every source and target (sub)word vector and keeps

    * ``"argmax"``: the pairs that are each other's best match (forward ∩ backward argmax);
    * ``"itermax"``: argmax plus up to ``itermax_count - 1`` further rounds of mutual argmax among the
      still-unaligned words, where a candidate pair with one side already aligned is discounted by
      ``itermax_alpha`` (the paper's setting and the reference code: ``alpha = 0.9``, ``max_count = 2``,
      i.e. one extra round; plain argmax when a sentence has at most 2 (sub)words).

    With ``subword_level=True`` (the paper's default, "BPE level") the matrix is over subwords and two
    words are aligned when any of their subwords are; with ``subword_level=False`` each word's subword
    vectors are averaged first. Ties go to the first index, so results are deterministic.

    Args:
        encoder: an :class:`Encoder` (e.g. :class:`HFEncoder`).
        method: ``"argmax"`` or ``"itermax"``.
        subword_level: align subwords (True) or averaged word vectors (False).
        itermax_alpha: weight of a pair with one side already aligned (itermax only), in ``(0, 1]``; as in
            the reference code a pair with both sides unaligned gets ``min(1, 2 * alpha)``, so values
            ``<= 0.5`` discount those too.
        itermax_count: rounds of itermax including the first argmax (``>= 1``).
        cache_size: number of recent ``align`` results kept (the pipeline projects the subject and the
            target of one sentence pair); 0 disables the cache.
    """

    METHODS = ("argmax", "itermax")

    def __init__(
        self,
        encoder: Encoder,
        method: Literal["argmax", "itermax"] = "argmax",
        subword_level: bool = True,
        *,
        itermax_alpha: float = 0.9,
        itermax_count: int = 2,
        cache_size: int = 128,
    ):
        if not isinstance(encoder, Encoder):
            raise TypeError(f"SimAligner: encoder must have encode(words) and fingerprint(), got {type(encoder).__name__}")
        if method not in self.METHODS:
            raise ValueError(f"SimAligner: method must be one of {self.METHODS}, got {method!r}")
        if not isinstance(subword_level, bool):
            raise TypeError(f"SimAligner: subword_level must be a bool, got {type(subword_level).__name__}")
        if isinstance(itermax_alpha, bool) or not isinstance(itermax_alpha, (int, float)) or not 0.0 < itermax_alpha <= 1.0:
            raise ValueError(f"SimAligner: itermax_alpha must be a float in (0, 1], got {itermax_alpha!r}")
        if isinstance(itermax_count, bool) or not isinstance(itermax_count, int) or itermax_count < 1:
            raise ValueError(f"SimAligner: itermax_count must be an int >= 1, got {itermax_count!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"SimAligner: cache_size must be an int >= 0, got {cache_size!r}")
        self.encoder = encoder
        self.method = method
        self.subword_level = subword_level
        self.itermax_alpha = float(itermax_alpha)
        self.itermax_count = itermax_count
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], frozenset[tuple[int, int]]] = OrderedDict()

    def _vectors(self, words: list[str], arg: str) -> tuple[torch.Tensor, list[int]]:
        """Stacked vectors of ``words`` and the word index of each row."""
        vecs = self.encoder.encode(words)
        if len(vecs) != len(words):
            raise RuntimeError(f"SimAligner: the encoder returned {len(vecs)} tensors for the {len(words)} words of {arg}")
        for i, v in enumerate(vecs):
            if not isinstance(v, torch.Tensor) or v.ndim != 2 or v.shape[0] < 1:
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise RuntimeError(f"SimAligner: the encoder returned {shape} for {arg}[{i}]={words[i]!r}; expected [n >= 1, d]")
        vecs = [v.detach().to("cpu", torch.float64) for v in vecs]
        if self.subword_level:
            owners = [i for i, v in enumerate(vecs) for _ in range(v.shape[0])]
            return torch.cat(vecs, dim=0), owners
        return torch.stack([v.mean(dim=0) for v in vecs]), list(range(len(vecs)))

    def align(self, src: Sequence[str], tgt: Sequence[str]) -> set[tuple[int, int]]:
        """Aligned word pairs ``(i, j)``: ``src[i]`` is aligned to ``tgt[j]``. Empty if either side is empty.

        Raises:
            TypeError / ValueError: ``src`` or ``tgt`` is a bare string or holds a non-string or empty word.
            RuntimeError: the encoder returned a wrong number or shape of tensors.
        """
        src = _check_words(src, "src", "SimAligner.align")
        tgt = _check_words(tgt, "tgt", "SimAligner.align")
        if not src or not tgt:
            return set()
        key = (tuple(src), tuple(tgt))
        if key in self._cache:
            self._cache.move_to_end(key)
            return set(self._cache[key])
        xs, own_s = self._vectors(src, "src")
        xt, own_t = self._vectors(tgt, "tgt")
        if xs.shape[1] != xt.shape[1]:
            raise RuntimeError(f"SimAligner: src vectors are {xs.shape[1]} wide but tgt vectors {xt.shape[1]}")
        sim = _similarity(xs, xt)
        if self.method == "argmax":
            cells = _mutual_argmax(sim)
        else:
            cells = _itermax(sim, self.itermax_alpha, self.itermax_count)
        pairs = {(own_s[a], own_t[b]) for a, b in cells.nonzero().tolist()}
        if self.cache_size:
            self._cache[key] = frozenset(pairs)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return pairs

    def project_span(self, src_text: str, tgt_text: str, src_span: tuple[int, int]) -> tuple[int, int] | None:
        """The character span of ``tgt_text`` aligned to the characters ``src_span`` of ``src_text``.

        Both texts are split with :func:`split_words`; the source words overlapping ``src_span`` are
        aligned with :meth:`align`; the result runs from the first to the last target word aligned to any
        of them, ignoring target punctuation (so the span may include unaligned words in between).
        Returns ``None`` when no (non-punctuation) target word is aligned to them.

        Raises:
            TypeError: ``src_text`` or ``tgt_text`` is not a string.
            ValueError: ``src_span`` is not ``(start, end)`` with ``0 <= start < end <= len(src_text)``,
                or it covers no word of ``src_text``.
        """
        for arg, val in (("src_text", src_text), ("tgt_text", tgt_text)):
            if not isinstance(val, str):
                raise TypeError(f"SimAligner.project_span: {arg} must be a str, got {type(val).__name__}")
        try:
            start, end = src_span
            ok = all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)) and 0 <= start < end <= len(src_text)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"SimAligner.project_span: src_span must be (start, end) with 0 <= start < end <= {len(src_text)}, got {src_span!r}"
            )
        src_words = split_words(src_text)
        chosen = {i for i, w in enumerate(src_words) if w.start < end and w.end > start}
        if not chosen:
            raise ValueError(f"SimAligner.project_span: src_span={src_span!r} covers no word of src_text ({src_text[start:end]!r})")
        tgt_words = split_words(tgt_text)
        if not tgt_words:
            return None
        pairs = self.align([w.text for w in src_words], [w.text for w in tgt_words])
        hits = sorted({j for i, j in pairs if i in chosen and not _is_punct(tgt_words[j].text)})
        if not hits:
            return None
        return tgt_words[hits[0]].start, tgt_words[hits[-1]].end

    def fingerprint(self) -> str:
        """Algorithm version, method, level (and itermax settings) and the encoder's fingerprint."""
        level = "subword" if self.subword_level else "word"
        method = self.method
        if method == "itermax":
            method += f"(alpha={self.itermax_alpha:g},count={self.itermax_count})"
        return f"simalign-v{ALIGN_VERSION}:{method}:{level}:{self.encoder.fingerprint()}"

    def __repr__(self) -> str:
        return f"SimAligner({self.encoder!r}, method={self.method!r}, subword_level={self.subword_level})"


# --------------------------------------------------------------------------------------------------
# configuration strings
# --------------------------------------------------------------------------------------------------

_SPEC_FORMS = (
    "'none' (no aligner), "
    "'simalign' (hidden states of the loaded model, middle layer; needs lm), "
    "'simalign@<layer>' (same, given layer), "
    "'simalign:<model dir or Hugging Face id>' (a separate encoder, middle layer), "
    "'simalign:<model dir or Hugging Face id>@<layer>'"
)
_LAYER_RE = re.compile(r"^(.*)@(-?\d+)$")


def aligner_from_spec(spec: str, lm: "LoadedLM | None" = None, *, method: Literal["argmax", "itermax"] = "itermax") -> SimAligner | None:
    """Build the aligner named by a configuration string (e.g. the builder's ``aligner`` option).

    Accepted forms: ``"none"`` -> ``None``; ``"simalign"`` -> ``SimAligner(HFEncoder.from_loaded(lm))``;
    ``"simalign@<layer>"`` -> the same at that layer; ``"simalign:<model>"`` and
    ``"simalign:<model>@<layer>"`` -> ``SimAligner(HFEncoder.from_pretrained(<model>, layer))`` where
    ``<model>`` is a local directory or a Hugging Face id. ``method`` is passed to :class:`SimAligner`. Default ``itermax``: on 16
    hand-made English-Catalan pairs, with the embedded model at its middle layer, it located 32 of 34
    entities exactly, against 30 for ``argmax`` (which misses reordered two-word names).

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: an unknown form (the message lists the accepted ones), or ``"simalign"`` /
            ``"simalign@<layer>"`` without ``lm``.
    """
    if not isinstance(spec, str):
        raise TypeError(f"aligner_from_spec: spec must be a str, got {type(spec).__name__}")
    s = spec.strip()
    low = s.lower()
    if low == "none":
        return None
    if low == "simalign" or (low.startswith("simalign@") and _LAYER_RE.match(s)):
        layer = None
        if "@" in s:
            layer = int(s.split("@", 1)[1])
        if lm is None:
            raise ValueError(
                f"aligner_from_spec: aligner spec {spec!r} aligns with the hidden states of the loaded model, "
                "but lm is None: pass lm=<memat.models.LoadedModel>, or use 'simalign:<model dir or HF id>'"
            )
        return SimAligner(HFEncoder.from_loaded(lm, layer=layer), method=method)
    if low.startswith("simalign:"):
        target = s[len("simalign:"):].strip()
        layer = None
        m = _LAYER_RE.match(target)
        if m:
            target, layer = m.group(1).strip(), int(m.group(2))
        if not target:
            raise ValueError(f"aligner_from_spec: aligner spec {spec!r} names no model; accepted forms: {_SPEC_FORMS}")
        return SimAligner(HFEncoder.from_pretrained(target, layer=layer), method=method)
    raise ValueError(f"aligner_from_spec: unknown aligner spec {spec!r}; accepted forms: {_SPEC_FORMS}")
