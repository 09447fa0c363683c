"""Configuration dataclasses (typed, frozen). Imports no torch, so the reference can share it."""

from __future__ import annotations

from dataclasses import dataclass, field

CELL_KINDS = ("rnn", "lstm", "gru")
NONLINEARITY_NAMES = ("tanh", "relu", "sigmoid")
WIRINGS = ("stack", "skip")
BETWEEN_ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
OUTPUT_MODES = ("top", "all")


@dataclass(frozen=True)
class RNNConfig:
    """The full description of a DeepRNN; `dataclasses.asdict` of it feeds the reference."""

    input_size: int  # features of x_t
    hidden_size: tuple[int, ...]  # units per layer (one entry per layer)
    cell: tuple[str, ...]  # "rnn" | "lstm" | "gru" per layer
    nonlinearity: str = "tanh"  # of "rnn" cells: "tanh" | "relu" | "sigmoid"
    wiring: str = "stack"  # "stack": layer l reads h^(l-1); "skip": reads (x, h^(l-1))
    residual: bool = False  # o_l = h_l + o_(l-1) (layer 0: + x when widths match)
    layer_norm: bool = False  # layer norm inside the recurrence (Ba et al. 2016)
    dropout: float = 0.0  # between layers, training only
    bidirectional: bool = False  # each layer runs both ways, outputs concatenated
    between: str | None = None  # Linear + activation between layers: relu|tanh|sigmoid|linear
    outputs: str = "top"  # "top": last layer's sequence; "all": every layer's, concatenated
    bias: bool = True  # bias_ih / bias_hh in every cell
    recurrent_dropout: float = 0.0  # on h_(t-1) inside W_hh h, one mask per sequence (training)
    zoneout: float | tuple[float, float] = 0.0  # p of keeping h (and LSTM c): p or (p_h, p_c)

    @property
    def num_layers(self) -> int:
        return len(self.hidden_size)


TASKS = ("classification", "binary", "regression", "tagging", "lm", "seq2seq")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
SCHEDULES = ("step", "cosine", "plateau")
MONITOR_MODES = ("min", "max", "auto")


@dataclass(frozen=True)
class TrainConfig:
    """How `deeprnn.train.fit` trains; checkpoints store `dataclasses.asdict` of it."""

    epochs: int = 10  # passes over the training data
    seed: int = 0  # seeds python, numpy and torch when fit starts (not when it resumes)
    optimizer: str = "adam"  # "sgd" | "rmsprop" | "adam" | "adamw"
    lr: float = 1e-3  # peak learning rate
    momentum: float = 0.0  # of "sgd" and "rmsprop"
    weight_decay: float = 0.0  # the optimizer's own decay (decoupled for "adamw")
    l1: float = 0.0  # adds l1 * sum |W| over weight matrices to the loss
    l2: float = 0.0  # adds l2 * sum W^2 over weight matrices to the loss
    class_weights: tuple[float, ...] | None = None  # loss weight per class; binary: (neg, pos)
    label_smoothing: float = 0.0  # cross-entropy tasks: mix this much of a uniform target in
    clip_norm: float | None = None  # rescale the gradient to at most this global L2 norm
    clip_value: float | None = None  # clamp every gradient element to [-clip_value, clip_value]
    schedule: str | None = None  # None | "step" | "cosine" | "plateau", stepped once per epoch
    step_size: int = 10  # "step": epochs between decays
    gamma: float = 0.1  # "step" and "plateau": lr multiplier at each decay
    min_lr: float = 0.0  # "cosine" and "plateau": the floor
    plateau_patience: int = 2  # "plateau": decay once more epochs than this fail to improve
    warmup_steps: int = 0  # optimizer step i < warmup_steps uses lr * (i + 1) / (warmup_steps + 1)
    tbptt_k1: int | None = None  # truncated BPTT: one update every k1 steps; None: full BPTT
    tbptt_k2: int | None = None  # truncated BPTT: gradients reach k2 >= k1 steps back; None: k1
    stateful: bool = False  # carry each batch's final state into the next batch
    monitor: str = "val_loss"  # metric for early stopping, best weights and "plateau"
    mode: str = "auto"  # "min" | "max" | "auto" (max for accuracy, f1, precision, recall)
    patience: int | None = None  # early stopping: epochs without improvement; None: off
    min_delta: float = 0.0  # the least change of `monitor` that counts as an improvement
    restore_best: bool = True  # with early stopping: fit ends with the best weights
    checkpoint_every: int = 1  # epochs between checkpoints (when fit has a run_dir)
    verbose: int = 1  # 0: silent; 1: a bar per epoch on a terminal, else one line per epoch
    max_bad_steps: int | None = 10  # stop after this many skipped (non-finite) updates in a row
    bad_step_lr_factor: float = 1.0  # multiply lr by this at every skipped update (1: keep it)
    grad_norm_warning: float | None = 1e3  # warn (once an epoch) when a gradient norm exceeds it
    keep_checkpoints: int = 1  # checkpoints kept in run_dir, the newest; older ones are pruned


