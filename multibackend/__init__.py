"""Run a deep-learning course's Keras examples on TensorFlow, PyTorch and JAX.

Importing this package does not import Keras: the backend is fixed when Keras
is first imported, so every entry point selects it first (see `backend`).
"""

__version__ = "0.1.0"
