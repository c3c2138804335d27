"""A PyTorch training loop for a Keras model on the torch backend.

On the torch backend a Keras model's weights are `torch.nn.Parameter`s, so a
plain PyTorch loop can train the very same model in place. It skips `fit`'s
per-step Python machinery (callbacks, metric objects, data adapters, tree
flattening) and Keras's per-layer call overhead by running the Dense/Dropout
stack as torch operations on the layers' own variables, and the loss as
Keras's clipped crossentropy from the logits. The compiled optimizer trains:
plain RMSprop (the course's) is stepped with Keras's formula, fused, on that
optimizer's own velocities and `iterations`; any other optimizer through its
own `apply`. After training, the Keras model holds the trained weights and
optimizer state and evaluates, predicts, saves and trains on as usual.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from multibackend.backends.base import LoopUnsupported, check_trainable, require_backend

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
    """A torch function computing the logits of `model`: a stack of Dense and Dropout layers
    whose last Dense layer has a softmax activation, which the function leaves out."""
    import keras

    check_trainable(model)
    layers = list(model.layers)
    steps = []
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            name = "linear" if layer is layers[-1] else layer.activation.__name__
            if name not in ACTIVATIONS:
                raise LoopUnsupported(f"the PyTorch loop does not know activation {name!r}")
            steps.append(("dense", layer.kernel.value, layer.bias.value, ACTIVATIONS[name]))
        else:
            steps.append(("dropout", layer.rate))

    def logits(x: torch.Tensor, training: bool) -> torch.Tensor:
        for step in steps:
            if step[0] == "dense":
                x = step[3](torch.addmm(step[2], x, step[1]))
            else:
                x = F.dropout(x, step[1], training)
        return x

    return logits


def sparse_crossentropy_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's sparse categorical crossentropy of `softmax(logits)`, clipping included, in three torch ops."""
    return F.nll_loss(torch.log_softmax(logits, dim=1).clamp(*LOG_PROBABILITY_BOUNDS), labels)


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
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        order = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(self.device)
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        # Read once an epoch: a callback may change the rate between epochs, as under fit.
        learning_rate = float(self.optimizer.learning_rate) if self.velocities is not None else None
        steps = 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            logits, labels = self.logits(self.inputs[batch], training=True), self.labels[batch]
            loss = sparse_crossentropy_from_logits(logits, labels)
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
