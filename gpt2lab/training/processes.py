"""Several processes per run, and one writer per run folder.

**Several processes.** ``accelerate launch --multi_gpu --num_processes N`` (accelerate's own launcher,
torch's elastic agent underneath) starts N processes with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``
set. accelerate joins them into one process group with NCCL on GPUs; on CPUs it does so (with gloo)
only when it is told to run on the CPU, which :func:`start_processes` does whenever the run's device
is the CPU. (In accelerate 1.x, ``accelerate launch --cpu --num_processes N`` starts *one* process:
several CPU processes come only from the multi-process launcher above, torchrun, or mpirun.)

A run refuses to start, before it writes anything, when the processes would not know of each other:
a launcher started several (``WORLD_SIZE`` > 1) but accelerate sees one (each would train alone and
all would write the same run), or ``accelerate launch --cpu --num_processes N`` started one where
several were asked for. Both raise :class:`ProcessSetupError` with the command that works.

**One writer per run.** :func:`run_lock` holds an exclusive lock on ``RUN/.writer.lock``
(``filelock``: ``flock`` on Unix, ``msvcrt`` on Windows) for as long as the run trains, and writes who
holds it to ``RUN/.writer.json`` (pid, host, start time, command). A second start on the same run gets
:class:`RunBusyError` naming that process. The operating system releases the lock when its holder
ends, however it ends (even SIGKILL), so a stale holder never blocks a run: the next start takes the
lock over and rewrites the holder file. With several processes the main one takes the lock and tells
the others whether it got it, so all of them stop together.

**Workers stop with their launcher.** A worker started by a launcher watches its parent
(:func:`watch_launcher`, on POSIX systems); when the launcher dies (e.g. SIGKILL, which it cannot pass
on), the worker stops within a fraction of a second instead of training on as an orphan beside a
restarted run.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from gpt2lab import files

__all__ = ["LAUNCHER_VARIABLES", "WORLD_SIZE_VARIABLES", "LOCK_FILE", "HOLDER_FILE", "WATCH_SECONDS",
           "LAUNCHER_GONE_EXIT", "ProcessSetupError", "RunBusyError", "launched_world_size", "started_by_launcher",
           "start_processes", "is_main_process", "wait_for_everyone", "broadcast_from_main", "read_holder",
           "run_lock", "watch_launcher"]

# set in the processes accelerate launch (both launchers) and torchrun start
LAUNCHER_VARIABLES = ("TORCHELASTIC_RUN_ID", "ACCELERATE_DYNAMO_BACKEND")
# how many processes a launcher started (torchrun/accelerate; MPI implementations)
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCK_FILE = ".writer.lock"
HOLDER_FILE = ".writer.json"
WATCH_SECONDS = 0.2  # how often a worker looks for its launcher
LAUNCHER_GONE_EXIT = 75  # exit status of a worker whose launcher died (EX_TEMPFAIL: start the run again)

MULTI_PROCESS_COMMAND = "accelerate launch --multi_gpu --num_processes N -m gpt2lab.cli finetune ..."


class ProcessSetupError(RuntimeError):
    """The processes of a run would not know of each other. Raised in every process, before anything is
    written."""


class RunBusyError(RuntimeError):
    """Another process is writing this run. Raised in every process of the run."""


def launched_world_size() -> int:
    """How many processes the launcher that started this one says it started (1 without a launcher)."""
    sizes = [os.environ.get(name, "") for name in WORLD_SIZE_VARIABLES]
    return max([int(s) for s in sizes if s.strip().isdigit()] or [1])


def started_by_launcher() -> bool:
    """True in a process started by ``accelerate launch`` or ``torchrun``."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def _one_of_several_asked() -> bool:
    """``accelerate launch --cpu --num_processes N`` (N > 1) started this single process: accelerate's simple
    launcher sets ``ACCELERATE_USE_CPU`` always and ``MASTER_ADDR`` only when several processes were asked for,
    and starts one process without ``WORLD_SIZE``."""
    return ("ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ and "LOCAL_RANK" not in os.environ
            and launched_world_size() == 1)


def start_processes(cpu: bool):
    """Set up accelerate's process state for a run on the CPU (``cpu=True``) or the default device, and
    check that it holds every process the launcher started. Returns the ``accelerate.PartialState``.

    Raises :class:`ProcessSetupError` (nothing written yet) when the processes would train alone.
    Without a launcher this is one process; a single-process state left by an earlier run in the same
    Python (a notebook) is replaced, so that a CPU run can follow a GPU one."""
    from accelerate.state import AcceleratorState, PartialState

    expected = launched_world_size()
    if _one_of_several_asked():
        raise ProcessSetupError("`accelerate launch --cpu --num_processes N` starts one process, not N (accelerate "
                                "starts several CPU processes only with --multi_gpu or mpirun); start them with "
                                f"`{MULTI_PROCESS_COMMAND}` (CPU processes with gloo when there is no GPU, or "
                                "with --device cpu)")
    if PartialState._shared_state:
        earlier = PartialState()
        if earlier.num_processes == 1 and expected == 1:
            AcceleratorState._reset_state(reset_partial_state=True)
        elif earlier.num_processes != expected:
            raise ProcessSetupError(
                f"this process is one of {expected} a launcher started, but accelerate was already set up in it as "
                f"{earlier.num_processes} process(es) (on {earlier.device}) before the run started; let the run set "
                "it up (create no Accelerator or PartialState before it), or create it with cpu=True on CPUs")
    state = PartialState(cpu=cpu)
    if state.num_processes != expected:
        raise ProcessSetupError(
            f"this process is one of {expected} a launcher started (WORLD_SIZE={expected}), but accelerate runs it "
            f"alone on {state.device} (it joins processes with NCCL on CUDA GPUs and with gloo on CPUs): each would "
            "train alone and all would write the same run; pass device='cpu' (--device cpu) to train on CPU "
            "processes")
    return state


