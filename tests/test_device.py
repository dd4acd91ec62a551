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
