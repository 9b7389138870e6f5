"""Offline tiny models and a word-level tokenizer for the test-suite (no model hub, no downloads).

Import from any test (``tests/conftest.py`` puts this directory on ``sys.path``)::

    from tiny_models import FAMILIES, make_tokenizer, make_tiny_model

    lm = make_tiny_model("llama")                 # LoadedModel, tokenizer from make_tokenizer()
    lm = make_tiny_model("gpt2", seed=3, n_layer=2)  # config overrides are passed through
    batch = lm.tokenizer(["The capital of France is"], return_tensors="pt")

Every family of :data:`memat.models.ARCHITECTURES` has a recipe in :data:`TINY_CONFIGS` (hidden size 32,
4 layers, 4 heads, grouped / multi-query KV heads where the family has them, float32, eval mode, eager
attention). ``make_tiny_model`` returns a *fresh* model each call, so a test may edit its weights freely.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from memat.models import ARCHITECTURES, LoadedModel, wrap_model

__all__ = [
    "FAMILIES",
    "SPECIAL_TOKENS",
    "TINY_CONFIGS",
    "VOCAB_WORDS",
    "make_config",
    "make_tiny_model",
    "make_tokenizer",
]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0, 1, 2, 3

_ENGLISH = """
the a an of in on at to from by with for and or but not is are was were be been being has have had do does
did will would can could should may might must it its this that these those there here he she they we you i
him her them us his their our your my who whom whose which what when where why how all any some no one two
three four five six seven eight nine ten first second third last new old big small good bad great long short
high low early late young other same own only also very just more most less many much few such than then
now up down out over under after before between into through during about against city country capital
language languages speaks speak spoken born died lives lived works worked work plays played play located
situated native mother tongue official president prime minister king queen leader head member founded
created developed produced owned manufactured headquarters company team club sport football basketball
music musician singer actor writer author painter scientist religion church university school studied
profession occupation position job citizen citizenship nationality continent part river mountain sea ocean
island capital name named called known famous instrument genre label record network broadcast television
radio show series film book album song game product brand car phone computer software year years day days
week month time people man woman men women child children family father son daughter brother sister wife
husband world state states nation government law war peace history house home
France Paris Spain Madrid Italy Rome Germany Berlin England London Britain Portugal Lisbon Catalonia
Barcelona Girona Lleida Tarragona Valencia Andorra Europe Asia Africa America Japan Tokyo China Beijing
Russia Moscow Canada Ottawa Toronto India Delhi Brazil Mexico Egypt Cairo Greece Athens Poland Warsaw
Sweden Stockholm Norway Oslo Ireland Dublin Austria Vienna Belgium Brussels Netherlands Amsterdam
English French Spanish Catalan Italian German Portuguese Russian Japanese Chinese Latin Arabic Dutch Greek
Microsoft Apple Google Nokia Toyota Honda Sony BMW Fiat Renault IBM Intel Danielle Darrieux Michael Jordan
Lionel Messi Pablo Picasso Salvador Dali Joan Miro Antoni Gaudi Miles Davis Beatles Shakespeare Einstein
Christianity Islam Buddhism Judaism jazz rock pop opera piano guitar violin trumpet
The A An In On At It He She They We You This That There What Who Where When Which How His Her Their Its
"""

_CATALAN = """
el la els les un una uns unes de del dels a al als en amb per i o però no és són era eren ser estat ha han
havia té tenen fa que qui què quan on com tot tots tota totes aquest aquesta aquests aquestes aquell aquella
seu seva seus seves meu meva nostre nostra ciutat país capital llengua idioma parla parlen parlat nascut
nascuda va néixer morir mort viu viuen treballa treballava juga jugava situat situada oficial president
rei reina membre fundat fundada creat creada empresa equip club esport futbol música músic cantant actor
actriu escriptor pintor científic religió església universitat escola professió ciutadania nacionalitat
continent riu muntanya mar illa nom anomenat anomenada conegut coneguda famós famosa instrument gènere
any anys dia dies setmana mes temps gent home dona homes dones fill filla pare mare germà germana món estat
nació govern llei guerra pau història casa també molt més menys primer primera segon segona últim nou
vell gran petit petita bo bona dolent l d s n
La El Els Les Un Una Va Aquest Aquesta Quin Quina Qui On Com És
França París Espanya Itàlia Roma Alemanya Berlín Anglaterra Londres Portugal Lisboa Catalunya Barcelona
València Andorra Europa Àsia Àfrica Amèrica Japó Tòquio Xina Pequín Rússia Moscou Grècia Atenes
anglès francès castellà català italià alemany portuguès rus japonès xinès llatí àrab
"""

_DIGITS_PUNCT = list("0123456789") + list(".,;:!?'\"()[]-/%&") + ["..."]

VOCAB_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(w for w in (_ENGLISH.split() + _CATALAN.split() + _DIGITS_PUNCT) if w not in SPECIAL_TOKENS)
)


def make_tokenizer(extra_words: Iterable[str] = ()):
    """A deterministic offline word-level ``PreTrainedTokenizerFast``.

    Vocabulary: ``<pad> <bos> <eos> <unk>`` (ids 0-3), then a few hundred English and Catalan words,
    digits and punctuation, then ``extra_words`` (in order; duplicates ignored). The ``Whitespace``
    pre-tokenizer splits words from punctuation and drops spaces, so ``" Paris"`` and ``"Paris"`` give
    the same id; ``<bos>`` is prepended when ``add_special_tokens=True``; unknown words map to ``<unk>``;
    padding is on the right with ``<pad>``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys([*SPECIAL_TOKENS, *VOCAB_WORDS, *extra_words]))
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    # no decoder: decode(ids) joins the words with single spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    return fast


