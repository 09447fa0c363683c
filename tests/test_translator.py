"""Seq2SeqTranslator and task: translation: learning, decoding, scores, save / load, CLI, errors."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from sklearn.base import clone

from deeprnn import cli
from deeprnn.errors import DeepRNNError, InputError
from deeprnn.estimators import RNNEstimator, Seq2SeqTranslator
from deeprnn.estimators.translator import PairBatches, translation_scores
from deeprnn.tasks.translation import retrieval


def reverse_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    X = ["".join(rng.choice(list("abcdef"), rng.integers(2, 6))) for _ in range(n)]
    return X, [x[::-1] for x in X]


def small(**kw) -> Seq2SeqTranslator:
    args = dict(hidden_size=32, num_layers=1, embedding_dim=16, input_feeding=False, epochs=12,
                batch_size=32, lr=1e-2, validation_fraction=0, label_smoothing=0.0)  # fmt: skip
    return Seq2SeqTranslator(**{**args, **kw})


@pytest.fixture(scope="module")
def fitted():
    X, y = reverse_pairs(800, 0)
    return small().fit(X, y)


def test_learns_to_reverse_strings_to_high_exact_match(fitted):
    X, y = reverse_pairs(200, 1)
    assert fitted.exact_match(X, y) >= 0.9
    assert fitted.exact_match(X, y, beam=1) >= 0.9
    # a model that has not learned: one epoch on few pairs, far from it
    weak = small(epochs=1).fit(*reverse_pairs(64, 2))
    assert weak.exact_match(X, y) < 0.5


def test_predict_returns_strings_for_strings_and_token_lists_for_token_lists(fitted):
    out = fitted.predict(["abc", "fed"])
    assert all(isinstance(t, str) for t in out) and len(out) == 2
    words = [["x", "y"], ["y", "x", "x"]] * 20
    flipped = [list(reversed(w)) for w in words]
    est = small(epochs=2).fit(words, flipped)
    pred = est.predict([["x", "y"]])
    assert isinstance(pred[0], list) and all(isinstance(t, str) for t in pred[0])


def test_translate_gives_attention_over_the_source_tokens(fitted):
    [(tokens, weights, source)] = fitted.translate(["abcd"])
    assert source == list("abcd")
    assert weights.shape == (len(tokens) + 1, 4)  # one row per output token and </s>
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_scores_are_sacrebleus_and_exact_match(fitted):
    X, y = reverse_pairs(50, 3)
    hyps = fitted.predict(X)
    spaced = [" ".join(t) for t in hyps], [" ".join(t) for t in y]
    scores = translation_scores(*spaced)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(spaced[0], [spaced[1]]).score)
    assert scores["exact_match"] == pytest.approx(np.mean([h == r for h, r in zip(hyps, y)]))
    assert fitted.score(X, y) == pytest.approx(sacrebleu.corpus_bleu(hyps, [y]).score)
    assert set(fitted.evaluate(X, y)) == {"bleu", "chrf", "exact_match"}
    assert translation_scores(["a b"], ["a c"], bleu=False) == {"exact_match": 0.0}


def test_save_load_and_clone(fitted, tmp_path):
    X, _ = reverse_pairs(20, 4)
    fitted.save(tmp_path / "m")
    loaded = RNNEstimator.load(tmp_path / "m")
    assert isinstance(loaded, Seq2SeqTranslator)
    assert loaded.predict(X) == fitted.predict(X)
    assert loaded.source_vocab_.id_to_token == fitted.source_vocab_.id_to_token
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "model_")


def test_pair_batches_pad_and_end_targets_with_eos_and_see_every_pair():
    src = [np.arange(2, 2 + k) for k in (3, 1, 4, 2, 5)]
    tgt = [np.append(np.full(k, 7), 3) for k in (2, 4, 1, 3, 2)]
    batches = PairBatches(src, tgt, batch_size=2, shuffle=True, seed=0)
    batches.set_epoch(1)
    seen = []
    for x, lengths, y in batches:
        for row in range(x.shape[0]):
            k = int(lengths[row])
            assert (x[row, k:] == 0).all() and (x[row, :k] > 0).all()
            end = int((y[row] != -100).sum())
            assert int(y[row, end - 1]) == 3 and (y[row, end:] == -100).all()
            seen.append(k)
    assert sorted(seen) == [1, 2, 3, 4, 5]


def test_retrieval_baseline_returns_the_most_similar_training_translation():
    out = retrieval(["hello there", "good night", "bad day"], ["A", "B", "C"],
                    ["hello thera", "a bad dy"])  # fmt: skip
    assert out == ["A", "C"]


def test_bad_input_gets_clear_errors(fitted):
    with pytest.raises(InputError, match=r"X\[1\] is empty"):
        small().fit(["ab", ""], ["ba", "x"])
    with pytest.raises(InputError, match=r"y\[0\] is empty"):
        small().fit(["ab"], [""])
    with pytest.raises(InputError, match="X has 2 sources but y has 1"):
        small().fit(["ab", "cd"], ["ba"])
    with pytest.raises(InputError, match=r"X\[0\] holds token\(s\) \['z'\] never seen"):
        fitted.predict(["abz"])
    with pytest.raises(InputError, match="max_length must be None or an int >= 1, got 0"):
        small(max_length=0).fit(["ab"], ["ba"])
    with pytest.raises(InputError, match="beam must be an int >= 1"):
        small(beam=0).fit(["ab"], ["ba"])
    with pytest.raises(InputError, match="frontend must be None"):
        small(frontend={"channels": [4]}).fit(["ab"], ["ba"])
    with pytest.raises(DeepRNNError, match="one str; wrap it"):
        fitted.predict("abc")
    with pytest.raises(InputError, match=r"one reference per source \(2\), got 1"):
        fitted.exact_match(["ab", "cd"], ["ba"])


def test_translation_task_trains_reports_and_predicts_a_user_file(tmp_path, capsys):
    X, y = reverse_pairs(120, 5)
    data = tmp_path / "pairs.tsv"
    data.write_text("src\ttgt\n" + "".join(f"{a}\t{b}\n" for a, b in zip(X, y)), "utf-8")
    config = tmp_path / "run.yaml"
    config.write_text(
        "task: translation\n"
        f"data: {{path: {data.name}, column: src, target: tgt, test_size: 20}}\n"
        "model: {hidden_size: 8, num_layers: 1, embedding_dim: 8, epochs: 1, beam: 2}\n",
        "utf-8",
    )
    run_dir = tmp_path / "run"
    assert cli.main(["train", str(config), "--run-dir", str(run_dir), "--quiet"]) == 0
    table = capsys.readouterr().out
    for name in ("deeprnn", "copy source", "nearest training source", "bleu", "exact_match"):
        assert name in table, name
    report = (run_dir / "report.md").read_text("utf-8")
    assert "## Sample translations" in report and "| source | reference | translation |" in report
    png = run_dir / "plots" / "attention_0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = tmp_path / "in.txt"
    lines.write_text("abc\nfed\n", "utf-8")
    out = tmp_path / "out.csv"
    argv = ["predict", str(run_dir), "--input", str(lines), "--output", str(out)]
    assert cli.main(argv) == 0
    rows = out.read_text("utf-8").splitlines()
    assert rows[0] == "source,translation" and rows[1].startswith("abc,") and len(rows) == 3
    lines.write_text("abq\n", "utf-8")
    assert cli.main(argv) != 0
    assert "in.txt: X[0] holds token(s) ['q'] never seen" in capsys.readouterr().err
