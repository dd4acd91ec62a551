"""Generation parameters: one validated definition shared by the Python API, the CLI, the batch job and
the HTTP endpoint.

Names, modes and defaults follow the published GPT-2 model-package API the course teaches from. Each mode
uses some parameters, with these defaults (:data:`MODE_DEFAULTS`)::

    mode                       parameters it uses               defaults
    greedy                     none
    sample-top-p (default)     top_p                            0.92
    sample-top-k               top_k                            50
    sample                     top_p, top_k, temperature        0.92, 50, 0.7
    beam                       num_beams, no_repeat_ngram_size  5, 2

and ``input``, ``max_length`` (100), ``num_return_sequences`` (3) and ``seed`` in every mode. A mode's
defaults are exactly its row: everything else is off. A parameter the caller sets explicitly applies
wherever it has a meaning (:data:`APPLIES_IN`): temperature, top_k and top_p in every sampling mode;
repetition_penalty and no_repeat_ngram_size in every mode. Anything without a meaning in the chosen mode is
ignored and *reported* (``GenerationParams.ignored()``), never silently applied: num_beams outside beam
search, sampling parameters in greedy and beam search, seed where nothing is drawn (greedy, beam), and
num_return_sequences in greedy (deterministic: it returns one text per prompt).

Every parameter, its alias, allowed range and default: :data:`PARAMETERS` (the table the README, the CLI
help and the endpoint's docs are built from; :func:`parameter_table_markdown`, :func:`mode_table_markdown`).
Also gpt-2-simple's conveniences (``truncate``, ``include_prefix``, ``batch_size``) and ``fit_context``.
"""
from __future__ import annotations

import difflib
import json
import math
import numbers
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["MODES", "SAMPLING_MODES", "ALIASES", "MODE_DEFAULTS", "MODE_PARAMETERS", "COMMON_PARAMETERS", "OFF",
           "APPLIES_IN", "MODE_SPECIFIC", "applies", "MAX_SEED", "MAX_INT", "TEMPERATURE_FLOOR", "TEMPERATURE_CEILING",
           "REPETITION_PENALTY_RANGE", "Parameter", "PARAMETERS", "ALLOWED", "InvalidParameterError", "GenerationError",
           "jsonable", "field_error", "GenerationParams", "DecodingSettings", "canonicalize", "mode_table",
           "mode_table_markdown", "parameter_table_markdown", "check_context"]

Mode = Literal["sample-top-p", "sample-top-k", "sample", "beam", "greedy"]
MODES: tuple[str, ...] = ("sample-top-p", "sample-top-k", "sample", "beam", "greedy")
SAMPLING_MODES = ("sample-top-p", "sample-top-k", "sample")

# other spellings accepted for a field (gpt-2-simple and short forms) -> the canonical name
ALIASES = {"length": "max_length", "k": "top_k", "p": "top_p", "prefix": "input",
           "nsamples": "num_return_sequences"}

# The published API's table: the parameters each mode uses, with their defaults. A mode's defaults are
# exactly its row; every other decoding parameter is off unless the caller sets it (see APPLIES_IN).
MODE_DEFAULTS: dict[str, dict[str, float | int]] = {
    "greedy": {},
    "sample-top-p": {"top_p": 0.92},
    "sample-top-k": {"top_k": 50},
    "sample": {"top_p": 0.92, "top_k": 50, "temperature": 0.7},
    "beam": {"num_beams": 5, "no_repeat_ngram_size": 2},
}
MODE_PARAMETERS: dict[str, frozenset[str]] = {mode: frozenset(row) for mode, row in MODE_DEFAULTS.items()}
# accepted in every mode (input, max_length, num_return_sequences and seed in the published API; the rest are
# gpt-2-simple's conveniences and fit_context)
COMMON_PARAMETERS = frozenset({"input", "mode", "max_length", "num_return_sequences", "seed", "truncate",
                               "include_prefix", "batch_size", "fit_context"})
# the value that turns each decoding parameter off
OFF: dict[str, float | int] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "num_beams": 1,
                               "no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