RUN_TASKS = (
    "forecast",
    "sequence_classification",
    "sequence_regression",
    "text_classification",
    "sequence_labelling",
    "char_lm",
    "translation",
)


@dataclass(frozen=True)
class DataConfig:
    """Where a run's data comes from: a bundled dataset or a user file."""

    dataset: str | None = None  # a bundled dataset (`deeprnn datasets` lists them)
    path: str | None = None  # or a user file: .csv, .npz / .npy, .txt, or a folder of texts
    column: str | None = None  # CSV: the series (forecast) or the text column
    target: str | None = None  # CSV: the label column (text classification, long-format CSV)
    id_column: str | None = None  # long-format CSV (one row per step): the sequence id column
    step_column: str | None = None  # long-format CSV: orders a sequence's rows (None: file order)
    time_column: str | None = None  # forecast panel: the time column (None: a date column; "none")
    features: tuple[str, ...] | None = None  # long-format CSV: feature columns (None: the rest)
    encoding: str = "utf-8"  # text files
    test_size: float = 0.2  # held out for the report: a fraction, or a count when >= 1
    season: int = 12  # forecast: the seasonal-naive baseline's period

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of data.dataset and data.path")
        if not 0 < self.test_size:
            raise ValueError(f"data.test_size must be > 0, got {self.test_size}")


# The `data:` keys each task reads (`deeprnn train --help` and the README list them; a run's
# resolved config.yaml leaves out the others while they keep their defaults).
_SEQUENCE_KEYS = ("dataset", "path", "id_column", "step_column", "target", "features",
                  "encoding", "test_size")  # fmt: skip
TASK_DATA_KEYS = {
    "forecast": ("dataset", "path", "column", "id_column", "time_column", "test_size", "season"),
    "sequence_classification": _SEQUENCE_KEYS,
    "sequence_regression": _SEQUENCE_KEYS,
    "text_classification": ("dataset", "path", "column", "target", "encoding", "test_size"),
    "sequence_labelling": ("dataset", "path", "test_size"),
    "char_lm": ("dataset", "path", "encoding", "test_size"),
    "translation": ("dataset", "path", "column", "target", "encoding", "test_size"),
}


@dataclass(frozen=True)
class RunConfig:
    """A `deeprnn train` run: task, data, model arguments; the YAML file mirrors it."""

    task: str  # one of RUN_TASKS
    data: DataConfig  # the data section
    model: dict = field(default_factory=dict)  # arguments of the task's estimator
    run_dir: str | None = None  # default: runs/<task>
    samples: int = 3  # char_lm: generations written to the report (translation: 3x as many pairs)
    gradient_flow_every: int = 0  # record gradient flow every N epochs (plots + report); 0: off

    def __post_init__(self) -> None:
        if self.task not in RUN_TASKS:
            raise ValueError(f"task must be one of {list(RUN_TASKS)}, got {self.task!r}")
