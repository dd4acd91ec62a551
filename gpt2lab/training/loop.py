"""Training loop for GPT-2-style models, on top of Hugging Face ``accelerate``.

One loop serves training from scratch (the embedded model) and fine-tuning (``gpt2lab.finetune``):
the same code runs on a CPU, one GPU with bf16/fp16 autocast, or several processes when started with
``accelerate launch --multi_gpu`` / ``torchrun`` (one per GPU, joined by NCCL; or CPU processes, joined
by gloo, when the config's device is "cpu"). It adds what a course needs around the optimisation step:

* deterministic, resumable data order: the batch of step ``s`` is a function of (seed, s) only, and
  with several processes each takes its own slice of it (:func:`process_batch_indices`);
* warmup then cosine decay; gradient accumulation; gradient clipping;
* periodic validation loss, samples and a tqdm bar with the running loss;
* atomic checkpoints (written to a temporary folder, then renamed) keeping the last K, and resume
  from the latest one with model (or LoRA adapter), optimizer, scheduler, random-number state and
  step restored, so N steps + resume + N steps gives the same weights as 2N steps in one go.
"""
from __future__ import annotations

import functools
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch

from gpt2lab.files import TMP_PREFIX, atomic_folder, discard_folder, write_json
from gpt2lab.loading import dtype_keyword

__all__ = ["CHECKPOINT_PREFIX", "STATE_FILE", "BEST_DIR", "MixedPrecision", "Device", "RandomWindows",
           "PackedBlocks", "collate", "sample_indices", "MAX_STORED_ORDER", "TrainConfig", "TrainResult", "lr_at",
           "list_checkpoints", "latest_checkpoint", "is_peft_model", "save_checkpoint", "save_best", "read_best",
           "read_checkpoint_state", "load_checkpoint_weights", "evaluate_loss", "freeze_embeddings",
           "process_batch_indices", "train", "sample_text"]

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
BEST_DIR = "best"  # output_dir/best: the weights with the lowest validation loss (TrainConfig.keep_best)
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
Device = Literal["auto", "cpu"]  # "auto" lets accelerate choose (GPU when there is one); "cpu" forces the CPU


# ----------------------------------------------------------------------------- data

