"""CharLanguageModel: next-character prediction over a text stream, scoring and sampling."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from deeprnn.data import Vocabulary
from deeprnn.data.series import _positive_int
from deeprnn.errors import InputError, InputTypeError
from deeprnn.estimators.base import RNNEstimator
from deeprnn.estimators.inputs import check_texts
from deeprnn.train import evaluate


def _stream(X: Any, name: str = "text") -> str:
    """One string: X itself, or the texts of a list joined by newlines."""
    return X if isinstance(X, str) else "\n".join(check_texts(X, name))


def _pair(ids: np.ndarray) -> tuple[Tensor, None, Tensor]:
    """One batch predicting every character of `ids` after the first from those before."""
    t = torch.as_tensor(ids, dtype=torch.int64)
    return t[None, :-1], None, t[None, 1:]


class _Stream:
    """The training stream as one batch per epoch: `rows` contiguous rows of the text.

    `deeprnn.train.fit` with `tbptt_k1` walks the batch in chunks of that many steps, one
    update per chunk, the state carried from chunk to chunk. Each epoch starts the rows at a
    new random offset (from seed + epoch), so the cuts between chunks move.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, bptt: int, seed: int):
        self.ids, self.bptt, self.seed, self.epoch = ids, bptt, seed, 0
        self.rows = max(1, min(batch_size, (len(ids) - 1) // bptt))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        n = len(self.ids) - 1  # (input, next character) pairs
        rng = np.random.default_rng([self.seed, self.epoch])
        offset = int(rng.integers(0, 1 + min(self.bptt - 1, n - self.rows)))
        width = (n - offset) // self.rows
        end = offset + self.rows * width
        x = torch.as_tensor(self.ids[offset:end].reshape(self.rows, width))
        y = torch.as_tensor(self.ids[offset + 1 : end + 1].reshape(self.rows, width))
        yield x, None, y


MIN_UPDATES = 8  # updates per epoch below which a text is too short for its batch x window
MAX_ROWS, MAX_BPTT = 32, 64  # what the sizing from the text grows to on long texts


def stream_sizes(n: int, batch_size: int | None, bptt_steps: int | None) -> tuple[int, int]:
    """(rows, bptt) for n training characters: None picks a size from n, so that one epoch
    makes at least MIN_UPDATES updates (rows x bptt <= n / MIN_UPDATES) where n allows;
    a text too short for the sizes (given or picked) warns with what to change."""
    bptt = (max(4, min(MAX_BPTT, n // (2 * MIN_UPDATES))) if bptt_steps is None
            else _positive_int("bptt_steps", bptt_steps))  # fmt: skip
    rows = (max(1, min(MAX_ROWS, n // (bptt * MIN_UPDATES))) if batch_size is None
            else _positive_int("batch_size", batch_size))  # fmt: skip
    rows_used = max(1, min(rows, (n - 1) // bptt))  # as _Stream cuts the text
    updates = -(-((n - 1) // rows_used) // bptt)
    if updates < MIN_UPDATES:
        warnings.warn(
            f"the text gives {n} training characters: batch_size={rows} rows x "
            f"bptt_steps={bptt} make {updates} update(s) per epoch, too few to learn "
            f"from (>= {MIN_UPDATES} expected); leave batch_size / bptt_steps as None to size "
            "them from the text, make them smaller, or pass a longer text",
            UserWarning,
            stacklevel=3,
        )
    return rows, bptt


@dataclass(eq=False, repr=False, kw_only=True)
class CharLanguageModel(RNNEstimator):
    """A character-level language model: embedding -> DeepRNN -> softmax over characters.

    `fit(X)`: X a string, or a list of strings joined by newlines into one stream. The
    stream is cut into `batch_size` contiguous rows and trained with truncated BPTT
    (`TrainConfig.tbptt_k1 = bptt_steps`): one update every `bptt_steps` characters, the
    state carried across the whole row. The last `validation_fraction` of the stream is
    held out for early stopping. The alphabet is every character of X.
    `bits_per_char(X)`: mean -log2 p(next character) over X (each character after the
    first, predicted from those before it). `score(X)` is minus that, so that greater is
    better as scikit-learn expects.
    `generate(prompt, n, temperature=1.0, top_k=None, random_state=None, include_prompt=True)`:
    the prompt followed by n sampled characters, as `deeprnn generate` prints it
    (`include_prompt=False`: the n characters alone); an empty prompt draws the first one
    from the training character frequencies; the same random_state (default: `seed`)
    gives the same text.
    Characters unseen at fit time in a prompt or a scored text raise InputError naming
    them: the model has no probability for them.
    Args (besides RNNEstimator's; bidirectional must stay False): embedding_dim,
    bptt_steps; batch_size and bptt_steps left None are sized from the text (up to 32 rows
    of 64 characters, smaller where that leaves fewer than 8 updates an epoch), and a text
    too short for the sizes warns. Learned: model_, vocab_ (characters), unigram_,
    batch_size_ and bptt_steps_ (the sizes used), history_.
    """

    embedding_dim: int = 32  # width of the character vectors
    bptt_steps: int | None = None  # characters per truncated-BPTT update; None: from the text
    batch_size: int | None = None  # rows of the text stream; None: sized from the text

    _learned = ("vocab_", "unigram_", "batch_size_", "bptt_steps_")

    def fit(self, X: Any, y: Any = None) -> CharLanguageModel:
        """Learn from the text X (y is ignored); returns self."""
        self._check_params()
        if self.bidirectional:
            raise InputError("a language model reads left to right; bidirectional must be False")
        if self.frontend is not None:
            raise InputError(
                "a language model predicts each next character, and a conv front end's 'same' "
                "padding would let step t read the characters after it (nor can it generate "
                "one step at a time); frontend must be None"
            )
        stream = _stream(X, "X")
        chars = list(stream)
        self.vocab_ = Vocabulary.build([chars])
        ids = np.asarray(self.vocab_.encode(chars), dtype=np.int64)
        f = self._validation_fraction()
        n_val = 0 if f == 0 else max(2, round(len(ids) * f))
        if len(ids) - n_val < 2:
            raise InputError(
                f"X has {len(ids)} characters, too few to learn from with "
                f"validation_fraction={f}; pass a longer text"
            )
        train_ids = ids[: len(ids) - n_val]
        self.batch_size_, self.bptt_steps_ = stream_sizes(
            len(train_ids), self.batch_size, self.bptt_steps
        )
        rows, bptt = self.batch_size_, self.bptt_steps_
        counts = np.bincount(train_ids, minlength=len(self.vocab_))
        self.unigram_ = counts / counts.sum()
        # The held-out part starts one character early: its first target follows training.
        val = [_pair(ids[len(train_ids) - 1 :])] if n_val else None
        size = len(self.vocab_)
        spec = {"n_inputs": self.embedding_dim, "vocab_size": size, "n_outputs": size,
                "pooling": "every", "activation": "softmax"}  # fmt: skip
        train = _Stream(train_ids, rows, bptt, self.seed)
        self._train(spec, "lm", train, val, tbptt_k1=bptt)
        return self

    def _encode(self, text: str, name: str) -> list[int]:
        check_is_fitted(self, "model_")
        if not isinstance(text, str):
            raise InputTypeError(f"{name} must be a str, got {type(text).__name__}")
        unseen = sorted({c for c in text if c not in self.vocab_})
        if unseen:
            raise InputError(
                f"{name} contains characters unseen at fit time: {unseen[:10]!r}; the model "
                "gives them no probability, so remove or replace them"
            )
        return self.vocab_.encode(list(text))

    def bits_per_char(self, X: Any) -> float:
        """Mean bits per character of X under the model (lower is better)."""
        ids = np.asarray(self._encode(_stream(X), "X"), dtype=np.int64)
        if len(ids) < 2:
            raise InputError("X needs at least 2 characters: the first one is never predicted")
        return float(evaluate(self.model_, [_pair(ids)], task="lm")["bpc"])

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the bits per character of X (greater is better); y is ignored."""
        return -self.bits_per_char(X)

    @torch.no_grad()
    def generate(self, prompt: str = "", n: int = 100, temperature: float = 1.0,
                 top_k: int | None = None, random_state: int | None = None,
                 include_prompt: bool = True) -> str:  # fmt: skip
        """Sample n characters after `prompt`; returns prompt + them (the CLI's `deeprnn
        generate` prints the same), or them alone with `include_prompt=False`.

        temperature < 1 sharpens the distribution, > 1 flattens it; top_k samples among
        the k most probable characters only.
        """
        ids = self._encode(prompt, "prompt")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n must be an int >= 0, got {n!r}")
        if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                or not 0 < temperature < float("inf")):  # fmt: skip
            raise InputError(f"temperature must be a float > 0 and finite, got {temperature!r}")
        if top_k is not None:
            top_k = _positive_int("top_k", top_k)
        seed = self.seed if random_state is None else random_state
        if (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or not (0 <= seed < 2**63)
        ):
            raise InputError(f"random_state must be None or an int in [0, 2**63), got {seed!r}")
        g = torch.Generator().manual_seed(int(seed))
        device = next(self.model_.parameters()).device
        state = None
        if ids:
            logits, state = self.model_(torch.tensor([ids], device=device))
            last = logits[0, -1]
        else:
            last = torch.log(torch.as_tensor(self.unigram_))
        out = []
        for i in range(n):
            out.append(_sample(last, temperature, top_k, g))
            if i + 1 < n:
                logits, state = self.model_(torch.tensor([[out[-1]]], device=device), state)
                last = logits[0, -1]
        text = "".join(self.vocab_.decode(out))
        return prompt + text if include_prompt else text


def _sample(logits: Tensor, temperature: float, top_k: int | None, g: torch.Generator) -> int:
    """One id drawn from softmax(logits / temperature), never <pad> or <unk>."""
    z = logits.double().cpu() / temperature
    z[[Vocabulary.pad_id, Vocabulary.unk_id]] = -torch.inf
    if top_k is not None and top_k < len(z):
        z[z < torch.topk(z, top_k).values[-1]] = -torch.inf
    return int(torch.multinomial(torch.softmax(z, 0), 1, generator=g))
