"""The one home of each small shared idea: atomic writes, token conventions, fingerprints."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from gpt2lab import files, tokens
from gpt2lab.fingerprint import model_fingerprint, tokenizer_fingerprint


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = files.write_text(tmp_path / "run.json", "old")
    with pytest.raises(RuntimeError):
        with files.atomic_file(path) as fh:
            fh.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    files.write_json(path, {"step": 3})
    assert json.loads(path.read_text()) == {"step": 3}
    assert files.write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with files.atomic_file(path, "a"):
            pass


def test_atomic_folder_replaces_only_when_complete(tmp_path):
    final = tmp_path / "checkpoint-10"
    with files.atomic_folder(final) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with files.atomic_folder(final) as tmp:
            (tmp / "weights").write_text("v2, half")
            raise RuntimeError("crash")
    assert (final / "weights").read_text() == "v1"
    with files.atomic_folder(final) as tmp:
        (tmp / "weights").write_text("v2")
    assert (final / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10"]  # no temporaries left
    files.discard_folder(final)
    files.discard_folder(final)  # already gone: not an error
    assert list(tmp_path.iterdir()) == []


def test_bos_falls_back_to_eos_and_refuses_neither():
    assert tokens.bos_id(SimpleNamespace(bos_token_id=1, eos_token_id=2)) == 1
    assert tokens.bos_id(SimpleNamespace(bos_token_id=None, eos_token_id=50256)) == 50256
    with pytest.raises(ValueError, match="neither a beginning-of-text nor an end-of-text token"):
        tokens.bos_id(SimpleNamespace(bos_token_id=None, eos_token_id=None))
    assert tokens.pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=7)) == 7
    assert tokens.pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=None)) == 0


def test_left_and_right_padding_known_answers():
    ids, mask = tokens.left_pad([[5, 6, 7], [8]], pad=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask, last = tokens.right_pad([[5, 6, 7], [8]], pad=9)
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert last.tolist() == [2, 0]
    for pad in (tokens.left_pad, tokens.right_pad):
        with pytest.raises(ValueError, match="no empty row"):
            pad([[1], []], 0)


def test_fingerprints_follow_the_weights_and_the_vocabulary(tiny_lm, gpt2_tokenizer):
    before = model_fingerprint(tiny_lm)
    assert before == model_fingerprint(tiny_lm.model) and len(before) == 16
    with torch.no_grad():
        weight = tiny_lm.model.transformer.h[0].mlp.c_fc.weight
        original = weight[0, 0].item()
        weight[0, 0] += 1.0
        try:
            assert model_fingerprint(tiny_lm) != before
        finally:
            weight[0, 0] = original
    assert model_fingerprint(tiny_lm) == before
    with pytest.raises(TypeError, match="takes a torch module or a gpt2lab LM"):
        model_fingerprint("gpt2")
    from gpt2lab.basics.bpe import train_bpe

    small = train_bpe("to be or not to be, that is the question " * 20, vocab_size=300)
    assert tokenizer_fingerprint(small) != tokenizer_fingerprint(gpt2_tokenizer)
    assert tokenizer_fingerprint(gpt2_tokenizer) == tokenizer_fingerprint(gpt2_tokenizer)