class RandomWindows(torch.utils.data.Dataset):
    """Windows of ``block_size`` + 1 tokens of one long token stream, for training from scratch.

    By default there is one item per possible start offset, so the shuffled epochs of
    :func:`sample_indices` draw windows at fresh random offsets, without repeats: a token is seen
    at a different position, with different context, each time. (A fixed set of
    ``len(ids) // block_size`` windows, reshuffled each epoch, lets a model memorise those exact
    sequences; on tinyshakespeare that over-fits within a few epochs.) With ``length`` there are
    that many items instead, item ``i`` at an offset drawn from a generator seeded with
    (``seed``, i). Either way item ``i`` is always the same window, so the data order is
    reproducible and a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, ids, block_size: int, seed: int = 0, length: int | None = None):
        self.ids = torch.as_tensor(ids, dtype=torch.long)
        if len(self.ids) < block_size + 1:
            raise ValueError(f"the token stream has {len(self.ids)} tokens, fewer than one block of "
                             f"{block_size} + 1; use a smaller block_size or more text")
        self.block_size, self.seed = block_size, seed
        self.max_offset = len(self.ids) - block_size - 1
        self.every_offset = length is None
        self.length = self.max_offset + 1 if length is None else length

    def __len__(self):
        return self.length

    def offset(self, i: int) -> int:
        if self.every_offset:
            return int(i)
        return int(np.random.default_rng((self.seed, int(i))).integers(0, self.max_offset + 1))

    def __getitem__(self, i):
        offset = self.offset(i)
        window = self.ids[offset: offset + self.block_size + 1]
        return {"input_ids": window[:-1], "labels": window[1:]}


class PackedBlocks(torch.utils.data.Dataset):
    """Consecutive, non-overlapping blocks of a token stream (the last partial block is dropped
    and reported by ``dropped_tokens``). Labels are the inputs shifted by one inside the block."""

    def __init__(self, ids, block_size: int):
        ids = torch.as_tensor(ids, dtype=torch.long)
        n_blocks = (len(ids) - 1) // block_size
        if n_blocks < 1:
            raise ValueError(f"the text has {len(ids)} tokens, fewer than one block of {block_size} + 1; "
                             "use a smaller block_size or more text")
        self.block_size = block_size
        self.inputs = ids[: n_blocks * block_size].view(n_blocks, block_size)
        self.targets = ids[1: n_blocks * block_size + 1].view(n_blocks, block_size)
        self.dropped_tokens = len(ids) - n_blocks * block_size - 1

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return {"input_ids": self.inputs[i], "labels": self.targets[i]}


def collate(items: list[dict]) -> dict:
    """Stack items; when lengths differ, right-pad (labels with -100 so padding is not learned)."""
    out = {}
    longest = max(len(it["input_ids"]) for it in items)
    for key in items[0]:
        fill = -100 if key == "labels" else 0
        rows = []
        for it in items:
            row = torch.as_tensor(it[key])
            if len(row) < longest:
                row = torch.cat([row, torch.full((longest - len(row),), fill, dtype=row.dtype)])
            rows.append(row)
        out[key] = torch.stack(rows)
    if "attention_mask" not in out and any(len(it["input_ids"]) < longest for it in items):
        out["attention_mask"] = torch.stack([
            torch.cat([torch.ones(len(it["input_ids"]), dtype=torch.long),
                       torch.zeros(longest - len(it["input_ids"]), dtype=torch.long)]) for it in items])
    return out


def sample_indices(n_items: int, seed: int, start: int, count: int) -> list[int]:
    """Positions ``start .. start+count`` of an endless stream of shuffled epochs over n_items."""
    out, pos = [], start
    while len(out) < count:
        epoch, within = divmod(pos, n_items)
        out.append(int(_epoch_order(n_items, seed, epoch)[within]))
        pos += 1
    return out


MAX_STORED_ORDER = 20_000_000  # above this many items an epoch's order is computed, not stored (160 MB)


class _AffineOrder:
    """A permutation of range(n) without storing it: i -> (a * i + b) mod n with a coprime to n.
    Less random than a shuffle, but it costs nothing for a stream of billions of windows."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.b = n, int(rng.integers(0, n))
        a = int(rng.integers(1, n))
        while math.gcd(a, n) != 1:
            a = a % (n - 1) + 1
        self.a = a

    def __getitem__(self, i: int) -> int:
        return (self.a * int(i) + self.b) % self.n


@functools.lru_cache(maxsize=2)
def _epoch_order(n_items: int, seed: int, epoch: int):
    """The shuffled order of one epoch (cached: a step asks for a few items of the same epoch)."""
    rng = np.random.default_rng((seed, epoch))
    return rng.permutation(n_items) if n_items <= MAX_STORED_ORDER else _AffineOrder(n_items, rng)


# ----------------------------------------------------------------------------- config

