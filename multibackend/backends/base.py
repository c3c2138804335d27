"""What every backend shares: the fast path's contract and the checks it makes before it trains.

A backend is a package `multibackend/backends/<name>/` whose `__init__.py`
defines the functions of `Backend` (environment before import, device probes,
precision switches) and whose `loop.py` defines an `EpochTrainer` (the
framework loop, the labelled fast path beside Keras `fit`; see
`multibackend.training.loops`). The loops import what they share from here.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from multibackend.runtime.errors import UsageError


class Backend(Protocol):
    """The module of one backend (`multibackend/backends/<name>/__init__.py`).

    `ORDER` is optional (default: after the others); so is `epoch_trainer`: a backend without a framework loop
    trains with `fit` only (`--trainer loop` and the search's fast path refuse it, `backends.has_loop`).
    """

    ORDER: int  # its place in listings
    PACKAGE: str  # the framework's import name
    INSTALL_HINT: str  # what to install when it is missing (CPU builds)
    COLOR: str  # its colour in plots
    MODULES: tuple[str, ...]  # the top-level modules of its framework
    DATA_PIPELINES: tuple[str, ...]  # optional: its data-pipeline modules, which Keras 3 accepts on every backend
    USES_MODULES: tuple[str, ...]  # optional: other frameworks' modules that Keras on this backend imports itself
    STEPS_PER_EXECUTION_COMPILED: bool  # whether Keras runs `steps_per_execution` steps in one compiled call
    # Whether its loop carries the layers' own state as `fit` does (the stateless API's, or the layers' own `call`),
    # and so also trains `LAYERS_WITH_STATE` and `CATEGORICAL_CROSSENTROPY` (see `check_trainable`).
    LOOP_TRAINS_LAYER_STATE: bool
    # Names (fnmatch patterns) of its framework's settings among the caller's variables: every verified run gets them.
    PASSED_ENVIRONMENT: tuple[str, ...]

    def environment(self, device: str, chosen: bool) -> dict[str, str | None]:
        """Variables to set (None: remove) before Keras and the frameworks are imported in a process whose backend
        is this one (`chosen`) or another one, on `device` ("cpu" or "gpu")."""
        ...

    def gpu_available(self) -> bool:
        """Whether the framework sees a usable GPU (it may raise: the caller treats that as no)."""
        ...

    def gpu_details(self) -> dict:
        """Name and memory (bytes, or None) of the first GPU as the framework reports them."""
        ...

    def variable_device(self, value) -> str:
        """Where a Keras variable's tensor lives, as the framework names it."""
        ...

    def peak_gpu_memory_bytes(self) -> int | None:
        """Optional: the most GPU memory the framework held in this process (None: no GPU used)."""
        ...

    def wait_for_steps(self, model) -> None:
        """Optional: waits until the training steps dispatched so far have computed (frameworks that dispatch ahead of
        the computation: a step time read before it would be the dispatch's)."""
        ...

    def set_tf32(self, enabled: bool) -> None:
        """Turns TensorFloat-32 matmuls on or off."""
        ...

    def tf32_enabled(self) -> bool:
        """Whether TensorFloat-32 matmuls may be used on a GPU."""
        ...

    def epoch_trainer(self, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int) -> EpochTrainer:
        """The framework loop (`loop.py`) for a compiled model that `check_trainable` accepts (with `layer_state`
        set to this backend's `LOOP_TRAINS_LAYER_STATE`)."""
        ...


# The compiled loss and metrics a loop trains and reports: the labels are class indices.
SPARSE_CROSSENTROPY = "sparse_categorical_crossentropy"
# Crossentropy on one-hot labels (with any label smoothing): a loop that trains it makes them from the class indices.
CATEGORICAL_CROSSENTROPY = "categorical_crossentropy"
# Layers with state that training changes but the optimizer does not (a batch normalization's statistics, a random
# layer's seed): a loop that steps through Keras's stateless API, or runs such a layer's own `call`, carries it.
LAYERS_WITH_STATE = ("BatchNormalization", "RandomShift")
ACCURACY_METRICS = ("accuracy", "sparse_categorical_accuracy")
# Dense settings whose effect (extra loss terms, projections, low-rank updates) the loops do not compute.
DENSE_EXTRAS = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "lora_rank",
)


class LoopUnsupported(UsageError):
    """A model or compile setting that the framework loop cannot train exactly as `fit` would."""


class EpochTrainer(Protocol):
    """Trains a Keras model one epoch at a time with a framework's own loop."""

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        """Runs one epoch over the training samples in `order`, in batches.

        Args:
            order: A permutation of the training sample indices.

        Returns:
            The epoch's mean loss and accuracy over its batches, as `fit` reports them.
        """
        ...

    def sync_model(self) -> None:
        """Leaves the trained weights and optimizer state in the Keras model (where training did not
        update them in place)."""
        ...


