"""The backends compared on each course file, from the calls measured inside its runs (`measure`): the same `fit`
calls (or, in a file that trains nothing, its `evaluate` and `predict` calls) side by side, their steady time as a
ratio to the fastest backend's (`report.ratios`), compilation, memory, and how far the final metrics spread; then the
course as a whole. Also the runs' measurements as CSV rows, and the plot.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from multibackend.report import ratios

COMPARED_STATUSES = ("passed", "output differs")  # runs that ran the whole file on the backend asked for
CSV_FIELDS = (
    "file", "backend", "status", "device_used", "peak_memory_mb", "peak_gpu_memory_mb", "method", "cell", "line",
    "batch_size", "epochs", "steps", "seconds", "first_step_s", "steady_step_s", "samples_per_s", "logs",
)  # fmt: skip


@dataclass(frozen=True)
class BackendTimes:
    """One backend's share of a file's comparison.

    Attributes:
        steady_s: The compared calls' steady time: each call's steady step time times its steps (the fewest any
            compared backend ran, where an early stop made them differ).
        compile_s: What the calls' first steps took beyond a steady step (tracing and compilation).
        peak_memory_mb: The run's peak resident memory.
        device_used: The device its weights lived on.
        logs: The last compared call's final logs.
    """

    steady_s: float
    compile_s: float
    peak_memory_mb: float | None
    device_used: str
    logs: dict


@dataclass(frozen=True)
class FileComparison:
    """The backends on one file: the same calls, side by side.

    Attributes:
        file: The course file.
        method: The calls compared: `fit`, or `evaluate/predict` in a file that trains nothing.
        calls: How many calls were compared (those every compared backend made at the same place).
        backends: Per backend, its times.
        ratios: Per backend, its steady time over the fastest's.
        spread: The final metric that differs most across the backends and by how much (None: one backend).
    """

    file: str
    method: str
    calls: int
    backends: dict[str, BackendTimes]
    ratios: dict[str, float]
    spread: tuple[str, float] | None

    @property
    def fastest(self) -> str:
        return min(self.ratios, key=self.ratios.get)


def by_place(call: dict) -> tuple:
    """A call's place in its file: its method and cell or line (runs of one commit, on different backends)."""
    return call["method"], call.get("cell") or call.get("line")


def by_order(call: dict) -> tuple:
    """A call's method and batch size (runs of different commits, whose lines move: matched in order)."""
    return call["method"], call.get("batch_size")


def keyed_calls(calls: list[dict], methods: tuple[str, ...], identity=by_place) -> dict[tuple, dict]:
    """The calls of `methods` by their `identity` and their number among the calls of that identity."""
    seen: dict[tuple, int] = {}
    keyed = {}
    for call in calls:
        if call["method"] not in methods:
            continue
        key = identity(call)
        seen[key] = seen.get(key, -1) + 1
        keyed[(*key, seen[key])] = call
    return keyed


def common_calls(
    runs: dict[str, list[dict]], identity=by_place
) -> tuple[str, list[tuple], dict[str, dict[tuple, dict]]]:
    """The calls every run made (the same `identity`): the `fit` calls, else the `evaluate` and `predict` ones.

    Args:
        runs: Per backend (or per run), its measured calls.
        identity: What makes two runs' calls the same call (`by_place`, `by_order`).

    Returns:
        The method compared, the common keys in call order, and each run's calls by key.
    """
    for label, methods in (("fit", ("fit",)), ("evaluate/predict", ("evaluate", "predict"))):
        keyed = {name: keyed_calls(calls, methods, identity) for name, calls in runs.items()}
        first = next(iter(keyed.values()), {})
        common = [key for key in first if all(key in calls for calls in keyed.values())]
        if common:
            return label, common, keyed
    return "", [], {}


def steady_seconds(calls: list[dict], steps: list[int] | None = None) -> float:
    """The calls' steady time: each one's steady step time (a one-step call: its whole time) times its steps, or
    times `steps` (the same work for runs whose calls ran different numbers of steps: an early stop)."""
    steps = steps or [call["steps"] for call in calls]
    return sum((call["steady_step_s"] or call["seconds"] / call["steps"]) * count for call, count in zip(calls, steps))


def compare_file(file: str, cells: list[dict]) -> FileComparison | None:
    """The backends compared on `file` from its runs (None: fewer than one run measured the same calls)."""
    measured = {cell["backend"]: cell for cell in cells if cell["status"] in COMPARED_STATUSES and cell.get("calls")}
    method, common, keyed = common_calls({name: cell["calls"] for name, cell in measured.items()})
    if not common:
        return None
    steps = [min(keyed[name][key]["steps"] for name in measured) for key in common]
    backends = {}
    for name, cell in measured.items():
        calls = [keyed[name][key] for key in common]
        compile_s = sum(max(0.0, (call["first_step_s"] or 0.0) - (call["steady_step_s"] or 0.0)) for call in calls)
        backends[name] = BackendTimes(
            steady_seconds(calls, steps),
            compile_s,
            cell.get("peak_memory_mb"),
            cell.get("device_used", ""),
            calls[-1]["logs"],
        )
    order = ratios.ranked({name: times.steady_s for name, times in backends.items()})
    if not order:  # no time to rank (calls that took no measurable time)
        return None
    return FileComparison(
        file, method, len(common), backends, {name: ratio for name, _, ratio in order}, _spread(backends)
    )


