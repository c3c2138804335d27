"""Comparing a notebook's stored outputs with the outputs of a new run, the way nbval does, with tolerance.

Each code cell's outputs are reduced to text: standard output (its chunks joined),
and the `text/plain` of results and displays. Before comparing, what varies by
nature is removed: Keras progress bars and step timings, timestamps, memory
addresses, absolute paths, and standard error (warnings). Then the texts are
split into numbers and the text between them: the text must match exactly (runs
of spaces count as one, since padding follows the width of numbers), integers
must be equal, and other numbers must agree within `atol + rtol * |stored|`.

nbval's conventions decide which cells are compared: the comments
`# NBVAL_IGNORE_OUTPUT`, `# NBVAL_CHECK_OUTPUT`, `# NBVAL_SKIP` and
`# NBVAL_RAISES_EXCEPTION` on a line of the cell, or the cell tags
`nbval-ignore-output`, `nbval-check-output`, `nbval-skip` and `raises-exception`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# The defaults suit the course's MNIST accuracy: the three backends' 20-epoch test accuracies lie within
# 0.0012 of each other and their losses within 0.0101, while a backend 1.5 points lower must fail:
# 0.012 is that 0.015 with a 20% margin.
DEFAULT_ATOL = 0.012
DEFAULT_RTOL = 0.0

MARKERS = {
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_RAISES_EXCEPTION": "raises-exception",
}
COMPARE_MODES = ("all", "marked", "off")  # nbval's default, nbval's --nbval-lax, no comparison
# Text of one cell's outputs that is compared: a stored notebook may carry any amount.
OUTPUT_TEXT_LIMIT = 1 << 20

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A Keras progress bar line ("469/469 ━━━━ 2s 4ms/step - accuracy: 0.87 - loss: 0.43") or its step timing.
# Each match starts only where a number starts (the lookbehind): from every digit of a long run it would take
# quadratic time (a 16,000-digit line took 21 s).
_PROGRESS = re.compile(r"━|(?<![\d.])\d+(?:\.\d+)?\s*[mµu]?s/step|^\s*\d+/\d+\s.*\b(?:ETA|eta)\b")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?|\b\d{2}:\d{2}:\d{2}(\.\d+)?\b"
)
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/'\"<>:,()\[\]]+/)+[^\s/'\"<>:,()\[\]]*")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])|(?<!\w)[-+]?(?:nan|inf)(?!\w)")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Directives:
    """What nbval's comments and tags ask of one cell."""

    ignore_output: bool = False
    check_output: bool = False
    skip: bool = False
    raises_exception: bool = False


def directives(source: str, tags: list[str] | tuple[str, ...] = ()) -> Directives:
    """Reads nbval's markers from a cell's source (a comment line) and its tags.

    Args:
        source: The cell's code.
        tags: The cell's metadata tags.

    Returns:
        The cell's `Directives`.
    """
    found = set()
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            word = stripped.lstrip("#").strip()
            if word in MARKERS:
                found.add(word)
    found |= {marker for marker, tag in MARKERS.items() if tag in tags}
    return Directives(
        ignore_output="NBVAL_IGNORE_OUTPUT" in found,
        check_output="NBVAL_CHECK_OUTPUT" in found,
        skip="NBVAL_SKIP" in found,
        raises_exception="NBVAL_RAISES_EXCEPTION" in found,
    )


def _joined(value) -> str:
    """A notebook text field as one string: notebooks store text as a string or as a list of lines."""
    return "".join(value) if isinstance(value, list) else str(value)


def cell_source(cell: dict) -> str:
    """A notebook cell's source as one string."""
    return _joined(cell.get("source", ""))


