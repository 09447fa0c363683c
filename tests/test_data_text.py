"""Tokenizer, Vocabulary and pad_sequences: values, round trips and error messages."""

import json

import numpy as np
import pytest

from deeprnn.data import Tokenizer, Vocabulary, pad_sequences


def test_word_tokenizer_keeps_punctuation_and_inner_apostrophes():
    tok = Tokenizer()
    assert tok.tokenize("Don't stop, Horatio!") == ["don't", "stop", ",", "horatio", "!"]


def test_word_tokenizer_strip_punctuation_and_case():
    tok = Tokenizer(level="word", lower=False, strip_punctuation=True)
    assert tok.tokenize("O Romeo, Romeo! wherefore art thou") == [
        "O",
        "Romeo",
        "Romeo",
        "wherefore",
        "art",
        "thou",
    ]


def test_char_tokenizer_and_join_round_trip():
    tok = Tokenizer(level="char", lower=False)
    text = "To be, or not."
    assert tok.tokenize(text) == list(text)
    assert tok.join(tok.tokenize(text)) == text
    assert Tokenizer(level="char", strip_punctuation=True).tokenize("A, b.") == ["a", " ", "b"]


def test_tokenizer_errors():
    with pytest.raises(ValueError, match=r"level must be one of \['word', 'char'\], got 'byte'"):
        Tokenizer(level="byte")
    with pytest.raises(TypeError, match="text must be a str, got list"):
        Tokenizer().tokenize(["a"])


def test_vocabulary_build_orders_by_frequency_then_first_seen():
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c", "a"], ["d"]])
    assert vocab.id_to_token == ["<pad>", "<unk>", "a", "c", "b", "d"]
    assert len(vocab) == 6
    assert vocab.encode(["a", "d", "zzz"]) == [2, 5, 1]
    assert "a" in vocab and "zzz" not in vocab


def test_vocabulary_min_freq_and_max_size():
    docs = [["x", "x", "x", "y", "y", "z"]]
    assert Vocabulary.build(docs, min_freq=2).id_to_token == ["<pad>", "<unk>", "x", "y"]
    assert Vocabulary.build(docs, max_size=3).id_to_token == ["<pad>", "<unk>", "x"]
    # A document that itself contains the special strings cannot move them.
    assert Vocabulary.build([["<unk>", "<pad>", "w"]]).id_to_token == ["<pad>", "<unk>", "w"]


def test_vocabulary_decode_skips_pad_unless_asked():
    vocab = Vocabulary.build([["hi", "there"]])
    ids = vocab.encode(["hi", "there"]) + [0, 0]
    assert vocab.decode(ids) == ["hi", "there"]
    assert vocab.decode(np.array(ids), skip_pad=False) == ["hi", "there", "<pad>", "<pad>"]
    with pytest.raises(ValueError, match=r"id 9 is outside the vocabulary \(0 \.\. 3\)"):
        vocab.decode([9])


def test_vocabulary_json_round_trip():
    vocab = Vocabulary.build([Tokenizer().tokenize("the cat sat on the mat")])
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab
    assert restored.encode(["the", "mat", "dog"]) == vocab.encode(["the", "mat", "dog"])


def test_vocabulary_errors():
    with pytest.raises(TypeError, match=r"token_lists\[1\] is a str"):
        Vocabulary.build([["a"], "bc"])
    with pytest.raises(TypeError, match="got one str"):
        Vocabulary.build("abc")
    with pytest.raises(ValueError, match="min_freq must be an int >= 1, got 0"):
        Vocabulary.build([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="max_size must be None or an int >= 2"):
        Vocabulary.build([["a"]], max_size=1)
    with pytest.raises(TypeError, match="encode expects a list of tokens, got a str"):
        Vocabulary.build([["a"]]).encode("a")
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary.from_dict({"tokens": ["a", "<pad>", "<unk>"]})
    with pytest.raises(ValueError, match="'a' appears twice"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="'tokens' list"):
        Vocabulary.from_dict({"vocab": []})


def test_pad_sequences_post_default():
    out, lengths = pad_sequences([[1, 2, 3], [4], []], return_lengths=True)
    np.testing.assert_array_equal(out, [[1, 2, 3], [4, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    assert out.dtype == np.int64


def test_pad_sequences_pre_and_truncation_modes():
    seqs = [[1, 2, 3, 4], [5, 6]]
    np.testing.assert_array_equal(
        pad_sequences(seqs, maxlen=3, padding="pre", truncating="pre", value=-1),
        [[2, 3, 4], [-1, 5, 6]],
    )
    out, lengths = pad_sequences(seqs, maxlen=3, truncating="post", return_lengths=True)
    np.testing.assert_array_equal(out, [[1, 2, 3], [5, 6, 0]])
    np.testing.assert_array_equal(lengths, [3, 2])


def test_pad_sequences_float_and_feature_sequences():
    out = pad_sequences([np.ones((2, 3)), np.full((1, 3), 0.5)])
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], [[0.5, 0.5, 0.5], [0, 0, 0]])
    assert pad_sequences([[1, 2]], value=0.5).dtype == np.float32
    assert pad_sequences([], maxlen=4).shape == (0, 4)


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="padding must be one of"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="maxlen must be None or an int >= 0, got -1"):
        pad_sequences([[1]], maxlen=-1)
    with pytest.raises(TypeError, match=r"seqs\[1\] holds <U1 values; expected numbers"):
        pad_sequences([[1], ["a"]])
    with pytest.raises(ValueError, match="different trailing shapes"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"seqs\[0\] is a scalar"):
        pad_sequences([3])