# --------------------------------------------------------------------------------------------------
# tiny configs, one per family of ARCHITECTURES
# --------------------------------------------------------------------------------------------------

_H, _L, _NH, _FF = 32, 4, 4, 64  # hidden, layers, heads, MLP width
_POS = 128
_INIT = 0.1  # larger than the usual 0.02, so every hand-computed check compares numbers well above rounding


def _special_ids(tok) -> dict:
    return dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def _llama(v, ids):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                       num_key_value_heads=2, max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _mistral(v, ids):
    from transformers import MistralConfig

    return MistralConfig(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                         num_key_value_heads=2, max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _qwen2(v, ids):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                       num_key_value_heads=2, max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _qwen3(v, ids):
    from transformers import Qwen3Config

    # head_dim != hidden / heads: the attention-output input is n_heads * head_dim = 64 wide, not 32
    return Qwen3Config(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                       num_key_value_heads=2, head_dim=16, max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _gemma(v, ids):
    from transformers import GemmaConfig

    return GemmaConfig(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                       num_key_value_heads=1, head_dim=16, max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _gemma2(v, ids):
    from transformers import Gemma2Config

    # a small final soft-cap so that forgetting it in LoadedModel.logits changes the logits visibly
    return Gemma2Config(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                        num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=4,
                        final_logit_softcapping=2.0, attn_logit_softcapping=50.0,
                        max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _gemma3_text_config(v, ids):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(vocab_size=v, hidden_size=_H, intermediate_size=_FF, num_hidden_layers=_L, num_attention_heads=_NH,
                            num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, sliding_window=4,
                            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                            max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _gemma3(v, ids):
    """Gemma 3 multimodal (Gemma3ForConditionalGeneration) with a 1-layer 16x16-pixel SigLIP tower."""
    from transformers import Gemma3Config, SiglipVisionConfig

    text = _gemma3_text_config(v, ids)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=16, patch_size=4, num_channels=3)
    # image special tokens must be valid ids; the test vocabulary's last ids are never produced by text prompts
    return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                        boi_token_index=v - 3, eoi_token_index=v - 2, image_token_index=v - 1, initializer_range=_INIT)


def _falcon(v, ids):
    from transformers import FalconConfig

    # Falcon-7B / Aguila-7B layout: parallel attention+MLP, one shared KV head (multi-query), no biases
    return FalconConfig(vocab_size=v, hidden_size=_H, num_hidden_layers=_L, num_attention_heads=_NH,
                        multi_query=True, new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=False,
                        max_position_embeddings=_POS, initializer_range=_INIT, **ids)


def _gpt2(v, ids):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=v, n_embd=_H, n_layer=_L, n_head=_NH, n_inner=_FF, n_positions=_POS,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
                      initializer_range=_INIT, **ids)


def _gptj(v, ids):
    from transformers import GPTJConfig

    return GPTJConfig(vocab_size=v, n_embd=_H, n_layer=_L, n_head=_NH, n_inner=_FF, rotary_dim=4, n_positions=_POS,
                      initializer_range=_INIT, **ids)


def _gpt_neox(v, ids):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(vocab_size=v, hidden_size=_H, num_hidden_layers=_L, num_attention_heads=_NH, intermediate_size=_FF,
                         max_position_embeddings=_POS, initializer_range=_INIT, **ids)


TINY_CONFIGS: dict[str, Callable] = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3_text": _gemma3_text_config,
    "gemma3": _gemma3,
    "falcon": _falcon,
    "gpt2": _gpt2,
    "gptj": _gptj,
    "gpt_neox": _gpt_neox,
}

#: every family of the architecture table that has a tiny recipe (all of them; see the assert below)
FAMILIES: list[str] = [f for f in ARCHITECTURES if f in TINY_CONFIGS]
assert set(FAMILIES) == set(ARCHITECTURES), f"no tiny config for {set(ARCHITECTURES) - set(TINY_CONFIGS)}"


def _model_class(family: str):
    if family == "gemma3":
        from transformers import Gemma3ForConditionalGeneration

        return Gemma3ForConditionalGeneration
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM


def make_config(family: str, vocab_size: int | None = None, tokenizer=None, **overrides):
    """The tiny config of ``family``; ``overrides`` are set as config attributes (on the text config for gemma3)."""
    if family not in TINY_CONFIGS:
        raise KeyError(f"no tiny config for {family!r}; known: {sorted(TINY_CONFIGS)}")
    tok = tokenizer if tokenizer is not None else make_tokenizer()
    v = len(tok) if vocab_size is None else int(vocab_size)
    if v < len(tok):
        raise ValueError(f"vocab_size={v} is smaller than the tokenizer ({len(tok)} tokens)")
    config = TINY_CONFIGS[family](v, _special_ids(tok))
    target = config.get_text_config() if family == "gemma3" else config
    for k, val in overrides.items():
        if not hasattr(target, k):
            raise AttributeError(f"{type(target).__name__} has no attribute {k!r}")
        setattr(target, k, val)
    return config


def make_tiny_model(family: str, vocab_size: int | None = None, seed: int = 0, tokenizer=None, **overrides) -> LoadedModel:
    """A fresh, randomly initialised tiny causal LM of ``family`` wrapped as a :class:`LoadedModel`.

    Args:
        family: a key of ``memat.models.ARCHITECTURES`` (see :data:`FAMILIES`).
        vocab_size: embedding rows (default: the tokenizer's size; must be >= it).
        seed: weights are a deterministic function of (family, vocab_size, seed, overrides); the global
            torch RNG state is left untouched.
        tokenizer: default :func:`make_tokenizer()`.
        overrides: config attributes to change (e.g. ``num_hidden_layers=2``, ``final_logit_softcapping=None``).

    Weights are float32, the model is in eval mode with eager attention, every parameter has
    ``requires_grad=False`` (as ``load_model`` leaves them). All 1-D parameters (norm scales, biases) get
    extra noise, so a forgotten bias or norm scale in a hand computation is caught.
    """
    tok = tokenizer if tokenizer is not None else make_tokenizer()
    config = make_config(family, vocab_size, tok, **overrides)
    cls = _model_class(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cls.__name__ == "AutoModelForCausalLM":
            model = cls.from_config(config, attn_implementation="eager", dtype=torch.float32)
        else:
            model = cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.ndim == 1:
                    p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return wrap_model(model, tok, name=family)