def _spread(backends: dict[str, BackendTimes]) -> tuple[str, float] | None:
    if len(backends) < 2:
        return None
    logs = [times.logs for times in backends.values()]
    keys = [key for key in logs[0] if all(key in other for other in logs)]
    spreads = {key: max(log[key] for log in logs) - min(log[key] for log in logs) for key in keys}
    return max(spreads.items(), key=lambda item: item[1]) if spreads else None


def compare_course(payload: dict) -> list[FileComparison]:
    """Every file of `payload` (a verify.json) that two or more backends ran with the same measured calls."""
    found = []
    for file in payload["files"]:
        comparison = compare_file(file, [cell for cell in payload["cells"] if cell["file"] == file])
        if comparison is not None and len(comparison.backends) > 1:
            found.append(comparison)
    return found


def course_summary(comparisons: list[FileComparison]) -> dict:
    """The course as a whole: per backend the geometric mean of its ratios and the files it was fastest on."""
    means = ratios.geometric_means([comparison.ratios for comparison in comparisons])
    wins = {name: sum(comparison.fastest == name for comparison in comparisons) for name in means}
    fastest = min(means, key=means.get) if means else ""
    return {"geometric_means": means, "wins": wins, "fastest": fastest, "files": len(comparisons)}


def timing_notes(payload: dict) -> list[str]:
    """What the numbers are worth: smoke epochs, and runs that shared the cores."""
    notes = []
    if payload.get("smoke"):
        notes.append(
            "Smoke run: every epoch was capped at a few steps; the steady step time is over the capped epochs, "
            "the first step (compilation) as in a full run."
        )
    if payload.get("jobs", 1) > 1:
        notes.append(
            f"{payload['jobs']} runs ran side by side and shared the cores: the ratios are indicative; "
            "`--jobs 1` gives clean timings."
        )
    return notes


def csv_rows(payload: dict) -> list[dict]:
    """One row per measured call of every run (`CSV_FIELDS`)."""
    rows = []
    for cell in payload["cells"]:
        for call in cell.get("calls") or []:
            steady = call.get("steady_step_s")
            batch = call.get("batch_size")
            rows.append(
                {
                    **{key: cell.get(key, "") for key in CSV_FIELDS[:6]},
                    **{key: call.get(key, "") for key in CSV_FIELDS[6:16]},
                    "samples_per_s": round(batch / steady, 1) if steady and batch else "",
                    "logs": json.dumps(call.get("logs", {}), sort_keys=True),
                }
            )
    return rows


def csv_text(payload: dict) -> str:
    """The measured calls as CSV text, a header line first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(payload):
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return buffer.getvalue()


def plot_data_uri(comparisons: list[FileComparison]) -> str:
    """The ratios as a PNG data URI for verify.html ("" without matplotlib or without a comparison)."""
    if not comparisons:
        return ""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    from multibackend.report.plots import plot_ratios

    with tempfile.TemporaryDirectory(prefix="multibackend-plot-") as folder:
        path = plot_ratios(
            plt,
            {comparison.file: comparison.ratios for comparison in comparisons},
            Path(folder) / "ratios.png",
            "Steady time of the same Keras calls, per file (lower is faster)",
        )
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def backend_cell(comparison: FileComparison, name: str) -> str:
    """A backend's cell in the comparison table: steady time and ratio, compilation, memory."""
    times = comparison.backends.get(name)
    if times is None:
        return "-"
    text = f"{times.steady_s:.3g} s ({comparison.ratios[name]:.2f}x) · compile {times.compile_s:.2g} s"
    return text + (f" · {times.peak_memory_mb:,.0f} MiB" if times.peak_memory_mb is not None else "")


def devices_text(payload: dict) -> str:
    """The devices the measured runs used: one line per device, with the backends that ran on it."""
    found: dict[str, list[str]] = {}
    for cell in payload["cells"]:
        if cell.get("device_used") and cell["backend"] not in found.setdefault(cell["device_used"], []):
            found[cell["device_used"]].append(cell["backend"])
    return "; ".join(f"{device} ({', '.join(names)})" for device, names in found.items())


def context(payload: dict) -> dict:
    """What verify.md and verify.html show of the comparison."""
    comparisons = compare_course(payload)
    return {
        "comparisons": comparisons,
        "course": course_summary(comparisons),
        "timing_notes": timing_notes(payload),
        "devices": devices_text(payload),
        "backend_cell": backend_cell,
        "regressions": payload.get("regressions"),
        "baseline": payload.get("baseline"),
    }