@dataclass
class TrainConfig:
    """The settings of :func:`train`; :meth:`validate` raises ValueError naming a setting it does not allow."""

    max_steps: int = 1000
    batch_size: int = 16  # sequences per micro-batch per process
    grad_accum: int = 1
    learning_rate: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine decays to learning_rate * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_batches: int = 20
    keep_best: bool = False  # also keep the weights of the lowest validation loss in output_dir/best
    checkpoint_every: int = 0  # 0: only at the end
    keep_last: int = 2
    sample_every: int = 0
    sample_prompt: str = "\n"
    sample_tokens: int = 60
    seed: int = 1337
    mixed_precision: MixedPrecision = "auto"
    freeze_embeddings: bool = False  # gpt-2-simple's only_train_transformer_layers
    log_every: int = 10
    progress: bool = True
    device: Device = "auto"

    def validate(self):
        checks = [("max_steps", self.max_steps >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
                  ("grad_accum", self.grad_accum >= 1, ">= 1"), ("learning_rate", self.learning_rate > 0, "> 0"),
                  ("warmup_steps", self.warmup_steps >= 0, ">= 0"), ("keep_last", self.keep_last >= 1, ">= 1"),
                  ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
                  ("mixed_precision", self.mixed_precision in get_args(MixedPrecision),
                   "one of auto, no, bf16, fp16"),
                  ("device", self.device in get_args(Device), "'auto' or 'cpu' (use CUDA_VISIBLE_DEVICES or "
                   "`accelerate launch` to choose GPUs)"),
                  ("log_every", self.log_every >= 1, ">= 1"), ("eval_every", self.eval_every >= 1, ">= 1"),
                  ("checkpoint_every", self.checkpoint_every >= 0, ">= 0 (0: only at the end)"),
                  ("sample_every", self.sample_every >= 0, ">= 0 (0: never)")]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be {allowed}")


@dataclass
class TrainResult:
    steps: int
    history: list = field(default_factory=list)  # dicts: step, loss, lr, (val_loss), tokens, seconds, cpu_seconds
    tokens_seen: int = 0
    seconds: float = 0.0
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None  # with keep_best: output_dir/best, its step and validation loss
    best_step: int | None = None
    best_val_loss: float | None = None

    @property
    def val_losses(self):
        return [(h["step"], h["val_loss"]) for h in self.history if "val_loss" in h]

    def plot(self, ax=None):
        """Training and validation loss against step."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(7, 4))[1]
        train = [(h["step"], h["loss"]) for h in self.history if "loss" in h]
        if train:
            ax.plot(*zip(*train), label="train loss", alpha=0.8)
        if self.val_losses:
            ax.plot(*zip(*self.val_losses), "o-", label="validation loss")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.legend()
        ax.grid(alpha=0.3)
        return ax


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``learning_rate * min_lr_ratio`` at ``max_steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


# ----------------------------------------------------------------------------- checkpoints

def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints in ``folder``, oldest first (temporary, half-written ones are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and p.name[len(CHECKPOINT_PREFIX):].isdigit() \
                and (p / STATE_FILE).is_file():
            found.append(p)
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def latest_checkpoint(folder: str | Path) -> Path | None:
    ckpts = list_checkpoints(folder)
    return ckpts[-1] if ckpts else None


def is_peft_model(model) -> bool:
    """True for a model wrapped by peft (LoRA): its checkpoints hold only the adapter."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def save_checkpoint(folder: str | Path, step: int, model, optimizer=None, scheduler=None, tokenizer=None,
                    state: dict | None = None, keep_last: int | None = None, scaler=None) -> Path:
    """Write ``folder/checkpoint-<step>`` atomically: everything goes into a temporary folder that
    is renamed into place only once complete, so a crash mid-save leaves the previous checkpoint
    as the latest and never a half-written one. Old checkpoints beyond ``keep_last`` are renamed
    away before they are deleted, for the same reason.

    A peft (LoRA) model saves its adapter (``adapter_model.safetensors``), any other model its full
    weights (``model.safetensors``); the tokenizer is saved too, with any tokens added to it."""
    folder = Path(folder)
    final = folder / f"{CHECKPOINT_PREFIX}{step}"
    with atomic_folder(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        np_state = np.random.get_state()
        rng = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
               "numpy_pos": int(np_state[2])}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        # the state file is written last: its presence marks a complete checkpoint
        write_json(tmp / STATE_FILE, {"step": step, **(state or {})})
    if keep_last:
        for old in list_checkpoints(folder)[:-keep_last]:
            discard_folder(old)
    for stale in folder.glob(f"{TMP_PREFIX}*"):  # what killed saves and deletions left behind
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return final


