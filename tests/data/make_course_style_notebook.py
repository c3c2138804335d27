"""Writes course_style_tf.ipynb: a course-style MNIST notebook with the stored outputs of a TensorFlow run.

It stands for a notebook that a course author saved from TensorFlow; the tests check that `multibackend
verify` finds its outputs again under every backend. Made once with (TensorFlow installed):

    python tests/data/make_course_style_notebook.py
"""

import os
import subprocess
import tempfile
from pathlib import Path

import nbformat

from multibackend.runtime.jobs import command_for
from multibackend.verify.child import ChildRun, job_request
from multibackend.verify.sandbox import SandboxSettings

CELLS = (
    "from keras.datasets import mnist\n"
    "(train_images, train_labels), (test_images, test_labels) = mnist.load_data()\n"
    "print(train_images.shape, train_labels.shape, test_images.shape)",
    "train_images = train_images.reshape((60000, 28 * 28)).astype('float32') / 255\n"
    "test_images = test_images.reshape((10000, 28 * 28)).astype('float32') / 255\n"
    "print(train_images.shape, train_images.dtype, train_images.max())",
    "from keras.utils import to_categorical\n"
    "train_labels_1hot = to_categorical(train_labels)\n"
    "test_labels_1hot = to_categorical(test_labels)\n"
    "print(train_labels[0], train_labels_1hot[0])",
    "from keras import layers, models\n"
    "network = models.Sequential([layers.Input(shape=(28 * 28,)), layers.Dense(512, activation='relu'),\n"
    "                             layers.Dense(10, activation='softmax')])\n"
    "network.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])\n"
    "print('parameters:', network.count_params())",
    "network.fit(train_images, train_labels_1hot, epochs=1, batch_size=128)",
    "test_loss, test_acc = network.evaluate(test_images, test_labels_1hot)\nprint('test_accuracy:', test_acc)",
    "# NBVAL_IGNORE_OUTPUT\n"
    "import numpy as np\n"
    "predicted = np.argmax(network.predict(test_images, verbose=0), axis=1)\n"
    "print('misclassified:', int((predicted != test_labels).sum()), 'of', len(test_labels))",
)


def main() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    target = Path(__file__).with_name("course_style_tf.ipynb")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "course_style_tf.ipynb"
        nbformat.write(notebook, source)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        settings = SandboxSettings("tensorflow", offline=True)
        run = ChildRun(str(source), str(Path(folder) / "reports"), settings, executed=str(target))
        subprocess.run(command_for(job_request(run)), env=env, cwd=folder, check=True)


if __name__ == "__main__":
    main()
