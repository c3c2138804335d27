"""The course's MNIST network trained in plain PyTorch (`nn.Linear`, an RMSprop step in torch ops)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from multibackend.bench.native import EPSILON, LEARNING_RATE, RHO


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


class NativeTrainer:
    """A plain PyTorch loop; see `multibackend.bench.native.NativeTrainer`."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, weights: list[np.ndarray], batch_size: int):
        self.model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
        with torch.no_grad():
            for layer, kernel, bias in ((self.model[0], *weights[:2]), (self.model[2], *weights[2:])):
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))  # Keras kernels are (in, out)
                layer.bias.copy_(torch.from_numpy(bias))
        self.optimizer = KerasRMSprop(self.model.parameters())
        self.loss_function = nn.CrossEntropyLoss()
        self.inputs = torch.from_numpy(x_train)
        self.labels = torch.from_numpy(y_train.astype(np.int64))
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> float:
        order = torch.from_numpy(np.asarray(order, dtype=np.int64))
        total = torch.zeros(())
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            loss = self.loss_function(self.model(self.inputs[batch]), self.labels[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * len(batch)
        return float(total) / len(order)

    def predict_classes(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.from_numpy(x)).argmax(dim=1).numpy()
