"""How backends are ranked wherever the project compares them (the course's report and verify's comparison): a
time per backend, the fastest named, each other one as its ratio to the fastest, and across many subjects the
geometric mean of those ratios."""

from __future__ import annotations

import math
from collections.abc import Mapping


def ranked(times: Mapping[str, float | None]) -> list[tuple[str, float, float]]:
    """The backends with a time, fastest first.

    Args:
        times: A time per backend (None or a non-positive time: not measured, left out).

    Returns:
        `(backend, time, ratio to the fastest)`, the fastest first (its ratio 1.0).
    """
    measured = sorted(((name, value) for name, value in times.items() if value), key=lambda item: item[1])
    if not measured:
        return []
    fastest = measured[0][1]
    return [(name, value, value / fastest) for name, value in measured]


def speed_text(times: Mapping[str, float | None], unit: str, pattern: str = "{:.3g}") -> str:
    """`fastest **name** at TIME UNIT (slower: other 1.4x, ...)`; "" when nothing was measured."""
    order = ranked(times)
    if not order:
        return ""
    name, value, _ = order[0]
    slower = ", ".join(f"{other} {ratio:.1f}x" for other, _, ratio in order[1:])
    return f"fastest **{name}** at {pattern.format(value)} {unit}" + (f" (slower: {slower})" if slower else "")


def geometric_means(ratios: list[Mapping[str, float]]) -> dict[str, float]:
    """Per backend, the geometric mean of its ratios to the fastest over the subjects that measured it."""
    found: dict[str, list[float]] = {}
    for subject in ratios:
        for name, ratio in subject.items():
            found.setdefault(name, []).append(ratio)
    return {name: math.exp(sum(map(math.log, values)) / len(values)) for name, values in found.items()}