def save_best(folder: str | Path, step: int, val_loss: float, model, tokenizer=None) -> Path:
    """Write the weights (and tokenizer) to ``folder/best`` with ``best.json`` (step, val_loss),
    replacing the previous best only once the new one is complete."""
    final = Path(folder) / BEST_DIR
    with atomic_folder(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_json(tmp / "best.json", {"step": step, "val_loss": val_loss})
    return final


def read_best(folder: str | Path) -> dict | None:
    """``{"step", "val_loss", "path"}`` of the kept best weights in ``folder``, or None."""
    path = Path(folder) / BEST_DIR / "best.json"
    if not path.is_file():
        return None
    return {**json.loads(path.read_text()), "path": str(path.parent)}


def read_checkpoint_state(path: str | Path) -> dict:
    with open(Path(path) / STATE_FILE) as fh:
        return json.load(fh)


def load_checkpoint_weights(model, checkpoint: str | Path) -> None:
    """Load the weights of ``checkpoint`` into ``model`` in place (full weights, or the LoRA
    adapter for a peft model). Raises ValueError when the checkpoint does not fit the model."""
    from safetensors.torch import load_file, load_model

    checkpoint = Path(checkpoint)
    if is_peft_model(model):
        from peft import set_peft_model_state_dict

        adapter = checkpoint / "adapter_model.safetensors"
        if not adapter.is_file():
            raise ValueError(f"{checkpoint} holds no LoRA adapter (adapter_model.safetensors), but the model is a "
                             "LoRA model; it was saved from a run without LoRA")
        result = set_peft_model_state_dict(model, load_file(str(adapter), device="cpu"))
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise ValueError(f"the adapter in {checkpoint} does not fit this model: unexpected {unexpected[:5]}")
        return
    weights = checkpoint / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{checkpoint} holds no model.safetensors (a LoRA checkpoint needs the same LoRA "
                         "settings to be resumed)")
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except RuntimeError as err:  # torch's size-mismatch report: say which checkpoint, keep torch's detail
        raise ValueError(f"the weights in {checkpoint} do not fit this model: {err}") from err
    if (missing or unexpected) and not _load_renamed(model, checkpoint):
        raise ValueError(f"the weights in {checkpoint} do not fit this model: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")


def _load_renamed(model, checkpoint: Path) -> bool:
    """transformers writes some weights under their original names and renames them when loading
    (GPT-NeoX's ``lm_head`` is saved as ``embed_out``): let it read the checkpoint, then copy every weight
    over. False when that does not give exactly this model's weights either."""
    if not hasattr(type(model), "from_pretrained"):
        return False
    try:
        loaded, info = type(model).from_pretrained(checkpoint, config=model.config, output_loading_info=True,
                                                   **dtype_keyword(next(model.parameters()).dtype))
    except (OSError, ValueError, RuntimeError):
        return False
    if any(info.get(key) for key in ("missing_keys", "unexpected_keys", "mismatched_keys")):
        return False
    model.load_state_dict(loaded.state_dict())
    return True


def _restore_rng(checkpoint: Path) -> None:
    """Put the random-number generators back as they were when ``checkpoint`` was written, so
    dropout after a resume draws the same masks as an uninterrupted run would have."""
    path = checkpoint / "rng.pt"
    if not path.is_file():
        return
    try:
        rng = torch.load(path, weights_only=True)
    except Exception as err:  # an older checkpoint format: training continues, only dropout masks differ
        print(f"gpt2lab: could not restore the random state from {path} ({type(err).__name__}); "
              "continuing with a fresh one", flush=True)
        return
    torch.set_rng_state(rng["torch"])
    if "numpy" in rng and "numpy_pos" in rng:
        np.random.set_state(("MT19937", rng["numpy"].numpy().astype(np.uint32), int(rng["numpy_pos"]), 0, 0.0))
    if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


# ----------------------------------------------------------------------------- the loop

@torch.no_grad()
def evaluate_loss(model, dataset, batch_size: int, max_batches: int | None, device) -> float:
    """Mean next-token cross-entropy (nats per predicted token) over the first batches of ``dataset``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    n = len(dataset)
    limit = n if max_batches is None else min(n, max_batches * batch_size)
    for start in range(0, limit, batch_size):
        batch = collate([dataset[i] for i in range(start, min(limit, start + batch_size))])
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((labels != -100).sum())
    if was_training:
        model.train()
    return total / max(count, 1)


def _mixed_precision(choice: str, device: str = "auto") -> str:
    if choice != "auto":
        return choice
    if device != "cpu" and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _forget_earlier_accelerator() -> None:
    """accelerate keeps one state per process and refuses a second Accelerator with another precision
    or device ("AcceleratorState has already been initialized"). A notebook that trains twice, say
    in float32 and then in bfloat16, must just work, so a single-process state is cleared first; a
    distributed run (``accelerate launch``) keeps the state its launcher set up."""
    from accelerate.state import AcceleratorState, PartialState

    if PartialState._shared_state and PartialState().num_processes > 1:
        return
    AcceleratorState._reset_state(reset_partial_state=True)


def freeze_embeddings(model) -> int:
    """Stop training the token and position embeddings (gpt-2-simple's
    ``only_train_transformer_layers``). GPT-2 ties its output layer to the token embedding, so that
    is frozen too. Returns how many parameters were frozen."""
    frozen = 0
    for name, module in model.named_modules():
        if name.split(".")[-1] in ("wte", "wpe", "embed_tokens", "embed_positions") \
                and isinstance(module, torch.nn.Embedding):
            for param in module.parameters():
                if param.requires_grad:
                    param.requires_grad_(False)
                    frozen += param.numel()
    return frozen


def process_batch_indices(n_items: int, seed: int, step: int, micro: int, batch_size: int, grad_accum: int,
                          rank: int = 0, world: int = 1) -> list[int]:
    """The items process ``rank`` of ``world`` trains on in micro-batch ``micro`` of optimizer step ``step``.

    The processes take consecutive, disjoint slices of one stream of shuffled epochs
    (:func:`sample_indices`): a step uses ``batch_size * grad_accum * world`` positions of the stream, so
    within an epoch no item is seen twice and none is skipped, whatever the number of processes."""
    per_step = batch_size * grad_accum * world
    first = step * per_step + micro * batch_size * world + rank * batch_size
    return sample_indices(n_items, seed, first, batch_size)


def train(model, train_data, val_data=None, config: TrainConfig | None = None, *, tokenizer=None,
          output_dir: str | Path | None = None, resume: bool = True,
          on_log: Callable[[dict], None] | None = None,
          on_sample: Callable[[int, str], None] | None = None) -> TrainResult:
    """Train ``model`` (a transformers causal LM, or a peft LoRA model around one) on ``train_data``
    (a Dataset of dicts with ``input_ids`` and ``labels``; see :class:`RandomWindows` and
    :class:`PackedBlocks`).

    output_dir: where checkpoints go; with ``resume=True`` the latest complete checkpoint there is
        loaded and training continues from its step with its optimizer, scheduler and random state.
    on_log: called with each history record (every ``log_every`` steps and at evaluations).
    on_sample: called with (step, text) for the samples drawn every ``sample_every`` steps.
    Returns a :class:`TrainResult` with the loss history. The history's ``loss`` is the mean
    training loss over the steps since the previous record; ``tokens`` counts the trained (label)
    tokens of all processes.

    Several processes (``accelerate launch``): each trains on its own slice of every step's batch
    (:func:`process_batch_indices`), gradients are averaged by accelerate (DDP), and only the main
    process writes checkpoints, best weights and samples. Raises ValueError for a config that is not
    allowed, or a model with nothing to train.
    """
    cfg = config or TrainConfig()
    cfg.validate()
    if cfg.keep_best and (val_data is None or output_dir is None):
        raise ValueError("keep_best=True needs validation data (val_data) and an output_dir to keep the best "
                         "weights in")
    run = _Training(model, train_data, val_data, cfg, tokenizer, output_dir, on_log, on_sample)
    run.start(resume)
    for step in range(run.start_step, cfg.max_steps):
        run.step(step)
    return run.finish()


def _optimizer(model, cfg: TrainConfig):
    """AdamW (weight decay on matrices only) and the warmup + cosine schedule, in optimizer steps."""
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (everything is frozen)")
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.learning_rate, betas=tuple(cfg.betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, cfg) / cfg.learning_rate)
    return optimizer, scheduler


class _Training:
    """One call of :func:`train`: set up, resume, then one optimizer step at a time."""

    def __init__(self, model, train_data, val_data, cfg: TrainConfig, tokenizer, output_dir, on_log, on_sample):
        from accelerate import Accelerator

        _forget_earlier_accelerator()
        self.accelerator = Accelerator(mixed_precision=_mixed_precision(cfg.mixed_precision, cfg.device),
                                       gradient_accumulation_steps=cfg.grad_accum, cpu=cfg.device == "cpu")
        torch.manual_seed(cfg.seed)
        if cfg.freeze_embeddings:
            freeze_embeddings(model)
        self.optimizer, self.scheduler = _optimizer(model, cfg)
        self.model, self.train_data, self.val_data, self.cfg = model, train_data, val_data, cfg
        self.tokenizer, self.output_dir, self.on_log, self.on_sample = tokenizer, output_dir, on_log, on_sample
        self.start_step, self.history, self.tokens_seen, self.pending_tokens = 0, [], 0, 0
        self.last_ckpt, self.best = None, None
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.main = self.accelerator.is_main_process

    def start(self, resume: bool) -> None:
        from tqdm.auto import tqdm

        cfg, accelerator = self.cfg, self.accelerator
        resumed_from = latest_checkpoint(self.output_dir) if self.output_dir is not None and resume else None
        if resumed_from is not None:
            load_checkpoint_weights(self.model, resumed_from)
            self.optimizer.load_state_dict(torch.load(resumed_from / "optimizer.pt", weights_only=True))
            self.scheduler.load_state_dict(torch.load(resumed_from / "scheduler.pt", weights_only=True))
            state = read_checkpoint_state(resumed_from)
            self.start_step, self.history = int(state["step"]), state.get("history", [])
            self.tokens_seen, self.last_ckpt = int(state.get("tokens_seen", 0)), resumed_from
            accelerator.print(f"gpt2lab: resuming from {resumed_from} (step {self.start_step})")
        # the scheduler is not prepared: accelerate would step it once per process, while here the
        # schedule is defined in optimizer steps whatever the number of processes
        self.model, self.optimizer = accelerator.prepare(self.model, self.optimizer)
        self.scaler = getattr(accelerator, "scaler", None)
        if resumed_from is not None:
            _restore_rng(resumed_from)
            if self.scaler is not None and (resumed_from / "scaler.pt").is_file():
                self.scaler.load_state_dict(torch.load(resumed_from / "scaler.pt", weights_only=True))
            # a resumed run continues against the best it had kept (a fresh run replaces any old one)
            self.best = read_best(self.output_dir) if cfg.keep_best else None
            if self.best is not None and self.best["step"] > self.start_step:  # kept by a later run: not ours
                self.best = None
        self.model.train()
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.bar = tqdm(total=cfg.max_steps, initial=self.start_step, desc="training",
                        disable=not (cfg.progress and self.main))
        # losses stay on the device between records: reading one back every step would stall a GPU
        self.loss_sum = torch.zeros((), device=accelerator.device)
        self.steps_in_sum = 0

    def step(self, step: int) -> None:
        cfg = self.cfg
        for micro in range(cfg.grad_accum):
            self._micro_step(step, micro)
        self.steps_in_sum += 1
        done = step + 1
        last = done == cfg.max_steps
        saving = self.output_dir is not None and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
                                                  or last)
        logging = done % cfg.log_every == 0 or last
        evaluating = self.val_data is not None and (done % cfg.eval_every == 0 or last)
        if logging or saving or evaluating:
            self._count_tokens()
        record = self._log_record(done) if logging else None
        if evaluating:
            record = self._evaluate(done, record or {"step": done})
        if record:
            self.history.append(record)
            if self.on_log:
                self.on_log(record)
            self.bar.set_postfix({k: f"{record[k]:.3f}" for k in ("loss", "val_loss") if k in record}, refresh=False)
        if cfg.sample_every and self.tokenizer is not None and done % cfg.sample_every == 0 and self.main:
            text = sample_text(self.accelerator.unwrap_model(self.model), self.tokenizer, cfg.sample_prompt,
                               cfg.sample_tokens)
            self.bar.write(f"--- sample at step {done} ---\n{text}")
            if self.on_sample:
                self.on_sample(done, text)
        if saving and self.main:
            self.last_ckpt = save_checkpoint(
                self.output_dir, done, self.accelerator.unwrap_model(self.model), self.optimizer, self.scheduler,
                self.tokenizer, {"history": self.history, "tokens_seen": self.tokens_seen,
                                 "config": _jsonable(asdict(cfg))}, cfg.keep_last, self.scaler)
        self.bar.update(1)

    def _micro_step(self, step: int, micro: int) -> None:
        cfg, accelerator, model = self.cfg, self.accelerator, self.model
        indices = process_batch_indices(len(self.train_data), cfg.seed, step, micro, cfg.batch_size, cfg.grad_accum,
                                        self.rank, self.world)
        batch = collate([self.train_data[i] for i in indices])
        self.pending_tokens += int((batch["labels"] != -100).sum())
        batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
        labels = batch.pop("labels")
        with accelerator.accumulate(model):
            logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                                                     labels.reshape(-1), ignore_index=-100)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if accelerator.sync_gradients:
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.loss_sum += loss.detach() / cfg.grad_accum

    def _count_tokens(self) -> None:
        """Add the tokens every process trained on since the last count (a sum across processes)."""
        pending = self.pending_tokens
        if self.world > 1:
            total = self.accelerator.reduce(torch.tensor(pending, device=self.accelerator.device), "sum")
            pending = int(total.item())
        self.tokens_seen += pending
        self.pending_tokens = 0

    def _log_record(self, done: int) -> dict:
        record = {"step": done, "loss": round(self.loss_sum.item() / self.steps_in_sum, 5),
                  "lr": self.scheduler.get_last_lr()[0], "tokens": self.tokens_seen,
                  "seconds": round(time.perf_counter() - self.t0, 3),
                  "cpu_seconds": round(time.process_time() - self.cpu0, 3)}
        self.loss_sum.zero_()
        self.steps_in_sum = 0
        return record

    def _evaluate(self, done: int, record: dict) -> dict:
        """Add the validation loss to ``record``; keep the weights when they are the best so far."""
        cfg, model = self.cfg, self.accelerator.unwrap_model(self.model)
        record["val_loss"] = round(evaluate_loss(model, self.val_data, cfg.batch_size, cfg.eval_batches,
                                                 self.accelerator.device), 5)
        improved = self.best is None or record["val_loss"] < self.best["val_loss"]
        if cfg.keep_best and improved:
            if self.main:
                save_best(self.output_dir, done, record["val_loss"], model, self.tokenizer)
            self.best = {"step": done, "val_loss": record["val_loss"], "path": str(Path(self.output_dir, BEST_DIR))}
        return record

    def finish(self) -> TrainResult:
        self.bar.close()
        self.accelerator.wait_for_everyone()
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        best = self.best
        return TrainResult(steps=max(self.cfg.max_steps, self.start_step), history=self.history,
                           tokens_seen=self.tokens_seen, seconds=time.perf_counter() - self.t0,
                           last_checkpoint=str(self.last_ckpt) if self.last_ckpt else None,
                           best_checkpoint=best["path"] if best else None, best_step=best["step"] if best else None,
                           best_val_loss=best["val_loss"] if best else None)


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@torch.no_grad()
def sample_text(model, tokenizer, prompt: str = "\n", max_new_tokens: int = 60, seed: int = 0) -> str:
    """One sample (top-k 40, temperature 0.8) from ``prompt``. The global random state is left as it
    was, so drawing samples during training does not change the training run itself."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
    if ids.shape[1] == 0:
        ids = torch.tensor([[tokenizer.eos_token_id]], device=device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=True, top_k=40, temperature=0.8,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    if was_training:
        model.train()
    return tokenizer.decode(out[0])
