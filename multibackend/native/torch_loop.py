"""The course's MNIST network trained in plain PyTorch (`nn.Linear`, an RMSprop step in torch ops)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from multibackend.native import EPSILON, LEARNING_RATE, RHO


class KerasRMSprop:
    """RMSprop exactly as Keras computes it: `w -= lr * g / sqrt(v + eps)`.

    `torch.optim.RMSprop` divides by `sqrt(v) + eps` instead, which differs for
    small gradients; this keeps the native loop comparable with Keras.
    """

    def __init__(self, parameters, lr: float = LEARNING_RATE, rho: float = RHO, eps: float = EPSILON):
        self.parameters = list(parameters)
        self.velocities = [torch.zeros_like(p) for p in self.parameters]
        self.lr, self.rho, self.eps = lr, rho, eps

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.parameters]
        torch._foreach_mul_(self.velocities, self.rho)
        torch._foreach_addcmul_(self.velocities, grads, grads, value=1 - self.rho)
        denominators = torch._foreach_add(self.velocities, self.eps)
        torch._foreach_sqrt_(denominators)
        torch._foreach_addcdiv_(self.parameters, grads, denominators, value=-self.lr)


def train(x_train, y_train, x_test, y_test, weights, epochs: int, batch_size: int, seed: int = 0) -> dict:
    """Trains with a plain PyTorch loop; see `multibackend.native` for the contract."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    with torch.no_grad():
        for layer, kernel, bias in ((model[0], weights[0], weights[1]), (model[2], weights[2], weights[3])):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))  # Keras kernels are (in, out)
            layer.bias.copy_(torch.from_numpy(bias))
    optimizer = KerasRMSprop(model.parameters())
    loss_function = nn.CrossEntropyLoss()
    inputs = torch.from_numpy(x_train)
    labels = torch.from_numpy(y_train.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    epoch_seconds, losses = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(inputs), generator=generator)
        total = torch.zeros(())
        for start in range(0, len(inputs), batch_size):
            batch = order[start : start + batch_size]
            loss = loss_function(model(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
        losses.append(float(total) / len(inputs))
        epoch_seconds.append(time.perf_counter() - started)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    return {"epoch_seconds": epoch_seconds, "loss": losses, "test_accuracy": float(np.mean(predicted == y_test))}
