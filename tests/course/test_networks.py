import numpy as np
import pytest

from multibackend.course.networks import MNIST, XOR, DenseNetworkSpec, dense_param_count, initial_weights


def test_course_parameter_counts_follow_the_formula():
    assert XOR.network.expected_params == 9
    assert MNIST.network.expected_params == (28 * 28 + 1) * 512 + (512 + 1) * 10 == 407_050


@pytest.mark.parametrize(
    "sizes, expected",
    [
        ([2, 2, 1], 9),
        ([784, 512, 10], 407_050),
        ([784, 10], 7_850),
        ([784, 64, 32, 10], 52_650),
        ([3, 4, 5, 6, 7], 126),
    ],
)
def test_generic_layer_lists_follow_the_formula(sizes, expected):
    assert dense_param_count(sizes) == expected


def test_param_count_rejects_degenerate_networks():
    with pytest.raises(ValueError):
        dense_param_count([784])
    with pytest.raises(ValueError):
        dense_param_count([784, 0, 10])


def test_initial_weights_are_reproducible_glorot_and_zero_biases():
    first = initial_weights(MNIST.network, seed=3)
    second = initial_weights(MNIST.network, seed=3)
    other = initial_weights(MNIST.network, seed=4)
    assert [w.shape for w in first] == [(784, 512), (512,), (512, 10), (10,)]
    assert all(w.dtype == np.float32 for w in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], other[0])
    limit = np.sqrt(6 / (784 + 512))
    assert np.abs(first[0]).max() <= limit and np.abs(first[0]).max() > 0.9 * limit
    assert not first[1].any() and not first[3].any()


def test_spec_layer_sizes():
    spec = DenseNetworkSpec(10, ((5, "relu"), (4, "tanh")), (3, "softmax"))
    assert spec.layer_sizes == [10, 5, 4, 3]
    assert spec.expected_params == 11 * 5 + 6 * 4 + 5 * 3
