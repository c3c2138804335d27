"""Crash recovery and admission: genomes owed a training queued again, a trial waiting for a free place, a killed
worker's trial holding its place until its retry is queued, trials killed inside Optuna's ask."""

from __future__ import annotations

import datetime as dt
import time

from multibackend.evolve import attributes
from multibackend.evolve.config import EvolveConfig
from multibackend.evolve.genome import course_baseline, genome_from_params


def requeue_owed_genomes(study, config: EvolveConfig) -> list[int]:
    """Queues again every genome that the study owes a training: a resumed search loses no work.

    Owed: the course baseline until one trial of it is complete, and the genome of every trial that was
    interrupted (Ctrl-C, SIGTERM, SIGHUP: marked `interrupted`) or that came from the queue (a retry of a
    killed worker's trial, the baseline) and ended failed or pruned, unless a trial with the same genome is
    complete, queued or running. The baseline goes first.

    Returns:
        The numbers of the trials whose genomes were queued again.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    pending = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    # A queued trial's genome is its fixed params: it has no params while waiting, and only some while they are drawn
    # (a worker joining then took those for the genome, and queued the baseline a second time).
    covered = {_genome_key(t.system_attrs.get("fixed_params") or t.params) for t in trials if t.state in pending}
    owed = []
    for trial in sorted(trials, key=lambda t: (not t.user_attrs.get(attributes.BASELINE), t.number)):
        if trial.state not in (TrialState.FAIL, TrialState.PRUNED) or {
            attributes.TOO_LARGE,
            attributes.STOPPED_AT_EPOCH,
        } & set(trial.user_attrs):
            continue  # pruned for a reason that holds again: too large, or hopeless
        if not (trial.user_attrs.get(attributes.INTERRUPTED) or "fixed_params" in trial.system_attrs):
            continue
        try:
            genome_from_params(trial.params)  # drawn in full: it can be trained again
        except KeyError:
            continue
        if _genome_key(trial.params) in covered:
            continue
        covered.add(_genome_key(trial.params))
        study.enqueue_trial(trial.params, user_attrs=_retry_attrs(trial))
        owed.append(trial.number)
    baseline = course_baseline(config.max_epochs).to_params()
    if baseline_trained(config) and _genome_key(baseline) not in covered:
        study.enqueue_trial(baseline, user_attrs={attributes.BASELINE: True})
    return owed


def reused_genomes(trials: list) -> int:
    """How many complete trials took the values of an earlier trial of the same genome (`same_genome_as`) instead of
    training."""
    return sum(t.state.name == "COMPLETE" and attributes.SAME_GENOME_AS in t.user_attrs for t in trials)


def baseline_trained(config: EvolveConfig) -> bool:
    """Whether the search trains the course network: not above `--max-params` (queued there, Optuna warned that its
    first layer lies outside the bounded space, and the trial was pruned at once, again on every resume)."""
    return not config.max_params or course_baseline(config.max_epochs).params <= config.max_params


def _retry_attrs(trial) -> dict:
    """The marks of a genome queued again for `trial`: what it retries, and whether it is the baseline."""
    return {
        attributes.RETRY_OF: trial.number,
        **({attributes.BASELINE: True} if trial.user_attrs.get(attributes.BASELINE) else {}),
    }


def _genome_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def wait_for_a_free_place(trial, total: int, deadline: float, poll_seconds: float = 1.0) -> None:
    """Returns when `trial` may train: fewer than `total` trials are finished or ahead of it.

    Ahead of it are the running trials that train, and those that wait with a higher priority:
    a retried trial (a killed worker's genome) before a new one, then the older one. Two waiting
    trials never wait for each other, and a killed trial's genome is trained before new ones.

    Raises:
        optuna.TrialPruned: when the study has its trials (the search is stopped), when a trial
            is queued (a killed worker's, to be retried: this worker's next trial takes it) and this
            one was not queued itself, or at the deadline (a queued genome is queued again on resume).
    """
    import optuna
    from optuna.trial import TrialState

    def priority(t) -> tuple[int, int]:
        return (0 if "failed_trial" in t.system_attrs else 1, t.number)

    study = trial.study
    trial.set_user_attr(attributes.PLACE, "waiting")
    while True:
        trials = study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == trial.number)
        mine = priority(frozen)
        queued = "fixed_params" in frozen.system_attrs  # a retry or the baseline: never gives its place to another
        others = [t for t in trials if t.number != trial.number]
        complete = sum(t.state == TrialState.COMPLETE for t in others)
        if complete >= total or time.monotonic() > deadline:
            study.stop()
            raise optuna.TrialPruned("the study has its trials" if complete >= total else "the budget is spent")
        if not queued and any(t.state == TrialState.WAITING for t in others):
            raise optuna.TrialPruned("a queued trial goes first; this worker's next trial takes it")
        ahead = sum(
            t.state == TrialState.RUNNING and (t.user_attrs.get(attributes.PLACE) != "waiting" or priority(t) < mine)
            for t in others
        ) + sum(awaiting_retry(t, trials) for t in others)
        if complete + ahead < total:
            trial.set_user_attr(attributes.PLACE, "training")
            return
        time.sleep(poll_seconds)
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed and queued again
        fail_trials_killed_in_ask(study)


# Optuna fails a killed worker's trial and queues its retry in two steps (`fail_stale_trials`); for this long after
# the first, the trial holds its place: a trial that looked in between saw neither, took the last place, and the
# retry was pruned with the study full (a CI run: the killed genome never trained).
RETRY_QUEUE_SECONDS = 60


def awaiting_retry(trial, trials: list) -> bool:
    """Whether `trial` was failed moments ago as a killed worker's (stale) trial whose retry is not queued yet.

    Not for a retry itself (Optuna retries once), an interrupted trial (its resume queues it again), a trial
    failed by its own error, or one failed longer ago than `RETRY_QUEUE_SECONDS` (the worker that failed it
    died before queueing the retry).
    """
    from optuna.trial import TrialState

    if (
        trial.state != TrialState.FAIL
        or trial.user_attrs.get(attributes.PLACE) != "training"
        or trial.user_attrs.get(attributes.INTERRUPTED)
        or trial.user_attrs.get(attributes.ERROR)
        or "failed_trial" in trial.system_attrs
        or trial.datetime_complete is None
        or (dt.datetime.now() - trial.datetime_complete).total_seconds() > RETRY_QUEUE_SECONDS
    ):
        return False
    return not any(trial.number in t.system_attrs.get("retry_history", ()) for t in trials)


# A trial gets its first heartbeat, then its `worker` attribute, right after Optuna's `ask` (the objective records
# one itself first); one that is older and has neither was killed inside `ask` (the sampler's draw).
ASK_SECONDS = 60


def fail_trials_killed_in_ask(study, older_than_seconds: float | None = None) -> list[int]:
    """Fails the running trials whose worker was killed before the trial's first heartbeat.

    Optuna finds a killed worker's trial stale by its last heartbeat; a trial killed inside `ask`
    has none and stayed running for good (a resume of a SIGKILLed search then waited on it forever).
    A queued genome (a retry, the baseline) in such a trial is queued again; a sampler's draw was
    not recorded yet, so nothing is lost.

    Args:
        study: The study to look through.
        older_than_seconds: How long after its start a trial without a worker counts as dead
            (None: `ASK_SECONDS`).

    Returns:
        The numbers of the trials failed here.
    """
    from optuna.trial import TrialState

    if older_than_seconds is None:
        older_than_seconds = ASK_SECONDS
    now = dt.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if attributes.WORKER in trial.user_attrs or trial.datetime_start is None:
            continue
        if (now - trial.datetime_start).total_seconds() < older_than_seconds:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # another worker failed it first, and queued its genome
            continue
        failed.append(trial.number)
        fixed = trial.system_attrs.get("fixed_params")
        if fixed:
            study.enqueue_trial(fixed, user_attrs=_retry_attrs(trial))
    return failed
