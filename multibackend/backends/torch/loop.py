"""A PyTorch training loop for a Keras model on the torch backend.

On the torch backend a Keras model's weights are `torch.nn.Parameter`s, so a
plain PyTorch loop can train the very same model in place. It skips `fit`'s
per-step Python machinery (callbacks, metric objects, data adapters, tree
flattening) and Keras's per-layer call overhead: Dense, unseeded Dropout and
plain BatchNormalization layers and `models.RandomShift` run as the torch
operations Keras's torch backend runs for them, on the layers' own variables
(a batch normalization's moving statistics updated as its `call` updates them,
a shift's offsets drawn from its own seed generator), any other layer with
state through its own `call`, and the loss as Keras's clipped crossentropy
(label smoothing included) from the logits. The compiled optimizer trains, on
its own slots and `iterations` (`optimizers.optimizer_step`). After training,
the Keras model holds the trained weights, statistics and optimizer state and
evaluates, predicts, saves and trains on as usual.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from multibackend.backends.base import LoopUnsupported, check_trainable, one_hot_labels, require_backend
from multibackend.backends.torch.optimizers import optimizer_step

# Keras clips probabilities to [epsilon, 1 - epsilon] before the log; clipping
# log-probabilities to the logs of those bounds is the same function.
KERAS_EPSILON = 1e-7
LOG_PROBABILITY_BOUNDS = (math.log(KERAS_EPSILON), math.log1p(-KERAS_EPSILON))


ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "linear": lambda x: x,
}


def logits_function(model):
    """A torch function computing the logits of `model`: a stack of the layers `check_trainable` accepts whose last
    Dense layer has a softmax activation, which the function leaves out."""
    import keras

    check_trainable(model, layer_state=True)
    layers = list(model.layers)
    steps = []
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            name = "linear" if layer is layers[-1] else layer.activation.__name__
            if name not in ACTIVATIONS:
                raise LoopUnsupported(f"the PyTorch loop does not know activation {name!r}")
            steps.append(dense_step(layer.kernel.value, layer.bias.value, ACTIVATIONS[name]))
        elif isinstance(layer, keras.layers.Dropout) and layer.seed_generator._initial_seed is None:
            # Keras's torch backend drops an unseeded Dropout's units with torch's own generator, as here.
            steps.append(functools.partial(F.dropout, p=layer.rate))
        elif isinstance(layer, keras.layers.BatchNormalization):
            _check_batch_normalization(layer)
            steps.append(functools.partial(batch_normalization_step, layer))
        elif type(layer).__name__ == "RandomShift":
            steps.append(ShiftStep(layer))
        else:
            steps.append(functools.partial(layer.call))

    def logits(x: torch.Tensor, training: bool) -> torch.Tensor:
        for step in steps:
            x = step(x, training=training)
        return x

    return logits


def dense_step(kernel: torch.Tensor, bias: torch.Tensor, activation):
    def step(x: torch.Tensor, training: bool) -> torch.Tensor:
        return activation(torch.addmm(bias, x, kernel))

    return step


def _check_batch_normalization(layer) -> None:
    """Refuses a batch normalization whose `call` the loop does not compute as `fit` does (renormalization, another
    axis, synchronized statistics, penalties that the compiled loss adds, a frozen layer)."""
    penalties = [name for name in ("beta_regularizer", "gamma_regularizer") if getattr(layer, name) is not None]
    if layer.renorm or layer.synchronized or layer.axis not in (-1, 1) or penalties or not layer.trainable:
        raise LoopUnsupported(
            f"the PyTorch loop trains a plain BatchNormalization on the last axis, not {layer.name!r} "
            "(renorm, synchronized, another axis, a regularizer or frozen)"
        )


def batch_normalization_step(layer, x: torch.Tensor, training: bool) -> torch.Tensor:
    """`BatchNormalization.call` on 2-D inputs as Keras's torch backend computes it (`ops.moments`, the moving
    statistics' update, `ops.batch_normalization`), without its per-call casts and dispatch."""
    if training:
        mean = x.mean(dim=0, keepdim=True)
        variance = x.square().mean(dim=0, keepdim=True) - mean.square()
        mean, variance = mean.squeeze(0), variance.squeeze(0)
        momentum = layer.momentum
        with torch.no_grad():
            moving_mean, moving_variance = layer.moving_mean.value, layer.moving_variance.value
            moving_mean.copy_(moving_mean * momentum + mean * (1.0 - momentum))
            moving_variance.copy_(moving_variance * momentum + variance * (1.0 - momentum))
    else:
        mean, variance = layer.moving_mean.value, layer.moving_variance.value
    scale = variance.add(layer.epsilon).rsqrt_()
    if layer.gamma is not None:
        scale = scale.mul(layer.gamma.value)
    shifted = x.subtract(mean).mul_(scale)
    return shifted.add_(layer.beta.value) if layer.beta is not None else shifted


