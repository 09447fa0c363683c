"""Optuna, imported lazily, and the study kept in the run directory so a search resumes.

The study lives in RUN_DIR/study.journal (Optuna's JournalStorage: an append-only log of
every trial, safe to read after a crash). On resume, trials that were running when the
search stopped are marked failed and queued again with the same arguments, so the
interrupted trial is redone first and every finished trial is kept.
"""

from __future__ import annotations

from pathlib import Path

from deeprnn.errors import DeepRNNError, InputError

JOURNAL = "study.journal"
STUDY = "deeprnn-tune"


def import_optuna():
    """The optuna module, or a DeepRNNError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise DeepRNNError(
            "deeprnn.tune searches with Optuna, which is not installed: pip install optuna "
            "(in a deeprnn checkout: pip install -e '.[tune]')"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # deeprnn prints its own lines
    return optuna


def open_study(optuna, run_dir: Path | None, resume: bool, seed: int, space: dict):
    """A maximising study with a seeded TPE sampler and a median pruner: in memory without a
    run directory, else in RUN_DIR/study.journal (created, or continued with `resume`)."""
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    # Prune only after a few trials and epochs: early validation scores are noisy.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3)
    storage = None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / JOURNAL
        if path.exists() and not resume:
            raise InputError(
                f"{run_dir} already holds a search ({JOURNAL}); pass resume=True (CLI: "
                "--resume) to continue it, or another run directory to start afresh"
            )
        if not path.exists() and resume:
            raise InputError(f"{run_dir} holds no search to resume (no {JOURNAL})")
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        storage = optuna.storages.JournalStorage(backend)
    study = optuna.create_study(
        study_name=STUDY, storage=storage, direction="maximize", sampler=sampler,
        pruner=pruner, load_if_exists=True,
    )  # fmt: skip
    recorded = study.user_attrs.get("space")
    if recorded is None:
        study.set_user_attr("space", space)
    elif recorded != space:
        raise InputError(
            f"{run_dir}: the search there used another space {recorded}; resume with the same "
            "space, or start a new run directory"
        )
    _requeue_interrupted(optuna, study)
    return study


def _requeue_interrupted(optuna, study) -> None:
    state = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, state=state.FAIL)
        t.state = state.FAIL
    queued = {tuple(sorted(t.params.items())) for t in study.get_trials(states=(state.WAITING,))}
    done = {tuple(sorted(t.params.items())) for t in study.get_trials(states=(state.COMPLETE,))}
    for t in study.get_trials(deepcopy=False, states=(state.FAIL,)):
        key = tuple(sorted(t.params.items()))
        if t.params and key not in queued and key not in done and not t.user_attrs.get("requeued"):
            study._storage.set_trial_user_attr(t._trial_id, "requeued", True)
            study.enqueue_trial(t.params)
            queued.add(key)
