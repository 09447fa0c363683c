"""Data-parallel training: 2 CPU processes (gloo) follow a single process over the same
global batches, their checkpoints resume on 1 process, and `deeprnn train --nproc 2` works
end to end with rank 0 alone writing the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from deeprnn import DeepRNN, Head, SequenceModel, distributed
from deeprnn.train import TensorBatches, TrainConfig, fit, load_weights, save_weights
from deeprnn.train.losses import IGNORE_INDEX

RTOL, ATOL = 1e-5, 1e-6  # float32: the ranks sum the gradient in another order
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tagger() -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(DeepRNN(3, 6, num_layers=2, cell="gru"), Head(6, 3, pooling="every"))


def tagging_data(n: int, seed: int) -> TensorBatches:
    """Per-step targets, variable lengths and ignored steps: the ranks' loss weights differ.

    13 rows in batches of 4 leave a last batch of one row, so one of 2 ranks gets none.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 7, 3, generator=g)
    lengths = torch.randint(1, 8, (n,), generator=g)
    y = (x.sum(-1) > 0).long() + (x[..., 0] > 1).long()
    y[torch.rand(n, 7, generator=g) < 0.2] = IGNORE_INDEX
    return TensorBatches(x, y, lengths, batch_size=4, shuffle=seed == 0, seed=5)


def config(epochs: int) -> TrainConfig:
    # TBPTT windows of 3 steps; a penalty (the same on every rank); clipping.
    return TrainConfig(epochs=epochs, lr=0.05, tbptt_k1=3, l2=1e-3, clip_norm=0.5, verbose=0)


def run_fit(epochs: int, run_dir=None, resume: bool = False):
    model = tagger()
    history = fit(model, tagging_data(13, 0), tagging_data(6, 1), config(epochs), "tagging",
                  run_dir=run_dir, resume=resume)  # fmt: skip
    return model, history.to_dict()


def translator():
    from deeprnn.seq2seq import Seq2Seq

    torch.manual_seed(0)
    # float64: Adam would turn float32's other summation order into visible differences
    return Seq2Seq(DeepRNN(4, 5, bidirectional=True), DeepRNN(4 + 10, 10), 10, 10).double()


def pairs(n: int = 13) -> TensorBatches:
    """Reversal pairs, 13 rows in batches of 4: the last batch leaves one rank without rows."""
    from deeprnn.seq2seq import EOS_ID

    g = torch.Generator().manual_seed(3)
    lengths = torch.randint(1, 6, (n,), generator=g)
    x = torch.zeros(n, 5, dtype=torch.int64)
    y = torch.full((n, 6), IGNORE_INDEX)
    for i, k in enumerate(lengths.tolist()):
        x[i, :k] = torch.randint(4, 10, (k,), generator=g)
        y[i, :k], y[i, k] = x[i, :k].flip(0), EOS_ID
    return TensorBatches(x, y, lengths, batch_size=4, shuffle=True, seed=1)


