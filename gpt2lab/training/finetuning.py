"""Fine-tuning GPT-2 on your own text, the gpt-2-simple way, on gpt2lab's accelerate training loop.

``finetune("my_texts.csv", model="gpt2", steps=500, run_name="run1")`` reads the data, tokenises
it (once: the result is cached), trains, and leaves a *run* folder ``checkpoint/run1`` with
checkpoints, samples, a loss curve and the validation perplexity before and after. Running the
same call again resumes from the latest checkpoint. ``load_run("run1")`` gives back an
:class:`~gpt2lab.LM` to generate from.

Where each part lives in :mod:`gpt2lab.training`:

* ``reading``: the data formats (.txt, .csv, .jsonl, a folder) and every problem reported by line;
* ``tokenised``: tokenising once, with a cache; ``blocks``: the training blocks and validation windows;
* ``lora``: the added start token and LoRA adapters; ``runs``: run folders, ``load_run``;
* ``config``: :class:`~gpt2lab.training.config.FinetuneConfig`, the one definition of the options that
  this function takes as keywords and ``gpt2lab finetune`` as command-line options;
* ``processes``: several processes per run (``accelerate launch``) and one writer per run folder.

Validation: the perplexity on the held-out data is measured before and after training with a
sliding window: windows of ``block_size`` tokens advance by ``eval_stride`` tokens (default half a
block) and each token is scored once, with at least ``block_size - eval_stride`` tokens of context
when it is not near the start.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gpt2lab import files
from gpt2lab.loading import LM
from gpt2lab.training import loop, processes
from gpt2lab.training.blocks import Chunks, training_blocks
from gpt2lab.training.config import FinetuneConfig, type_hints
from gpt2lab.training.lora import add_start_token, wrap_lora
from gpt2lab.training.reading import data_digest, detect_format
from gpt2lab.training.runs import (
    BASE_MODEL_DIR,
    LOSS_PLOT,
    RUN_FILE,
    SAMPLES_FILE,
    FinetuneResult,
    read_run,
    run_dir_of,
)
from gpt2lab.training.tokenised import DataReport, FinetuneData, prepare_data

__all__ = ["finetune"]


def finetune(data, model=None, *, config: FinetuneConfig | None = None, **options) -> FinetuneResult:
    """Fine-tune ``model`` on ``data`` as the named run ``checkpoint_dir/run_name``.

    data: a .txt, .csv (one column of short texts), .jsonl (``text_field``) file or a folder of .txt files.
    model: a model name or folder (see :func:`gpt2lab.load`), an :class:`LM` (copied, not changed), or
        None: the run's own base model when resuming, else the course default model.
    config: a :class:`~gpt2lab.training.config.FinetuneConfig`; keyword options (below) change it.

    Running the same call again resumes from the run's latest checkpoint (``resume=False`` starts it
    afresh). Several processes: start the same code with ``accelerate launch --multi_gpu --num_processes N``
    (GPUs, or CPU processes with gloo); the main process alone writes the run, and one run has one
    writer at a time (:mod:`gpt2lab.training.processes`).

    Returns a :class:`~gpt2lab.training.runs.FinetuneResult` (in every process; the perplexities only in
    the main one). Raises FileNotFoundError (no data), :class:`~gpt2lab.training.reading.DataError` (problems
    in the data, with file and line), :class:`~gpt2lab.training.config.FinetuneOptionError` (an option
    value that is not allowed), TypeError (an unknown option),
    :class:`~gpt2lab.training.processes.RunBusyError` (another process writes the run) and
    :class:`~gpt2lab.training.processes.ProcessSetupError` (processes that would not know of each other).
    """
    from gpt2lab.device import pick_device

    cfg = FinetuneConfig.build(config, **options)
    data_path = Path(data).expanduser()
    if not data_path.exists():
        raise FileNotFoundError(f"no file or folder {str(data_path)!r}")
    run_dir = run_dir_of(cfg.run_name, cfg.checkpoint_dir)
    device = pick_device(cfg.device)
    train_cfg = _train_config(cfg, device)
    state = processes.start_processes(cpu=device.type == "cpu")
    with processes.watch_launcher(), processes.run_lock(run_dir, state):
        return _run(_Session(cfg, run_dir, device, state.is_main_process), data_path, model, train_cfg)


def _with_options_in_signature(func):
    """Show every FinetuneConfig field as a keyword of ``func`` (signature, tab completion, help)."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    hints = type_hints()
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
               for f in dataclasses.fields(FinetuneConfig)]
    func.__signature__ = signature.replace(parameters=params)
    listing = textwrap.indent(FinetuneConfig.describe_options(), "    ")
    func.__doc__ = f"{func.__doc__.rstrip()}\n\n    Options (the fields of FinetuneConfig):\n\n{listing}\n"
    return func


