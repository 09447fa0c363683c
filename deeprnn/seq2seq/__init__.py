"""Sequence to sequence: a DeepRNN encoder, an attention decoder, greedy and beam decoding."""

from deeprnn.seq2seq.attention import ATTENTION_KINDS, Attention, Memory
from deeprnn.seq2seq.decode import Hypothesis, beam_search, greedy
from deeprnn.seq2seq.model import BOS_ID, EOS_ID, PAD_ID, DecoderState, Seq2Seq

__all__ = [
    "ATTENTION_KINDS",
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "Attention",
    "DecoderState",
    "Hypothesis",
    "Memory",
    "Seq2Seq",
    "beam_search",
    "greedy",
]
