"""trial 732 of the search mnist-50k: 35-271 relu, adam lr 0.002, batch 50, dropout 0.02, 23 ep, cosine, input dropout 0.06, batchnorm, shift 0.05.

41,175 parameters. Trained here exactly as the search's final step trained it, on the jax
backend: Keras `fit` on the first --train-images of MNIST's training images (all 60,000 in the final step),
initial Dense weights drawn in NumPy from the seed, `keras.utils.set_random_seed(seed)` before the model is built
(the dropouts', the shifts' and fit's shuffling draws), then the 10,000 test images scored.
The final step's test accuracies, seeds 0, 1, 2: 0.9861, 0.9871, 0.9849.

Needs only keras 3.15.1 and NumPy; MNIST from `keras.datasets.mnist.load_data()` or --data FILE
(an .npz with x_train, y_train, x_test, y_test, as Keras's mnist.npz).

    python trial-732.py                      # train with seed 0, print the test accuracy
    python trial-732.py --seed 1 --save m.keras
    python trial-732.py --evaluate trial-732.keras   # score the final step's trained model (seed 0)

Written by `multibackend evolve`'s final step.
"""

import argparse
import math
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HIDDEN = [(35, "relu"), (271, "relu")]  # (units, activation) of each hidden Dense layer
DROPOUT = 0.018288708032765666  # after each hidden layer
INPUT_DROPOUT = 0.06102430045997317
BATCH_NORM = True  # after each hidden Dense layer
SHIFT_PIXELS = 1  # the largest shift of an image in each direction (0: none)
OPTIMIZER = "Adam"
LEARNING_RATE = 0.002046834558982877
COSINE_DECAY = True  # to 0 over all of training's steps
WEIGHT_DECAY = None  # None: the optimizer's default
LABEL_SMOOTHING = 0.0
BATCH_SIZE = 50
EPOCHS = 23


class GivenValues(keras.initializers.Initializer):
    """Starts a variable from an array drawn elsewhere (in NumPy, the same on every backend).

    The arrays go in as they are: building a layer with Keras's random initializers and then setting its weights
    compiled a random draw per new shape on JAX (about 0.15 s a layer: a search trial built in 0.73 s, now 0.13 s).
    """

    def __init__(self, values: np.ndarray):
        self.values = values

    def __call__(self, shape, dtype=None):
        if tuple(shape) != self.values.shape:
            raise ValueError(f"initial values of shape {self.values.shape} for a variable of shape {tuple(shape)}")
        return keras.ops.convert_to_tensor(self.values, dtype=dtype)


