"""Text to integer ids: a tokenizer, a vocabulary and Keras-style padding.

The workflow: `Tokenizer().tokenize(text)` per document, `Vocabulary.build(token_lists)`,
`vocab.encode(tokens)` per document, then `pad_sequences(ids)` into one (N, T) array.
"""

from __future__ import annotations

import numbers
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from deeprnn.errors import InputError, InputTypeError, check_choice

PAD = "<pad>"
UNK = "<unk>"

# A word keeps its inner apostrophes ("don't", "o'er"); any other punctuation mark is a
# token of its own unless punctuation is stripped.
_WORD = re.compile(r"\w+(?:'\w+)*")
_WORD_OR_PUNCT = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_PUNCT = set(string.punctuation)


class Tokenizer:
    """Split text into word or character tokens.

    Args:
        level: "word" (words, with punctuation marks as separate tokens) or "char".
        lower: lower-case the text first.
        strip_punctuation: drop punctuation marks (for "word", apostrophes inside words stay).
    """

    def __init__(self, level: str = "word", lower: bool = True, strip_punctuation: bool = False):
        check_choice("level", level, ("word", "char"))
        self.level = level
        self.lower = lower
        self.strip_punctuation = strip_punctuation

    def tokenize(self, text: str) -> list[str]:
        """Return the tokens of one document."""
        if not isinstance(text, str):
            raise InputTypeError(f"text must be a str, got {type(text).__name__}")
        if self.lower:
            text = text.lower()
        if self.level == "char":
            if self.strip_punctuation:
                return [c for c in text if c not in _PUNCT]
            return list(text)
        pattern = _WORD if self.strip_punctuation else _WORD_OR_PUNCT
        return pattern.findall(text)

    def join(self, tokens: Iterable[str]) -> str:
        """Inverse of `tokenize` up to spacing: chars are concatenated, words space-joined."""
        return ("" if self.level == "char" else " ").join(tokens)

    def __repr__(self) -> str:
        return (
            f"Tokenizer(level={self.level!r}, lower={self.lower}, "
            f"strip_punctuation={self.strip_punctuation})"
        )


