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


def test_a_model_started_from_given_weights_saves_keras_default_initializers_and_refuses_wrong_shapes(tmp_path):
    import keras

    from multibackend.models import build_dense

    spec = DenseNetworkSpec(20, ((7, "tanh"),), (3, "softmax"), dropout=0.0)
    weights = initial_weights(spec, 1)
    model = build_dense(spec, weights=weights, batch_norm=True)
    for actual, expected in zip(
        [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)], weights[::2]
    ):
        np.testing.assert_array_equal(np.asarray(actual.kernel), expected)
        assert type(actual.kernel_initializer).__name__ == "GlorotUniform"  # the arrays are not in its config
    model.save(tmp_path / "given.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "given.keras").get_weights()[0], weights[0])
    with pytest.raises(ValueError, match=r"initial values of shape \(20, 7\) for a variable of shape \(20, 8\)"):
        build_dense(DenseNetworkSpec(20, ((8, "tanh"),), (3, "softmax"), dropout=0.0), weights=weights)
    with pytest.raises(ValueError, match="2 initial weights for 2 Dense layers"):
        build_dense(spec, weights=weights[:2])


@pytest.mark.parametrize("sizes", [[784, 64, 32, 10], [20, 7, 3], [784, 1024, 512, 256, 128, 10]])
def test_generic_builder_matches_the_formula(sizes):
    from multibackend.models import build_dense

    spec = DenseNetworkSpec(sizes[0], tuple((n, "relu") for n in sizes[1:-1]), (sizes[-1], "softmax"), dropout=0.2)
    assert build_dense(spec).count_params() == spec.expected_params


def test_course_exercise_squared_error():
    import keras

    error = keras.losses.MeanSquaredError()(np.array([[1.0]]), np.array([[0.4]]))
    assert float(error) == pytest.approx((0.4 - 1.0) ** 2) == pytest.approx(0.36)