# the modes in which a parameter has a meaning when the caller sets it; elsewhere it is ignored and reported.
# Greedy and beam search draw nothing (no seed); greedy gives one text per prompt (transformers refuses greedy
# with num_return_sequences > 1: the copies would be identical).
APPLIES_IN: dict[str, tuple[str, ...]] = {
    "temperature": SAMPLING_MODES, "top_k": SAMPLING_MODES, "top_p": SAMPLING_MODES,
    "num_beams": ("beam",), "no_repeat_ngram_size": MODES, "repetition_penalty": MODES,
    "seed": SAMPLING_MODES, "num_return_sequences": (*SAMPLING_MODES, "beam"),
}
MODE_SPECIFIC = frozenset(name for name, modes in APPLIES_IN.items() if set(modes) != set(MODES))

MAX_SEED = 2**63 - 1
MAX_INT = 2**63 - 1  # the largest integer torch holds (int64); the upper bound of every integer parameter


def applies(mode: str, name: str) -> bool:
    """Whether parameter ``name``, when set, has a meaning in ``mode`` (unknown names: True)."""
    return mode in APPLIES_IN.get(name, MODES)


# Where values that divide or scale the logits stop fitting float32 (issue 14). Temperature works for every
# finite value > 0 with the behaviour of its limits; the repetition penalty is refused outside its range.
TEMPERATURE_FLOOR = 1e-30  # below: the T -> 0 limit, only the likeliest token(s) can be drawn (greedy)
TEMPERATURE_CEILING = 1e30  # above: acts as this, the T -> infinity limit (uniform over the allowed tokens)
REPETITION_PENALTY_RANGE = (0.01, 100.0)


@dataclass(frozen=True)
class Parameter:
    """One row of the parameter table: what the README, the CLI help and the endpoint docs show."""

    name: str
    alias: str  # another accepted spelling, or ""
    allowed: str  # the allowed values, in words (every error message about the field quotes it)
    meaning: str
    limits: str = ""  # what happens at and near the bounds of the range


PARAMETERS: dict[str, Parameter] = {p.name: p for p in [
    Parameter("input", "prefix", "a non-empty string or a non-empty list of non-empty strings (use '<|endoftext|>' "
              "to generate without a prompt)", "The prompt, or a list of prompts."),
    Parameter("max_length", "length", "an integer >= 1 (tokens to generate; prompt + max_length must fit the "
              "model's context)", "Number of tokens to generate, not counting the prompt.",
              "a prompt too long for the rest of the context is an error naming how many tokens to cut, unless "
              "fit_context is true"),
    Parameter("num_return_sequences", "nsamples", "an integer with 1 <= num_return_sequences < 2**63 (and <= "
              "num_beams in beam mode; greedy returns one text)", "Texts returned per prompt."),
    Parameter("mode", "", "one of " + ", ".join(repr(m) for m in MODES), "Decoding strategy."),
    Parameter("top_p", "p", "a number with 0 < top_p <= 1", "Nucleus sampling: keep the smallest set of likeliest "
              "tokens whose probability adds up to top_p.",
              "however small, the likeliest token stays (top_p -> 0 is greedy); 1 keeps every token"),
    Parameter("top_k", "k", "an integer with 0 <= top_k < 2**63 (0 turns top-k off)", "Keep the k likeliest tokens.",
              "1 is greedy (ties kept); values above the vocabulary size keep every token"),
    Parameter("temperature", "", "a finite number > 0 (integers are accepted)", "Divide the logits by this "
              "before sampling: < 1 sharpens, > 1 flattens the distribution.",
              f"below {TEMPERATURE_FLOOR:g} only the likeliest token(s) can be drawn (the limit T -> 0: greedy); "
              f"above {TEMPERATURE_CEILING:g} it acts as {TEMPERATURE_CEILING:g} (the limit T -> infinity: uniform "
              "over the tokens the other settings allow)"),
    Parameter("num_beams", "", "an integer with 1 <= num_beams < 2**63", "Beams kept by beam search.",
              "1 is greedy search"),
    Parameter("no_repeat_ngram_size", "", "an integer with 0 <= no_repeat_ngram_size < 2**63 (0 turns n-gram "
              "blocking off)", "No n-gram of this size appears twice in a text.",
              "1 forbids every token already in the text; longer than the text, it blocks nothing"),
    Parameter("repetition_penalty", "", f"a number with {REPETITION_PENALTY_RANGE[0]:g} <= repetition_penalty <= "
              f"{REPETITION_PENALTY_RANGE[1]:g} (1.0 = no penalty)",
              "Make tokens already in the text less likely (> 1) or more likely (< 1); CTRL, Keskar et al. 2019.",
              "refused outside its range: dividing logits by a smaller penalty overflows float32, and a larger one "
              "has no further effect on which token wins"),
    Parameter("seed", "", "null, -1 (both mean: pick a random seed) or an integer 0 <= seed < 2**63",
              "Random seed for sampling; the seed drawn for null / -1 is reported."),
    Parameter("truncate", "", "null or a non-empty string (texts are cut at its first occurrence)",
              "Cut each text at the first occurrence of this string (e.g. '<|endoftext|>')."),
    Parameter("include_prefix", "", "true or false", "Whether the returned texts start with the prompt."),
    Parameter("batch_size", "", "null (everything in one batched call) or an integer with 1 <= batch_size < 2**63",
              "At most this many texts per batched model call."),
    Parameter("fit_context", "", "true or false", "If prompt + max_length exceed the model's context, drop the "
              "oldest prompt tokens instead of raising an error."),
]}

