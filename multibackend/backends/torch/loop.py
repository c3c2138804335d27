"""A PyTorch training loop for a Keras model on the torch backend.

On the torch backend a Keras model's weights are `torch.nn.Parameter`s, so a
plain PyTorch loop can train the very same model in place. It skips `fit`'s
per-step Python machinery (callbacks, metric objects, data adapters, tree
flattening) and Keras's per-layer call overhead: Dense and unseeded Dropout
layers run as torch operations on the layers' own variables, a layer with
state of its own (a batch normalization's statistics, a random layer's seed
generator) through its own `call`, as `fit`'s step calls it, and the loss as
Keras's clipped crossentropy (label smoothing included) from the logits. The
compiled optimizer trains: plain RMSprop (the course's) is stepped with
Keras's formula, fused, on that optimizer's own velocities and `iterations`;
any other optimizer through its own `apply`. After training, the Keras model
holds the trained weights, statistics and optimizer state and evaluates,
predicts, saves and trains on as usual.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from multibackend.backends.base import LoopUnsupported, check_trainable, one_hot_labels, require_backend

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
            steps.append(("dense", layer.kernel.value, layer.bias.value, ACTIVATIONS[name]))
        elif isinstance(layer, keras.layers.Dropout) and layer.seed_generator._initial_seed is None:
            # Keras's torch backend drops an unseeded Dropout's units with torch's own generator, as here.
            steps.append(("dropout", layer.rate))
        else:
            _check_own_call(layer)
            steps.append(("layer", layer))

    def logits(x: torch.Tensor, training: bool) -> torch.Tensor:
        for step in steps:
            if step[0] == "dense":
                x = step[3](torch.addmm(step[2], x, step[1]))
            elif step[0] == "dropout":
                x = F.dropout(x, step[1], training)
            else:
                x = step[1].call(x, training=training)
        return x

    return logits


def _check_own_call(layer) -> None:
    """Refuses a batch normalization whose `call` the loop would not run as `fit` does (renormalization, another
    axis, synchronized statistics, penalties that the compiled loss adds)."""
    import keras

    if not isinstance(layer, keras.layers.BatchNormalization):
        return
    penalties = [name for name in ("beta_regularizer", "gamma_regularizer") if getattr(layer, name) is not None]
    if layer.renorm or layer.synchronized or layer.axis not in (-1, 1) or penalties or not layer.trainable:
        raise LoopUnsupported(
            f"the PyTorch loop trains a plain BatchNormalization on the last axis, not {layer.name!r} "
            "(renorm, synchronized, another axis, a regularizer or frozen)"
        )


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
        self.variables = list(model.trainable_variables)
        self.parameters = [variable.value for variable in self.variables]
        self.optimizer = model.optimizer
        if not self.optimizer.built:
            self.optimizer.build(self.variables)
        self.velocities = plain_rmsprop_velocities(self.optimizer, self.variables)
        self.inputs = torch.from_numpy(np.ascontiguousarray(x_train)).to(self.device)
        self.labels = torch.from_numpy(y_train.astype(np.int64)).to(self.device)
        self.smoothing = label_smoothing(model)
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        order = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(self.device)
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        # Read once an epoch: a callback may change the rate between epochs, as under fit.
        learning_rate = float(self.optimizer.learning_rate) if self.velocities is not None else None
        steps = 0
        draw_as_fit_does()
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            logits, labels = self.logits(self.inputs[batch], training=True), self.labels[batch]
            loss = crossentropy_from_logits(logits, labels, self.smoothing)
            for parameter in self.parameters:
                parameter.grad = None
            loss.backward()
            if self.velocities is None:
                self.optimizer.apply([parameter.grad for parameter in self.parameters], self.variables)
            else:
                self._rmsprop_step(learning_rate)
                steps += 1
            # Running sums, not lists reduced at the end: 2 x 469 small tensors kept alive through
            # an epoch fragmented the heap here (peak memory +60 to +120 MiB).
            total_loss += loss.detach() * len(batch)
            correct += (logits.argmax(1) == labels).sum()
        if steps:
            self.optimizer.iterations.assign(self.optimizer.iterations + steps)
        return float(total_loss) / len(order), float(correct) / len(order)

    @torch.no_grad()
    def _rmsprop_step(self, learning_rate: float) -> None:
        """Keras's RMSprop update, `v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)`, on the compiled
        optimizer's own velocities, without `apply`'s per-step Python bookkeeping.

        Fused (`addcmul`, `addcdiv`) where Keras's torch backend spends five passes over the weights:
        the same math to float32 rounding (parity checks it), and three fewer memory passes a step,
        which cost this loop about 15% of an epoch here.
        """
        grads = [parameter.grad for parameter in self.parameters]
        rho = self.optimizer.rho
        torch._foreach_mul_(self.velocities, rho)
        torch._foreach_addcmul_(self.velocities, grads, grads, value=1 - rho)
        denominators = torch._foreach_add(self.velocities, self.optimizer.epsilon)
        torch._foreach_sqrt_(denominators)
        torch._foreach_addcdiv_(self.parameters, grads, denominators, value=-learning_rate)

    def sync_model(self) -> None:
        """Nothing to do: the loop updates the model's own Parameters and the optimizer's own slots."""


def plain_rmsprop_velocities(optimizer, variables) -> list[torch.Tensor] | None:
    """The velocity tensors of `optimizer` when it is RMSprop with nothing but a learning rate, rho and
    epsilon set (so the fast step computes exactly what `apply` would); None for any other optimizer."""
    import keras

    if type(optimizer).__name__ != "RMSprop" or not isinstance(optimizer, keras.optimizers.RMSprop):
        return None
    extras = (
        optimizer.momentum,
        optimizer.centered,
        optimizer.weight_decay,
        optimizer.clipnorm,
        optimizer.clipvalue,
        optimizer.global_clipnorm,
        optimizer.use_ema,
        optimizer.gradient_accumulation_steps,
        getattr(optimizer, "loss_scale_factor", None),
    )
    if any(extras) or not isinstance(optimizer._learning_rate, keras.Variable):
        return None
    return [optimizer._velocities[optimizer._get_variable_index(variable)].value for variable in variables]