@keras.saving.register_keras_serializable(package="multibackend")
class RandomShift(keras.layers.Layer):
    """Shifts each flattened square image by a random whole number of pixels, in training only.

    Each image moves by its own `(dy, dx)`, each in `[-max_pixels, max_pixels]`, the pixels shifted in are 0.
    A shift is one gather from the image padded with zeros (`keras.ops.take_along_axis`), a few hundred reads an
    image on any backend: `keras.layers.RandomTranslation`'s interpolated transform took 20 times a small network's
    whole training epoch on this machine's CPU (25 s against 1.3 s for 50,000 images, JAX), and two 0/1
    shift-matrix products per image (the same images) a sixth more of a search trial's time than the gather.
    At test time it passes the images through: the network is a dense network on the raw pixels.

    Args:
        max_pixels: The largest shift in each direction.
        seed: Seed of the shifts' generator.
    """

    def __init__(self, max_pixels: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_pixels = int(max_pixels)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.max_pixels == 0:
            return inputs
        margin = self.max_pixels
        side = int(round(inputs.shape[-1] ** 0.5))
        wide = side + 2 * margin
        images = keras.ops.reshape(inputs, (-1, side, side))
        padded = keras.ops.reshape(
            keras.ops.pad(images, ((0, 0), (margin, margin), (margin, margin))), (-1, wide * wide)
        )
        offsets = keras.random.randint((2, keras.ops.shape(padded)[0]), -margin, margin + 1, seed=self.generator)
        # Pixel (i, j) of a moved image is pixel (i - dy, j - dx) of the image: (i - dy + margin, j - dx + margin) padded.
        pixels = keras.ops.arange(side * side)
        unmoved = (pixels // side + margin) * wide + pixels % side + margin
        return keras.ops.take_along_axis(
            padded, unmoved[None, :] - offsets[0][:, None] * wide - offsets[1][:, None], axis=1
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_pixels": self.max_pixels, "seed": self.seed}


def glorot_uniform_weights(sizes: list[int] | tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Glorot-uniform kernels (Keras's default) and zero biases drawn in NumPy, identical on every backend, all
    float32, in the order of `model.get_weights()`: kernel, bias, kernel, bias, ...

    Args:
        sizes: Sizes of all layers, input first.
        seed: Seed of NumPy's default generator.

    Returns:
        The list of weight arrays.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32))
        weights.append(np.zeros(fan_out, dtype=np.float32))
    return weights


def preprocess_images(images: np.ndarray) -> np.ndarray:
    """Flattens 28x28 uint8 images to 784 float32 values in [0, 1], as the course does."""
    return images.reshape((len(images), 28 * 28)).astype("float32") / 255


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """The share of `x` whose most probable class is `y` (integer labels): the same for every loss and trainer."""
    # One batch up to 10,000 images: the 10,000 validation or test images compile one prediction step, not two.
    predicted = np.asarray(model.predict(x, batch_size=min(len(x), 10_000), verbose=0)).argmax(axis=1)
    return float(np.mean(predicted == y))


def build(seed, train_images):
    """The compiled network, in the order of layers and random draws the final step used."""
    keras.utils.set_random_seed(seed)
    weights = glorot_uniform_weights([784] + [units for units, _ in HIDDEN] + [10], seed)
    layers = [keras.Input(shape=(784,))]
    if SHIFT_PIXELS:
        layers.append(RandomShift(SHIFT_PIXELS))
    if INPUT_DROPOUT > 0:
        layers.append(keras.layers.Dropout(INPUT_DROPOUT))
    for index, (units, activation) in enumerate(HIDDEN + [(10, "softmax")]):
        kernel, bias = weights[2 * index : 2 * index + 2]
        layers.append(
            keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=GivenValues(kernel),
                bias_initializer=GivenValues(bias),
            )
        )
        if index < len(HIDDEN):
            if BATCH_NORM:
                layers.append(keras.layers.BatchNormalization())
            if DROPOUT > 0:
                layers.append(keras.layers.Dropout(DROPOUT))
    model = keras.Sequential(layers)
    for layer in model.layers:  # a saved model names the initializers that drew the values, as the final step's does
        if isinstance(layer, keras.layers.Dense):
            layer.kernel_initializer = keras.initializers.GlorotUniform()
            layer.bias_initializer = keras.initializers.Zeros()
    steps = EPOCHS * math.ceil(train_images / BATCH_SIZE)
    rate = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps) if COSINE_DECAY else LEARNING_RATE
    options = {} if WEIGHT_DECAY is None else {"weight_decay": WEIGHT_DECAY}
    model.compile(
        optimizer=getattr(keras.optimizers, OPTIMIZER)(learning_rate=rate, **options),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING)
        if LABEL_SMOOTHING
        else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def load_mnist(path):
    if path is None:
        return keras.datasets.mnist.load_data()
    with np.load(path) as data:
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


def fail(message):
    """One line on stderr and exit status 2: a bad input is not a crash."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and draws (default: %(default)s)")
    parser.add_argument("--train-images", type=int, default=60_000, help="the first N training images (default: all)")
    parser.add_argument("--data", help="an .npz with x_train, y_train, x_test, y_test (default: Keras's MNIST)")
    parser.add_argument("--save", help="save the trained model to this .keras file")
    parser.add_argument("--evaluate", metavar="MODEL", help="score this trained .keras model instead of training")
    args = parser.parse_args()
    try:
        (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    except (OSError, KeyError, ValueError) as error:
        fail(f"cannot read MNIST from {args.data or 'keras.datasets.mnist'} ({error})")
    x_test = preprocess_images(x_test)
    if args.evaluate:
        try:
            # compile=False: scoring needs only predictions, and a model saved under torch names torch's
            # optimizer module, which Keras would import (and fail to, where torch is not installed).
            model = keras.saving.load_model(args.evaluate, compile=False)
        except (OSError, ValueError) as error:
            fail(f"cannot load the model {args.evaluate} ({str(error).splitlines()[0] if str(error) else error!r})")
    else:
        x_train = preprocess_images(x_train[: args.train_images])
        y_train = y_train[: args.train_images]
        model = build(args.seed, len(x_train))
        labels = keras.utils.to_categorical(y_train, 10) if LABEL_SMOOTHING else y_train
        model.fit(x_train, labels, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=2)
        if args.save:
            model.save(args.save)
    print(f"test accuracy {accuracy(model, x_test, y_test):.4f} ({keras.backend.backend()})")


if __name__ == "__main__":
    main()
