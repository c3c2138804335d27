import numpy as np
import pytest

from multibackend.course.networks import MNIST, XOR, DenseNetworkSpec, initial_weights

pytestmark = pytest.mark.backend


@pytest.mark.parametrize("example", [XOR, MNIST], ids=["xor", "mnist"])
def test_built_model_has_the_course_parameters_and_shared_weights(example):
    from multibackend.models import build_example

    model = build_example(example, seed=7)
    assert model.count_params() == example.network.expected_params
    for actual, expected in zip(model.get_weights(), initial_weights(example.network, 7)):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("sizes", [[784, 64, 32, 10], [20, 7, 3], [784, 1024, 512, 256, 128, 10]])
def test_generic_builder_matches_the_formula(sizes):
    from multibackend.models import build_dense

    spec = DenseNetworkSpec(sizes[0], tuple((n, "relu") for n in sizes[1:-1]), (sizes[-1], "softmax"), dropout=0.2)
    assert build_dense(spec).count_params() == spec.expected_params


def test_course_exercise_squared_error():
    import keras

    error = keras.losses.MeanSquaredError()(np.array([[1.0]]), np.array([[0.4]]))
    assert float(error) == pytest.approx((0.4 - 1.0) ** 2) == pytest.approx(0.36)
