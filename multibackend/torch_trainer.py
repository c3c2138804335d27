"""A PyTorch training loop for a Keras model on the torch backend (the `--trainer torch-loop` path).

On the torch backend a Keras model is a `torch.nn.Module` whose weights are
`torch.nn.Parameter`s, so a plain PyTorch loop can train the very same model:
it skips `fit`'s per-step Python machinery (callbacks, metric objects, data
adapters, tree flattening) that makes Keras-on-torch slower than plain PyTorch.
The optimizer is RMSprop with Keras's defaults, the loss Keras's clipped
crossentropy on the softmax output, so it follows the same math as `fit`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from multibackend.native import EPSILON, LEARNING_RATE, RHO

# Keras clips probabilities to [epsilon, 1 - epsilon] before the log.
KERAS_EPSILON = 1e-7


def sparse_crossentropy(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's sparse categorical crossentropy on probabilities, as a torch expression."""
    picked = probabilities.gather(1, labels[:, None]).squeeze(1)
    return -torch.log(picked.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)).mean()


def fit_with_torch_loop(model, x_train, y_train, epochs: int, batch_size: int, seed: int, on_epoch_end=None) -> dict:
    """Trains a compiled-or-not Keras MNIST model (torch backend) with RMSprop and a plain loop.

    Args:
        model: A Keras model built on the torch backend, softmax output.
        x_train: float32 `(n, 784)` inputs.
        y_train: integer labels `(n,)`.
        epochs: Epochs to train.
        batch_size: Samples per update.
        seed: Seed of the shuffling order.
        on_epoch_end: Optional callable `(epoch, seconds)`.

    Returns:
        `{"loss": [...], "accuracy": [...]}` per epoch, like `History.history`.
    """
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError("the torch-loop trainer needs the torch backend")
    device = model.trainable_variables[0].value.device
    parameters = [variable.value for variable in model.trainable_variables]
    optimizer = torch.optim.RMSprop(parameters, lr=LEARNING_RATE, alpha=RHO, eps=EPSILON)
    inputs = torch.from_numpy(np.ascontiguousarray(x_train)).to(device)
    labels = torch.from_numpy(y_train.astype(np.int64)).to(device)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(inputs), generator=generator).to(device)
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for start in range(0, len(inputs), batch_size):
            batch = order[start : start + batch_size]
            probabilities = model(inputs[batch], training=True)
            loss = sparse_crossentropy(probabilities, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(batch)
            correct += (probabilities.detach().argmax(1) == labels[batch]).sum()
        history["loss"].append(float(total_loss) / len(inputs))
        history["accuracy"].append(float(correct) / len(inputs))
        if on_epoch_end is not None:
            on_epoch_end(epoch, time.perf_counter() - started)
    return history