# what each field accepts, in words; used in every error message about that field
ALLOWED = {name: p.allowed for name, p in PARAMETERS.items()}


def _default_text(name: str, value: Any) -> str:
    """The default of a parameter as the table states it, mode by mode for the decoding parameters."""
    if name not in OFF:
        return "random" if name == "seed" else ("(required)" if name == "input" else json.dumps(value))
    users = [m for m in MODES if name in MODE_DEFAULTS[m]]
    where = [m for m in APPLIES_IN[name] if m not in users]
    text = f"{value!r} in {' and '.join(users)}; " if users else ""
    off = f"off ({OFF[name]!r})"
    if where:
        text += f"{off} in {', '.join(where)} unless given" if users else f"{off} unless given"
    return text.rstrip("; ")


def _describe(name: str, default: Any) -> str:
    p = PARAMETERS[name]
    alias = f" Alias: {p.alias}." if p.alias else ""
    limits = f" Limits: {p.limits}." if p.limits else ""
    return f"{p.meaning} Allowed: {p.allowed}. Default: {_default_text(name, default)}.{limits}{alias}"


class InvalidParameterError(ValueError):
    """Bad generation parameters. ``errors`` lists one dict per problem: field, value, message, allowed."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        lines = [e["message"] for e in errors]
        super().__init__(lines[0] if len(lines) == 1 else f"{len(lines)} invalid parameters: " + "; ".join(lines))

    def as_json(self) -> dict:
        """The body the HTTP endpoint and the batch job report: always valid JSON (a non-finite number or an
        odd object given as a value is shown as text)."""
        return {"error": str(self), "fields": [{k: jsonable(v) for k, v in e.items()} for e in self.errors]}


class GenerationError(InvalidParameterError):
    """Generation failed for a request that passed validation (the model's scores became inf/nan, or memory
    ran out). Reported like any other bad input: one line in the CLI, 422 over HTTP, an error record in a
    batch job - never a traceback or a 500."""

    def __init__(self, message: str):
        super().__init__([{"field": "(generation)", "value": None, "message": message, "allowed": ""}])


def jsonable(value):
    """``value`` as something ``json.dumps(..., allow_nan=False)`` accepts: strings, booleans, None, integers
    and finite floats as they are, lists and dicts item by item, anything else (inf, nan, objects) as its repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
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

    input: str | list[str] | None = Field(None, description=_describe("input", None))
    max_length: int = Field(100, ge=1, le=MAX_INT, description=_describe("max_length", 100))
    num_return_sequences: int = Field(3, ge=1, le=MAX_INT, description=_describe("num_return_sequences", 3))
    mode: Mode = Field("sample-top-p", description=_describe("mode", "sample-top-p"))
    top_p: float = Field(0.92, gt=0, le=1, description=_describe("top_p", 0.92))
    top_k: int = Field(50, ge=0, le=MAX_INT, description=_describe("top_k", 50))
    temperature: float = Field(0.7, gt=0, description=_describe("temperature", 0.7))
    num_beams: int = Field(5, ge=1, le=MAX_INT, description=_describe("num_beams", 5))
    no_repeat_ngram_size: int = Field(2, ge=0, le=MAX_INT, description=_describe("no_repeat_ngram_size", 2))
    repetition_penalty: float = Field(1.0, ge=REPETITION_PENALTY_RANGE[0], le=REPETITION_PENALTY_RANGE[1],
                                      description=_describe("repetition_penalty", 1.0))
    seed: int | None = Field(None, ge=-1, le=MAX_SEED, description=_describe("seed", None))
    truncate: str | None = Field(None, min_length=1, description=_describe("truncate", None))
    include_prefix: bool = Field(True, description=_describe("include_prefix", True))
    batch_size: int | None = Field(None, ge=1, le=MAX_INT, description=_describe("batch_size", None))
    fit_context: bool = Field(False, description=_describe("fit_context", False))

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

    def applied(self, name: str) -> bool:
        """Whether this mode applies ``name``: set explicitly where it has a meaning, or in the mode's row."""
        return applies(self.mode, name) and (name in self.model_fields_set or name in MODE_DEFAULTS[self.mode]
                                             or name not in OFF)

    def value(self, name: str):
        """The value decoding applies for ``name``: the given or default value where the mode applies it, else
        the value that turns it off (temperature 1.0, top_k 0, top_p 1.0, ...)."""
        if name in OFF and not self.applied(name):
            return OFF[name]
        return getattr(self, name)

    def used(self) -> set[str]:
        """The parameters this request applies: the common ones that mean something in this mode, the mode's
        row, and whatever else was set explicitly where it has a meaning."""
        return {name for name in type(self).model_fields if self.applied(name)}

    def ignored(self) -> list[str]:
        """Parameters that were set explicitly but have no meaning in this mode."""
        return sorted(f for f in self.model_fields_set if not applies(self.mode, f))

    def ignored_message(self) -> str | None:
        """A sentence saying which parameters the mode ignores and which modes would use them, or None."""
        ignored = self.ignored()
        if not ignored:
            return None
        parts = [f"{name} (applies in mode {' / '.join(APPLIES_IN[name])})" for name in ignored]
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
        """The effective decoding settings: the mode's row, what was set where it has a meaning, the rest off."""
        return DecodingSettings(
            strategy="sample" if self.mode in SAMPLING_MODES else self.mode,
            max_new_tokens=self.max_length,
            num_return_sequences=self.value("num_return_sequences") if self.applied("num_return_sequences") else 1,
            temperature=self.value("temperature"),
            top_k=self.value("top_k"),
            top_p=self.value("top_p"),
            num_beams=self.value("num_beams"),
            repetition_penalty=self.value("repetition_penalty"),
            no_repeat_ngram_size=self.value("no_repeat_ngram_size"),
        )

    def public_dict(self) -> dict:
        """Every parameter this request applies, with its value (defaults included): what a result file records
        so the run can be repeated exactly. Parameters the mode ignores or leaves off are left out."""
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
        top_p=1.0 passed explicitly because transformers' own defaults are top_k=50, top_p=1.0. A temperature
        whose division would overflow float32 is replaced by its limit (see :data:`TEMPERATURE_FLOOR`): below
        the floor top_k=1 (the likeliest token(s) only, which is what sampling at T -> 0 draws), above the
        ceiling the ceiling itself.
        """
        kwargs = dict(max_new_tokens=self.max_new_tokens, num_return_sequences=self.num_return_sequences,
                      repetition_penalty=self.repetition_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size)
        if self.strategy == "sample":
            temperature, top_k = self.temperature, self.top_k
            if temperature < TEMPERATURE_FLOOR:
                temperature, top_k = 1.0, 1
            kwargs.update(do_sample=True, num_beams=1, temperature=min(temperature, TEMPERATURE_CEILING),
                          top_k=top_k, top_p=self.top_p)
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
            hint = f"; did you mean {close[0]!r}?" if close else ";"
            errors.append({"field": key, "value": value,
                           "message": f"unknown parameter {key!r}{hint} known parameters: {', '.join(fields)} "
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
    if kind == "finite_number" or (isinstance(value, float) and not math.isfinite(value)):
        return "not a finite number"
    if kind in ("int_type", "float_type", "string_type", "bool_type", "literal_error", "list_type"):
        if kind == "literal_error" and isinstance(value, str):
            close = difflib.get_close_matches(value, MODES, n=1, cutoff=0.4)
            return f"unknown mode; did you mean {close[0]!r}?" if close else "unknown mode"
        return f"wrong type {type(value).__name__}"
    if kind in ("too_short", "string_too_short"):
        return "empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "out of range"
    if kind == "missing":
        return "missing"
    return e.get("msg")


def mode_table() -> list[dict]:
    """Each mode's parameters (for docs and notebooks): one row per mode, one column per decoding parameter,
    saying its default where the mode uses it, "if given" where it applies only when set, else "ignored"."""
    rows = []
    for mode in MODES:
        row = {"mode": mode}
        for name in APPLIES_IN:
            if name in MODE_DEFAULTS[mode]:
                row[name] = MODE_DEFAULTS[mode][name]
            elif name in ("seed", "num_return_sequences") and applies(mode, name):
                row[name] = "random" if name == "seed" else GenerationParams.model_fields[name].default
            else:
                row[name] = "if given" if applies(mode, name) else "ignored"
        rows.append(row)
    return rows


def mode_table_markdown() -> str:
    """The published API's mode table, as Markdown (the README and the endpoint docs show it)."""
    lines = ["| mode | parameters it uses | defaults | also applies when given |", "|---|---|---|---|"]
    for mode in MODES:
        row = MODE_DEFAULTS[mode]
        extra = [n for n in OFF if applies(mode, n) and n not in row]
        label = f"{mode} (the default mode)" if mode == GenerationParams.model_fields["mode"].default else mode
        lines.append(f"| {label} | {', '.join(row) or 'none'} | {', '.join(repr(v) for v in row.values())} | "
                     f"{', '.join(extra) or 'none'} |")
    common = ["input", "max_length", "num_return_sequences", "seed"]
    lines.append("")
    lines.append(f"and {', '.join(f'`{n}`' for n in common)} in every mode (defaults: max_length "
                 f"{GenerationParams.model_fields['max_length'].default}, num_return_sequences "
                 f"{GenerationParams.model_fields['num_return_sequences'].default}, seed random). Greedy and beam "
                 "search draw nothing, so they ignore seed; greedy returns one text per prompt. Anything else a "
                 "mode does not use is ignored and reported.")
    return "\n".join(lines)


def parameter_table_markdown() -> str:
    """Every parameter: alias, allowed values, default, meaning, as Markdown (README, endpoint docs)."""
    lines = ["| parameter | alias | allowed | default | meaning | at the limits |", "|---|---|---|---|---|---|"]
    for name, p in PARAMETERS.items():
        default = _default_text(name, GenerationParams.model_fields[name].default)
        cells = [f"`{name}`", p.alias and f"`{p.alias}`", p.allowed, default, p.meaning, p.limits]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


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
    room = context_length - longest  # the largest max_length this prompt leaves room for
    fixes = [f"lower max_length to <= {room}"] if room >= 1 else []
    tokens = f"{overflow} token" + ("s" if overflow != 1 else "")
    fixes += [f"shorten the prompt by {tokens}", f"pass fit_context=true to drop its oldest {tokens}"]
    raise InvalidParameterError([{
        "field": "input", "value": f"<prompt of {longest} tokens>",
        "message": f"prompt ({longest} tokens) + max_length ({params.max_length}) = {longest + params.max_length} "
                   f"tokens exceeds the model's context of {context_length} tokens; " + ", ".join(fixes[:-1])
                   + f" or {fixes[-1]}",
        "allowed": f"prompt tokens + max_length <= {context_length}"}])
