import os
import platform
import subprocess
import sys

import pytest
import torch

from gpt2lab import device as dev


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device(None) == torch.device("cuda")


def test_explicit_devices_are_checked(monkeypatch):
    assert dev.pick_device("cpu") == torch.device("cpu")
    assert dev.pick_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dev.pick_device("cuda")
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS is not available"):
        dev.pick_device("mps")
    with pytest.raises(ValueError, match="not known"):
        dev.pick_device("tpu")
    with pytest.raises(TypeError):
        dev.pick_device(3)


def test_cuda_index_must_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dev.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="1 CUDA devices"):
        dev.pick_device("cuda:3")


def test_dtype_policy(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert dev.pick_dtype("auto", cpu, 2_000_000_000) == torch.float32
    assert dev.pick_dtype("auto", cuda, 124_000_000) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert dev.pick_dtype("auto", cuda, 1_500_000_000) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert dev.pick_dtype("auto", cuda, 1_500_000_000) == torch.float16
    assert dev.pick_dtype("float16", cpu) == torch.float16
    assert dev.pick_dtype(torch.bfloat16, cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype='half'"):
        dev.pick_dtype("half", cpu)


def test_missing_device_is_a_one_line_cli_error(capsys, monkeypatch):
    from gpt2lab import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["generate", "hello", "--model", "embedded", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "Traceback" not in err


def test_native_bf16_needs_both_the_instruction_set_and_the_speed(monkeypatch):
    monkeypatch.setattr(dev, "_cpu_lists_bf16", lambda: False)
    assert dev.native_bf16("cpu") is False and dev.autocast_precision("cpu") == "no"
    monkeypatch.setattr(dev, "_cpu_lists_bf16", lambda: True)
    monkeypatch.setattr(dev, "_cpu_bf16_is_fast", lambda: False)  # listed, but emulated (a limited ISA)
    assert dev.native_bf16("cpu") is False
    monkeypatch.setattr(dev, "_cpu_bf16_is_fast", lambda: True)
    assert dev.native_bf16("cpu") is True and dev.autocast_precision("cpu") == "bf16"
    assert dev.native_bf16("mps") is False


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="AVX2/AVX-512 are x86 ISAs")
def test_bf16_is_not_native_where_torch_is_limited_to_avx2():
    """The path of a CPU without AVX-512 (e.g. AMD EPYC), forced on any x86 machine: oneDNN limited to
    AVX2 emulates bf16, and native_bf16 must say so (a CPU that truly lacks AVX-512 says so anyway)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-c", "from gpt2lab.device import native_bf16; print(native_bf16())"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
