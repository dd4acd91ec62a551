"""Generation parameters: one validated definition shared by the Python API, the CLI, the batch job and
the HTTP endpoint.

Names and defaults follow the GPT-2 model-package API the course teaches from::

    input                 the prompt (a string, or a list of strings)      alias: prefix
    max_length            how many tokens to generate (default 100)        alias: length
    num_return_sequences  texts per prompt (default 3; greedy gives one)   alias: nsamples
    mode                  sample-top-p (default) | sample-top-k | sample | beam | greedy
    top_p                 nucleus size, 0 < top_p <= 1 (0.92)              alias: p
    top_k                 keep the k likeliest tokens, 0 = off (50)        alias: k
    temperature           > 0 (0.7)
    num_beams             beams for beam search (5)
    no_repeat_ngram_size  forbid repeating any n-gram, 0 = off (2)
    repetition_penalty    > 0, 1.0 = off (1.0)
    seed                  None or -1 = random (the seed drawn is reported)

plus gpt-2-simple's conveniences (``truncate``, ``include_prefix``, ``batch_size``) and ``fit_context``.

Each mode uses only some of these (see :data:`MODE_PARAMETERS`); a parameter the mode does not use is
ignored and *reported* (``GenerationParams.ignored()``), never silently applied.
"""
from __future__ import annotations

import difflib
import math
import numbers
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["MODES", "SAMPLING_MODES", "ALIASES", "COMMON_PARAMETERS", "MODE_PARAMETERS", "MODE_SPECIFIC",
           "ALLOWED", "MAX_SEED", "InvalidParameterError", "field_error", "GenerationParams",
           "DecodingSettings", "canonicalize", "mode_table", "check_context"]

Mode = Literal["sample-top-p", "sample-top-k", "sample", "beam", "greedy"]
MODES: tuple[str, ...] = ("sample-top-p", "sample-top-k", "sample", "beam", "greedy")
SAMPLING_MODES = ("sample-top-p", "sample-top-k", "sample")

# other spellings accepted for a field (gpt-2-simple and short forms) -> the canonical name
ALIASES = {"length": "max_length", "k": "top_k", "p": "top_p", "prefix": "input",
           "nsamples": "num_return_sequences"}

# parameters every mode uses
COMMON_PARAMETERS = frozenset({"input", "mode", "max_length", "repetition_penalty",
                               "no_repeat_ngram_size", "truncate", "include_prefix", "batch_size", "fit_context"})
# parameters that only some modes use. Greedy decoding is deterministic, so it returns one text per
# prompt and ignores num_return_sequences (transformers refuses greedy with num_return_sequences > 1).
MODE_PARAMETERS: dict[str, frozenset[str]] = {
    "sample-top-p": frozenset({"temperature", "top_p", "seed", "num_return_sequences"}),
    "sample-top-k": frozenset({"temperature", "top_k", "seed", "num_return_sequences"}),
    "sample": frozenset({"temperature", "seed", "num_return_sequences"}),
    "beam": frozenset({"num_beams", "num_return_sequences"}),
    "greedy": frozenset(),
}
MODE_SPECIFIC = frozenset().union(*MODE_PARAMETERS.values())

# what each field accepts, in words; used in every error message about that field
ALLOWED = {
    "input": "a non-empty string or a non-empty list of non-empty strings (use '<|endoftext|>' to generate "
             "without a prompt)",
    "max_length": "an integer >= 1 (tokens to generate; prompt + max_length must fit the model's context)",
    "num_return_sequences": "an integer >= 1 (and <= num_beams in beam mode; greedy returns one text)",
    "mode": "one of " + ", ".join(repr(m) for m in MODES),
    "top_p": "a number with 0 < top_p <= 1",
    "top_k": "an integer >= 0 (0 turns top-k off)",
    "temperature": "a number > 0 (integers are accepted)",
    "num_beams": "an integer >= 1",
    "no_repeat_ngram_size": "an integer >= 0 (0 turns n-gram blocking off)",
    "repetition_penalty": "a number > 0 (1.0 = no penalty)",
    "seed": "null, -1 (both mean: pick a random seed) or an integer 0 <= seed < 2**63",
    "truncate": "null or a non-empty string (texts are cut at its first occurrence)",
    "include_prefix": "true or false",
    "batch_size": "null (everything in one batched call) or an integer >= 1",
    "fit_context": "true or false",
}

MAX_SEED = 2**63 - 1