class Vocabulary:
    """A token <-> id map with `<pad>` = 0 and `<unk>` = 1.

    Build it from training data only with `Vocabulary.build`; tokens it has not seen
    encode to `<unk>`.
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Sequence[str]):
        if isinstance(tokens, str) or not hasattr(tokens, "__iter__"):
            raise InputTypeError(f"tokens must be a list of str, got {type(tokens).__name__}")
        tokens = list(tokens)
        bad = next((t for t in tokens if not isinstance(t, str)), None)
        if bad is not None:
            raise InputTypeError(f"vocabulary tokens must be str, got {type(bad).__name__} {bad!r}")
        if tokens[:2] != [PAD, UNK]:
            raise InputError(f"a vocabulary must start with [{PAD!r}, {UNK!r}], got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            dup = next(t for t, c in Counter(tokens).items() if c > 1)
            raise InputError(f"vocabulary tokens must be unique, {dup!r} appears twice")
        self.id_to_token: list[str] = tokens
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count tokens over documents and keep the frequent ones.

        Args:
            token_lists: one list of tokens per document (the output of `tokenize`).
            min_freq: keep tokens seen at least this many times.
            max_size: most entries in total, `<pad>` and `<unk>` included (None: no limit).
        Ties in frequency keep the order of first appearance, so the result is deterministic.
        """
        if not isinstance(min_freq, int) or min_freq < 1:
            raise InputError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 2):
            raise InputError(
                f"max_size must be None or an int >= 2 (room for the two "
                f"special tokens), got {max_size!r}"
            )
        if isinstance(token_lists, str):
            raise InputTypeError(
                "token_lists must be a list of token lists, got one str; "
                "tokenize each document first"
            )
        if not hasattr(token_lists, "__iter__"):
            raise InputTypeError(
                f"token_lists must be a list of token lists, got {type(token_lists).__name__}"
            )
        counts: Counter[str] = Counter()
        for i, tokens in enumerate(token_lists):
            if isinstance(tokens, str):
                raise InputTypeError(
                    f"token_lists[{i}] is a str; pass lists of tokens, e.g. "
                    "[Tokenizer().tokenize(t) for t in texts]"
                )
            if not hasattr(tokens, "__iter__"):
                raise InputTypeError(
                    f"token_lists[{i}] must be a list of str tokens, got {type(tokens).__name__}"
                )
            tokens = list(tokens)
            bad = next((t for t in tokens if not isinstance(t, str)), None)
            if bad is not None:
                raise InputTypeError(
                    f"token_lists[{i}] holds {type(bad).__name__} {bad!r}; tokens must be str"
                )
            counts.update(tokens)
        kept = [t for t, c in counts.most_common() if c >= min_freq and t not in (PAD, UNK)]
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.id_to_token)

    def __contains__(self, token: object) -> bool:
        return token in self.token_to_id

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids of one document; unknown tokens become `<unk>` (1)."""
        if isinstance(tokens, str):
            # Iterating a str would silently encode it char by char, wrong for word vocabularies.
            raise InputTypeError(
                "encode expects a list of tokens, got a str; tokenize it first "
                "(Tokenizer(level='char').tokenize(text) for characters)"
            )
        get = self.token_to_id.get
        try:
            return [get(t, self.unk_id) for t in tokens]
        except TypeError as err:  # not iterable, or an unhashable token
            raise InputTypeError(f"encode expects a list of str tokens: {err}") from None

    def decode(self, ids: Iterable[int], skip_pad: bool = True) -> list[str]:
        """Tokens of a list of ids; `<pad>` ids are dropped unless `skip_pad=False`."""
        out = []
        size = len(self.id_to_token)
        try:
            ids = np.asarray(ids)
        except ValueError as err:
            raise InputError(f"ids must be a list of ints, ragged or not numeric: {err}") from None
        if ids.size and ids.dtype.kind not in "iu":
            raise InputTypeError(f"ids must be integers, got dtype {ids.dtype}")
        for i in ids.ravel().tolist():
            if not 0 <= i < size:
                raise InputError(f"id {i} is outside the vocabulary (0 .. {size - 1})")
            if skip_pad and i == self.pad_id:
                continue
            out.append(self.id_to_token[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; `Vocabulary.from_dict` restores it."""
        return {"tokens": list(self.id_to_token)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        """Restore a vocabulary saved with `to_dict`."""
        if not isinstance(d, dict) or "tokens" not in d:
            raise InputError(
                "from_dict expects the dict written by Vocabulary.to_dict() with a 'tokens' list"
            )
        return cls(d["tokens"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.id_to_token == other.id_to_token

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"


def pad_sequences(
    seqs: Sequence[Sequence[Any]],
    maxlen: int | None = None,
    padding: str = "post",
    truncating: str = "post",
    value: float = 0,
    dtype: Any = None,
    return_lengths: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pad (or cut) sequences to one length, as Keras' `pad_sequences` does.

    Args:
        seqs: N sequences of ids (T_i,) or of feature vectors (T_i, ...).
        maxlen: output length (None: the longest sequence).
        padding: "post" pads at the end, "pre" at the start.
        truncating: "post" cuts the end of longer sequences, "pre" the start.
        value: the padding value.
        dtype: output dtype; None gives int64 for integer input and float32 otherwise.
        return_lengths: also return the kept length of each sequence (N,) int64.
    Returns:
        (N, maxlen, ...) array, and the lengths when asked.
    Note: the defaults are "post" (Keras defaults to "pre"), which is what `lengths` masks.
    """
    check_choice("padding", padding, ("pre", "post"))
    check_choice("truncating", truncating, ("pre", "post"))
    if maxlen is not None and (not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise InputError(f"maxlen must be None or an int >= 0, got {maxlen!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"value must be a number, got {type(value).__name__} {value!r}")
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise InputTypeError(f"dtype must be a NumPy dtype, got {dtype!r}") from None
    if isinstance(seqs, str) or not hasattr(seqs, "__iter__"):
        raise InputTypeError(f"seqs must be a list of sequences, got {type(seqs).__name__}")
    arrays = []
    for i, s in enumerate(seqs):
        try:
            a = np.asarray(s)
        except ValueError as err:
            raise InputError(f"seqs[{i}] is ragged: its elements differ in shape") from err
        if a.ndim == 0:
            raise InputError(f"seqs[{i}] is a scalar; every element must be a sequence")
        if a.dtype.kind not in "biuf":
            raise InputTypeError(f"seqs[{i}] holds {a.dtype} values; expected numbers")
        arrays.append(a)
    # An empty sequence ([] reads as float64 with shape (0,)) says nothing about dtype or shape.
    filled = [a for a in arrays if len(a)]
    trailing = {a.shape[1:] for a in filled}
    if len(trailing) > 1:
        raise InputError(f"sequences have different trailing shapes {sorted(trailing)}")
    tail = trailing.pop() if trailing else ()
    if dtype is None:
        integer = all(a.dtype.kind in "biu" for a in filled) and float(value).is_integer()
        dtype = np.int64 if integer else np.float32
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    width = int(lengths.max(initial=0)) if maxlen is None else int(maxlen)
    out = np.full((len(arrays), width, *tail), value, dtype=dtype)
    for i, a in enumerate(arrays):
        a = a[:width] if truncating == "post" else a[len(a) - min(len(a), width) :]
        n = len(a)
        lengths[i] = n
        if n:
            if padding == "post":
                out[i, :n] = a
            else:
                out[i, width - n :] = a
    return (out, lengths) if return_lengths else out
