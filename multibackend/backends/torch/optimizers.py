"""The compiled optimizer's update, stepped by the PyTorch loop without `apply`'s per-step Python bookkeeping.

`apply` filters and unscales gradients, opens name scopes, evaluates a learning-rate schedule twice (for the weight
decay and for the update) and walks the variables in Python each step: on a search trial's small network that was
about a quarter of a step here. For the optimizers below, with nothing but their own settings, the loop runs Keras's
torch backend update itself (the same `torch._foreach_*` operations in the same order, on the optimizer's own slots
and `iterations`); any other optimizer, or any other setting, goes through `apply`. A cosine decay, the search's
schedule, is evaluated once an epoch for all of its steps (`StepRates`), not through Keras's operations each step.
"""

from __future__ import annotations

import torch

# Settings whose effect `apply` adds around the update (clipping, averages, accumulation, scaling): with any of them
# set, the optimizer steps through `apply`.
APPLY_SETTINGS = (
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "gradient_accumulation_steps",
    "loss_scale_factor",
)


class StepRates:
    """The compiled optimizer's learning rate at each step: `optimizer._get_current_learning_rate()`, but a cosine
    decay without warm-up evaluated once an epoch, by the schedule itself on the epoch's step numbers.

    Keras evaluates the schedule at `iterations` in about ten of its operations each step; on a search trial's small
    network that was about 6% of the step here. The schedule is elementwise, so on a vector of steps it computes each
    step's rate with the same float32 operations (`tests/training/test_keras_loops.py` checks them equal, to the
    rounding of a vector cosine where a CPU's differs from its scalar one).
    """

    def __init__(self, optimizer):
        import keras

        self.optimizer = optimizer
        schedule = optimizer._learning_rate
        elementwise = type(schedule) is keras.optimizers.schedules.CosineDecay and schedule.warmup_target is None
        self.schedule = schedule if elementwise else None
        self.rates = iter(())

    def start_epoch(self, steps: int) -> None:
        """Evaluates the schedule for the next `steps` steps (nothing for a constant rate or another schedule)."""
        if self.schedule is None:
            return
        iterations = self.optimizer.iterations.value
        first = int(iterations)
        self.rates = iter(self.schedule(torch.arange(first, first + steps, device=iterations.device)).unbind())

    def __call__(self):
        """The rate of the optimizer's next step: a float32 tensor, or the rate's variable."""
        rate = next(self.rates, None)
        return self.optimizer._get_current_learning_rate() if rate is None else rate


class ApplyStep:
    """The optimizer's own `apply`, for an optimizer or a setting that the steps below do not compute."""

    def __init__(self, optimizer, variables: list):
        self.optimizer, self.variables = optimizer, variables

    def start_epoch(self, steps: int) -> None:
        """Nothing to prepare: `apply` evaluates the rate itself."""

    def __call__(self, grads: list[torch.Tensor]) -> None:
        self.optimizer.apply(grads, self.variables)


def optimizer_step(optimizer, variables: list):
    """A step `step(grads)` that updates `variables` as `optimizer.apply(grads, variables)` would.

    Args:
        optimizer: The model's compiled (built) Keras optimizer.
        variables: The model's trainable variables.

    Returns:
        The fastest exact step: RMSprop (fused), Adam, AdamW or plain SGD as Keras's torch backend computes them,
        else `apply`. Its `start_epoch(steps)` is called before each epoch's first step.
    """
    import keras

    plain = not any(getattr(optimizer, name, None) for name in APPLY_SETTINGS) and not any(
        variable.constraint is not None for variable in variables
    )
    kind = type(optimizer)
    if plain and isinstance(optimizer, keras.optimizers.RMSprop) and kind.__name__ == "RMSprop":
        if not (optimizer.momentum or optimizer.centered or optimizer.weight_decay):
            return RMSpropStep(optimizer, variables)
    if plain and isinstance(optimizer, keras.optimizers.Adam) and kind.__name__ in ("Adam", "AdamW"):
        if not optimizer.amsgrad:
            return AdamStep(optimizer, variables)
    if plain and isinstance(optimizer, keras.optimizers.SGD) and kind.__name__ == "SGD":
        if not (optimizer.momentum or optimizer.weight_decay):
            return SGDStep(optimizer, variables)
    return ApplyStep(optimizer, variables)


