"""Fine-tuning runs on disk: the run folder, its record (``run.json``), finding its checkpoints, and loading
a fine-tuned model back with :func:`load_run`.

A run ``checkpoint_dir/run_name`` holds the checkpoints ``checkpoint-<step>`` (see
:mod:`gpt2lab.training.loop`), ``run.json`` (the base model, the settings, the data's SHA-256, the
perplexity before and after), ``samples.txt``, ``loss.png``, with LoRA and a base model built in memory
a copy of that base (``base-model``), and with ``keep_best`` the best weights (``best``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from gpt2lab.loading import LM
from gpt2lab.training import loop
from gpt2lab.training.lora import match_vocab
from gpt2lab.training.tokenised import DataReport

__all__ = ["DEFAULT_CHECKPOINT_DIR", "RUN_FILE", "SAMPLES_FILE", "LOSS_PLOT", "BASE_MODEL_DIR", "FinetuneResult",
           "run_dir_of", "read_run", "list_runs", "find_checkpoint", "load_run"]

DEFAULT_CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.txt"
LOSS_PLOT = "loss.png"
BASE_MODEL_DIR = "base-model"


@dataclass
class FinetuneResult:
    """What a fine-tuning run produced."""

    run_name: str
    run_dir: Path
    checkpoint: Path | None  # the latest checkpoint (the final model)
    steps: int
    resumed_from_step: int
    history: list
    data: DataReport
    perplexity_before: float | None
    perplexity_after: float | None
    tokens_seen: int
    train_seconds: float
    lm: LM | None = None  # the fine-tuned model, in memory (LoRA merged)
    best_checkpoint: Path | None = None  # with keep_best: run_dir/best, its step and validation loss
    best_step: int | None = None
    best_val_loss: float | None = None

    @property
    def tokens_per_second(self) -> float:
        """Training throughput of this session's steps (from the history records)."""
        records = [h for h in self.history if "tokens" in h and "seconds" in h]
        mine = [h for h in records if h["step"] > self.resumed_from_step]
        if len(mine) >= 2 and mine[-1]["seconds"] > mine[0]["seconds"]:
            return (mine[-1]["tokens"] - mine[0]["tokens"]) / (mine[-1]["seconds"] - mine[0]["seconds"])
        return float("nan")

    def plot(self, ax=None):
        """Training and validation loss against step."""
        return loop.TrainResult(steps=self.steps, history=self.history).plot(ax)

    def load(self, device="auto") -> LM:
        """Load the run's latest checkpoint (see :func:`load_run`)."""
        return load_run(self.run_dir, device=device)

    def __repr__(self) -> str:
        ppl = ""
        if self.perplexity_before is not None and self.perplexity_after is not None:
            ppl = f", perplexity {self.perplexity_before:.2f} -> {self.perplexity_after:.2f}"
        return f"FinetuneResult(run={str(self.run_dir)!r}, steps={self.steps}{ppl})"


def run_dir_of(run_name: str, checkpoint_dir=DEFAULT_CHECKPOINT_DIR) -> Path:
    """``checkpoint_dir/run_name``. Raises ValueError when ``run_name`` is not a plain folder name."""
    if not run_name or not isinstance(run_name, str) or "/" in run_name or "\\" in run_name or run_name in (".", ".."):
        raise ValueError(f"run_name={run_name!r} must be a plain folder name such as 'run1'")
    return Path(checkpoint_dir).expanduser() / run_name