class SeedStream:
    """What `keras.random.randint(..., seed=seed_generator)` seeds on the torch backend (`torch_seed_generator`): a
    generator seeded with the sum of the seed generator's state, whose counter then moves on by one; without the
    Keras operations it takes each call (a third of a shift's time on a search trial's step here)."""

    def __init__(self, seed_generator):
        self.state = seed_generator.state.value  # Keras assigns it in place (`copy_`), so this stays the state
        self.increment = torch.tensor([0, 1], dtype=self.state.dtype, device=self.state.device)
        self.generator = torch.Generator(device=self.state.device)

    def next_generator(self) -> torch.Generator:
        """The generator of the next draw, seeded as Keras seeds it (the state's sum as an unsigned 32-bit number)."""
        first, second = self.state.tolist()
        self.state.add_(self.increment)  # the state's int32 sum wraps as Keras's does
        self.generator.manual_seed((first + second) & 0xFFFFFFFF)
        return self.generator


class ShiftStep:
    """`models.RandomShift.call` as torch operations: the offsets drawn from the layer's own seed generator as its
    `call` draws them, the padding and the gather without Keras's per-operation dispatch."""

    def __init__(self, layer):
        self.margin = layer.max_pixels
        self.pixels = None
        self.seeds = SeedStream(layer.generator)

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        margin = self.margin
        if not training or margin == 0:
            return x
        side = int(round(x.shape[-1] ** 0.5))
        wide = side + 2 * margin
        if self.pixels is None:
            pixels = torch.arange(side * side, device=x.device)
            self.pixels = (pixels // side + margin) * wide + pixels % side + margin
        padded = F.pad(x.reshape(-1, side, side), (margin, margin, margin, margin)).reshape(-1, wide * wide)
        generator = self.seeds.next_generator()
        offsets = torch.randint(
            -margin, margin + 1, (2, len(padded)), generator=generator, dtype=torch.int32, device=x.device
        )
        index = self.pixels[None, :] - offsets[0][:, None] * wide - offsets[1][:, None]
        return torch.take_along_dim(padded, index.long(), dim=1)


def crossentropy_from_logits(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Keras's (sparse) categorical crossentropy of `softmax(logits)` on class indices, clipping included: with
    `smoothing`, of the one-hot labels smoothed as `CategoricalCrossentropy(label_smoothing=...)` smooths them."""
    log_probabilities = torch.log_softmax(logits, dim=1).clamp(*LOG_PROBABILITY_BOUNDS)
    loss = F.nll_loss(log_probabilities, labels)
    if not smoothing:
        return loss
    # The smoothed target is (1 - s) on the label and s / classes on every class.
    return (1 - smoothing) * loss - smoothing * log_probabilities.mean(dim=1).mean()


def label_smoothing(model) -> float:
    """The label smoothing of `model`'s compiled categorical crossentropy (0 for a sparse one or none)."""
    if not one_hot_labels(model) or isinstance(model.loss, str):
        return 0.0
    return float(model.loss.get_config().get("label_smoothing") or 0.0)


# Each epoch of `fit` on the torch backend draws from torch's generator twice before its first step (its DataLoader
# iterator's base seed and its sampler's seed); an unseeded Dropout draws next, so the loop draws as many.
FIT_DRAWS_PER_EPOCH = 2


def draw_as_fit_does() -> None:
    """Advances torch's generator as an epoch of `fit` does before its first step."""
    for _ in range(FIT_DRAWS_PER_EPOCH):
        torch.empty((), dtype=torch.int64).random_()


class EpochTrainer:
    """Trains a compiled Keras model in place with a plain PyTorch loop; see `multibackend.backends.base.EpochTrainer`."""

    def __init__(self, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int):
        require_backend("torch")
        self.device = model.trainable_variables[0].value.device
        self.logits = logits_function(model)
        variables = list(model.trainable_variables)
        self.parameters = [variable.value for variable in variables]
        if not model.optimizer.built:
            model.optimizer.build(variables)
        self.optimizer_step = optimizer_step(model.optimizer, variables)
        self.inputs = torch.from_numpy(np.ascontiguousarray(x_train)).to(self.device)
        self.labels = torch.from_numpy(y_train.astype(np.int64)).to(self.device)
        self.smoothing = label_smoothing(model)
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        order = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(self.device)
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        draw_as_fit_does()
        self.optimizer_step.start_epoch(-(-len(order) // self.batch_size))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            logits, labels = self.logits(self.inputs[batch], training=True), self.labels[batch]
            loss = crossentropy_from_logits(logits, labels, self.smoothing)
            for parameter in self.parameters:
                parameter.grad = None
            loss.backward()
            self.optimizer_step([parameter.grad for parameter in self.parameters])
            # Running sums, not lists reduced at the end: 2 x 469 small tensors kept alive through
            # an epoch fragmented the heap here (peak memory +60 to +120 MiB).
            total_loss += loss.detach() * len(batch)
            correct += (logits.argmax(1) == labels).sum()
        return float(total_loss) / len(order), float(correct) / len(order)

    def sync_model(self) -> None:
        """Nothing to do: the loop updates the model's own Parameters, statistics and the optimizer's own slots."""
