"""Pass/fail gates that a run must meet: the course's numbers as thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Test-accuracy thresholds for MNIST by epochs trained. The course's 20 epochs
# must reach 0.98 (the course reports 0.9834 and 0.9838); shorter runs get a
# lower bar that a healthy run still clears with margin.
MNIST_ACCURACY_BY_EPOCHS = ((20, 0.98), (10, 0.975), (5, 0.97), (2, 0.96), (1, 0.95))


@dataclass(frozen=True)
class Gate:
    """One check: `value` compared with `threshold` by `op` (`==` or `>=`)."""

    name: str
    value: float
    threshold: float
    op: str
    passed: bool

    @classmethod
    def check(cls, name: str, value: float, op: str, threshold: float) -> Gate:
        passed = value == threshold if op == "==" else value >= threshold
        return cls(name, value, threshold, op, bool(passed))

    def to_dict(self) -> dict:
        return asdict(self)


def mnist_accuracy_threshold(epochs: int) -> float:
    """The documented test-accuracy bar for an MNIST run of `epochs` epochs."""
    for min_epochs, threshold in MNIST_ACCURACY_BY_EPOCHS:
        if epochs >= min_epochs:
            return threshold
    raise ValueError("epochs must be positive")


def example_gates(example: str, params: int, expected_params: int, epochs: int, test_metric: float) -> list[Gate]:
    """The gates of one run.

    Args:
        example: `"xor"` or `"mnist"`.
        params: The built model's parameter count.
        expected_params: The count by the course's formula.
        epochs: Epochs trained.
        test_metric: Test accuracy (MNIST) or binary accuracy (XOR).

    Returns:
        The list of gates, in order.
    """
    gates = [Gate.check("params", params, "==", expected_params)]
    if example == "mnist":
        gates.append(Gate.check("test_accuracy", test_metric, ">=", mnist_accuracy_threshold(epochs)))
    else:
        gates.append(Gate.check("binary_accuracy", test_metric, ">=", 1.0))
    return gates


def describe_gate(gate: dict) -> str:
    """One line for a gate as stored in a results file: `PASS name = v (needs >= t)`."""
    verdict = "PASS" if gate["passed"] else "FAIL"
    return f"{verdict} {gate['name']} = {gate['value']:g} (needs {gate['op']} {gate['threshold']:g})"