class InvalidParameterError(ValueError):
    """Bad generation parameters. ``errors`` lists one dict per problem: field, value, message, allowed."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        lines = [e["message"] for e in errors]
        super().__init__(lines[0] if len(lines) == 1 else f"{len(lines)} invalid parameters: " + "; ".join(lines))

    def as_json(self) -> dict:
        """The body the HTTP endpoint and the batch job report."""
        return {"error": str(self), "fields": [{k: _jsonable(v) for k, v in e.items()} for e in self.errors]}


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def field_error(field: str, value: Any, problem: str | None = None) -> dict:
    """One error entry naming the field, the value given and what is allowed."""
    shown = _show(value)
    message = f"{field}={shown} is not allowed"
    if problem:
        message += f" ({problem})"
    message += f"; {field} must be {ALLOWED.get(field, 'valid')}"
    return {"field": field, "value": value, "message": message, "allowed": ALLOWED.get(field, "")}


def _show(value: Any) -> str:
    text = repr(value)
    if isinstance(value, str) and len(text) > 60:
        text = repr(value[:40]) + f"... ({len(value)} characters)"
    elif isinstance(value, (list, tuple, dict)) and len(text) > 60:
        text = f"<{type(value).__name__} of {len(value)} items>"
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        text += f" ({type(value).__name__})"
    return text


class GenerationParams(BaseModel):
    """Validated generation parameters (see the module docstring for the fields and their meaning).

    Build with ``GenerationParams.from_dict(d)`` or ``GenerationParams.build(**kwargs)``; both accept the
    aliases and raise :class:`InvalidParameterError` (a ValueError) naming field, value and allowed range.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    input: str | list[str] | None = Field(None, description="Prompt text, or a list of prompts. Alias: prefix.")
    max_length: int = Field(100, ge=1, description="Number of tokens to generate (not counting the prompt). "
                                                   "Alias: length.")
    num_return_sequences: int = Field(3, ge=1, description="Texts returned per prompt. Alias: nsamples.")
    mode: Mode = Field("sample-top-p", description="Decoding strategy.")
    top_p: float = Field(0.92, gt=0, le=1, description="Nucleus sampling: keep the smallest set of likeliest "
                                                       "tokens whose probability adds up to top_p. Alias: p.")
    top_k: int = Field(50, ge=0, description="Keep the k likeliest tokens; 0 = off. Alias: k.")
    temperature: float = Field(0.7, gt=0, description="Divide the logits by this before sampling.")
    num_beams: int = Field(5, ge=1, description="Beams kept by beam search.")
    no_repeat_ngram_size: int = Field(2, ge=0, description="No n-gram of this size appears twice; 0 = off.")
    repetition_penalty: float = Field(1.0, gt=0, description="Penalise tokens already present; 1.0 = off.")
    seed: int | None = Field(None, ge=-1, le=MAX_SEED, description="Random seed; null or -1 = random.")
    truncate: str | None = Field(None, min_length=1, description="Cut each text at the first occurrence of this "
                                                                 "string (e.g. '<|endoftext|>').")
    include_prefix: bool = Field(True, description="Whether the returned texts start with the prompt.")
    batch_size: int | None = Field(None, ge=1, description="At most this many texts per batched model call; "
                                                           "null = all in one call.")
    fit_context: bool = Field(False, description="If prompt + max_length exceed the model's context, drop the "
                                                 "oldest prompt tokens instead of raising an error.")

    # ---- construction -------------------------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _canonical_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise InvalidParameterError([{
                "field": "(body)", "value": data,
                "message": f"parameters must be a JSON object / mapping of names to values, got "
                           f"{type(data).__name__}", "allowed": "an object"}])
        return canonicalize(data)

    @model_validator(mode="after")
    def _cross_field_checks(self) -> GenerationParams:
        problems = []
        prompts = self.prompts() if self.input is not None else []
        if self.input is not None and (not prompts or any(p == "" for p in prompts)):
            problems.append(field_error("input", self.input, "empty prompt"))
        if self.mode == "beam" and self.num_return_sequences > self.num_beams:
            problems.append({
                "field": "num_return_sequences", "value": self.num_return_sequences,
                "message": f"num_return_sequences={self.num_return_sequences} is larger than num_beams="
                           f"{self.num_beams}; beam search can return at most num_beams texts per prompt",
                "allowed": "an integer with 1 <= num_return_sequences <= num_beams in beam mode"})
        if problems:
            raise InvalidParameterError(problems)
        return self

    @classmethod
    def from_dict(cls, data: Any) -> GenerationParams:
        """Validate a mapping (e.g. a JSON request body); aliases allowed, unknown names rejected."""
        if not isinstance(data, dict):
            cls._canonical_names(data)  # raises the "must be an object" error
        data = canonicalize(data)
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise _translate(err, data) from None

    @classmethod
    def build(cls, **kwargs) -> GenerationParams:
        return cls.from_dict(kwargs)

    def replace(self, **changes) -> GenerationParams:
        """A copy with some fields changed (validated again)."""
        data = self.model_dump(exclude_unset=True)
        data.update(canonicalize(changes))
        return type(self).from_dict(data)

    # ---- meaning --------------------------------------------------------------------------------------------
    def prompts(self) -> list[str]:
        if self.input is None:
            return []
        return [self.input] if isinstance(self.input, str) else list(self.input)

    def used(self) -> set[str]:
        """The parameters this mode uses."""
        return set(COMMON_PARAMETERS | MODE_PARAMETERS[self.mode])

    def ignored(self) -> list[str]:
        """Parameters that were set explicitly but that this mode does not use."""
        return sorted(f for f in self.model_fields_set if f in MODE_SPECIFIC and f not in MODE_PARAMETERS[self.mode])

    def ignored_message(self) -> str | None:
        """A sentence saying which parameters the mode ignores and which modes would use them, or None."""
        ignored = self.ignored()
        if not ignored:
            return None
        parts = []
        for name in ignored:
            users = [m for m in MODES if name in MODE_PARAMETERS[m]]
            parts.append(f"{name} (used by mode {' / '.join(users)})")
        return f"mode {self.mode!r} ignores " + ", ".join(parts)

    def random_seed(self) -> bool:
        return self.seed is None or self.seed == -1

    def with_seed(self) -> GenerationParams:
        """A copy whose seed is fixed: the given one, or a freshly drawn one when it was random."""
        if not self.random_seed():
            return self
        seed = random.SystemRandom().randrange(0, 2**31)
        return self.model_copy(update={"seed": seed})

    def settings(self) -> DecodingSettings:
        """The effective decoding settings: each mode's cut-offs only, everything else off."""
        sampling = self.mode in SAMPLING_MODES
        return DecodingSettings(
            strategy="sample" if sampling else self.mode,
            max_new_tokens=self.max_length,
            num_return_sequences=1 if self.mode == "greedy" else self.num_return_sequences,
            temperature=self.temperature if sampling else 1.0,
            top_k=self.top_k if self.mode == "sample-top-k" else 0,
            top_p=self.top_p if self.mode == "sample-top-p" else 1.0,
            num_beams=self.num_beams if self.mode == "beam" else 1,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
        )

    def public_dict(self) -> dict:
        """Every parameter this mode uses, with its value (defaults included): what a result file records
        so the run can be repeated exactly. Parameters the mode ignores are left out."""
        used = self.used()
        return {k: v for k, v in self.model_dump().items() if k in used}


