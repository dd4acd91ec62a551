"""Choosing where a model runs (CUDA, Apple MPS or CPU) and in which precision."""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Literal, get_args

import torch

__all__ = ["DEVICE_CHOICES", "DType", "DTYPE_CHOICES", "DeviceUnavailableError", "pick_device", "pick_dtype",
           "native_bf16", "autocast_precision", "describe"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DType = Literal["auto", "float32", "float16", "bfloat16"]
DTYPE_CHOICES = get_args(DType)

# Above this many parameters a model in float32 stops fitting comfortably on common GPUs
# (gpt2-xl has 1.56B), so "auto" switches to half precision on CUDA.
_HALF_PRECISION_ABOVE = 1_000_000_000


class DeviceUnavailableError(RuntimeError, ValueError):
    """The device asked for is not on this machine (a ValueError too: the argument cannot be used here)."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``device``: "auto" tries CUDA, then Apple MPS, then the CPU.

    Explicit names ("cpu", "cuda", "cuda:1", "mps") are checked so that asking for a device
    that is not there fails here, with the reason, instead of deep inside torch.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
    kind = device.split(":")[0]
    if kind not in DEVICE_CHOICES[1:]:
        raise ValueError(f"device={device!r} is not known; use one of {', '.join(DEVICE_CHOICES)} (or 'cuda:N')")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"device={device!r} was asked for, but torch sees no CUDA GPU here; "
                                         "use 'auto' or 'cpu'")
        index = device.split(":")[1] if ":" in device else "0"
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
    if kind == "mps" and not _mps_available():
        raise DeviceUnavailableError("device='mps' was asked for, but Apple MPS is not available here; "
                                     "use 'auto' or 'cpu'")
    return torch.device(device)


def pick_dtype(dtype: DType | torch.dtype | None, device: torch.device, n_params: int | None = None) -> torch.dtype:
    """Resolve ``dtype``. "auto" means float32 (exact, what the parity tests assume) except for
    models above 1B parameters on CUDA, which get bfloat16 (or float16 on GPUs without bf16)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and n_params is not None and n_params > _HALF_PRECISION_ABOVE:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype={dtype!r} is not known; use one of {', '.join(DTYPE_CHOICES)} or a torch.dtype")
    return getattr(torch, dtype)


def _cpu_flags() -> set[str]:
    """The feature flags the Linux kernel lists for the CPU (empty elsewhere or when unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 says "flags", ARM says "Features"
            flags.update(value.split())
    return flags


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively rather than by emulation.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: the CPU must list a bf16 instruction set (x86
    AVX-512 BF16 or AMX, ARM BF16) *and* a bf16 matrix product must actually run at least about as fast
    as a float32 one here (measured once per process, a few milliseconds): torch may be limited to
    narrower kernels (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, a hypervisor) and then emulates
    bf16 tens of times slower than float32, as on CPUs without AVX-512 (e.g. many AMD EPYC).
    MPS: False (autocast support there varies by release).
    """
    device = torch.device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    return _cpu_lists_bf16() and _cpu_bf16_is_fast()


def _torch_limited_below_bf16() -> bool:
    """True when the user limits torch's CPU kernels to an instruction set without bf16 (oneDNN's
    ``ONEDNN_MAX_CPU_ISA``, ATen's ``ATEN_CPU_CAPABILITY``): bf16 is then emulated whatever the CPU has."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa != "ALL" and "BF16" not in isa and "AMX" not in isa and "AVX10" not in isa:
        return True
    return os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() in ("default", "avx2")


def _cpu_lists_bf16() -> bool:
    if _torch_limited_below_bf16():
        return False
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        if check is not None and check():
            return True
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


@functools.lru_cache(maxsize=1)
def _cpu_bf16_is_fast(size: int = 256, repeats: int = 5) -> bool:
    """Time a (size x size) matrix product in bf16 and in float32 (best of ``repeats``); native bf16 is
    2-4x faster than float32, emulated bf16 10-100x slower, so the threshold (1.5x) is far from both."""
    a = torch.randn(size, size)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            x @ x
            best = min(best, time.perf_counter() - start)
        times[dtype] = best
    return times[torch.bfloat16] <= 1.5 * times[torch.float32]


def autocast_precision(device: str | torch.device = "cpu") -> str:
    """The mixed precision worth training in on ``device``, in accelerate's terms: "bf16" where it is
    native (CUDA with bf16, CPUs with AVX-512 BF16 / AMX / ARM BF16), "fp16" on older CUDA GPUs, and
    "no" (float32) everywhere else, since emulated bf16 is slower than float32."""
    device = torch.device(device) if isinstance(device, str) else device
    if native_bf16(device):
        return "bf16"
    return "fp16" if device.type == "cuda" else "no"


def describe(device: torch.device) -> str:
    """A short human description, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
