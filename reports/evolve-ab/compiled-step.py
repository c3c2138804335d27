"""The course network's step in plain PyTorch, eager and through `torch.compile`, one thread (milliseconds)."""

import time

import numpy as np
import torch

from multibackend.bench.native import EPSILON, LEARNING_RATE, RHO

torch.set_num_threads(1)

rng = np.random.default_rng(0)
w1 = torch.from_numpy(rng.standard_normal((784, 512), dtype=np.float32) * 0.05).requires_grad_()
b1 = torch.zeros(512, requires_grad=True)
w2 = torch.from_numpy(rng.standard_normal((512, 10), dtype=np.float32) * 0.05).requires_grad_()
b2 = torch.zeros(10, requires_grad=True)
params = [w1, b1, w2, b2]
vel = [torch.zeros_like(p) for p in params]
x = torch.from_numpy(rng.random((128, 784), dtype=np.float32))
y = torch.from_numpy(rng.integers(0, 10, 128))


def step(x, y):
    logits = torch.relu(x @ w1 + b1) @ w2 + b2
    loss = torch.nn.functional.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, v, g in zip(params, vel, grads):
            v.mul_(RHO).addcmul_(g, g, value=1 - RHO)
            p.sub_(LEARNING_RATE * g / torch.sqrt(v + EPSILON))
    return loss


def timeit(f, n=100):
    for _ in range(10):
        f(x, y)
    best = 1e9
    for _ in range(5):
        s = time.perf_counter()
        for _ in range(n):
            f(x, y)
        best = min(best, (time.perf_counter() - s) / n * 1000)
    return best


print("eager", round(timeit(step), 2))
s = time.perf_counter()
c = torch.compile(step)
c(x, y)
print("compile s", round(time.perf_counter() - s, 1))
print("compiled", round(timeit(c), 2))