@dataclass(frozen=True)
class DecodingSettings:
    """What a decoder actually applies, after the mode has picked its parameters."""

    strategy: str  # "greedy", "sample" or "beam"
    max_new_tokens: int
    num_return_sequences: int
    temperature: float
    top_k: int
    top_p: float
    num_beams: int
    repetition_penalty: float
    no_repeat_ngram_size: int

    def transformers_kwargs(self) -> dict:
        """Keyword arguments for ``model.generate`` that mean exactly these settings.

        ``max_new_tokens`` (not transformers' ``max_length``, which counts the prompt too); top_k=0 and
        top_p=1.0 passed explicitly because transformers' own defaults are top_k=50, top_p=1.0.
        """
        kwargs = dict(max_new_tokens=self.max_new_tokens, num_return_sequences=self.num_return_sequences,
                      repetition_penalty=self.repetition_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size)
        if self.strategy == "sample":
            kwargs.update(do_sample=True, num_beams=1, temperature=self.temperature, top_k=self.top_k,
                          top_p=self.top_p)
        elif self.strategy == "beam":
            kwargs.update(do_sample=False, num_beams=self.num_beams)
        else:
            kwargs.update(do_sample=False, num_beams=1)
        return kwargs


def canonicalize(data: dict) -> dict:
    """Map aliases to canonical names; reject unknown names (with a suggestion) and conflicting aliases."""
    fields = GenerationParams.model_fields
    out: dict = {}
    source: dict = {}
    errors = []
    for key, value in data.items():
        if not isinstance(key, str):
            errors.append({"field": repr(key), "value": value, "message": f"parameter names must be strings, got "
                           f"{key!r}", "allowed": "a string"})
            continue
        name = ALIASES.get(key, key)
        if name not in fields:
            known = sorted(list(fields) + list(ALIASES))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append({"field": key, "value": value,
                           "message": f"unknown parameter {key!r}{hint} Known parameters: {', '.join(fields)} "
                                      f"(aliases: {', '.join(f'{a}={c}' for a, c in ALIASES.items())})",
                           "allowed": "a known parameter name"})
            continue
        if name in out and not _same(out[name], value):
            errors.append({"field": name, "value": value,
                           "message": f"{source[name]}={_show(out[name])} and {key}={_show(value)} are two "
                                      f"spellings of {name} with different values; give only one",
                           "allowed": ALLOWED.get(name, "")})
            continue
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
            value = int(value)  # numpy integers
        elif isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
            value = float(value)
        out[name] = value
        source[name] = key
    if errors:
        raise InvalidParameterError(errors)
    return out