def fit_translator():
    model = translator()
    cfg = TrainConfig(epochs=2, lr=0.05, clip_norm=1.0, label_smoothing=0.1, verbose=0)
    fit(model, pairs(), None, cfg, "seq2seq")
    return model


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    with distributed.session("gloo", timeout=timedelta(seconds=60)):
        assert distributed.active() and distributed.rank() == rank
        model, history = run_fit(2, run_dir=Path(out) / "run")
        if rank == 0:
            save_weights(Path(out) / "ddp.safetensors", model)
            (Path(out) / "history.json").write_text(json.dumps(history))

        def stop_on_rank_1(event, state):  # a stop request that one rank alone sees
            if event == "batch_end" and rank == 1 and state["batch"] == 1:
                state["stop"] = True

        stopped = fit(tagger(), tagging_data(13, 0), None, config(3), "tagging",
                      callbacks=[stop_on_rank_1])  # fmt: skip
        assert len(stopped) == 1  # both ranks ended the epoch at the same batch, then stopped
        # The DDP wrapper is gone with fit: a local backward must not wait for other ranks.
        model(torch.randn(2, 4, 3))[0].sum().backward()
        s2s = fit_translator()  # teacher forcing with input feeding: a step loop under DDP
        if rank == 0:
            save_weights(Path(out) / "seq2seq.safetensors", s2s)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Train on 2 processes once, for the tests that compare against it.

    Forked where possible: the children inherit the modules the single-process reference
    run imported first (seconds saved); the collectives time out after 60 s, and the whole
    run after 120 s, rather than hang. Returns (output folder, the reference run).
    """
    reference = run_fit(2)
    out = tmp_path_factory.mktemp("ddp")
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    args = (2, free_port(), str(out))
    ranks = mp.start_processes(_worker, args, nprocs=2, join=False, start_method=method)
    deadline = time.monotonic() + 120
    while not ranks.join(timeout=5):
        if time.monotonic() > deadline:
            for proc in ranks.processes:
                proc.kill()
            pytest.fail("the 2-process training did not finish within 120 s")
    return out, reference


def test_seq2seq_on_two_ranks_follows_one_process(two_ranks):
    out, _ = two_ranks
    ddp = translator()
    load_weights(out / "seq2seq.safetensors", ddp)
    assert_same_model(ddp, fit_translator())
    assert not torch.equal(ddp.output.weight, translator().output.weight)  # it trained


def assert_same_model(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=RTOL, atol=ATOL, msg=k)


def assert_same_history(a: dict, b: dict) -> None:
    for key in ("train_loss", "val_loss", "val_accuracy", "grad_norm", "lr"):
        np.testing.assert_allclose(a[key], b[key], rtol=RTOL, err_msg=key)


def test_two_ranks_follow_one_process_over_the_same_global_batches(two_ranks):
    out, (single, history) = two_ranks
    ddp = tagger()
    load_weights(out / "ddp.safetensors", ddp)
    assert_same_model(ddp, single)
    assert_same_history(json.loads((out / "history.json").read_text()), history)
    assert not torch.equal(ddp.head.linear.weight, tagger().head.linear.weight)  # it trained


def test_checkpoints_of_two_ranks_resume_on_one(two_ranks, tmp_path):
    run = tmp_path / "run"
    (two_ranks[0] / "run").rename(run)
    assert sorted(p.name for p in run.iterdir()) == ["LATEST", "ckpt-000002"]
    resumed, resumed_history = run_fit(4, run_dir=run, resume=True)
    straight, history = run_fit(4)
    assert_same_model(resumed, straight)
    assert_same_history(resumed_history, history)


@pytest.mark.parametrize("batch_rows", [1, 2, 5, 8])
def test_shards_partition_every_global_batch(batch_rows):
    x = torch.arange(batch_rows * 2, dtype=torch.float32).view(batch_rows, 2, 1)
    y = torch.arange(batch_rows)
    shards = [list(distributed.ShardedBatches([(x, None, y)], r, 3)) for r in range(3)]
    assert all(len(s) == 1 and s[0][1] is None for s in shards)
    assert torch.equal(torch.cat([s[0][0] for s in shards]), x)  # the time axis is kept
    assert torch.equal(torch.cat([s[0][2] for s in shards]), y)
    sizes = [len(s[0][2]) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_shards_keep_the_sources_epoch_order():
    data = TensorBatches(torch.randn(10, 2, 1), torch.arange(10), batch_size=4, shuffle=True)
    sharded = distributed.ShardedBatches(data, 1, 2, seed=0)
    assert len(sharded) == len(data) == 3
    with torch.random.fork_rng():  # rank 1 reseeds torch at every epoch (dropout masks)
        sharded.set_epoch(3)
        assert torch.initial_seed() == 3 * distributed.EPOCH_STRIDE + 1
    rows = [b[2].tolist() for b in sharded]
    data.set_epoch(3)
    assert rows == [b[2][len(b[2]) // 2 :].tolist() for b in data]
    with pytest.raises(ValueError, match="rank"):
        distributed.ShardedBatches(data, 2, 2)


def test_one_process_is_not_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and not distributed.setup()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    model = tagger()
    data = tagging_data(5, 0)
    assert distributed.wrap(model) is model and distributed.shard(data) is data
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    distributed.check_same(3, "anything")


def test_train_nproc_2_writes_the_run_once_from_rank_0(tmp_path):
    (tmp_path / "cfg.yaml").write_text(
        "task: forecast\n"
        "data: {dataset: airline_passengers, test_size: 12, season: 12}\n"
        "model: {cell: gru, num_layers: 1, hidden_size: 4, lookback: 12, epochs: 2,\n"
        "        batch_size: 16, validation_fraction: 0.1}\n"
    )
    run, scratch = tmp_path / "run", tmp_path / "tmp"  # rank 1 draws its plots in scratch
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}
    cmd = [sys.executable, "-m", "deeprnn", "train", "cfg.yaml", "--nproc", "2", "--quiet",
           "--run-dir", str(run)]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run written to") == 1  # only rank 0 prints
    names = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    for name in ("config.yaml", "history.csv", "metrics.json", "report.md",
                 "plots/training.png", "plots/forecast.png", "checkpoints/LATEST"):  # fmt: skip
        assert name in names
    assert not [n for n in names if n.startswith(".") or "/." in n]  # no temporary leftovers
    assert len((run / "history.csv").read_text().strip().splitlines()) == 1 + 2  # 2 epochs
    assert len(list((run / "checkpoints").glob("ckpt-*"))) == 1
    assert not [p for p in scratch.rglob("*.png")]  # rank 1's temporary directory is gone
