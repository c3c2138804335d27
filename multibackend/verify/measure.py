"""Measuring a verified run from inside its process: each `fit`, `evaluate` and `predict` call's time, the run's
peak memory and the device its weights lived on.

Runs in the verified process (see `sandbox`), without touching the course's code: a Keras callback is added to the
call's own callbacks. Its hooks are the ones Keras runs in the calling thread (a batch's begin, an epoch's end, the
test and predict phases' begin and end), so it leaves Keras's asynchronous dispatch of batch ends as it was.

The first step of a call holds its tracing and compilation; the steady step time is the median over epochs of an
epoch's time per step, without the first epoch's first step and each epoch's last (a partial batch is traced and
compiled again): it ends when the last step begins, once the steps before it have computed (the backend's
`wait_for_steps`). Per-batch intervals are not used: JAX dispatches steps asynchronously, so a batch may begin before
the previous one computed (on this machine the median interval was 2.0 ms where an epoch took 5.6 ms a step).
"""

from __future__ import annotations

import inspect
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

from multibackend.runtime.memory import peak_rss_bytes

MEASURED_METHODS = ("fit", "evaluate", "predict")


@dataclass
class CallTiming:
    """One `fit`, `evaluate` or `predict` call.

    Attributes:
        method: fit | evaluate | predict.
        place: Where it was called (a notebook's cell run or a script's line; turned into cell or line later).
        batch_size: The call's batch size (None: not given for a dataset, or not known).
        epochs: Epochs run (1 for evaluate and predict).
        steps: Steps run, in all epochs (with `steps_per_execution` above 1: executions, as Keras calls callbacks).
        seconds: The whole call, as the caller waited for it.
        first_step_s: The first step's time: tracing and compilation included (None: no step ran).
        steady_step_s: The median over epochs of an epoch's time per step, without the first step (None: one step).
        logs: The call's final logs (loss and metrics), as numbers.
    """

    method: str
    place: int
    batch_size: int | None = None
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    first_step_s: float | None = None
    steady_step_s: float | None = None
    logs: dict = field(default_factory=dict)


@dataclass
class _Epoch:
    """An epoch's step begins, when its steps before the last had computed, and its end."""

    begins: list[float] = field(default_factory=list)
    end: float | None = None
    before_last: float | None = None

    def closed(self, now: float) -> None:
        if self.end is None:
            self.end = now


def summarize(epochs: list[_Epoch]) -> tuple[int, float | None, float | None]:
    """Steps, first step time and steady step time of a call's epochs (see the module's docstring).

    An epoch's last step is left out of its steady time where the epoch says when the steps before it had computed:
    a last, partial batch has a shape of its own, which JAX and TensorFlow trace and compile again.
    """
    epochs = [epoch for epoch in epochs if epoch.begins and epoch.end is not None]
    if not epochs:
        return 0, None, None
    steps = sum(len(epoch.begins) for epoch in epochs)
    first = epochs[0]
    first_step = (first.begins[1] if len(first.begins) > 1 else first.end) - first.begins[0]
    per_step = []
    for number, epoch in enumerate(epochs):
        begin, counted = (1, len(epoch.begins) - 1) if number == 0 else (0, len(epoch.begins))
        end = epoch.end
        if epoch.before_last is not None and counted > 1:
            end, counted = epoch.before_last, counted - 1
        if counted > 0:
            per_step.append((end - epoch.begins[begin]) / counted)
    return steps, first_step, statistics.median(per_step) if per_step else None


def timer_callback(keras, method: str):
    """A Keras callback that times the steps of one `method` call (fit's validation is not counted as steps)."""

    class StepTimer(keras.callbacks.Callback):
        async_safe = True  # it has no batch-end hooks: Keras's dispatch of them stays as it was

        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[_Epoch] = []
            self.logs: dict = {}

        def _begin_epoch(self, *args, **kwargs) -> None:
            self.epochs.append(_Epoch())

        def _begin_step(self, batch=None, logs=None) -> None:
            if not self.epochs:
                self.epochs.append(_Epoch())
            epoch = self.epochs[-1]
            if batch is not None and batch == (self.params or {}).get("steps", 0) - 1 and len(epoch.begins) > 2:
                _wait_for(self.model)  # the epoch's last step: the ones before it are the steady ones
                epoch.before_last = time.perf_counter()
            epoch.begins.append(time.perf_counter())

        def _end_phase(self, batch_or_logs=None, logs=None) -> None:
            if self.epochs:
                self.epochs[-1].closed(time.perf_counter())

        def _final_logs(self, logs=None) -> None:
            self.logs = _numbers(logs)

        on_epoch_begin = _begin_epoch
        on_train_batch_begin = _begin_step
        on_epoch_end = _end_phase

        if method == "fit":

            def on_test_begin(self, logs=None) -> None:  # validation: the training epoch ended
                if self.epochs and self.epochs[-1].end is None:
                    _wait_for(self.model)
                self._end_phase()

            def on_train_end(self, logs=None) -> None:
                self._end_phase()
                self._final_logs(logs)

        elif method == "evaluate":
            on_test_begin = _begin_epoch
            on_test_batch_begin = _begin_step

            def on_test_end(self, logs=None) -> None:
                self._end_phase()
                self._final_logs(logs)

        else:
            on_predict_begin = _begin_epoch
            on_predict_batch_begin = _begin_step
            on_predict_end = _end_phase

    return StepTimer()


