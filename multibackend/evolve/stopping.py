"""Stopping a hopeless trial early: the median rule on validation accuracy after each epoch.

Optuna's pruners do not support multi-objective studies, so a trial keeps its own curve
(validation accuracy after each epoch, in its `val_curve` attribute) and compares it with the
population's: the curves of the study's finished trials, complete or stopped, that planned at
least as many epochs. After epoch k (from `FIRST_JUDGED_EPOCH` on, once at least `MIN_CURVES` of
them reached epoch k) a trial below their median at epoch k stops, and is pruned. NSGA-II breeds
from complete trials only, so the time goes to genomes that can win. (Against the complete trials
alone the bar only rose, as the stopped ones left the comparison: in a 12-minute search 62 of 82
trials stopped and the front came out worse. Against every finished trial, a 21-epoch genome at
its 3rd epoch met 3-epoch genomes at their last, their learning rate already decayed: a 640-trial
search's later generations held almost only 3-epoch genomes.)
"""

from __future__ import annotations

import statistics

from multibackend.evolve import attributes
from multibackend.evolve.fitness import accuracy

FIRST_JUDGED_EPOCH = 2
MIN_CURVES = 5


def median_bar(curve: list[float], others: list[list[float]], min_curves: int = MIN_CURVES) -> float | None:
    """The validation accuracy that a trial must reach after its last epoch, or None when it is not judged.

    Args:
        curve: The trial's validation accuracy after each epoch so far.
        others: The curves of the study's finished trials: complete, and stopped early (pruned with a curve).
        min_curves: How many of them must have reached this epoch for a judgement.

    Returns:
        The median of the others' accuracy at this epoch, or None (too early, or too few to compare with).
    """
    epoch = len(curve)
    if epoch < FIRST_JUDGED_EPOCH:
        return None
    values = [other[epoch - 1] for other in others if len(other) >= epoch]
    return statistics.median(values) if len(values) >= min_curves else None


def comparable_curves(finished: list, planned_epochs: int) -> list[list[float]]:
    """The validation curves that a trial planning `planned_epochs` epochs is judged against.

    Args:
        finished: The study's finished trials (complete, or stopped early), as Optuna's `FrozenTrial`s.
        planned_epochs: The epochs the judged trial's genome trains.

    Returns:
        The curves of those that planned at least as many epochs: at any epoch the judged trial reaches, they
        were as far from their own end, so a decaying learning rate had not yet settled them.
    """
    return [
        t.user_attrs[attributes.VAL_CURVE]
        for t in finished
        if t.user_attrs.get(attributes.VAL_CURVE) and t.params.get("epochs", 0) >= planned_epochs
    ]


def hopeless_stop(trial, x_val, y_val, *, judged: bool = True):
    """A Keras callback that records `trial`'s validation curve and stops its training when it is hopeless.

    Args:
        trial: The Optuna trial (its study's finished trials, complete or stopped, are the comparison).
        x_val, y_val: The validation images and integer labels.
        judged: False records the curve without ever stopping (the course baseline, a final retrain).

    Returns:
        The callback; after training, `curve` holds the accuracies and `stopped` `(epoch, bar)` or None.
    """
    import keras
    from optuna.trial import TrialState

    class HopelessTrialStop(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve: list[float] = []
            self.stopped: tuple[int, float] | None = None

        def on_epoch_end(self, epoch, logs=None):
            self.curve.append(accuracy(self.model, x_val, y_val))
            trial.set_user_attr(attributes.VAL_CURVE, self.curve)
            planned = (self.params or {}).get("epochs", epoch + 1)
            # A trial that trained all its epochs is complete, whatever its accuracy.
            if not judged or epoch + 1 >= planned:
                return
            finished = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            bar = median_bar(self.curve, comparable_curves(finished, planned))
            if bar is not None and self.curve[-1] < bar:
                self.stopped = (epoch + 1, bar)
                self.model.stop_training = True

    return HopelessTrialStop()
