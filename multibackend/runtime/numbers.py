"""argparse types for numbers, shared by the commands and the pytest plugin: finite, in range, one-line errors."""

from __future__ import annotations

import argparse
import math


def number_type(convert, minimum: float, exclusive: bool, description: str, maximum: float | None = None):
    """Builds an argparse type that accepts finite numbers above (or from) `minimum`, up to `maximum`."""

    def parse(text: str):
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            value = None
        if (
            value is None
            or not math.isfinite(value)
            or value < minimum
            or (exclusive and value == minimum)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}")
        return value

    parse.__name__ = description.replace(" ", "_").replace("-", "_")
    return parse


# Counts and sizes (epochs, batch sizes, seeds to train): frameworks index with 32-bit integers, and a run told
# `--batch-size 100000000000000000000` otherwise failed only after loading its data.
positive_int = number_type(int, 1, False, "a positive integer up to 2147483647", maximum=2**31 - 1)
non_negative_int = number_type(int, 0, False, "a non-negative integer")
# NumPy, TensorFlow, PyTorch and JAX all take seeds in 0 .. 2**32 - 1.
seed_int = number_type(int, 0, False, "an integer from 0 to 4294967295", maximum=2**32 - 1)
positive_float = number_type(float, 0.0, True, "a positive number")
non_negative_float = number_type(float, 0.0, False, "a non-negative number")