finetune = _with_options_in_signature(finetune)


# ============================================================================ one run, step by step

@dataclass
class _Session:
    cfg: FinetuneConfig
    run_dir: Path
    device: torch.device
    main: bool  # the process that writes the run

    def say(self, *parts) -> None:
        if self.cfg.verbose and self.main:
            print(*parts, flush=True)


@dataclass
class _Base:
    lm: LM  # the base model as given or loaded
    net: torch.nn.Module  # the copy that trains
    tokenizer: object
    ref: str | None  # how to load the base again (None: built in memory)


@dataclass
class _Data:
    prepared: FinetuneData
    report: DataReport
    train_set: torch.utils.data.Dataset
    val_ids: np.ndarray
    val_set: Chunks | None
    wrapped: bool
    block: int
    stride: int
    digest: str
    context: int  # the model's context length


def _train_config(cfg: FinetuneConfig, device: torch.device) -> loop.TrainConfig:
    train_cfg = loop.TrainConfig(
        max_steps=cfg.steps, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
        learning_rate=cfg.peak_learning_rate(), min_lr_ratio=cfg.min_lr_ratio, warmup_steps=cfg.warmup(),
        weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, eval_every=cfg.evaluation_interval(),
        eval_batches=cfg.eval_batches, checkpoint_every=cfg.checkpoint_every, keep_last=cfg.keep_last,
        keep_best=cfg.keep_best, sample_every=cfg.sample_every, sample_tokens=cfg.sample_length, seed=cfg.seed,
        mixed_precision=cfg.mixed_precision, freeze_embeddings=cfg.only_train_transformer_layers and not cfg.lora,
        log_every=cfg.log_every, progress=cfg.progress, device="cpu" if device.type == "cpu" else "auto")
    train_cfg.validate()
    return train_cfg


def _run(s: _Session, data_path: Path, model, train_cfg: loop.TrainConfig) -> FinetuneResult:
    cfg = s.cfg
    existing = loop.list_checkpoints(s.run_dir)
    resuming = bool(existing) and cfg.resume
    previous = read_run(s.run_dir) if cfg.resume else {}
    base = _base_model(s, model, previous, resuming)
    data = _training_data(s, data_path, base, previous, resuming)
    ppl_before = previous.get("perplexity_before") if resuming else None
    if ppl_before is None and data.val_set is not None and s.main:
        s.say(f"gpt2lab: validation perplexity of the base model ({len(data.val_ids):,} tokens, window {data.block}, "
              f"stride {data.stride}) ...")
        ppl_before = _perplexity(base.net, data, cfg)
        s.say(f"gpt2lab: perplexity before: {ppl_before:.3f}")
    net = base.net
    if cfg.lora:
        start_ids = [base.tokenizer.convert_tokens_to_ids(cfg.start_token)] if data.wrapped else None
        net = wrap_lora(net, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules, start_ids)
    base_ref = _prepare_folder(s, existing, base)
    run_info = _run_record(s, base, base_ref, data, ppl_before, previous)
    if s.main:
        files.write_json(s.run_dir / RUN_FILE, run_info)

    _fit_samples(s, train_cfg, base, data)
    resumed_from = loop.read_checkpoint_state(existing[-1])["step"] if resuming else 0
    s.say(f"gpt2lab: run {cfg.run_name!r} in {s.run_dir}: " + (
        f"resuming at step {resumed_from} of {cfg.steps}" if resuming else
        f"training {cfg.steps} steps from {base.lm.name!r}"))
    outcome = loop.train(net, data.train_set, data.val_set, train_cfg, tokenizer=base.tokenizer,
                         output_dir=s.run_dir, resume=resuming, on_sample=lambda step, text: _add_sample(s, step, text))
    trained = net.merge_and_unload() if cfg.lora else net
    trained.eval()
    return _finish(s, outcome, trained, base, data, run_info, resumed_from)


