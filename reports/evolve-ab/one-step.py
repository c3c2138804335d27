"""Where one thread of PyTorch loses to JAX on the course network's step: the matrix products, and the rest.

Run: `python one-step.py torch` and `python one-step.py jax` (milliseconds; the best of 5 repeats).
"""

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
# XLA's CPU runtime sizes its thread pool by the cores the process may use (no flag limits it): one core.
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import numpy as np  # noqa: E402

rng = np.random.default_rng(0)
images = rng.random((128, 784), dtype=np.float32)
kernel = rng.standard_normal((784, 512), dtype=np.float32) * 0.05
upstream = rng.standard_normal((128, 512), dtype=np.float32)


def best_ms(call, repeats: int = 200) -> float:
    for _ in range(20):
        call()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        rounds.append((time.perf_counter() - started) / repeats * 1000)
    return min(rounds)


if sys.argv[1] == "torch":
    import torch

    from multibackend.bench.native.torch_loop import NativeTrainer

    torch.set_num_threads(1)
    x, w, g = map(torch.from_numpy, (images, kernel, upstream))
    print(f"(128, 784) @ (784, 512): {best_ms(lambda: x @ w):.2f} ms")
    print(f"(784, 128) @ (128, 512): {best_ms(lambda: x.T @ g):.2f} ms")
    labels = rng.integers(0, 10, 60000)
    train = rng.random((60000, 784), dtype=np.float32)
    weights = [kernel, np.zeros(512, np.float32), rng.standard_normal((512, 10), dtype=np.float32) * 0.05]
    trainer = NativeTrainer(train, labels, [*weights, np.zeros(10, np.float32)], 128)
    order = rng.permutation(60000)[: 128 * 100]
    steps = []
    for _ in range(8):
        started = time.perf_counter()
        trainer.train_epoch(order)
        steps.append((time.perf_counter() - started) / 100 * 1000)
    print(f"one step of the native PyTorch loop (RMSprop): best {min(steps):.2f} ms, median {np.median(steps):.2f} ms")
else:
    import jax

    x, w, g = map(jax.numpy.asarray, (images, kernel, upstream))
    forward, backward = jax.jit(lambda a, b: a @ b), jax.jit(lambda a, b: a.T @ b)
    print(f"(128, 784) @ (784, 512): {best_ms(lambda: forward(x, w).block_until_ready()):.2f} ms")
    print(f"(784, 128) @ (128, 512): {best_ms(lambda: backward(x, g).block_until_ready()):.2f} ms")
    from multibackend.bench.native import EPSILON, LEARNING_RATE, RHO

    def loss(params, batch, labels):
        hidden = jax.nn.relu(batch @ params[0] + params[1])
        logits = hidden @ params[2] + params[3]
        return -jax.numpy.mean(jax.nn.log_softmax(logits)[jax.numpy.arange(len(labels)), labels])

    @jax.jit
    def step(params, velocities, batch, labels):  # RMSprop as Keras computes it, as the native JAX loop does
        grads = jax.grad(loss)(params, batch, labels)
        velocities = [RHO * v + (1 - RHO) * d * d for v, d in zip(velocities, grads)]
        params = [p - LEARNING_RATE * d / jax.numpy.sqrt(v + EPSILON) for p, d, v in zip(params, grads, velocities)]
        return params, velocities

    params = [
        w,
        jax.numpy.zeros(512),
        jax.numpy.asarray(rng.standard_normal((512, 10), dtype=np.float32)),
        jax.numpy.zeros(10),
    ]
    state = [params, [jax.numpy.zeros_like(p) for p in params]]
    labels = jax.numpy.asarray(rng.integers(0, 10, 128))

    def one_step():
        state[:] = step(*state, x, labels)
        state[0][0].block_until_ready()

    print(f"one jitted step of the same network (RMSprop): best {best_ms(one_step, 100):.2f} ms")
