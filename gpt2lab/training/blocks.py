"""Laying tokenised examples out in training blocks: one stream cut into blocks, or whole examples packed
into blocks (line by line); and the validation windows.

Each item is a dict of ``input_ids`` and ``labels``, both int64 tensors of shape ``(block_size,)``
(``Chunks``: up to ``block_size``); a label of -100 is a position that trains nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gpt2lab.training.reading import DataError, DataIssue
from gpt2lab.training.tokenised import FinetuneData

__all__ = ["StreamBlocks", "PackedExamples", "Chunks", "training_blocks"]


class _Blocks(torch.utils.data.Dataset):
    """Blocks of inputs with their labels; ``unused`` label positions (-100) train nothing."""

    block_size: int
    inputs: list
    labels: list
    unused: int = 0

    @property
    def waste(self) -> float:
        return self.unused / (len(self) * self.block_size)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return {"input_ids": self.inputs[i], "labels": self.labels[i]}


class StreamBlocks(_Blocks):
    """The concatenation of all examples cut into blocks of ``block_size`` (+1 for the shifted labels).

    Nothing is dropped and nothing is padded: when the stream does not divide evenly, one more
    block is taken from the very end of the stream, with the labels it shares with the previous
    block masked, so every token is learned exactly once per pass."""

    def __init__(self, examples: list[np.ndarray], block_size: int, name: str = "the data"):
        stream = torch.as_tensor(np.concatenate(examples) if examples else np.zeros(0), dtype=torch.long)
        if len(stream) < block_size + 1:
            raise DataError([DataIssue(name, None, "too_small",
                                       f"the training text has {len(stream)} tokens, fewer than one block of "
                                       f"{block_size} + 1")],
                            "Use a smaller block_size, line_by_line=True (which pads short examples), or more data")
        self.block_size = block_size
        n_full = (len(stream) - 1) // block_size
        self.inputs = [stream[i * block_size: (i + 1) * block_size] for i in range(n_full)]
        self.labels = [stream[i * block_size + 1: (i + 1) * block_size + 1] for i in range(n_full)]
        remainder = len(stream) - 1 - n_full * block_size
        self.unused = 0
        if remainder:
            labels = stream[len(stream) - block_size:].clone()
            labels[: block_size - remainder] = -100
            self.inputs.append(stream[len(stream) - block_size - 1: len(stream) - 1])
            self.labels.append(labels)
            self.unused = block_size - remainder


class PackedExamples(_Blocks):
    """Whole examples packed into blocks (best fit, longest first); the rest of each block is
    padding with label -100. An example never spans two blocks."""

    def __init__(self, examples: list[np.ndarray], block_size: int, pad_id: int, lines=None):
        import bisect

        capacity = block_size + 1  # a block of inputs plus the one label beyond it
        too_long = [i for i, ex in enumerate(examples) if len(ex) > capacity]
        if too_long:
            where = lines or [("the data", None)] * len(examples)
            raise DataError([DataIssue(where[i][0], where[i][1], "too_long",
                                       f"example of {len(examples[i])} tokens does not fit a block of {block_size} "
                                       "+ 1") for i in too_long],
                            "Use a larger block_size, or the default stream layout (line_by_line=False)")
        if not examples:
            raise DataError([DataIssue("the data", None, "too_small", "no training examples")])
        order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
        bins: list[list[int]] = []
        rooms: list[tuple[int, int]] = []  # (room left, bin index), sorted
        for i in order:
            size = len(examples[i])
            at = bisect.bisect_left(rooms, (size, -1))
            if at < len(rooms):  # the fullest bin that still has room
                room, b = rooms.pop(at)
            else:
                room, b = capacity, len(bins)
                bins.append([])
            bins[b].append(i)
            bisect.insort(rooms, (room - size, b))
        self.block_size = block_size
        self.inputs, self.labels = [], []
        self.unused = 0
        for b in bins:
            content = torch.as_tensor(np.concatenate([examples[i] for i in sorted(b)]), dtype=torch.long)
            inputs = torch.full((block_size,), pad_id, dtype=torch.long)
            labels = torch.full((block_size,), -100, dtype=torch.long)
            inputs[: len(content) - 1] = content[:-1]
            labels[: len(content) - 1] = content[1:]
            self.unused += block_size - (len(content) - 1)
            self.inputs.append(inputs)
            self.labels.append(labels)

    @property
    def padding(self) -> int:
        """Padding positions in all blocks."""
        return self.unused


class Chunks(torch.utils.data.Dataset):
    """Non-overlapping windows of a token stream for the validation loss; the last one may be short."""

    def __init__(self, ids: np.ndarray, block_size: int):
        ids = torch.as_tensor(ids, dtype=torch.long)
        self.items = [ids[s: s + block_size + 1] for s in range(0, max(len(ids) - 1, 0), block_size)]
        self.items = [w for w in self.items if len(w) >= 2]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return {"input_ids": self.items[i][:-1], "labels": self.items[i][1:]}


def training_blocks(prepared: FinetuneData, block_size: int, pad_id: int) -> StreamBlocks | PackedExamples:
    """The training Dataset for ``prepared``: stream blocks, or packed whole examples in line-by-line mode.

    Raises :class:`~gpt2lab.training.reading.DataError` when the data does not fit (too small for one
    block; an example longer than a block in line-by-line mode)."""
    if prepared.report.layout == "examples":
        return PackedExamples(prepared.train, block_size, pad_id, prepared.train_lines)
    return StreamBlocks(prepared.train, block_size, Path(prepared.report.source).name)