def read_run(run_dir: str | Path) -> dict:
    """The run's record (``run.json``), or ``{}`` when it has none yet."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def list_runs(checkpoint_dir=DEFAULT_CHECKPOINT_DIR) -> list[str]:
    """Names of the runs (folders with checkpoints) in ``checkpoint_dir``."""
    folder = Path(checkpoint_dir).expanduser()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and loop.list_checkpoints(p))


def find_checkpoint(run, checkpoint_dir=DEFAULT_CHECKPOINT_DIR, step: int | None = None) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) for a run name, a run folder or a checkpoint folder."""
    path = Path(run).expanduser()
    if path.is_dir() and (path / loop.STATE_FILE).is_file():
        if step is not None and loop.read_checkpoint_state(path)["step"] != step:
            raise ValueError(f"{str(path)!r} is the checkpoint of step "
                             f"{loop.read_checkpoint_state(path)['step']}, not {step}")
        return path.parent, path
    if not path.is_dir():
        candidate = Path(checkpoint_dir).expanduser() / str(run)
        if "/" in str(run) or not candidate.is_dir():
            raise FileNotFoundError(f"no run {str(run)!r}: neither a folder nor a run in {str(checkpoint_dir)!r} "
                                    f"(runs there: {list_runs(checkpoint_dir)})")
        path = candidate
    checkpoints = loop.list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"the run folder {str(path)!r} holds no complete checkpoint")
    if step is None:
        return path, checkpoints[-1]
    for ckpt in checkpoints:
        if loop.read_checkpoint_state(ckpt)["step"] == step:
            return path, ckpt
    steps = [loop.read_checkpoint_state(c)["step"] for c in checkpoints]
    raise LookupError(f"run {str(path)!r} has no checkpoint of step {step}; it has steps {steps}")


def load_run(run, checkpoint_dir=DEFAULT_CHECKPOINT_DIR, *, step: int | None = None, best: bool = False,
             device="auto", dtype="auto", verbose: bool = True) -> LM:
    """Load a fine-tuned model from a run: a run name (looked up in ``checkpoint_dir``), a run folder
    or one checkpoint folder. ``step`` picks a checkpoint (default: the latest); ``best=True`` loads
    the weights of the lowest validation loss instead (a run trained with ``keep_best=True``). LoRA
    runs are rebuilt from their base model and merged. The returned LM's ``info`` holds the run's
    ``start_token``/``end_token``, to use as ``prefix``/``truncate`` when generating."""
    from gpt2lab import loading

    if best and step is not None:
        raise ValueError("give step= or best=True, not both")
    run_dir, ckpt = find_checkpoint(run, checkpoint_dir, step)
    info = read_run(run_dir)
    state = loop.read_checkpoint_state(ckpt)
    if best:
        kept = loop.read_best(run_dir)
        if kept is None:
            raise FileNotFoundError(f"run {str(run_dir)!r} kept no best weights; train it with keep_best=True "
                                    "(--keep-best) to keep them")
        ckpt, state = Path(kept["path"]), kept
    name = f"{run_dir.name}@{state['step']}"
    if (ckpt / "adapter_model.safetensors").is_file():
        lm = _load_lora_run(ckpt, info, device, dtype)
    else:
        lm = loading.load(ckpt, device=device, dtype=dtype, verbose=False)
    lm.name, lm.source = name, "local"
    lm.info.update(path=str(ckpt), run_dir=str(run_dir), step=state["step"], best=best,
                   start_token=info.get("start_token"), end_token=info.get("end_token"))
    if verbose:
        print(f"gpt2lab: loaded run {name!r} ({lm.n_params / 1e6:.1f}M params) from {ckpt}", file=sys.stderr,
              flush=True)
    return lm


def _load_lora_run(ckpt: Path, info: dict, device, dtype) -> LM:
    from peft import PeftModel
    from transformers import AutoTokenizer

    from gpt2lab import loading

    base = info.get("base_model")
    if not base:
        raise ValueError(f"{ckpt} is a LoRA checkpoint but its run.json does not say which base model it adapts")
    base_lm = loading.load(base, device="cpu", dtype="float32", verbose=False)
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    match_vocab(base_lm.model, tokenizer)
    merged = PeftModel.from_pretrained(base_lm.model, ckpt).merge_and_unload()
    from gpt2lab.device import pick_device, pick_dtype

    torch_device = pick_device(device)
    merged.to(dtype=pick_dtype(dtype, torch_device))
    return loading.from_model(merged, tokenizer, name=ckpt.parent.name, device=torch_device)
