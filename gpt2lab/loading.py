"""Loading a causal language model and its tokenizer into one ready-to-use object.

``load(name)`` accepts:
  * the name of a model embedded in this package (``"shakespeare-gpt2"``, alias ``"embedded"``),
  * a local directory holding a saved model (``save_pretrained`` layout, safetensors weights),
  * a Hugging Face Hub id (``"gpt2"``, ``"gpt2-medium"``, ``"gpt2-large"``, ``"gpt2-xl"``,
    ``"distilgpt2"`` or any other causal LM).

``load_default()`` is what the notebooks call: ``$GPT2LAB_MODEL`` if set, else ``gpt2``, falling back
to the embedded model within a few seconds when the Hub cannot be reached.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import socket
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gpt2lab.device import DType, describe, pick_device, pick_dtype

__all__ = ["EMBEDDED_DIR", "EMBEDDED_DEFAULT", "EMBEDDED_ALIASES", "HUB_GPT2_FAMILY", "DEFAULT_MODEL",
           "ENV_MODEL", "HUB_PROBE_TIMEOUT_S", "ModelNotFoundError", "LM", "embedded_models",
           "embedded_path", "hub_reachable", "load", "load_default", "from_model", "dtype_keyword"]

EMBEDDED_DIR = Path(__file__).parent / "embedded"
EMBEDDED_DEFAULT = "shakespeare-gpt2"
EMBEDDED_ALIASES = {"embedded": EMBEDDED_DEFAULT}
HUB_GPT2_FAMILY = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")
DEFAULT_MODEL = "gpt2"
ENV_MODEL = "GPT2LAB_MODEL"
HUB_PROBE_TIMEOUT_S = 3.0


def _call(module: str, function: str, *args, **kwargs):
    """Call ``module.function`` (imported on first use, so loading a model stays light)."""
    return getattr(importlib.import_module(module), function)(*args, **kwargs)


class ModelNotFoundError(LookupError):
    """Raised when a model name matches no embedded model, local directory or reachable Hub repo."""


@dataclass
class LM:
    """A causal language model, its tokenizer and where it runs.

    Everything in gpt2lab takes one of these. ``model`` is in eval mode; the tokenizer has a pad
    token (GPT-2 has none of its own, so the end-of-text token is reused, as is usual).
    """

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    name: str
    source: str = "local"  # "embedded", "local", "hub" or "memory"
    info: dict = field(default_factory=dict)

    @property
    def config(self):
        return self.model.config

    @property
    def context_length(self) -> int:
        """How many tokens the model can attend over (1024 for GPT-2)."""
        cfg = self.model.config
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self.tokenizer, "model_max_length", 1024))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` as a (1, T) tensor on the model's device."""
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        return ids.to(self.device)

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode(ids)

    @contextlib.contextmanager
    def eager_attention(self):
        """Temporarily switch to the eager attention kernel so attention weights can be returned.

        Plain generation keeps the faster SDPA kernel; under SDPA transformers 5 returns no
        attention weights, so anything that needs them runs inside this block.
        """
        previous = getattr(self.model.config, "_attn_implementation", None)
        if previous == "eager" or not hasattr(self.model, "set_attn_implementation"):
            yield self
            return
        self.model.set_attn_implementation("eager")
        try:
            yield self
        finally:
            self.model.set_attn_implementation(previous)

    # ------------------------------------------------------------------ what the package can do with it
    # Each method is a one-line delegation to the function named in its docstring (tab completion in
    # Jupyter shows them all); the function is the one implementation and documents shapes and errors.

    def generate(self, prompt_or_prompts=None, **kwargs):
        """``gpt2lab.generate(lm, ...)``: validated, batched, seeded text generation (``Generations``)."""
        return _call("gpt2lab.generation.pipeline", "generate", self, prompt_or_prompts, **kwargs)

    def decode_from_scratch(self, prompt_or_prompts=None, **kwargs):
        """``gpt2lab.generation.decoding.generate(lm, ...)``: the course's own decoders, same parameters."""
        return _call("gpt2lab.generation.decoding", "generate", self, prompt_or_prompts, **kwargs)

    def next_token_distribution(self, prompt: str, **settings):
        """``gpt2lab.generation.decoding.next_token_distribution``: the next-token distribution after each
        logit transform."""
        return _call("gpt2lab.generation.decoding", "next_token_distribution", self, prompt, **settings)

    def score(self, text: str, **kwargs):
        """``gpt2lab.score_text(lm, text)``: NLL, perplexity and bits/char with a sliding window."""
        return _call("gpt2lab.basics.evaluation", "score_text", self, text, **kwargs)

    def perplexity(self, text: str, **kwargs) -> float:
        """``gpt2lab.perplexity(lm, text)``: exp of the mean NLL per token."""
        return _call("gpt2lab.basics.evaluation", "perplexity", self, text, **kwargs)

    def capture_attention(self, text, **kwargs):
        """``gpt2lab.capture_attention(lm, text)``: every head's attention weights (``AttentionCapture``)."""
        return _call("gpt2lab.attention.capture", "capture_attention", self, text, **kwargs)

    def head_stats(self, text: str, **kwargs):
        """``gpt2lab.head_stats(lm, text)``: entropy, first-token, previous-token and induction scores."""
        return _call("gpt2lab.attention.heads", "head_stats", self, text, **kwargs)

    def logit_lens(self, text, **kwargs):
        """``gpt2lab.interpret.logit_lens(lm, text)``: every layer's residual stream read as logits
        (nostalgebraist 2020)."""
        return _call("gpt2lab.interpret.lens", "logit_lens", self, text, **kwargs)

    def direct_logit_attribution(self, text, target, **kwargs):
        """``gpt2lab.interpret.direct_logit_attribution(lm, text, target)``: each component's direct share of
        the target's logit."""
        return _call("gpt2lab.interpret.attribution", "direct_logit_attribution", self, text, target, **kwargs)

    def activation_patching(self, clean, corrupt, target, **kwargs):
        """``gpt2lab.interpret.activation_patching(lm, clean, corrupt, target)``: how much of the clean answer
        each patched position and head restores."""
        return _call("gpt2lab.interpret.patching", "activation_patching", self, clean, corrupt, target, **kwargs)

    def word_importance(self, text_or_texts, **kwargs):
        """``gpt2lab.word_importance(lm, text)``: perturbation-based word importance (Guan et al. 2019)."""
        return _call("gpt2lab.explain.importance", "word_importance", self, text_or_texts, **kwargs)

    def compare_attributions(self, text, **kwargs):
        """``gpt2lab.compare_attributions(lm, text)``: word scores of several attribution methods."""
        return _call("gpt2lab.explain.attribution", "compare_attributions", self, text, **kwargs)

    def finetune(self, data, **kwargs):
        """``gpt2lab.finetune(data, model=lm)``: fine-tune this model on your text (``FinetuneResult``)."""
        return _call("gpt2lab.training.finetuning", "finetune", data, self, **kwargs)

    def serve(self, **kwargs):
        """``gpt2lab.serve_in_background(lm)``: the HTTP endpoint in a background thread."""
        return _call("gpt2lab.serving.server", "serve_in_background", self, **kwargs)

    def __repr__(self) -> str:
        return (f"LM(name={self.name!r}, source={self.source!r}, params={self.n_params / 1e6:.1f}M, "
                f"device={describe(self.device)}, dtype={str(self.dtype).replace('torch.', '')})")


