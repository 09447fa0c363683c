"""Seq2Seq: a DeepRNN encoder, an attention decoder driven one step at a time (Luong 2015).

    memory      = encoder(embed_src(x), lengths)              encoder: any DeepRNN
    s_0         = bridge(encoder's final top-layer h)          tanh(Linear), or zeros
    u_t         = [embed_tgt(y_(t-1)); a_(t-1)]                input feeding (a_(-1) = 0),
                                                               or embed_tgt(y_(t-1)) alone
    h_t, s_t    = decoder(u_t, s_(t-1))                        decoder: a unidirectional DeepRNN
    c_t, alpha_t = attention(h_t, memory)                      masked by source lengths
    a_t         = tanh(W_c [c_t; h_t] + b_c)                   the attentional vector
    logits_t    = W_o a_t + b_o
y_(-1) is <s> (`bos_id`); the targets end with </s> (`eos_id`). Training (`forward` with
targets) is teacher-forced: one DeepRNN call over the whole target when nothing feeds back
(no input feeding, no scheduled sampling), else the same step as decoding, with gradients.
Decoding uses `DeepRNN.step` (see `deeprnn.seq2seq.decode`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deeprnn.errors import InputError, InputTypeError
from deeprnn.seq2seq.attention import Attention, Memory
from deeprnn.stack import DeepRNN
from deeprnn.train.bptt import map_state
from deeprnn.train.losses import IGNORE_INDEX

PAD_ID, BOS_ID, EOS_ID = 0, 2, 3  # <unk> is 1 (deeprnn.data.Vocabulary)


@dataclass
class DecoderState:
    """Everything one decoding step carries: the decoder's state, the last attentional
    vector (input feeding) and the memory it attends to; rows are (source, hypothesis)."""

    state: list
    feed: Tensor
    memory: Memory

    def select(self, index: Tensor) -> DecoderState:
        """The rows `index`: beam search reorders hypotheses with it."""
        rows = map_state(lambda t: t[index], list(self.state))  # a plain list: re-checked
        return DecoderState(rows, self.feed[index],
                            self.memory.select(index))  # fmt: skip


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention; see the module docstring for the equations.

    Args:
        encoder: a DeepRNN reading source embeddings (input_size = source embedding width).
        decoder: a unidirectional DeepRNN; its input_size is the target embedding width,
            plus its output_size with input feeding.
        source_vocab, target_vocab: vocabulary sizes (ids 0 = pad; target 2 = <s>, 3 = </s>).
        attention: "general" | "dot" | "additive".
        input_feeding: feed a_(t-1) into step t (Luong's input feeding).
        bridge: start the decoder from tanh(Linear(encoder final h)); False: from zeros.
        scheduled_sampling: in training, the probability of feeding the model's own
            previous prediction instead of the gold token (Bengio et al. 2015).
    Call: `logits, _ = model(x, None, lengths, targets)`: x (B, S) source ids, lengths (B,),
    targets (B, T) ids ending in </s>, padded with -100; logits (B, T, V).
    """

    def __init__(self, encoder: DeepRNN, decoder: DeepRNN, source_vocab: int, target_vocab: int,
                 attention: str = "general", input_feeding: bool = True, bridge: bool = True,
                 scheduled_sampling: float = 0.0):  # fmt: skip
        super().__init__()
        for name, net in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(net, DeepRNN):
                raise InputTypeError(f"{name} must be a DeepRNN, got {type(net).__name__}")
        if decoder.config.bidirectional:
            raise InputError("the decoder runs one step at a time: bidirectional must be False")
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise InputError(f"scheduled_sampling must lie in [0, 1], got {scheduled_sampling!r}")
        width = decoder.output_size
        embed = decoder.config.input_size - (width if input_feeding else 0)
        if embed < 1:
            raise InputError(
                f"decoder input_size {decoder.config.input_size} leaves no room for the target "
                f"embedding beside the fed-back attentional vector ({width})"
            )
        self.source_embedding = nn.Embedding(source_vocab, encoder.config.input_size, PAD_ID)
        self.target_embedding = nn.Embedding(target_vocab, embed, PAD_ID)
        self.encoder, self.decoder = encoder, decoder
        self.attention = Attention(width, encoder.output_size, attention)
        self.combine = nn.Linear(encoder.output_size + width, width)
        self.output = nn.Linear(width, target_vocab)
        self.input_feeding, self.scheduled_sampling = input_feeding, scheduled_sampling
        self._parts = [2 if layer.cell.kind == "lstm" else 1 for layer in decoder.layers]
        self._sizes = [layer.hidden_size for layer in decoder.layers]
        if bridge:
            top = encoder.layers[-1].output_size
            self.bridge = nn.Linear(top, sum(p * h for p, h in zip(self._parts, self._sizes)))
        else:
            self.bridge = None

    def encode(self, x: Tensor, lengths: Tensor | None) -> DecoderState:
        """The start of decoding for source ids x (B, S) with lengths (B,)."""
        x = self._check_ids(x, self.source_embedding.num_embeddings, "source ids x")
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=x.device)
        if lengths.numel() and int(lengths.min()) < 1:
            raise InputError("every source needs at least one token; drop empty sources")
        keys, final = self.encoder(self.source_embedding(x), None, lengths)
        memory = self.attention.memory(keys, lengths)
        batch = x.shape[0]
        if self.bridge is None:
            state = [layer.initial_state(batch, keys) for layer in self.decoder.layers]
        else:
            top = final[-1][0] if isinstance(final[-1], tuple) else final[-1]
            if top.dim() == 3:  # bidirectional: (2, B, H) -> (B, 2H)
                top = torch.cat([top[0], top[1]], dim=-1)
            state = self._split(torch.tanh(self.bridge(top)))
        feed = keys.new_zeros(batch, self.decoder.output_size)
        return DecoderState(state, feed, memory)

    def _split(self, flat: Tensor) -> list:
        """(B, sum of state widths) -> one h or (h, c) per decoder layer."""
        state, at = [], 0
        for parts, size in zip(self._parts, self._sizes):
            pieces = [flat[:, at + i * size : at + (i + 1) * size] for i in range(parts)]
            state.append(tuple(p.contiguous() for p in pieces) if parts == 2 else pieces[0])
            at += parts * size
        return state

    def step(self, tokens: Tensor, ds: DecoderState, grad: bool = False):
        """One decoding step from the previous tokens (B,): (logits (B, V), next state,
        attention weights (B, S)). `grad` runs the step with autograd (training)."""
        u = self.target_embedding(tokens)
        if self.input_feeding:
            u = torch.cat([u, ds.feed], dim=-1)
        if grad:
            h, state = self.decoder(u.unsqueeze(1), ds.state)
            h = h.squeeze(1)
        else:
            h, state = self.decoder.step(u, ds.state)
        context, weights = self.attention(h, ds.memory)
        a = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))
        return self.output(a), DecoderState(state, a, ds.memory), weights

    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, None]:  # fmt: skip
        """Teacher-forced logits (B, T, V) for `targets` (B, T); the state is None."""
        if targets is None:
            raise InputError("Seq2Seq needs targets to train; decode with deeprnn.seq2seq.greedy")
        logits, _ = self.teacher_forced(self.encode(x, lengths), targets)
        return logits, None

    def teacher_forced(self, ds: DecoderState, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B, T, V), attention weights (B, T, S)) reading the gold prefix of targets."""
        targets = self._check_ids(targets, self.output.out_features, "targets", IGNORE_INDEX)
        gold = targets.masked_fill(targets == IGNORE_INDEX, PAD_ID)
        inputs = torch.cat([torch.full_like(gold[:, :1], BOS_ID), gold[:, :-1]], dim=1)
        sampling = self.scheduled_sampling if self.training else 0.0
        if not self.input_feeding and sampling == 0.0:
            h, _ = self.decoder(self.target_embedding(inputs), ds.state)
            context, weights = self.attention(h, ds.memory)
            a = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))
            return self.output(a), weights
        logits, weights = [], []
        tokens = inputs[:, 0]
        for t in range(inputs.shape[1]):
            out, ds, w = self.step(tokens, ds, grad=True)
            logits.append(out)
            weights.append(w)
            if t + 1 < inputs.shape[1]:
                tokens = inputs[:, t + 1]
                if sampling > 0.0:
                    own = torch.rand(tokens.shape, device=tokens.device) < sampling
                    tokens = torch.where(own, out.detach().argmax(-1), tokens)
        return torch.stack(logits, dim=1), torch.stack(weights, dim=1)

    @staticmethod
    def _check_ids(ids, size: int, name: str, allowed: int | None = None) -> Tensor:
        if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.dim() != 2:
            raise InputTypeError(
                f"{name} must be an integer tensor (batch, time), got "
                f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}"
            )
        if ids.shape[1] == 0:
            raise InputError(f"{name} has no steps (time = 0)")
        real = ids if allowed is None else ids[ids != allowed]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= size):
            raise InputError(f"{name} must lie in [0, {size}), got [{int(real.min())}, "
                             f"{int(real.max())}]")  # fmt: skip
        return ids
