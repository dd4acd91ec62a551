"""Generating text: a thin, validated layer over ``model.generate``.

``generate(lm, "To be", mode="beam", num_beams=4)`` validates the parameters (see
:mod:`gpt2lab.generation.params`), encodes the prompts, left-pads them into one batch (so a list of prompts and
``num_return_sequences`` cost one batched ``model.generate`` call, not a loop), seeds the random
generator, and decodes the results.

It also offers gpt-2-simple's conveniences: ``prefix`` (another name for the prompt), ``truncate``,
``include_prefix``, ``nsamples`` / ``batch_size``, and :func:`generate_to_file`.

What you get back: for one prompt, a list of ``num_return_sequences`` strings (one for greedy); for a
list of prompts, one such list per prompt. Each text is the prompt followed by the continuation (unless
``include_prefix=False``), ending where the model produced its end-of-text token or after ``max_length``
tokens. The returned list also carries ``.params`` (with the seed actually used), ``.seed`` and
``.ignored`` (parameters the mode did not use).
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from gpt2lab import files
from gpt2lab.generation.params import (
    DecodingSettings,
    GenerationError,
    GenerationParams,
    InvalidParameterError,
    check_context,
)
from gpt2lab.tokens import left_pad

__all__ = ["warn_ignored", "SAMPLE_DELIM", "IgnoredParameterWarning", "Generations", "PreparedPrompts",
           "resolve_params", "prepare_prompts", "special_tokens", "seeded", "plan_calls",
           "transformers_call", "guarded", "completion_text", "run", "generate", "generate_to_file"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM

SAMPLE_DELIM = "=" * 20 + "\n"


class IgnoredParameterWarning(UserWarning):
    """A parameter was given that the chosen mode does not use."""


class Generations(list):
    """The generated texts (a plain list) plus how they were made.

    ``params``: the validated parameters, with the seed actually used; ``seed``; ``ignored``: parameters
    given that the mode does not use; ``dropped_prompt_tokens``: per prompt, how many of its oldest tokens
    ``fit_context`` dropped; ``model``: the model name.
    """

    params: GenerationParams
    seed: int | None
    ignored: list
    dropped_prompt_tokens: list
    model: str

    def record(self) -> dict:
        """A JSON-ready description: texts, parameters, seed, model."""
        return {"model": self.model, "seed": self.seed, "ignored": self.ignored,
                "dropped_prompt_tokens": self.dropped_prompt_tokens, "params": self.params.public_dict(),
                "output": list(self)}


@dataclass
class PreparedPrompts:
    """Prompts ready for the model: token ids (after any left truncation) and what was dropped."""

    texts: list[str]
    token_ids: list[list[int]]
    dropped: list[int]


def resolve_params(prompt_or_prompts=None, params: GenerationParams | None = None, **kwargs) -> GenerationParams:
    """One GenerationParams from a positional prompt, an existing params object and/or keyword arguments."""
    data = params.model_dump(exclude_unset=True) if params is not None else {}
    if kwargs:
        from gpt2lab.generation.params import canonicalize

        data.update(canonicalize(kwargs))
    if prompt_or_prompts is not None:
        if "input" in data and data["input"] != prompt_or_prompts:
            raise InvalidParameterError([{
                "field": "input", "value": data["input"],
                "message": "the prompt was given twice (positionally and as input/prefix) with different values; "
                           "give it once", "allowed": "one prompt"}])
        data["input"] = prompt_or_prompts
    if data.get("input") is None:
        raise InvalidParameterError([{
            "field": "input", "value": None,
            "message": "no prompt given; pass the prompt text (or a list of prompts) as input / prefix "
                       "(use '<|endoftext|>' to generate without a prompt)", "allowed": "a non-empty string"}])
    return GenerationParams.from_dict(data)


def prepare_prompts(lm: LM, params: GenerationParams) -> PreparedPrompts:
    """Encode the prompts and make sure prompt + max_length fits the model's context (or left-truncate)."""
    texts = params.prompts()
    # verbose=False: a prompt longer than the context is checked (or cut, with fit_context) below, so the
    # tokenizer's "will result in indexing errors" warning would be wrong
    token_ids = [lm.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] for text in texts]
    for text, ids in zip(texts, token_ids):
        if not ids:
            raise InvalidParameterError([{"field": "input", "value": text,
                                          "message": f"the prompt {text!r} encodes to no tokens",
                                          "allowed": "text that encodes to at least one token"}])
    overflow = check_context([len(ids) for ids in token_ids], params, lm.context_length)
    dropped = [0] * len(texts)
    if overflow:
        limit = lm.context_length - params.max_length
        dropped = [max(0, len(ids) - limit) for ids in token_ids]
        token_ids = [ids[len(ids) - limit:] if len(ids) > limit else ids for ids in token_ids]
    return PreparedPrompts(texts, token_ids, dropped)


