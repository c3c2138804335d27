import pytest

from multibackend.course.gates import Gate, describe_gate, example_gates, mnist_accuracy_threshold


@pytest.mark.parametrize("epochs, threshold", [(1, 0.95), (3, 0.96), (5, 0.97), (12, 0.975), (20, 0.98), (40, 0.98)])
def test_shorter_mnist_runs_get_documented_lower_bars(epochs, threshold):
    assert mnist_accuracy_threshold(epochs) == threshold


def test_course_run_needs_098_and_exact_params():
    passed = example_gates("mnist", 407_050, 407_050, 20, 0.9834)
    assert all(g.passed for g in passed)
    failed = example_gates("mnist", 407_050, 407_050, 20, 0.9799)
    assert [g.passed for g in failed] == [True, False]
    assert not example_gates("mnist", 407_051, 407_050, 20, 0.99)[0].passed


def test_xor_needs_full_accuracy():
    assert [g.passed for g in example_gates("xor", 9, 9, 200, 0.75)] == [True, False]


def test_gate_description_names_the_gate():
    line = describe_gate(Gate.check("test_accuracy", 0.97, ">=", 0.98).to_dict())
    assert line == "FAIL test_accuracy = 0.97 (needs >= 0.98)"