def _base_model(s: _Session, model, previous: dict, resuming: bool) -> _Base:
    """The base model (as given, loaded by name, or the run's own when resuming) and the copy that trains."""
    from gpt2lab import loading

    if model is None and resuming:
        if not previous.get("base_model"):
            raise ValueError(f"run {str(s.run_dir)!r} was started from a model built in memory; pass that model as "
                             "model= to resume it")
        model = previous["base_model"]
    if isinstance(model, LM):
        base_lm = model
        net = copy.deepcopy(model.model).float()
        tokenizer = copy.deepcopy(model.tokenizer)
    else:
        base_lm = loading.load(model, device=s.device, dtype="float32", verbose=s.cfg.verbose and s.main)
        net, tokenizer = base_lm.model, base_lm.tokenizer
    ref = _base_reference(base_lm)
    if resuming and previous:
        _check_same_run(previous, ref, s.cfg.lora, s.run_dir)
    net.to(s.device)
    return _Base(base_lm, net, tokenizer, ref)


def _training_data(s: _Session, data_path: Path, base: _Base, previous: dict, resuming: bool) -> _Data:
    """Read and tokenise the data (every process; only the main one writes the cache) and lay it out in
    blocks. Every check that can fail runs in every process, so all of them stop together."""
    cfg = s.cfg
    context = LM(base.net, base.tokenizer, s.device, base.lm.name).context_length
    block = cfg.block_size or min(context, 1024)
    if not 2 <= block <= context:
        raise ValueError(f"block_size={cfg.block_size!r} must be between 2 and the model's context length {context}")
    wrapped = (cfg.format or detect_format(data_path)) == "csv" if cfg.wrap is None else cfg.wrap
    added = add_start_token(base.net, base.tokenizer, cfg.start_token) if wrapped else []
    prepared = prepare_data(data_path, base.tokenizer, format=cfg.format, line_by_line=cfg.line_by_line, wrap=wrapped,
                            text_field=cfg.text_field, csv_header=cfg.csv_header, encoding=cfg.encoding,
                            bad_rows=cfg.bad_rows, val_fraction=cfg.val_fraction, val=cfg.val, seed=cfg.seed,
                            start_token=cfg.start_token, cache_dir=cfg.cache_dir if cfg.cache else False,
                            progress=cfg.progress and s.main, write_cache=s.main)
    tok = base.tokenizer
    train_set = training_blocks(prepared, block, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    report = prepared.report
    report.added_tokens = added or previous.get("added_tokens", [])
    report.block_size, report.n_blocks, report.waste = block, len(train_set), round(train_set.waste, 6)
    val_ids = prepared.val_stream()
    if cfg.eval_max_tokens is not None:
        val_ids = val_ids[:cfg.eval_max_tokens]
    val_set = Chunks(prepared.val_stream(), block) if len(val_ids) >= 2 else None
    if cfg.keep_best and val_set is None:
        raise ValueError("keep_best=True needs validation data, and this run has none: keep val_fraction > 0 "
                         "(with enough data for two validation tokens) or pass val=FILE")
    stride = cfg.eval_stride or max(1, block // 2)
    if stride > block:
        raise ValueError(f"eval_stride={cfg.eval_stride!r} must be between 1 and block_size={block}")
    s.say(str(report))
    digest = data_digest(data_path)
    if resuming and previous.get("data", {}).get("sha256") not in (None, digest):
        s.say(f"gpt2lab: note: {data_path.name} is not the data run {cfg.run_name!r} started with; training "
              "continues on the new data")
    return _Data(prepared, report, train_set, val_ids, val_set, wrapped, block, stride, digest, context)


def _prepare_folder(s: _Session, existing: list[Path], base: _Base) -> str | None:
    """Clear an old run when starting afresh, create the folder, and keep a copy of a base model built in
    memory for a LoRA run (``load_run`` rebuilds LoRA runs from their base). Returns the base's reference."""
    if existing and not s.cfg.resume and s.main:
        s.say(f"gpt2lab: starting run {s.cfg.run_name!r} afresh: deleting its {len(existing)} old checkpoint(s)")
        for ckpt in existing:
            files.discard_folder(ckpt)
        for name in (SAMPLES_FILE, LOSS_PLOT, RUN_FILE):
            (s.run_dir / name).unlink(missing_ok=True)
        for name in (BASE_MODEL_DIR, loop.BEST_DIR):  # an old run's best is not this run's
            files.discard_folder(s.run_dir / name)
    if s.main:
        s.run_dir.mkdir(parents=True, exist_ok=True)
    processes.wait_for_everyone()  # no process may look at the run folder while it is being cleared
    if base.ref is None and s.cfg.lora:
        if s.main and not (s.run_dir / BASE_MODEL_DIR).is_dir():
            with files.atomic_folder(s.run_dir / BASE_MODEL_DIR) as tmp:
                base.lm.model.save_pretrained(tmp, safe_serialization=True)
                base.lm.tokenizer.save_pretrained(tmp)
        return str((s.run_dir / BASE_MODEL_DIR).resolve())
    return base.ref


def _run_record(s: _Session, base: _Base, base_ref, data: _Data, ppl_before, previous: dict) -> dict:
    cfg, report = s.cfg, data.report
    return {
        "run_name": cfg.run_name, "base_model": base_ref, "base_model_name": base.lm.name,
        "lora": cfg.lora_settings() or None, "data": {"path": str(Path(report.source).resolve()),
                                                      "sha256": data.digest, "format": report.format},
        "settings": {**cfg.record(), "block_size": data.block, "learning_rate": cfg.peak_learning_rate()},
        "start_token": cfg.start_token if data.wrapped else None, "end_token": base.tokenizer.eos_token,
        "added_tokens": report.added_tokens,
        "eval": {"block": data.block, "stride": data.stride, "tokens": int(len(data.val_ids))},
        "perplexity_before": ppl_before, "perplexity_after": previous.get("perplexity_after"),
        "created": previous.get("created", time.strftime("%Y-%m-%d %H:%M:%S")),
    }


def _fit_samples(s: _Session, train_cfg: loop.TrainConfig, base: _Base, data: _Data) -> None:
    """The samples' prompt, and their length cut to what fits the model's context with the prompt."""
    cfg = s.cfg
    prompt = cfg.sample_prompt or (cfg.start_token if data.wrapped else base.tokenizer.eos_token)
    train_cfg.sample_prompt = prompt
    if not cfg.sample_every:
        return
    room = data.context - max(1, len(base.tokenizer(prompt)["input_ids"]))
    if room < 1:
        raise ValueError(f"sample_prompt fills the model's whole context of {data.context} tokens; use a shorter "
                         "prompt, or sample_every=0 for no samples")
    if cfg.sample_length > room:
        train_cfg.sample_tokens = room
        s.say(f"gpt2lab: note: samples are cut to {room} tokens (sample_length={cfg.sample_length}): prompt and "
              f"sample must fit the model's context of {data.context} tokens")


def _add_sample(s: _Session, step: int, text: str) -> None:
    path = s.run_dir / SAMPLES_FILE
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    files.write_text(path, f"{before}======== step {step} ========\n{text}\n")


def _finish(s: _Session, outcome: loop.TrainResult, trained, base: _Base, data: _Data, run_info: dict,
            resumed_from: int) -> FinetuneResult:
    """The perplexity after, the loss plot and the final run record (main process), and the result."""
    from gpt2lab import loading

    ppl_after = None
    if data.val_set is not None and s.main:
        ppl_after = _perplexity(trained, data, s.cfg)
        before = run_info["perplexity_before"]
        s.say(f"gpt2lab: perplexity after: {ppl_after:.3f}" + (f" (before: {before:.3f})" if before else ""))
    if s.main:
        run_info.update(perplexity_after=ppl_after, steps_done=outcome.steps, tokens_seen=outcome.tokens_seen)
        files.write_json(s.run_dir / RUN_FILE, run_info)
        if outcome.history:
            _save_loss_plot(outcome, s.run_dir / LOSS_PLOT)
    lm = loading.from_model(trained, base.tokenizer, name=f"{s.cfg.run_name}@{outcome.steps}", device=s.device)
    lm.source = "local"
    lm.info.update(run_dir=str(s.run_dir), step=outcome.steps, start_token=run_info["start_token"],
                   end_token=run_info["end_token"])
    return FinetuneResult(run_name=s.cfg.run_name, run_dir=s.run_dir, checkpoint=loop.latest_checkpoint(s.run_dir),
                          steps=outcome.steps, resumed_from_step=resumed_from, history=outcome.history,
                          data=data.report, perplexity_before=run_info["perplexity_before"],
                          perplexity_after=ppl_after, tokens_seen=outcome.tokens_seen,
                          train_seconds=outcome.seconds, lm=lm,
                          best_checkpoint=Path(outcome.best_checkpoint) if outcome.best_checkpoint else None,
                          best_step=outcome.best_step, best_val_loss=outcome.best_val_loss)


# ============================================================================ helpers

def _base_reference(lm: LM) -> str | None:
    """How to load ``lm`` again: its folder, or its name when it is embedded or on the Hub."""
    if lm.info.get("path"):
        return str(Path(lm.info["path"]).resolve())
    if lm.source in ("hub", "embedded"):
        return lm.name
    return None


def _check_same_run(previous: dict, base_ref, lora: bool, run_dir: Path):
    before_lora = bool(previous.get("lora"))
    if before_lora != lora:
        raise ValueError(f"run {str(run_dir)!r} was trained {'with' if before_lora else 'without'} LoRA; resume it "
                         f"the same way, use another run_name, or pass resume=False to start it afresh")
    if base_ref and previous.get("base_model") and previous["base_model"] != base_ref \
            and Path(previous["base_model"]).name != BASE_MODEL_DIR:
        raise ValueError(f"run {str(run_dir)!r} was started from {previous['base_model']!r}, not {base_ref!r}; use "
                         "another run_name, or resume=False to start it afresh")


def _perplexity(model, data: _Data, cfg: FinetuneConfig) -> float | None:
    """Sliding-window perplexity of ``model`` on the validation tokens (see the module docstring)."""
    from gpt2lab.basics.evaluation import score_ids

    if len(data.val_ids) < 2:
        return None
    was_training = model.training
    model.eval()
    nll, count = score_ids(model, torch.as_tensor(data.val_ids), data.block, data.stride,
                           batch_size=max(1, cfg.batch_size), progress=cfg.progress)
    if was_training:
        model.train()
    return math.exp(nll / max(count, 1))


def _save_loss_plot(outcome: loop.TrainResult, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    outcome.plot(ax)
    ax.set_title(f"{path.parent.name}: loss")
    fig.tight_layout()
    with files.atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