def _wait_for(model) -> None:
    """Waits until the steps dispatched so far have computed (the backend's `wait_for_steps`: JAX dispatches steps
    ahead of their computation, CUDA runs kernels behind Python's back)."""
    from multibackend import backends

    wait = getattr(backends.backend(sys.modules["keras"].backend.backend()), "wait_for_steps", None)
    if wait is not None:
        wait(model)


def _numbers(logs) -> dict:
    values = {}
    for key, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):  # verify.json is strict JSON: a NaN loss is left out
            values[str(key)] = number
    return values


_active: list[str] = []  # the measured call running now (the verified process runs one at a time)


def measured(method, place_of, timings: list[CallTiming], devices: set[str]):
    """`method` (a Model's fit, evaluate or predict) measured into `timings`; its weights' device into `devices`.

    A call inside a measured call (fit's validation runs `evaluate` with fit's own callbacks) is part of it.
    """
    name = method.__name__
    signature = inspect.signature(method)

    def call(self, *args, **kwargs):
        if _active:
            return method(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:  # the call is wrong: Keras says how
            return method(self, *args, **kwargs)
        given = bound.arguments.get("callbacks")
        if given is not None and not isinstance(given, (list, tuple)):
            return method(self, *args, **kwargs)  # a CallbackList of the caller's making: left as it is
        timer = timer_callback(sys.modules["keras"], name)
        bound.arguments["callbacks"] = [*(given or []), timer]
        timing = CallTiming(name, place_of(), batch_size=_batch_size(bound.arguments))
        started = time.perf_counter()
        _active.append(name)
        try:
            return method(*bound.args, **bound.kwargs)
        finally:
            _active.pop()
            timing.seconds = time.perf_counter() - started
            timing.steps, timing.first_step_s, timing.steady_step_s = summarize(timer.epochs)
            timing.epochs = len([epoch for epoch in timer.epochs if epoch.begins])
            timing.logs = timer.logs
            if timing.steps:
                timings.append(timing)
            devices.update(_weight_devices(self))

    call.__wrapped__ = method
    return call


def _batch_size(arguments: dict) -> int | None:
    value = arguments.get("batch_size")
    if value is None and not _is_dataset(arguments.get("x")):
        value = 32  # Keras's default for arrays
    return int(value) if isinstance(value, int) else None


def _is_dataset(x) -> bool:
    return x is not None and not hasattr(x, "shape") and not isinstance(x, (list, tuple, dict))


def _weight_devices(model) -> set[str]:
    from multibackend import backends

    keras = sys.modules["keras"]
    variables = getattr(model, "weights", None) or []
    if not variables:
        return set()
    try:
        return {backends.backend(keras.backend.backend()).variable_device(variables[0].value)}
    except Exception:  # noqa: BLE001 - a device we cannot name is left out, never a failed run
        return set()


def device_used(devices: set[str]) -> str:
    """The device the measured calls' weights lived on, named: `gpu: <its name>` or `cpu: <the CPU model>`."""
    if not devices:
        return ""
    from multibackend.runtime import devices as probes

    if any(probes.device_kind(device) == "gpu" for device in devices):
        try:
            name = probes.gpu_details(sys.modules["keras"].backend.backend())["name"]
        except Exception:  # noqa: BLE001 - the framework named the device; its model we could not read
            name = ", ".join(sorted(devices))
        return f"gpu: {name}"
    return f"cpu: {probes.cpu_name()}"


def peak_memory_mb() -> float:
    """This process's peak resident memory in MiB."""
    return round(peak_rss_bytes() / 2**20, 1)


def peak_gpu_memory_mb() -> float | None:
    """The backend's peak GPU memory in MiB (None: no GPU used or not known)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    from multibackend import backends

    module = backends.backend(keras.backend.backend())
    probe = getattr(module, "peak_gpu_memory_bytes", None)
    try:
        peak = probe() if probe is not None else None
    except Exception:  # noqa: BLE001
        peak = None
    return round(peak / 2**20, 1) if peak else None


def as_json(timings: list[CallTiming], place) -> list[dict]:
    """The timings as JSON values, their places turned by `place`."""
    return [{**asdict(timing), "place": place(timing.place)} for timing in timings]