def cell_tags(cell: dict) -> list[str]:
    """A notebook cell's tags (none when its metadata has none or they are malformed)."""
    tags = (cell.get("metadata") or {}).get("tags") or []
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def normalize(text: str) -> str:
    """Removes from output text what varies by nature: progress bars, timings, times, addresses, paths.

    Args:
        text: Output text as a notebook stores it.

    Returns:
        The text with those parts removed or replaced by placeholders, lines stripped of trailing spaces.
    """
    kept = []
    for line in _ANSI.sub("", text).split("\n"):
        line = re.split(r"[\r\x08]+", line)[-1]  # what a terminal would show after carriage returns
        if _PROGRESS.search(line):
            continue
        line = _TIMESTAMP.sub("<time>", line)
        line = _ADDRESS.sub("<address>", line)
        line = _ABSOLUTE_PATH.sub("<path>", line)
        kept.append(_SPACES.sub(" ", line).rstrip())
    return "\n".join(kept).strip("\n")


def output_text(outputs: list[dict]) -> str:
    """The comparable text of one cell's outputs: stdout chunks joined, then results and displays as text.

    Standard error is left out (warnings differ by backend and version); so are images and HTML,
    whose bytes differ from run to run. An error output shows as `ErrorName: message`.
    """
    stdout, rest = [], []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stdout":
            stdout.append(_joined(output.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            plain = (output.get("data") or {}).get("text/plain")
            if plain is not None:
                rest.append(_joined(plain))
        elif kind == "error":
            rest.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    text = "".join(stdout) + ("\n" if stdout and rest else "") + "\n".join(rest)
    return normalize(text[:OUTPUT_TEXT_LIMIT])


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """Splits text into its numbers and the pieces of text around them (one more piece than numbers)."""
    numbers = _NUMBER.findall(text)
    pieces = _NUMBER.split(text)
    return numbers, pieces


def _is_integer(token: str) -> bool:
    return re.fullmatch(r"[-+]?\d+", token) is not None


@dataclass(frozen=True)
class NumberDifference:
    """Two numbers at the same place in a cell's output that do not agree, and the tolerance they missed."""

    stored: str
    new: str
    tolerance: float

    def __str__(self) -> str:
        if _is_integer(self.stored) and _is_integer(self.new):
            return f"stored {self.stored}, new {self.new} (integers must be equal)"
        difference = abs(float(self.new) - float(self.stored))
        return f"stored {self.stored}, new {self.new} (differ by {difference:.4g}, tolerance {self.tolerance:.4g})"


@dataclass(frozen=True)
class Mismatch:
    """One code cell whose new output differs from its stored output.

    Attributes:
        cell: The cell's position among all the notebook's cells, from 1 (as Jupyter counts them).
        stored: The stored output, normalized.
        new: The new output, normalized.
        numbers: The numbers that differ beyond the tolerance (empty when the text differs).
    """

    cell: int
    stored: str
    new: str
    numbers: tuple[NumberDifference, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line: the cell, and the numbers that differ or the first line that does."""
        if self.numbers:
            shown = "; ".join(str(difference) for difference in self.numbers[:3])
            more = f" and {len(self.numbers) - 3} more" if len(self.numbers) > 3 else ""
            return f"cell {self.cell}: output differs: {shown}{more}"
        stored_lines, new_lines = self.stored.split("\n"), self.new.split("\n")
        for index in range(max(len(stored_lines), len(new_lines))):
            stored_line = stored_lines[index] if index < len(stored_lines) else "<no line>"
            new_line = new_lines[index] if index < len(new_lines) else "<no line>"
            if stored_line != new_line:
                return f"cell {self.cell}: output differs: stored {stored_line!r}, new {new_line!r}"
        return f"cell {self.cell}: output differs"


def compare_text(stored: str, new: str, *, rtol: float, atol: float) -> tuple[bool, list[NumberDifference]]:
    """Compares two normalized outputs: the text exactly, integers exactly, other numbers within tolerance.

    Returns:
        Whether they agree, and the numbers that do not (empty when the text around them differs).
    """
    stored_numbers, stored_pieces = _tokens(stored)
    new_numbers, new_pieces = _tokens(new)
    if stored_pieces != new_pieces:
        return False, []
    differences = [
        NumberDifference(old, fresh, atol + rtol * abs(float(old)))
        for old, fresh in zip(stored_numbers, new_numbers)
        if not _numbers_agree(old, fresh, rtol=rtol, atol=atol)
    ]
    return not differences, differences


def _numbers_agree(stored: str, new: str, *, rtol: float, atol: float) -> bool:
    if _is_integer(stored) and _is_integer(new):
        return int(stored) == int(new)
    old, fresh = float(stored), float(new)
    if math.isnan(old) or math.isnan(fresh):
        return math.isnan(old) and math.isnan(fresh)
    if math.isinf(old) or math.isinf(fresh):
        return old == fresh
    return abs(fresh - old) <= atol + rtol * abs(old)


def has_stored_outputs(notebook: dict) -> bool:
    """Whether any code cell of the notebook carries outputs to compare with."""
    return any(cell.get("outputs") for cell in notebook.get("cells", []) if cell.get("cell_type") == "code")


def compare_notebooks(
    stored: dict,
    new: dict,
    *,
    mode: str = "all",
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    skip: set[int] | frozenset[int] = frozenset(),
) -> list[Mismatch]:
    """Compares each code cell's new outputs with the stored ones.

    Args:
        stored: The notebook as saved (nbformat 4, as a dict).
        new: The same notebook after a run (same cells, in the same order).
        mode: "all" compares every cell not marked to be ignored (nbval); "marked" only cells marked
            `NBVAL_CHECK_OUTPUT` (nbval's lax mode); "off" none.
        rtol: Relative tolerance for numbers that are not integers.
        atol: Absolute tolerance for numbers that are not integers.
        skip: Cells not to compare (numbers as Jupyter counts all cells, from 1).

    Returns:
        The cells whose outputs differ, in order (empty when all agree).
    """
    if mode == "off":
        return []
    mismatches = []
    for index, (old_cell, new_cell) in enumerate(zip(stored.get("cells", []), new.get("cells", [])), start=1):
        if old_cell.get("cell_type") != "code" or index in skip:
            continue
        marks = directives(cell_source(old_cell), cell_tags(old_cell))
        if marks.skip or marks.ignore_output or (mode == "marked" and not marks.check_output):
            continue
        if not old_cell.get("outputs") and not marks.check_output:
            continue  # never run when saved: nothing to compare with (nbval does the same)
        old_text, new_text = output_text(old_cell.get("outputs", [])), output_text(new_cell.get("outputs", []))
        agree, numbers = compare_text(old_text, new_text, rtol=rtol, atol=atol)
        if not agree:
            mismatches.append(Mismatch(index, old_text, new_text, tuple(numbers)))
    return mismatches


def last_printed_line(notebook: dict, only: set[int] | None = None) -> str:
    """The last printed line of a notebook that holds a number (empty when there is none).

    Args:
        notebook: The notebook after a run.
        only: The cells to look in (numbers from 1; default: all). Among them, cells marked `NBVAL_IGNORE_OUTPUT`
            or `NBVAL_SKIP`, which print what varies by nature, are read only when no other cell has such a line.
    """
    numbered = [
        (number, cell)
        for number, cell in enumerate(notebook.get("cells", []), start=1)
        if cell.get("cell_type") == "code" and (only is None or number in only)
    ]
    marks = {number: directives(cell_source(cell), cell_tags(cell)) for number, cell in numbered}
    compared = [cell for number, cell in numbered if not (marks[number].ignore_output or marks[number].skip)]
    varying = [cell for number, cell in numbered if marks[number].ignore_output or marks[number].skip]
    for group in (compared, varying) if only is not None else (compared,):
        for cell in reversed(group):
            line = result_line(output_text(cell.get("outputs", [])))  # already normalized
            if line:
                return line
    return ""


_EPOCH = re.compile(r"^Epoch \d+/\d+$")


def result_line(text: str) -> str:
    """The last line of normalized output text that holds a number, Keras's `Epoch N/M` lines left out."""
    for line in reversed(text.split("\n")):
        if numbers_in(line) and not _EPOCH.match(line.strip()):
            return line
    return ""


def numbers_in(line: str) -> list[str]:
    """The numbers in a line of output, as printed."""
    return _tokens(line)[0]
