"""Training throughput of ``gpt2lab.finetune`` against a minimal hand-written PyTorch loop, in one run.

Both train the same model (the embedded Shakespeare GPT-2 by default) from the same weights, on the
same blocks of tinyshakespeare's training split, with the same batch size and the same optimisation
(AdamW, warmup + cosine learning rate, gradient clipping at 1.0, float32 on a CPU). The hand-written
loop is what one would type without a framework: pre-stacked tensors, forward, cross-entropy,
backward, clip, step. gpt2lab's side is the whole ``finetune`` call (accelerate, the data pipeline,
logging, progress bar); its throughput is read from the run's own history between the first
--warmup steps and the end, so loading, tokenising and the before/after perplexity are not counted.
The two alternate, --repeats times; medians are reported, per wall-clock second and per CPU-second
(the steadier figure when other processes share the CPU). Goal: ratio >= 0.95.

It also reports how much packing wastes: the fraction of block positions that train nothing (the
masked tail of a stream; the padding of whole examples packed line by line). Goal: <= 5 % for the
default stream layout.

With --processes, it measures instead the throughput of ``gpt2lab finetune`` started by
``accelerate launch`` with one and with two processes (``--multi_gpu --num_processes 2``: CPU
processes joined by gloo when there is no GPU), each process with the same batch, so two processes
train twice the tokens per step. It reports tokens per second of all processes together, read from
the run's history (the same window as above), for 1 process x all threads, 1 process x 1 thread and
2 processes x 1 thread each.

Usage:  .venv/bin/python bench/bench_finetune.py [--steps 30] [--warmup 5] [--repeats 3]
        [--model embedded] [--batch-size 8] [--block-size 128] [--threads N] [--device auto|cpu]
        [--processes]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "GPT2LAB_DATA_MIRROR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["GPT2LAB_DATA_MIRROR"] = str(ROOT.parent / "shared" / "data")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

import gpt2lab  # noqa: E402
from gpt2lab import data, training  # noqa: E402


def hand_loop(model, inputs, labels, order, steps, warmup, batch, cfg, device) -> tuple[float, float]:
    """Tokens per second (wall clock, CPU time) of a minimal PyTorch loop over steps [warmup, steps)."""
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=cfg.betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: training.lr_at(s, cfg) / cfg.learning_rate)
    inputs, labels = inputs.to(device), labels.to(device)
    tokens, t0 = 0, None
    for step in range(steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, cpu0, tokens = time.perf_counter(), time.process_time(), 0
        idx = order[step * batch:(step + 1) * batch]
        x, y = inputs[idx], labels[idx]
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                                 ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int((y != -100).sum())
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - cpu0)


def gpt2lab_run(lm, path, steps, warmup, args, workdir, run):
    result = training.finetune(
        path, lm, steps=steps, run_name=run, checkpoint_dir=workdir / "runs", cache_dir=workdir / "cache",
        resume=False, block_size=args.block_size, batch_size=args.batch_size, learning_rate=1e-4,
        warmup_steps=args.warmup_lr, checkpoint_every=0, sample_every=0, eval_every=10 ** 9, eval_batches=1,
        log_every=1, eval_max_tokens=args.block_size * 2, mixed_precision="no", device=args.device,
        progress=False, verbose=False)
    records = {h["step"]: h for h in result.history if "tokens" in h}
    first, last = records[warmup], records[steps]
    tokens = last["tokens"] - first["tokens"]
    wall = tokens / (last["seconds"] - first["seconds"])
    cpu = tokens / (last["cpu_seconds"] - first["cpu_seconds"])
    return (wall, cpu), result


def packing_waste(tokenizer, block) -> dict:
    out = {}
    tok = copy.deepcopy(tokenizer)
    shakespeare = training.prepare_data(data.fetch("tinyshakespeare/input.txt"), tok, cache_dir=False,
                                          progress=False)
    out["tinyshakespeare, stream"] = training.StreamBlocks(shakespeare.train, block).waste
    # line by line, every non-empty line is an example (the blank lines are left out, and reported)
    lines = training.prepare_data(data.fetch("tinyshakespeare/input.txt"), tok, cache_dir=False, progress=False,
                                    line_by_line=True, bad_rows="skip")
    out["tinyshakespeare, line by line"] = training.training_blocks(lines, block, tok.eos_token_id).waste
    csv_path = ROOT / "data" / "short_texts.csv"
    tok.add_tokens([training.START_TOKEN], special_tokens=True)
    for line_by_line in (False, True):
        prepared = training.prepare_data(csv_path, tok, line_by_line=line_by_line, cache_dir=False,
                                           progress=False)
        blocks = training.training_blocks(prepared, block, tok.eos_token_id)
        out[f"short_texts.csv, {'line by line' if line_by_line else 'stream'}"] = blocks.waste
    return out


def launched_run(n_processes: int, threads: int, path, args, workdir, run) -> float:
    """Tokens per second (all processes) of `gpt2lab finetune` under `accelerate launch` with n processes."""
    import json
    import subprocess

    several = ["--multi_gpu", "--main_process_port", "0"] if n_processes > 1 else []
    total = args.warmup + args.steps
    command = [sys.executable, "-m", "accelerate.commands.launch", *several, "--num_processes", str(n_processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "gpt2lab.cli", "finetune", str(path), "--model", args.model, "--steps", str(total),
               "--run-name", run, "--checkpoint-dir", str(workdir / "runs"), "--cache-dir", str(workdir / "cache"),
               "--fresh", "--block-size", str(args.block_size), "--batch-size", str(args.batch_size),
               "--lr", "1e-4", "--warmup-steps", str(args.warmup_lr), "--checkpoint-every", "0",
               "--sample-every", "0", "--eval-every", str(10 ** 9), "--eval-batches", "1", "--log-every", "1",
               "--eval-max-tokens", str(2 * args.block_size), "--device", args.device, "--no-progress",
               "--no-verbose"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = json.loads((workdir / "runs" / run / f"checkpoint-{total}" / "trainer_state.json").read_text())
    records = {h["step"]: h for h in state["history"] if "tokens" in h}
    first, last = records[args.warmup], records[total]
    return (last["tokens"] - first["tokens"]) / (last["seconds"] - first["seconds"])


def processes_bench(args) -> int:
    path = data.fetch("tinyshakespeare/input.txt")
    cores = os.cpu_count() or 1
    setups = [(1, cores), (1, 1), (2, 1)]  # (processes, threads per process)
    print(f"gpt2lab finetune under accelerate launch: model {args.model}, batch {args.batch_size} x block "
          f"{args.block_size} per process, {args.steps} timed steps after {args.warmup}, {args.repeats} repeats, "
          f"{cores} CPU cores")
    found = {s: [] for s in setups}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n, threads in (setups if r % 2 == 0 else setups[::-1]):  # alternate against drifting load
                found[(n, threads)].append(launched_run(n, threads, path, args, Path(tmp), f"p{n}t{threads}r{r}"))
            print(f"  repeat {r + 1}: " + "   ".join(f"{n} proc x {t} thr {v[-1]:8.0f} tok/s"
                                                    for (n, t), v in found.items()), flush=True)
    one_thread = statistics.median(found[(1, 1)])
    for (n, threads), values in found.items():
        median = statistics.median(values)
        print(f"median {n} process(es) x {threads} thread(s): {median:8.0f} tok/s   ({median / one_thread:.2f} x "
              f"1 process x 1 thread; range {min(values):.0f}-{max(values):.0f})")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--steps", type=int, default=20, help="measured steps per run (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3, help="steps not timed at the start of each run")
    parser.add_argument("--warmup-lr", type=int, default=5, help="learning-rate warmup steps (both loops)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu"))
    parser.add_argument("--processes", action="store_true", help="1 vs 2 processes under accelerate launch")
    args = parser.parse_args(argv)
    if args.processes:
        return processes_bench(args)
    if args.threads:
        torch.set_num_threads(args.threads)

    lm = gpt2lab.load(args.model, device=args.device, dtype="float32")
    device = lm.device
    total = args.warmup + args.steps
    path = data.fetch("tinyshakespeare/input.txt")
    print(f"model {lm.name} ({lm.n_params / 1e6:.1f}M params) on {device}, torch threads {torch.get_num_threads()}; "
          f"batch {args.batch_size} x block {args.block_size}; {args.steps} timed steps after {args.warmup}, "
          f"{args.repeats} repeats")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # the exact blocks and batch order that finetune trains on, for the hand-written loop
        prepared = training.prepare_data(path, copy.deepcopy(lm.tokenizer), cache_dir=workdir / "cache",
                                           progress=False)
        blocks = training.StreamBlocks(prepared.train, args.block_size)
        inputs = torch.stack([blocks[i]["input_ids"] for i in range(len(blocks))])
        labels = torch.stack([blocks[i]["labels"] for i in range(len(blocks))])
        order = torch.tensor(training.sample_indices(len(blocks), 0, 0, total * args.batch_size))
        cfg = training.TrainConfig(max_steps=total, learning_rate=1e-4, warmup_steps=args.warmup_lr,
                                   weight_decay=0.0, grad_clip=1.0)

        hand, ours, ratios, cpu_ratios = [], [], [], []
        for r in range(args.repeats):
            def run_hand():
                model = copy.deepcopy(lm.model).float()
                return hand_loop(model, inputs, labels, order, total, args.warmup, args.batch_size, cfg, device)

            if r % 2 == 0:  # alternate which goes first, so drifting machine load hits both alike
                h = run_hand()
                g, result = gpt2lab_run(lm, path, total, args.warmup, args, workdir, f"bench{r}")
            else:
                g, result = gpt2lab_run(lm, path, total, args.warmup, args, workdir, f"bench{r}")
                h = run_hand()
            hand.append(h[0])
            ours.append(g[0])
            ratios.append(g[0] / h[0])
            cpu_ratios.append(g[1] / h[1])
            print(f"  repeat {r + 1}: hand-written {h[0]:8.0f} tok/s   gpt2lab finetune {g[0]:8.0f} tok/s   "
                  f"ratio {g[0] / h[0]:.3f}   (per CPU-second: {h[1]:.0f} vs {g[1]:.0f}, ratio {g[1] / h[1]:.3f})",
                  flush=True)
        print(f"median: hand-written {statistics.median(hand):.0f} tok/s, gpt2lab finetune "
              f"{statistics.median(ours):.0f} tok/s, ratio {statistics.median(ratios):.3f} (goal >= 0.95); "
              f"per CPU-second ratio {statistics.median(cpu_ratios):.3f}")
        print("  (wall clock is what counts on a dedicated machine; on a shared CPU the per-CPU-second ratio "
              "is the steadier comparison)")
        end_to_end = result.train_seconds
        print(f"(last gpt2lab run: {result.steps} steps took {end_to_end:.1f} s inside train(), incl. the final "
              f"checkpoint; perplexity on {2 * args.block_size} validation tokens {result.perplexity_before:.2f} "
              f"-> {result.perplexity_after:.2f})")

    print("packing waste (block positions that train nothing):")
    for name, waste in packing_waste(lm.tokenizer, args.block_size).items():
        print(f"  {name:32s} {100 * waste:6.2f} %")
    print("  (line by line, whole examples are packed into blocks; with few examples the last, part-filled "
          "block dominates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