def special_tokens(lm: LM) -> tuple[list[int], int]:
    """(end-of-text ids the model stops at, the padding id) as ``model.generate`` will use them."""
    config = getattr(lm.model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if config is not None else None
    if eos is None:
        eos = getattr(lm.model.config, "eos_token_id", None)
    eos_ids = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])
    pad = getattr(config, "pad_token_id", None) if config is not None else None
    if pad is None:
        pad = lm.tokenizer.pad_token_id
    if pad is None:
        pad = eos_ids[0] if eos_ids else 0
    return eos_ids, int(pad)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device):
    """Seed torch's generator for the block without disturbing the caller's random stream afterwards."""
    if seed is None:
        yield
        return
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        fork = torch.random.fork_rng(devices=[index], device_type="cuda")
    else:
        fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        yield


def plan_calls(n_prompts: int, settings: DecodingSettings, batch_size: int | None) -> list[tuple[list[int], int]]:
    """Split the work into batched calls: a list of (prompt indices, num_return_sequences per prompt).

    Everything goes into one call unless ``batch_size`` (texts per call) is smaller. Beam search keeps a
    prompt's beams together, so it splits by prompts; the other modes split texts freely by repeating
    prompts (the layout ``model.generate`` itself uses for num_return_sequences).
    """
    n = settings.num_return_sequences
    total = n_prompts * n
    if batch_size is None or batch_size >= total:
        return [(list(range(n_prompts)), n)]
    if settings.strategy == "beam":
        per_call = max(1, batch_size // n)
        return [(list(range(i, min(i + per_call, n_prompts))), n) for i in range(0, n_prompts, per_call)]
    rows = [p for p in range(n_prompts) for _ in range(n)]
    return [(rows[i:i + batch_size], 1) for i in range(0, total, batch_size)]


def transformers_call(lm: LM, input_ids, attention_mask, settings: DecodingSettings, n: int, pad_id: int):
    """One batched ``model.generate`` call with exactly these settings.

    transformers' repetition penalty and n-gram blocker read the left padding of a batch as if it were text
    (the padding is the end-of-text id, so a short prompt could never end). When the batch is padded, those
    two run as :func:`gpt2lab.generation.transforms.history_processors`, which skips each row's padding, so every
    prompt gets what it gets alone.
    """
    kwargs = settings.transformers_kwargs()
    kwargs["num_return_sequences"] = n
    padded = attention_mask is not None and not bool((attention_mask == 1).all())
    if padded and (settings.repetition_penalty != 1.0 or settings.no_repeat_ngram_size > 0):
        from gpt2lab.generation.transforms import history_processors

        rows_per_prompt = settings.num_beams if settings.strategy == "beam" else n
        kwargs["logits_processor"] = history_processors(attention_mask, rows_per_prompt, settings.repetition_penalty,
                                                        settings.no_repeat_ngram_size)
        kwargs.update(repetition_penalty=1.0, no_repeat_ngram_size=0)
    return lm.model.generate(input_ids=input_ids, attention_mask=attention_mask, pad_token_id=pad_id, **kwargs)


def completion_text(lm: LM, new_tokens: list[int], eos_ids: list[int], truncate: str | None) -> str:
    """Decode generated tokens, stopping at the first end-of-text token, then cut at ``truncate``."""
    for i, token in enumerate(new_tokens):
        if token in eos_ids:
            new_tokens = new_tokens[:i]
            break
    text = lm.tokenizer.decode(new_tokens)
    if truncate is not None:
        cut = text.find(truncate)
        if cut >= 0:
            text = text[:cut]
    return text


def run(lm: LM, params: GenerationParams, call: Callable, *, progress: bool = False) -> Generations:
    """Validate against the model, batch, call ``call`` per batch and decode. Shared by the transformers
    path (:func:`generate`) and the from-scratch decoders (:func:`gpt2lab.generation.decoding.generate`)."""
    prepared = prepare_prompts(lm, params)
    params = params.with_seed() if params.settings().strategy == "sample" else params
    settings = params.settings()
    eos_ids, pad_id = special_tokens(lm)
    plan = plan_calls(len(prepared.texts), settings, params.batch_size)
    per_prompt: list[list[str]] = [[] for _ in prepared.texts]
    with seeded(params.seed if settings.strategy == "sample" else None, lm.device), torch.no_grad():
        for prompt_rows, n in tqdm(plan, desc="generating", unit="batch", disable=not progress):
            input_ids, mask = left_pad([prepared.token_ids[p] for p in prompt_rows], pad_id, lm.device)
            sequences = guarded(call, lm, input_ids, mask, settings, n, pad_id)
            width = input_ids.shape[1]
            for row, tokens in enumerate(sequences[:, width:].tolist()):
                p = prompt_rows[row // n]
                completion = completion_text(lm, tokens, eos_ids, params.truncate)
                per_prompt[p].append(prepared.texts[p] + completion if params.include_prefix else completion)
    texts = per_prompt[0] if isinstance(params.input, str) else per_prompt
    out = Generations(texts)
    out.params = params
    out.seed = params.seed if settings.strategy == "sample" else None
    out.ignored = params.ignored()
    out.dropped_prompt_tokens = prepared.dropped
    out.model = lm.name
    return out


def guarded(call: Callable, lm: LM, input_ids, attention_mask, settings: DecodingSettings, n: int, pad_id: int):
    """Run one decoding call; a failure of the numbers or of memory becomes a :class:`GenerationError` (one
    clear line, a 422 over HTTP) instead of a torch traceback."""
    try:
        return call(lm, input_ids, attention_mask, settings, n, pad_id)
    except MemoryError as err:
        raise GenerationError(f"generation ran out of memory ({type(err).__name__}) for {input_ids.shape[0]} "
                              f"prompt row(s) x {n} text(s); ask for fewer texts at a time (num_return_sequences, "
                              "num_beams, batch_size) or a shorter max_length") from None
    except RuntimeError as err:
        if "out of memory" in str(err).lower():
            raise GenerationError(f"generation ran out of memory for {input_ids.shape[0]} prompt row(s) x {n} "
                                  "text(s); ask for fewer texts at a time (num_return_sequences, num_beams, "
                                  "batch_size) or a shorter max_length") from None
        if re.search(r"\b(inf|nan)\b", str(err)):  # torch.multinomial on a row with no drawable token
            raise GenerationError(
                "generation failed: no next token could be drawn (the scores became inf or nan"
                + (f"; no_repeat_ngram_size={settings.no_repeat_ngram_size} may have blocked every token"
                   if settings.no_repeat_ngram_size else "") + f"): {str(err).splitlines()[0]}") from None
        raise


def warn_ignored(params: GenerationParams) -> None:
    """Warn (:class:`IgnoredParameterWarning`) about parameters that were set but mean nothing in ``params``'s
    mode, e.g. ``temperature`` with greedy decoding."""
    message = params.ignored_message()
    if message:
        warnings.warn(message, IgnoredParameterWarning, stacklevel=3)


def generate(lm: LM, prompt_or_prompts=None, *, params: GenerationParams | None = None, progress: bool = False,
             **kwargs) -> Generations:
    """Generate text from a prompt (or a list of prompts) with ``model.generate``.

    lm: a loaded :class:`gpt2lab.LM`. prompt_or_prompts: a string or a list of strings (or pass
    ``input=`` / ``prefix=``). Keyword arguments are the generation parameters of
    :class:`gpt2lab.generation.params.GenerationParams` (aliases ``length``, ``k``, ``p``, ``nsamples``, ``prefix``
    accepted); ``params=`` passes a ready object. ``progress=True`` shows a bar over batched calls.

    Returns a :class:`Generations` list (see the module docstring). Raises InvalidParameterError (a
    ValueError naming the field, the value and what is allowed) for bad parameters, including a prompt that
    does not fit the model's context together with ``max_length`` (unless ``fit_context=True``). Parameters
    the chosen mode does not use are reported with an :class:`IgnoredParameterWarning`.
    """
    params = resolve_params(prompt_or_prompts, params, **kwargs)
    warn_ignored(params)
    return run(lm, params, transformers_call, progress=progress)


def generate_to_file(lm: LM, destination: str | os.PathLike = "gpt2_gentext.txt", prompt_or_prompts=None, *,
                     params: GenerationParams | None = None, sample_delim: str = SAMPLE_DELIM,
                     progress: bool = True, **kwargs) -> Generations:
    """Generate like :func:`generate` and write the texts to ``destination`` (gpt-2-simple's layout: texts
    separated by ``sample_delim``), plus ``<destination>.params.json`` recording the model, the exact
    parameters and the seed used, so the file can be reproduced. A progress bar runs over the batched
    calls (use ``batch_size`` to split the work). Returns the texts.
    """
    params = resolve_params(prompt_or_prompts, params, **kwargs)
    warn_ignored(params)
    result = run(lm, params, transformers_call, progress=progress)
    texts = [t for group in result for t in group] if not isinstance(params.input, str) else list(result)
    path = Path(destination)
    files.write_text(path, sample_delim.join(t if t.endswith("\n") else t + "\n" for t in texts))
    files.write_json(path.with_name(path.name + ".params.json"),
                     {"file": path.name, "n_texts": len(texts), "sample_delim": sample_delim,
                      **{k: v for k, v in result.record().items() if k != "output"}}, ensure_ascii=False)
    return result
