"""A PyTorch training loop for a Keras model on the torch backend.

On the torch backend a Keras model's weights are `torch.nn.Parameter`s, so a
plain PyTorch loop can train the very same model in place. It skips `fit`'s
per-step Python machinery (callbacks, metric objects, data adapters, tree
flattening) and Keras's per-layer call overhead by running the Dense/Dropout
stack as torch operations on the layers' own variables. The optimizer is
RMSprop computed as Keras does and the loss Keras's clipped crossentropy on the
softmax output, so it follows the same math as `fit`; after training, the
Keras model holds the trained weights and evaluates, predicts and saves as usual.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from multibackend.native.torch_loop import KerasRMSprop

# Keras clips probabilities to [epsilon, 1 - epsilon] before the log.
KERAS_EPSILON = 1e-7


ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "linear": lambda x: x,
}


def forward_function(model):
    """A torch function computing `model(x)` for a stack of Dense and Dropout layers."""
    import keras

    steps = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            name = layer.activation.__name__
            if name not in ACTIVATIONS:
                raise ValueError(f"the PyTorch loop does not know activation {name!r}")
            steps.append(("dense", layer.kernel.value, layer.bias.value, ACTIVATIONS[name]))
        elif isinstance(layer, keras.layers.Dropout):
            steps.append(("dropout", layer.rate))
        else:
            raise ValueError(f"the PyTorch loop handles Dense and Dropout layers, not {type(layer).__name__}")

    def forward(x: torch.Tensor, training: bool) -> torch.Tensor:
        for step in steps:
            if step[0] == "dense":
                x = step[3](torch.addmm(step[2], x, step[1]))
            else:
                x = F.dropout(x, step[1], training)
        return x

    return forward


def sparse_crossentropy(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's sparse categorical crossentropy on probabilities, as a torch expression."""
    picked = probabilities.gather(1, labels[:, None]).squeeze(1)
    return -torch.log(picked.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)).mean()


def fit_with_loop(model, x_train, y_train, epochs, batch_size, seed, on_epoch_end=None, shuffle=True) -> dict:
    """Trains with a plain PyTorch loop; see `multibackend.keras_loops.fit_with_loop`."""
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError("the PyTorch loop needs the torch backend")
    device = model.trainable_variables[0].value.device
    forward = forward_function(model)
    parameters = [variable.value for variable in model.trainable_variables]
    optimizer = KerasRMSprop(parameters)
    inputs = torch.from_numpy(np.ascontiguousarray(x_train)).to(device)
    labels = torch.from_numpy(y_train.astype(np.int64)).to(device)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        started = time.perf_counter()
        order = (torch.randperm(len(inputs), generator=generator) if shuffle else torch.arange(len(inputs))).to(device)
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for start in range(0, len(inputs), batch_size):
            batch = order[start : start + batch_size]
            probabilities = forward(inputs[batch], training=True)
            loss = sparse_crossentropy(probabilities, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(batch)
            correct += (probabilities.detach().argmax(1) == labels[batch]).sum()
        history["loss"].append(float(total_loss) / len(inputs))
        history["accuracy"].append(float(correct) / len(inputs))
        if on_epoch_end is not None:
            on_epoch_end(epoch, time.perf_counter() - started, {name: values[-1] for name, values in history.items()})
    return history