def check_trainable(model, *, layer_state: bool = False) -> str:
    """Checks that a loop trains `model` exactly as its `compile` asks.

    Args:
        model: A Keras model.
        layer_state: Whether the loop carries the layers' own state (see `Backend.LOOP_TRAINS_LAYER_STATE`):
            it also trains the `LAYERS_WITH_STATE` and `CATEGORICAL_CROSSENTROPY`.

    Returns:
        The name under which the accuracy is reported (`accuracy` or
        `sparse_categorical_accuracy`, as compiled).

    Raises:
        LoopUnsupported: naming the first setting the loop cannot train.
    """
    import keras

    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise LoopUnsupported("the framework loop trains a compiled model: call model.compile(...) first")
    config = model._compile_config.config
    if config.get("loss_weights") is not None or config.get("weighted_metrics"):
        raise LoopUnsupported("the framework loop does not train loss_weights or weighted_metrics")
    losses = (SPARSE_CROSSENTROPY, CATEGORICAL_CROSSENTROPY) if layer_state else (SPARSE_CROSSENTROPY,)
    if _loss_name(model.loss) not in losses:
        raise LoopUnsupported(f"the framework loop trains {' or '.join(losses)} on integer labels, not {model.loss!r}")
    metrics = [
        metric if isinstance(metric, str) else getattr(metric, "name", repr(metric))
        for metric in config.get("metrics") or []
    ]
    if len(metrics) > 1 or any(metric not in ACCURACY_METRICS for metric in metrics):
        raise LoopUnsupported(
            f"the framework loop reports loss and one of {', '.join(ACCURACY_METRICS)}, not metrics {metrics}"
        )
    layers = list(model.layers)
    kinds = ("Dense", "Dropout", *(LAYERS_WITH_STATE if layer_state else ()))
    for layer in layers:
        if not (isinstance(layer, (keras.layers.Dense, keras.layers.Dropout)) or type(layer).__name__ in kinds):
            raise LoopUnsupported(f"the framework loop trains {', '.join(kinds)} layers, not {type(layer).__name__}")
        extras = [name for name in DENSE_EXTRAS if getattr(layer, name, None) is not None]
        if isinstance(layer, keras.layers.Dense) and (extras or not layer.use_bias):
            raise LoopUnsupported(
                f"the framework loop trains plain Dense layers with a bias, not {layer.name!r} "
                f"with {', '.join(extras) or 'use_bias=False'}"
            )
    if not layers or not isinstance(layers[-1], keras.layers.Dense) or layers[-1].activation.__name__ != "softmax":
        raise LoopUnsupported("the framework loop needs a model that ends in a Dense layer with softmax activation")
    return metrics[0] if metrics else "accuracy"


def _loss_name(loss) -> str | None:
    """The name of a compiled loss when it is plain (sparse) categorical crossentropy on probabilities; a
    categorical one may smooth its labels."""
    import keras

    if isinstance(loss, str):
        names = {
            "SparseCategoricalCrossentropy": SPARSE_CROSSENTROPY,
            "CategoricalCrossentropy": CATEGORICAL_CROSSENTROPY,
        }
        return names.get(loss, loss)
    kinds = {
        keras.losses.SparseCategoricalCrossentropy: SPARSE_CROSSENTROPY,
        keras.losses.CategoricalCrossentropy: CATEGORICAL_CROSSENTROPY,
    }
    name = kinds.get(type(loss))
    if name is not None:
        config = loss.get_config()
        plain = not config.get("from_logits") and config.get("ignore_class") is None and config.get("axis", -1) == -1
        if plain and config.get("reduction") == "sum_over_batch_size":
            return name
    return None


def one_hot_labels(model) -> bool:
    """Whether `model` is compiled with `CATEGORICAL_CROSSENTROPY`: a loop gives it one-hot labels."""
    return _loss_name(model.loss) == CATEGORICAL_CROSSENTROPY


def batch_order(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits one epoch's sample order into full batches and the short last batch.

    Args:
        order: A permutation of the sample indices.
        batch_size: Samples per batch.

    Returns:
        `(batches, rest)`: int32 indices of shape `(n // batch_size, batch_size)`
        and the remaining `n % batch_size` indices (possibly empty).
    """
    full = len(order) // batch_size * batch_size
    order = order.astype(np.int32)
    return order[:full].reshape(-1, batch_size), order[full:]


def require_backend(name: str) -> None:
    """Raises `RuntimeError` unless Keras runs on backend `name`."""
    import keras

    if keras.backend.backend() != name:
        raise RuntimeError(f"the {name} loop needs Keras's {name} backend, not {keras.backend.backend()}")
