"""A PyTorch training loop for a Keras model on the torch backend.

On the torch backend a Keras model's weights are `torch.nn.Parameter`s, so a
plain PyTorch loop can train the very same model in place. It skips `fit`'s
per-step Python machinery (callbacks, metric objects, data adapters, tree
flattening) and Keras's per-layer call overhead by running the Dense/Dropout
stack as torch operations on the layers' own variables. The optimizer is
RMSprop computed as Keras does and the loss Keras's clipped crossentropy, so it
follows the same math as `fit`; after training, the Keras model holds the
trained weights and evaluates, predicts and saves as usual.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from multibackend.keras_loops import require_backend
from multibackend.native.torch_loop import KerasRMSprop

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

    layers = list(model.layers)
    if not layers or not isinstance(layers[-1], keras.layers.Dense) or layers[-1].activation.__name__ != "softmax":
        raise ValueError("the PyTorch loop needs a model that ends in a Dense layer with softmax activation")
    steps = []
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            name = "linear" if layer is layers[-1] else layer.activation.__name__
            if name not in ACTIVATIONS:
                raise ValueError(f"the PyTorch loop does not know activation {name!r}")
            steps.append(("dense", layer.kernel.value, layer.bias.value, ACTIVATIONS[name]))
        elif isinstance(layer, keras.layers.Dropout):
            steps.append(("dropout", layer.rate))
        else:
            raise ValueError(f"the PyTorch loop handles Dense and Dropout layers, not {type(layer).__name__}")

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
    """Trains a Keras model in place with a plain PyTorch loop; see `multibackend.keras_loops.EpochTrainer`."""

    def __init__(self, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int):
        require_backend("torch")
        self.device = model.trainable_variables[0].value.device
        self.logits = logits_function(model)
        self.optimizer = KerasRMSprop([variable.value for variable in model.trainable_variables])
        self.inputs = torch.from_numpy(np.ascontiguousarray(x_train)).to(self.device)
        self.labels = torch.from_numpy(y_train.astype(np.int64)).to(self.device)
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        order = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(self.device)
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            logits, labels = self.logits(self.inputs[batch], training=True), self.labels[batch]
            loss = sparse_crossentropy_from_logits(logits, labels)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            # Running sums, not lists reduced at the end: 2 x 469 small tensors kept alive through
            # an epoch fragmented the heap here (peak memory +60 to +120 MiB).
            total_loss += loss.detach() * len(batch)
            correct += (logits.argmax(1) == labels).sum()
        return float(total_loss) / len(order), float(correct) / len(order)

    def sync_model(self) -> None:
        """Nothing to do: the loop updates the model's own Parameters."""