class SGDStep:
    """Keras's plain SGD update on the torch backend (`torch_sgd`, no momentum): `w -= lr g`."""

    def __init__(self, optimizer, variables: list):
        self.optimizer = optimizer
        self.rates = StepRates(optimizer)
        self.start_epoch = self.rates.start_epoch
        self.values = [variable.value for variable in variables]

    @torch.no_grad()
    def __call__(self, grads: list[torch.Tensor]) -> None:
        torch._foreach_add_(self.values, grads, alpha=-float(self.rates()))
        self.optimizer.iterations.value.add_(1)


class AdamStep:
    """Keras's Adam and AdamW update on the torch backend (`torch_adam`, `torch_optimizer._apply_weight_decay`): the
    decoupled weight decay first, then the moments and the step, with the rate its schedule gives once per step."""

    def __init__(self, optimizer, variables: list):
        import keras

        self.optimizer = optimizer
        self.rates = StepRates(optimizer)
        self.start_epoch = self.rates.start_epoch
        self.cast = keras.ops.cast
        self.values = [variable.value for variable in variables]
        index = optimizer._get_variable_index
        self.momentums = [optimizer._momentums[index(variable)].value for variable in variables]
        self.velocities = [optimizer._velocities[index(variable)].value for variable in variables]
        self.decayed = (
            [variable.value for variable in variables if optimizer._use_weight_decay(variable)]
            if optimizer.weight_decay is not None
            else []
        )

    @torch.no_grad()
    def __call__(self, grads: list[torch.Tensor]) -> None:
        optimizer = self.optimizer
        learning_rate = self.rates()
        if self.decayed:
            torch._foreach_mul_(self.decayed, 1 - optimizer.weight_decay * learning_rate)
        dtype = self.values[0].dtype
        # A schedule's tensor or the rate's variable, cast as Keras casts it (a tensor of the weights' type as it is).
        rate = learning_rate if getattr(learning_rate, "dtype", None) == dtype else self.cast(learning_rate, dtype)
        local_step = torch.as_tensor(optimizer.iterations.value + 1, dtype=dtype)
        beta_1_power = torch.pow(torch.as_tensor(optimizer.beta_1, dtype=dtype), local_step)
        beta_2_power = torch.pow(torch.as_tensor(optimizer.beta_2, dtype=dtype), local_step)
        alpha = rate * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        torch._foreach_mul_(self.momentums, optimizer.beta_1)
        torch._foreach_add_(self.momentums, grads, alpha=1 - optimizer.beta_1)
        torch._foreach_mul_(self.velocities, optimizer.beta_2)
        torch._foreach_add_(self.velocities, torch._foreach_mul(grads, grads), alpha=1 - optimizer.beta_2)
        torch._foreach_add_(
            self.values,
            torch._foreach_div(
                torch._foreach_mul(self.momentums, alpha),
                torch._foreach_add(torch._foreach_sqrt(self.velocities), optimizer.epsilon),
            ),
            alpha=-1,
        )
        optimizer.iterations.value.add_(1)


class RMSpropStep:
    """Keras's RMSprop update, `v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)`, on the optimizer's own
    velocities.

    Fused (`addcmul`, `addcdiv`) where Keras's torch backend spends five passes over the weights: the same math to
    float32 rounding (parity checks it), and three fewer memory passes a step, which cost the loop about 15% of an
    epoch here.
    """

    def __init__(self, optimizer, variables: list):
        self.optimizer = optimizer
        self.rates = StepRates(optimizer)
        self.start_epoch = self.rates.start_epoch
        self.values = [variable.value for variable in variables]
        index = optimizer._get_variable_index
        self.velocities = [optimizer._velocities[index(variable)].value for variable in variables]

    @torch.no_grad()
    def __call__(self, grads: list[torch.Tensor]) -> None:
        optimizer = self.optimizer
        learning_rate = float(self.rates())
        rho = optimizer.rho
        torch._foreach_mul_(self.velocities, rho)
        torch._foreach_addcmul_(self.velocities, grads, grads, value=1 - rho)
        denominators = torch._foreach_add(self.velocities, optimizer.epsilon)
        torch._foreach_sqrt_(denominators)
        torch._foreach_addcdiv_(self.values, grads, denominators, value=-learning_rate)
        optimizer.iterations.value.add_(1)