def is_main_process() -> bool:
    """True in the process that writes the run (the only process without a launcher)."""
    from accelerate import PartialState

    return PartialState().is_main_process


def wait_for_everyone() -> None:
    """A barrier across the processes of the run (nothing in a single process)."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def broadcast_from_main(value, state=None):
    """The main process's ``value`` (any picklable object), in every process."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = state or PartialState()
    if state.num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


# ---------------------------------------------------------------------------- one writer per run

def _holder_record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": _command_line(),
            "launcher_pid": os.getppid() if started_by_launcher() else None}


def _command_line() -> str:
    """This process's command line as typed (``python -m gpt2lab.cli finetune ...``), at most 300 characters."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return " ".join([Path(argv[0]).name, *argv[1:]])[:300]


def read_holder(run_dir: str | os.PathLike) -> dict | None:
    """Who holds (or last held) the run's lock: pid, host, started, command, launcher_pid; None if unknown."""
    try:
        return json.loads((Path(run_dir) / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # there, signal 0 is CTRL_C_EVENT: never send it; the holder is taken to be alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy_message(run_dir: Path) -> str:
    holder = read_holder(run_dir)
    here = holder is not None and holder.get("host") == socket.gethostname()
    if holder is None or (here and not _pid_alive(int(holder.get("pid", 0)))):
        who = "another process (it is starting and has not written its details yet)"
        action = "wait for it to finish or stop it"
    else:
        launcher = f", launcher pid {holder['launcher_pid']}" if holder.get("launcher_pid") else ""
        who = (f"process {holder['pid']} on {holder.get('host', '?')}{launcher}, started {holder.get('started', '?')}"
               f" ({holder.get('command', '')})")
        kill = f" (kill {holder['pid']})" if here else ""
        action = f"wait for it to finish or stop it{kill}"
    return (f"run {str(run_dir)!r} is being written by {who}; a run has one writer at a time: {action}, or use "
            "another run_name")


def _acquire(run_dir: Path):
    from filelock import FileLock, Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunBusyError(_busy_message(run_dir)) from None
    files.write_json(run_dir / HOLDER_FILE, _holder_record())
    return lock


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, state=None) -> Iterator[None]:
    """Hold the run folder's writer lock for the block (see the module docstring). ``state``: the run's
    ``PartialState``; with several processes the main one takes the lock and all learn the outcome.

    Raises :class:`RunBusyError` in every process when another process holds the lock."""
    run_dir = Path(run_dir)
    main = state is None or state.is_main_process
    lock, problem = None, None
    if main:
        try:
            lock = _acquire(run_dir)
        except RunBusyError as err:
            problem = str(err)
    if state is not None and state.num_processes > 1:
        problem = broadcast_from_main(problem, state)
    if problem:
        raise RunBusyError(problem)
    try:
        yield
    finally:
        if lock is not None:
            holder = read_holder(run_dir)
            if holder is not None and holder.get("pid") == os.getpid():
                (run_dir / HOLDER_FILE).unlink(missing_ok=True)
            lock.release()


# ---------------------------------------------------------------------------- workers stop with their launcher

@contextlib.contextmanager
def watch_launcher(interval: float = WATCH_SECONDS) -> Iterator[None]:
    """While the block runs in a process started by a launcher, end the process (status
    :data:`LAUNCHER_GONE_EXIT`) as soon as the launcher is gone, i.e. the process has a new parent. A
    process without a launcher is never stopped (a run started with ``nohup`` outlives its shell).
    Files are written atomically, so stopping at any point leaves the last complete checkpoint."""
    if not started_by_launcher():
        yield
        return
    parent = os.getppid()
    done = threading.Event()

    def watch():
        while not done.wait(interval):
            if os.getppid() != parent:
                print(f"gpt2lab: the launcher of this process (pid {parent}) is gone; stopping process {os.getpid()} "
                      "(start the same command again to resume from the last checkpoint)", file=sys.stderr,
                      flush=True)
                os._exit(LAUNCHER_GONE_EXIT)

    thread = threading.Thread(target=watch, name="gpt2lab-launcher-watch", daemon=True)
    thread.start()
    yield  # an error leaves the watch on: a worker whose peer stopped first still ends when its launcher is gone
    done.set()