def embedded_models() -> list[str]:
    """Names of the models shipped inside the package."""
    if not EMBEDDED_DIR.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_DIR.iterdir() if (p / "config.json").is_file())


def embedded_path(name: str = EMBEDDED_DEFAULT) -> Path:
    """The folder of an embedded model (name or alias). Raises :class:`ModelNotFoundError` naming the embedded
    models when there is no such model."""
    name = EMBEDDED_ALIASES.get(name, name)
    path = EMBEDDED_DIR / name
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"no embedded model named {name!r}; embedded models: {embedded_models()}")
    return path


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when the Hugging Face Hub answers a TCP connection within ``timeout`` seconds.

    transformers itself retries for about 50 s before giving up offline; this probe decides in a
    few seconds. ``HF_HUB_OFFLINE=1`` means "do not even try".
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urllib.parse.urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # name resolution is not covered by the socket timeout, so the whole probe runs in a thread
    # that is abandoned if it has not answered in time
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def _finish(model, tokenizer, device, name, source, dtype) -> LM:
    if tokenizer.pad_token is None:
        # GPT-2 has no padding token; reusing end-of-text is the usual choice and is masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device=device, dtype=dtype)
    model.eval()
    return LM(model=model, tokenizer=tokenizer, device=device, name=name, source=source)


