"""What a search writes on its trials: the names of Optuna's user attributes, one place for every module.

The study in the storage is the search's record, read by every worker and by a resumed search, so a key
written here is read back by name elsewhere (recovery, early stopping, the summary).
"""

from __future__ import annotations

BACKEND = "backend"  # the backend that trained the trial
WORKER = "worker"  # host:pid of the process that holds it
BASELINE = "baseline"  # True on the course network's trial
TOO_LARGE = "too_large"  # its parameter count, over --max-params: pruned untrained
SAME_GENOME_AS = "same_genome_as"  # an earlier complete trial of the same genome whose values it took
SECONDS = "seconds"  # wall-clock seconds of its training
TRAINER = "trainer"  # "loop" (the framework's fast path) or "fit"
STOPPED_AT_EPOCH = "stopped_at_epoch"  # stopped early as hopeless after this epoch
VAL_CURVE = "val_curve"  # validation accuracy after each epoch (what early stopping compares)
INTERRUPTED = "interrupted"  # True when Ctrl-C, SIGTERM or SIGHUP ended its training
ERROR = "error"  # the one-line error that failed it
PLACE = "place"  # "waiting" for a free place to train, or "training"
RETRY_OF = "retry_of"  # the number of the trial it trains again

# Optuna's NSGA-II sampler keeps each trial's generation under this system attribute (its own key, not public API:
# `NSGAIISampler._get_generation_key()`; a test checks the two agree).
GENERATION = "NSGAIISampler:generation"
