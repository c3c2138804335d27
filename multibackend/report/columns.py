"""The report's tables as data: a column is one entry (its header and how its cell is made from a row), used by the
Markdown and the HTML alike. A new column is one line here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from multibackend.results import ParityResult, RunResult


def number(value, pattern: str = "{:.4f}") -> str:
    """A number as the report shows it; "-" for none."""
    return "-" if value is None else pattern.format(value)


@dataclass(frozen=True)
class Column:
    """One column of a table: its header, and its cell for a row."""

    header: str
    cell: Callable[[object], str]


def _gates(run: RunResult) -> str:
    return f"{sum(gate['passed'] for gate in run.gates)}/{len(run.gates)}" + ("" if run.passed else " FAIL")


# A Keras fit (or loop) run per row.
RUN_COLUMNS = (
    Column("example", lambda run: run.example),
    Column("backend", lambda run: run.backend),
    Column("version", lambda run: run.backend_version),
    Column("keras", lambda run: run.keras_version),
    Column("device", lambda run: f"{run.device}: {run.device_name}"),
    Column("trainer", lambda run: run.trainer),
    Column("params", lambda run: f"{run.params:,}"),
    Column("test loss", lambda run: number(run.test.get("loss"))),
    Column("test acc", lambda run: number(run.test.get(run.metric))),
    Column("median s/epoch", lambda run: number(run.median_epoch_seconds, "{:.3f}")),
    Column("first epoch s", lambda run: number(run.first_epoch_seconds, "{:.3f}")),
    Column("steps/s", lambda run: number(run.steps_per_second, "{:,.0f}")),
    Column("peak RSS MiB", lambda run: number((run.peak_rss_bytes or 0) / 2**20, "{:,.0f}")),
    Column("gates", _gates),
)

# Per backend and device, a dict of `comparison.cost_rows`: what Keras fit costs against the loops.
COST_COLUMNS = (
    Column("backend", lambda row: row["backend"]),
    Column("device", lambda row: row["device"]),
    Column("fit s/epoch", lambda row: number(row["fit"], "{:.3f}")),
    Column("loop s/epoch", lambda row: number(row["loop"], "{:.3f}")),
    Column("native s/epoch", lambda row: number(row["native"], "{:.3f}")),
    Column("fit / loop", lambda row: number(row["fit"] / row["loop"] if row["loop"] else None, "{:.2f}x")),
    Column("bench: fit / native", lambda row: number(row["fit_over_native"], "{:.2f}x")),
    Column("bench: loop / native", lambda row: number(row["loop_over_native"], "{:.2f}x")),
)

# A run that did not finish (`compare`'s outcome per example, backend and device).
UNFINISHED_COLUMNS = (
    Column("example", lambda outcome: outcome.example),
    Column("backend", lambda outcome: outcome.backend),
    Column("device", lambda outcome: outcome.device),
    Column("trainer", lambda outcome: outcome.trainer),
    Column("status", lambda outcome: outcome.status.upper()),
    Column("last error", lambda outcome: outcome.reason),
)

# Per parity check, its worst pair (a dict of `parity_worst`).
PARITY_COLUMNS = (
    Column("check", lambda row: row["check"]),
    Column("worst pair", lambda row: row["pair"]),
    Column("max difference", lambda row: "not a number" if row["difference"] is None else f"{row['difference']:.3g}"),
    Column("tolerance", lambda row: f"{row['tolerance']:.3g}"),
    Column("all pairs", lambda row: "pass" if row["all_passed"] else "FAIL"),
)


def header(columns: tuple[Column, ...]) -> list[str]:
    """The headers of `columns`."""
    return [column.header for column in columns]


def rows(columns: tuple[Column, ...], items: list) -> list[list[str]]:
    """One row of cells per item."""
    return [[column.cell(item) for column in columns] for item in items]


def parity_worst(parity: ParityResult) -> list[dict]:
    """Per check, its worst pair, with whether every pair of the check passed (`all_passed`)."""

    def size(row: dict) -> float:  # null in the file: not a number, the worst there is
        return math.inf if row["difference"] is None else row["difference"]

    worst: dict[str, dict] = {}
    for row in parity.rows:
        if row["check"] not in worst or size(row) > size(worst[row["check"]]):
            worst[row["check"]] = row
    return [
        {**row, "all_passed": all(r["passed"] for r in parity.rows if r["check"] == check)}
        for check, row in sorted(worst.items())
    ]