def dtype_keyword(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The keyword under which the installed transformers' ``from_pretrained`` takes the weights' dtype:
    ``{"dtype": dtype}`` from transformers 4.56 on (huggingface/transformers#39782 renamed it; the old name
    prints a deprecation warning there), ``{"torch_dtype": dtype}`` before (4.45 hands an unknown ``dtype``
    to the model's constructor, which raises TypeError)."""
    import transformers

    release = tuple(int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if release >= (4, 56) else {"torch_dtype": dtype}


def _load_pretrained(where: str | Path, *, device, dtype, attn_implementation, trust_remote_code,
                     local_files_only: bool, revision: str | None = None):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    common = dict(trust_remote_code=trust_remote_code, local_files_only=local_files_only)
    if revision is not None:
        common["revision"] = revision
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(where, **common)
    n_params = _estimate_params(config)
    torch_dtype = pick_dtype(dtype, device, n_params)
    # transformers 5 draws a "Loading weights" bar for every load, even of a 3M model; hide it
    # (Hub downloads keep their own progress bars).
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where, config=config, **dtype_keyword(torch_dtype), use_safetensors=True,
            attn_implementation=attn_implementation, **common)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(where, **common)
    return model, tokenizer, torch_dtype


def _estimate_params(config) -> int | None:
    d = getattr(config, "n_embd", None) or getattr(config, "hidden_size", None)
    layers = getattr(config, "n_layer", None) or getattr(config, "num_hidden_layers", None)
    vocab = getattr(config, "vocab_size", None)
    if not (d and layers and vocab):
        return None
    return 12 * layers * d * d + vocab * d


def load(name: str | os.PathLike | None = None, device: str | torch.device = "auto",
         dtype: DType | torch.dtype = "auto", *, attn_implementation: str | None = None,
         trust_remote_code: bool = False, revision: str | None = None, fallback: bool | None = None,
         verbose: bool = True) -> LM:
    """Load a causal LM by name and return an :class:`LM` ready for generation.

    name: embedded model name, local directory or Hub id; ``None`` means the course default
        (``$GPT2LAB_MODEL`` or ``gpt2`` with fallback to the embedded model).
    device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    dtype: "auto" (float32, or bfloat16 for >1B-parameter models on CUDA), "float32", "float16",
        "bfloat16" or a torch.dtype.
    attn_implementation: None keeps transformers' default (SDPA where supported); "eager" when you
        want attention weights on every call (``LM.eager_attention()`` switches temporarily).
    trust_remote_code: run model code from the Hub repo. Off by default; only turn it on for repos
        you trust. Weights are only ever read from safetensors files (no pickle).
    fallback: when the Hub cannot be reached, load the embedded model instead (default: only when
        ``name`` is None, i.e. the course default).
    """
    if fallback is None:
        fallback = name is None
    if name is None:
        name = os.environ.get(ENV_MODEL) or DEFAULT_MODEL
    name = os.fspath(name)
    torch_device = pick_device(device)

    # 1. a model shipped in this package
    embedded_name = EMBEDDED_ALIASES.get(name, name)
    if embedded_name in embedded_models():
        return _load_local(embedded_path(embedded_name), embedded_name, "embedded", torch_device, dtype,
                           attn_implementation, verbose)
    # 2. a directory on disk
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{str(path)!r} is a directory but holds no config.json, so it is not a "
                                     "saved model (expected the layout written by save_pretrained)")
        return _load_local(path, path.name, "local", torch_device, dtype, attn_implementation, verbose,
                           trust_remote_code)
    if _looks_like_path(name):
        raise ModelNotFoundError(f"no directory {name!r}; {_available_message()}")
    # 3. a Hub id: the local Hugging Face cache first (no network), then the Hub itself
    try:
        model, tok, torch_dtype = _load_pretrained(name, device=torch_device, dtype=dtype,
                                                   attn_implementation=attn_implementation,
                                                   trust_remote_code=trust_remote_code,
                                                   local_files_only=True, revision=revision)
        return _announce(_finish(model, tok, torch_device, name, "hub", torch_dtype), verbose)
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        if fallback and embedded_models():
            lm = _load_local(embedded_path(EMBEDDED_DEFAULT), EMBEDDED_DEFAULT, "embedded", torch_device, dtype,
                             attn_implementation, verbose=False)
            lm.info["requested"] = name
            if verbose:
                print(f"gpt2lab: the Hugging Face Hub is unreachable, so {name!r} could not be loaded; "
                      f"using the embedded model {lm.name!r} instead ({lm.n_params / 1e6:.1f}M params, "
                      f"{describe(torch_device)}).", file=sys.stderr, flush=True)
            return lm
        raise ModelNotFoundError(
            f"{name!r} is not an embedded model or a local directory, and the Hugging Face Hub is unreachable "
            f"(not in the local cache either). {_available_message()}")
    try:
        model, tok, torch_dtype = _load_pretrained(name, device=torch_device, dtype=dtype,
                                                   attn_implementation=attn_implementation,
                                                   trust_remote_code=trust_remote_code,
                                                   local_files_only=False, revision=revision)
    except OSError as err:
        raise ModelNotFoundError(f"could not load {name!r} from the Hugging Face Hub ({err}). "
                                 f"{_available_message()}") from err
    return _announce(_finish(model, tok, torch_device, name, "hub", torch_dtype), verbose)


def load_default(device: str | torch.device = "auto", dtype: DType | torch.dtype = "auto", **kwargs) -> LM:
    """The course's model: ``$GPT2LAB_MODEL``, else ``gpt2``, else (offline) the embedded model."""
    return load(None, device=device, dtype=dtype, **kwargs)


def _load_local(path: Path, name: str, source: str, device, dtype, attn_implementation, verbose,
                trust_remote_code: bool = False) -> LM:
    if not any(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        raise ModelNotFoundError(
            f"{str(path)!r} holds no .safetensors weights{' (only ' + ', '.join(pickled) + ')' if pickled else ''}. "
            "gpt2lab never loads pickled weights, which can run arbitrary code; convert them once with "
            "model.save_pretrained(dir, safe_serialization=True) in an environment you trust.")
    model, tok, torch_dtype = _load_pretrained(path, device=device, dtype=dtype,
                                               attn_implementation=attn_implementation,
                                               trust_remote_code=trust_remote_code, local_files_only=True)
    lm = _finish(model, tok, device, name, source, torch_dtype)
    lm.info["path"] = str(path)
    return _announce(lm, verbose)


def _announce(lm: LM, verbose: bool) -> LM:
    if verbose:
        print(f"gpt2lab: loaded {lm.name!r} ({lm.source}, {lm.n_params / 1e6:.1f}M params) on "
              f"{describe(lm.device)}", file=sys.stderr, flush=True)
    return lm


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or name.count("/") > 1


def _available_message() -> str:
    return (f"Available: embedded models {embedded_models()}, a local directory saved with save_pretrained, "
            f"or a Hub id such as {', '.join(HUB_GPT2_FAMILY)} when the Hub is reachable.")


def from_model(model: torch.nn.Module, tokenizer, name: str = "in-memory",
               device: str | torch.device = "auto") -> LM:
    """Wrap a model and tokenizer you built yourself (e.g. a tiny random GPT2Config model)."""
    torch_device = pick_device(device)
    dtype = next(model.parameters()).dtype
    return _finish(model, tokenizer, torch_device, name, "memory", dtype)