def _same(a, b) -> bool:
    try:
        return type(a) is type(b) and a == b
    except Exception:  # noqa: BLE001 - odd objects compare as different
        return False


def _translate(err: ValidationError, data: Any) -> InvalidParameterError:
    """Pydantic's errors -> one clear message per field, naming the value and the allowed range."""
    by_field: dict[str, dict] = {}
    values = data if isinstance(data, dict) else {}
    for e in err.errors(include_url=False):
        inner = (e.get("ctx") or {}).get("error")
        if isinstance(inner, InvalidParameterError):  # raised by our own validators: already clear
            return inner
        loc = e.get("loc") or ("(body)",)
        field = str(loc[0])
        if field in by_field:
            continue
        value = values.get(field, e.get("input"))
        problem = _problem(e, value)
        if field == "input" and isinstance(value, list):
            bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
            if bad:
                problem = f"item {bad[0]} ({value[bad[0]]!r}) is not a string"
        by_field[field] = field_error(field, value, problem)
    return InvalidParameterError(list(by_field.values()))


def _problem(e: dict, value: Any) -> str | None:
    kind = e.get("type", "")
    if kind in ("int_type", "float_type", "string_type", "bool_type", "literal_error", "list_type"):
        if kind == "literal_error" and isinstance(value, str):
            close = difflib.get_close_matches(value, MODES, n=1, cutoff=0.4)
            return f"unknown mode; did you mean {close[0]!r}?" if close else "unknown mode"
        return f"wrong type {type(value).__name__}"
    if kind == "finite_number" or (isinstance(value, float) and not math.isfinite(value)):
        return "not a finite number"
    if kind in ("too_short", "string_too_short"):
        return "empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "out of range"
    if kind == "missing":
        return "missing"
    return e.get("msg")


def mode_table() -> list[dict]:
    """Which parameters each mode uses (for docs and notebooks): one row per mode."""
    rows = []
    for mode in MODES:
        used = MODE_PARAMETERS[mode]
        rows.append({"mode": mode, **{name: ("used" if name in used else "ignored") for name in sorted(MODE_SPECIFIC)}})
    return rows


def check_context(prompt_lengths: list[int], params: GenerationParams, context_length: int) -> int:
    """How many prompt tokens to drop from the left so that prompt + max_length fits the context.

    Returns 0 when everything fits. Raises :class:`InvalidParameterError` when it does not fit and
    ``fit_context`` is off, or when ``max_length`` alone leaves no room for even one prompt token.
    """
    if params.max_length >= context_length:
        raise InvalidParameterError([{
            "field": "max_length", "value": params.max_length,
            "message": f"max_length={params.max_length} leaves no room for the prompt in this model's context of "
                       f"{context_length} tokens; max_length must be <= {context_length - 1}",
            "allowed": f"an integer with 1 <= max_length < {context_length}"}])
    longest = max(prompt_lengths) if prompt_lengths else 0
    overflow = longest + params.max_length - context_length
    if overflow <= 0:
        return 0
    if params.fit_context:
        return overflow
    raise InvalidParameterError([{
        "field": "input", "value": f"<prompt of {longest} tokens>",
        "message": f"prompt ({longest} tokens) + max_length ({params.max_length}) = {longest + params.max_length} "
                   f"tokens exceeds the model's context of {context_length} tokens; shorten the prompt, lower "
                   f"max_length to <= {context_length - longest}, or pass fit_context=true to drop the oldest "
                   f"{overflow} prompt tokens",
        "allowed": f"prompt tokens + max_length <= {context_length}"}])
