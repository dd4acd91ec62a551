"""Before the network (notebooks 01-02): n-gram language models, byte-level BPE, and scoring a
language model (negative log-likelihood, perplexity, bits per character, with a sliding window).
"""
from __future__ import annotations

from gpt2lab.basics import bpe, evaluation, ngram
from gpt2lab.basics.bpe import *  # noqa: F403
from gpt2lab.basics.evaluation import *  # noqa: F403
from gpt2lab.basics.ngram import *  # noqa: F403

__all__ = ["ngram", "bpe", "evaluation", *ngram.__all__, *bpe.__all__, *evaluation.__all__]
