"""Data-parallel training with torch DistributedDataParallel (DDP), launched by torchrun.

`deeprnn train CONFIG.yaml --nproc N` re-launches itself through torchrun's API
(`torch.distributed.run`) as N processes on this machine; `torchrun --nproc-per-node N
[--nnodes ... --rdzv-endpoint ...] -m deeprnn train CONFIG.yaml` does the same on one or
many machines. Every process (a rank) then
- joins the process group torchrun's environment describes (RANK, WORLD_SIZE, LOCAL_RANK,
  MASTER_ADDR, MASTER_PORT): gloo for CPU tensors, nccl for CUDA tensors (`setup`);
- draws the same global batches a single process would (seed + epoch and `batch_size`
  decide them, never the world size) and trains on its own contiguous slice of the rows of
  each (`ShardedBatches`);
- weights its loss so that DDP's average of the ranks' gradients is the gradient of the
  global batch's mean loss (`train_batch`): the weights follow a single-process run over
  the same batches, up to float rounding, whatever the world size.
`deeprnn.train.fit` does all of this by itself when the process group is initialised with
more than one rank. Rank 0 alone evaluates the validation data (and sends the metrics to
the others), shows progress and writes checkpoints, plots and reports. Checkpoints hold
the unwrapped model's weights, so a run resumes on any world size.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from deeprnn.config import TrainConfig
from deeprnn.errors import InputError
from deeprnn.train import bptt
from deeprnn.train.optim import Schedule

# Ranks > 0 draw dropout noise from seed + epoch * EPOCH_STRIDE + rank (rank 0 keeps fit's
# own stream, which checkpoints save): distinct per rank, repeatable on resume.
EPOCH_STRIDE = 1_000_003


def launched() -> bool:
    """True inside a process that torchrun started (its environment names RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    """The number of processes training together (1 outside a process group)."""
    return dist.get_world_size() if initialized() else 1


def is_main() -> bool:
    """True on the rank that writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def active() -> bool:
    """True when training is data-parallel: a process group of two or more ranks."""
    return world_size() > 1


def setup(backend: str | None = None, timeout: timedelta | None = None) -> bool:
    """Join the process group described by torchrun's environment; True if this call did.

    Does nothing outside torchrun or when a group exists already. The default backend is
    "gloo", or "cpu:gloo,cuda:nccl" on a machine with CUDA: NCCL for the gradients of
    models on the GPU, gloo for CPU tensors. On CUDA machines the rank's GPU becomes the
    current device (LOCAL_RANK), so `device="cuda"` means a different GPU on each rank.
    """
    if not launched() or initialized():
        return False
    if backend is None:
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "cpu:gloo,cuda:nccl"
    kwargs = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, init_method="env://", **kwargs)
    return True


def teardown() -> None:
    """Leave the process group (if any)."""
    if initialized():
        dist.destroy_process_group()


@contextmanager
def session(backend: str | None = None, timeout: timedelta | None = None):
    """`with session():` joins torchrun's process group (when launched) and leaves it after.

    Inside, ranks > 0 show no warnings: rank 0 shows the same ones (errors still surface).
    """
    started = setup(backend, timeout)
    try:
        with warnings.catch_warnings():
            if not is_main():
                warnings.simplefilter("ignore")
            yield
    finally:
        if started:
            teardown()


def _device() -> torch.device:
    """Where small collective tensors live: CPU unless the group has no CPU backend."""
    if "gloo" in str(dist.get_backend()) or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum of `values` (element-wise, float64) over all ranks; `values` itself on one rank."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is True on any (a stop request, say), so that all
    ranks take the same branch; `flag` itself on one rank."""
    if not active():
        return bool(flag)
    return all_reduce_sum([float(bool(flag))])[0] > 0


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` (anything picklable) on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)  # torch picks the group's device for objects
    return box[0]


def check_same(value: Any, what: str) -> None:
    """Raise InputError on every rank unless all ranks hold the same `value`."""
    if not active():
        return
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise InputError(f"{what} differs between ranks: {values}")


def wrap(model: nn.Module) -> nn.Module:
    """`model` in DistributedDataParallel when training is data-parallel, else `model`.

    DDP copies rank 0's weights to every rank, then averages the gradients of every
    backward pass across ranks. Keep using the unwrapped model for evaluation, checkpoints
    and the optimizer (they share its parameters).
    """
    if not active():
        return model
    device = next(model.parameters()).device
    ids = None
    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard_rows(batch_rows: int, rank: int, world: int) -> slice:
    """The contiguous rows of a global batch that `rank` trains on (sizes differ by <= 1).

    A batch with fewer rows than ranks leaves some ranks none: they still take part in
    every update, with a zero weight (see `train_batch`).
    """
    return slice(batch_rows * rank // world, batch_rows * (rank + 1) // world)


class ShardedBatches:
    """This rank's rows of every global batch of a re-iterable batch source (as `fit` takes).

    Every rank iterates the whole `data` (so all ranks see the same global batches, in
    the same order: a shuffled source must draw its order from its seed and epoch only,
    as `TensorBatches` and the estimators' loaders do) and keeps the rows `shard_rows`
    gives it of each tensor in the batch. The time axis is left as padded for the global
    batch, so every rank cuts a batch into the same truncated-BPTT windows.
    `set_epoch(epoch)` passes the epoch on to `data` and, on ranks > 0, reseeds torch from
    (seed, epoch, rank), so their dropout masks differ from rank 0's and repeat on resume.
    """

    def __init__(self, data: Iterable, rank: int, world_size: int, seed: int = 0):
        if not 0 <= rank < world_size:
            raise InputError(f"rank must lie in [0, {world_size}), got {rank}")
        self.data, self.rank, self.world_size, self.seed = data, rank, world_size, seed

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)
        if self.rank > 0:
            torch.manual_seed(self.seed + epoch * EPOCH_STRIDE + self.rank)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator:
        for batch in self.data:
            parts = list(batch) if isinstance(batch, (tuple, list)) else [batch]
            rows = shard_rows(parts[0].shape[0], self.rank, self.world_size)
            yield tuple(p[rows] if isinstance(p, Tensor) else p for p in parts)


def shard(data: Iterable, seed: int = 0) -> Iterable:
    """`data` as `ShardedBatches` of this rank when training is data-parallel, else as is."""
    if not active() or data is None:
        return data
    return ShardedBatches(data, rank(), world_size(), seed)


def train_batch(
    model: nn.Module,
    x: Tensor,
    lengths: Tensor | None,
    y: Tensor,
    h0,
    task: str,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
) -> Iterator[tuple[float, float, float | None, float, Any]]:
    """`deeprnn.train.bptt.train_batch` for one rank's rows of a global batch (DDP model);
    keep the two in step.

    Yields the same (loss, weight, grad_norm, lr, state) per chunk, with loss and weight
    those of the GLOBAL batch. Rank r's chunk loss is L_r = sum_r(w l) / W_r; DDP averages
    the ranks' gradients, so the rank back-propagates L_r * n W_r / W (n ranks,
    W = sum of all W_r): the average is then the gradient of sum(w l) / W, the global
    batch's loss. The weight penalty is the same on every rank and is not scaled. A chunk
    is an update when W > 0 (on every rank, even one whose own W_r is 0). A rank without
    rows (a last batch smaller than the world) runs a zero-weighted dummy row, since every
    rank must join every gradient all-reduce.
    """
    empty = x.shape[0] == 0
    if empty:  # a dummy row (targets 0) whose loss counts for nothing
        x, lengths, h0 = x.new_zeros((1, *x.shape[1:])), None, None
        y = y.new_zeros((1, *y.shape[1:]))
    world = world_size()

    def combine(loss: Tensor, weight: float) -> tuple[Tensor, float, float]:
        if empty:
            loss, weight = loss * 0.0, 0.0
        local_sum = float(loss.detach()) * weight if weight > 0 else 0.0
        total, loss_sum = all_reduce_sum([weight, local_sum])
        if total <= 0:
            return loss, 0.0, 0.0
        return loss * (world * weight / total), loss_sum / total, total

    yield from bptt.train_batch(
        model, x, lengths, y, h0, task, config, optimizer, schedule, combine=combine
    )


def relaunch(nproc: int, argv: Sequence[str]) -> int:
    """Run `python -m deeprnn ARGV` as `nproc` processes on this machine through torchrun's
    API (`torch.distributed.run`, standalone rendezvous on a free local port); return the
    exit code: that of the first failed rank, or 128 + the signal (Ctrl-C: 130) when a
    signal stopped the launcher, which then ends the ranks (the last checkpoint stays)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun would set 1 thread per process with a warning; share the cores out instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(
        ["--standalone", "--nproc-per-node", str(nproc), "--module", "deeprnn"]
    )
    # Set directly: torchrun's parser would take `--nproc` in argv for its `--nproc-per-node`.
    args.training_script_args = list(argv)
    try:
        run(args)
    except ChildFailedError as err:
        codes = [f.exitcode for _, f in sorted(err.failures.items())]
        print(f"deeprnn: {len(codes)} of {nproc} training processes failed", file=sys.stderr)
        return next((c for c in codes if c and c > 0), 1)
    except SignalException as err:
        print(f"deeprnn: training stopped by signal {err.sigval.name}", file=sys.stderr)
        return 128 + int(err.sigval)
    return 0
