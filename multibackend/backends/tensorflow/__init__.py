"""The tensorflow backend: Keras on TensorFlow (the CPU build here; `tensorflow[and-cuda]` on a GPU machine)."""

from __future__ import annotations

ORDER = 1  # its place in listings, reports and the test runs
PACKAGE = "tensorflow"
INSTALL_HINT = "pip install tensorflow-cpu==2.21.0"
COLOR = "#ff8f00"  # in plots
# Its data pipeline, which Keras 3 accepts on every backend: a file that uses only it is not pinned to this one.
DATA_PIPELINES = ("tensorflow.data",)
MODULES = ("tensorflow",)  # what a job of another backend hides
STEPS_PER_EXECUTION_COMPILED = True  # steps_per_execution runs in one compiled call
LOOP_TRAINS_LAYER_STATE = True  # its loop steps with the model's own call and compute_loss, as fit does
# The caller's variables that reach every verified run: this framework's own settings.
PASSED_ENVIRONMENT = ("TF_*",)


def environment(device: str, chosen: bool) -> dict[str, str | None]:
    """A CPU run on TensorFlow hides the GPUs from it: it would otherwise place its ops there."""
    return {"CUDA_VISIBLE_DEVICES": "-1"} if device == "cpu" and chosen else {}


def gpu_available() -> bool:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU")) > 0


def gpu_details() -> dict:
    import tensorflow as tf

    gpu = tf.config.list_physical_devices("GPU")[0]
    details = tf.config.experimental.get_device_details(gpu)
    return {"name": details.get("device_name", gpu.name), "memory_bytes": None}


def variable_device(value) -> str:
    return str(value.device)


def peak_gpu_memory_bytes() -> int | None:
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return None
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def wait_for_steps(model) -> None:
    """A step's outputs are read back (the smallest weight): TensorFlow's GPU ops run behind Python's back."""
    import math

    import keras

    variables = model.trainable_variables
    if variables:
        keras.ops.convert_to_numpy(min(variables, key=lambda variable: math.prod(variable.shape)))


def set_tf32(enabled: bool) -> None:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(enabled)


def tf32_enabled() -> bool:
    import tensorflow as tf

    return bool(tf.config.experimental.tensor_float_32_execution_enabled())


def epoch_trainer(model, x_train, y_train, batch_size: int):
    """The TensorFlow loop for a compiled model (see `loop.EpochTrainer`)."""
    from multibackend.backends.tensorflow.loop import EpochTrainer

    return EpochTrainer(model, x_train, y_train, batch_size)
