"""A course's measurements against an earlier commit's (`verify --baseline OLD`): per file and backend, the same
calls slower than `--max-slowdown` times before, or (in seeded runs) a final metric worse beyond the output
tolerance.

CI runners are noisy: the default 1.25 lets a step time wander by a quarter before it is called a regression, and a
slowdown under `MIN_SLOWER_SECONDS` is never one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from multibackend.runtime.errors import UsageError
from multibackend.verify.comparison import COMPARED_STATUSES, by_order, common_calls, steady_seconds

DEFAULT_MAX_SLOWDOWN = 1.25
# A slowdown smaller than this in seconds is timer and scheduler noise on any machine, whatever its ratio (a smoke
# run of a small model trains for a few hundredths of a second).
MIN_SLOWER_SECONDS = 0.1
# Final metrics where higher is better (an accuracy, an AUC...); every other number is taken as lower-is-better only
# when it is a loss or an error.
HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1")
LOWER_IS_BETTER = ("loss", "error", "mae", "mse")
# Settings that change the measured numbers themselves: a baseline that ran with others is not comparable.
COMPARABLE_SETTINGS = ("smoke", "smoke_sample", "seed")


@dataclass(frozen=True)
class Tracking:
    """What `verify` compares its runs with.

    Attributes:
        baseline: The earlier commit's verify.json, read (see `read_baseline`).
        source: Where it was read from (for the report).
        max_slowdown: A steady time above this many times the baseline's is a regression.
        fail: Whether a regression fails the course (`--fail-on-regression`: exit 1).
    """

    baseline: dict
    source: str
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN
    fail: bool = False


def read_baseline(path: str) -> dict:
    """An earlier verify.json (or a folder holding one, such as a merged course), checked against its schema.

    Raises:
        UsageError: for a path that holds no readable, valid verify.json.
    """
    from multibackend.verify.shards import read_verify_file

    return read_verify_file(Path(path), "--baseline")


def check_comparable(settings: dict, tracking: Tracking) -> None:
    """Refuses a baseline that ran with settings that change the numbers themselves (smoke, sample, seed).

    Raises:
        UsageError: naming the first such setting.
    """
    for key in COMPARABLE_SETTINGS:
        if settings.get(key) != tracking.baseline.get(key):
            raise UsageError(
                f"--baseline {tracking.source}: it ran with {key} {json.dumps(tracking.baseline.get(key))}, this run "
                f"with {key} {json.dumps(settings.get(key))}: its numbers are not comparable"
            )


def find_regressions(payload: dict, tracking: Tracking) -> list[dict]:
    """Per file and backend measured in both, what got slower or worse: `{file, backend, kind, detail}`.

    Calls are matched in order, by method and batch size (lines move between commits); a time is compared over the
    baseline's steps. Final metrics are compared only in seeded runs (`--seed`): otherwise each run starts from other
    random weights and data, and its metrics differ by chance. A metric is worse beyond the run's output tolerance
    (its `atol` + `rtol` * |the baseline's value|).
    """
    tolerance = (payload.get("atol") or 0.0, payload.get("rtol") or 0.0)
    seeded = payload.get("seed") is not None
    earlier = {(cell["file"], cell["backend"]): cell for cell in tracking.baseline["cells"]}
    found = []
    for cell in payload["cells"]:
        old = earlier.get((cell["file"], cell["backend"]))
        if old is None or not _measured(cell) or not _measured(old):
            continue
        _, common, keyed = common_calls({"now": cell["calls"], "before": old["calls"]}, by_order)
        if not common:
            continue
        now = [keyed["now"][key] for key in common]
        before = [keyed["before"][key] for key in common]
        worse = _worse(now[-1]["logs"], before[-1]["logs"], tolerance) if seeded else []
        found += [
            {"file": cell["file"], "backend": cell["backend"], **finding}
            for finding in _slower(now, before, tracking) + worse
        ]
    return found


def _measured(cell: dict) -> bool:
    return cell["status"] in COMPARED_STATUSES and bool(cell.get("calls"))


def _slower(now: list[dict], before: list[dict], tracking: Tracking) -> list[dict]:
    steps = [call["steps"] for call in before]
    seconds, earlier = steady_seconds(now, steps), steady_seconds(before)
    if earlier <= 0 or seconds <= earlier * tracking.max_slowdown or seconds - earlier < MIN_SLOWER_SECONDS:
        return []
    return [
        {
            "kind": "slower",
            "ratio": seconds / earlier,
            "detail": f"steady time of the same {len(now)} call{'s' if len(now) != 1 else ''} "
            f"{seconds:.3g} s, was {earlier:.3g} s: {seconds / earlier:.2f}x (allowed {tracking.max_slowdown:g}x)",
        }
    ]


def direction(metric: str) -> int:
    """1 where higher is better (an accuracy), -1 where lower is (a loss), 0 for a number of unknown sense."""
    name = metric.lower()
    if any(mark in name for mark in HIGHER_IS_BETTER):
        return 1
    return -1 if any(mark in name for mark in LOWER_IS_BETTER) else 0


def _worse(logs: dict, earlier: dict, tolerance: tuple[float, float]) -> list[dict]:
    found = []
    for key in sorted(set(logs) & set(earlier)):
        sign = direction(key)
        allowed = tolerance[0] + tolerance[1] * abs(earlier[key])
        if sign and sign * (earlier[key] - logs[key]) > allowed:
            found.append(
                {
                    "kind": "metric worse",
                    "metric": key,
                    "detail": f"final {key} {logs[key]:.4g}, was {earlier[key]:.4g} (tolerance {allowed:.3g})",
                }
            )
    return found
