"""verify's data: how a file runs (`VerifyOptions`), what a run's process reports (`ChildReport`), the outcome of
one (file, backend) run (`Run`), and `verify.json` as a typed record (`VerifyReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from multibackend.results import JsonRecord
from multibackend.verify import cells as cell_plans
from multibackend.verify import outputs

# Statuses of a row that count as a pass, or as neither pass nor failure.
NOT_FAILURES = ("passed", "not installed", "pinned")
OTHER_SHARD = "in another shard"  # a matrix entry of a shard's report, never a status of a run


@dataclass
class Run:
    """The outcome of one file under one backend (a row of `verify.json`'s `cells`).

    Attributes:
        status: passed | failed | output differs | timed out | not installed | wrong backend | wrong device | pinned.
        backend_used: The backend Keras used in the run's process ("" when the file never imported Keras).
        code_cells_ran: Code cells run (a script counts as one).
        code_cells_gated: Cells gated to another backend: `{cell, backend}`.
        code_cells_skipped: Cells or lines not run: `{cell, reason}` (shell installs, NBVAL_SKIP).
        failed_cell: The cell that failed or was running when the time ran out.
        failed_cells: With --keep-going, every cell that failed: `{cell, error, after_earlier_error}`.
        pins: The file's assignments of KERAS_BACKEND to another backend: `{value, cell}` or `{value, line}`.
        trained: Cells (notebooks) or lines (scripts) that trained or evaluated a Keras model.
        downloads: Files the run asked Keras to download: `{origin, file, downloaded, missing}` (downloaded False: the
            cache had it, or it was missing offline).
        calls: Each `fit`, `evaluate` and `predict` call measured: where (`cell` or `line`), batch size, epochs,
            steps, seconds, the first step (compilation included) and the steady step time, the final logs.
        device_used: The device the run's model weights lived on, as the framework named it in the run.
        peak_memory_mb: The verified process's peak resident memory.
        peak_gpu_memory_mb: The backend's peak GPU memory (None: no GPU used).
        unchanged_since: When the run passed with the same inputs (`--state`): it was not run again ("" it ran).
        last_line: The last printed line with a number from a cell that trained or evaluated.
    """

    file: str
    backend: str
    status: str
    seconds: float
    error: str = ""
    differences: list[str] = field(default_factory=list)  # one line per cell whose output differs
    last_line: str = ""
    backend_used: str = ""
    framework_version: str = ""
    code_cells_ran: int = 0
    code_cells_gated: list[dict] = field(default_factory=list)
    code_cells_skipped: list[dict] = field(default_factory=list)
    failed_cell: int | None = None
    failed_cells: list[dict] = field(default_factory=list)
    pins: list[dict] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)
    downloads: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    device_used: str = ""
    peak_memory_mb: float | None = None
    peak_gpu_memory_mb: float | None = None
    unchanged_since: str = ""


@dataclass(frozen=True)
class ChildReport:
    """What one run did, as the job's reply carries it.

    Attributes:
        kind: "script" or "notebook".
        ran: Code cells run, by number (a script is cell 1).
        gated: Cells gated to another backend: `{cell, backend}`.
        skipped: Cells not run: `{cell, reason}`.
        failed_cell: The cell that failed (None: none, or not known); with `keep_going`, the first.
        failed_cells: With `keep_going`, every cell that failed: `{cell, error, after_earlier_error}` (a `NameError`
            for a name that an earlier failing cell would have bound fails only after that earlier error).
        error: `ErrorType: message` of the failure ("" when the file ran through).
        sandbox: Whether the sandbox reported from the verified process (else the fields below are empty).
        python: The interpreter that ran the file.
        backend_used: The backend Keras used ("" when the file never imported Keras).
        framework_version: That framework's version.
        keras_version: Keras's version.
        pins: Assignments of KERAS_BACKEND to another backend: `{value, cell}` or `{value, line}`.
        trained: Cells (notebooks) or lines (scripts) that trained or evaluated a Keras model.
        datasets_loaded: Cells or lines where a served dataset was first loaded.
        downloads: The files Keras's `get_file` was asked for: `{origin, file, downloaded}` (False: from the cache).
        shell_failures: Shell commands (`!cmd`) that exited non-zero: `{command, exit, cell}`.
        calls: Each `fit`, `evaluate` and `predict` call measured (`measure.CallTiming`, its place as `cell` or
            `line`).
        device_used: The device the measured calls' weights lived on (`cpu: <model>`, `gpu: <name>`; "" none).
        peak_memory_mb: The verified process's peak resident memory (the notebook's kernel for a notebook).
        peak_gpu_memory_mb: The backend's peak GPU memory (None: no GPU).
        device_asked: The device the run's process was fixed to (`cpu` or `gpu`; "" not known).
    """

    kind: str
    ran: list[int] = field(default_factory=list)
    gated: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed_cell: int | None = None
    failed_cells: list[dict] = field(default_factory=list)
    error: str = ""
    sandbox: bool = False
    python: str = ""
    backend_used: str = ""
    framework_version: str = ""
    keras_version: str = ""
    pins: list[dict] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)
    datasets_loaded: list[int] = field(default_factory=list)
    downloads: list[dict] = field(default_factory=list)
    shell_failures: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    device_used: str = ""
    peak_memory_mb: float | None = None
    peak_gpu_memory_mb: float | None = None
    device_asked: str = ""

    # The report's fields that a `Run` keeps under another name; every field that both have is kept as it is.
    RUN_NAMES: ClassVar[dict[str, str]] = {
        "gated": "code_cells_gated",
        "skipped": "code_cells_skipped",
    }
    # Fields of both that the judge sets itself: a run's error is worded from this one and the process's exit.
    JUDGED: ClassVar[tuple[str, ...]] = ("error",)

    def run_fields(self) -> dict:
        """What a `Run` of this report carries from it, by the `Run`'s field names: one place, so that a field added to
        both is carried without a second edit."""
        run_names = {item.name for item in fields(Run)}
        carried = {
            self.RUN_NAMES.get(item.name, item.name): getattr(self, item.name)
            for item in fields(self)
            if item.name not in self.JUDGED
        }
        return {"code_cells_ran": len(self.ran)} | {name: value for name, value in carried.items() if name in run_names}


@dataclass(frozen=True)
class VerifyReport(JsonRecord):
    """`verify.json`: a course's files under each backend, the run's settings and a verdict per file
    (`schemas/verify.schema.json`). `verify` makes one from its runs and `verify merge` from shards.

    Attributes:
        cells: One per file and backend: a `Run`'s fields.
        verdicts: Per file: portable, not verified, fails everywhere, backend-specific or single-backend by design.
        shard: `{index, count}` for a shard's share of the runs; None for a whole run and a merge.
        merged_from: The shards a merge joined.
        baseline: The earlier verify.json the measurements were compared with (`--baseline`), and how.
        regressions: Per file and backend, what got slower or worse than in the baseline.
    """

    SCHEMA: ClassVar[str] = "verify"

    backends: list[str]
    files: list[str]
    cells: list[dict]
    warnings: list[str]
    passed: bool
    created: str
    smoke: bool | None = None
    smoke_sample: list[int] | None = field(default=None, metadata={"null": True})
    seed: int | None = field(default=None, metadata={"null": True})
    offline_datasets: bool | None = None
    timeout_seconds: float | None = None
    compare_outputs: str | None = None
    rtol: float | None = None
    atol: float | None = None
    jobs: int | None = None
    respect_backend_pins: bool | None = None
    keep_going: bool | None = None
    data_cache: str | None = None
    offline_downloads: bool | None = None
    shell: str | None = None
    verdicts: dict[str, str] | None = None
    verdict_details: dict[str, str] | None = None
    shard: dict | None = field(default=None, metadata={"null": True})
    plan: list[dict] | None = None
    contained: bool | None = None
    pass_env: list[str] | None = None
    merged_from: list[str] | None = None
    device: str | None = None
    baseline: dict | None = None
    regressions: list[dict] | None = None


@dataclass(frozen=True)
class OutputCheck:
    """How notebook outputs are compared: `mode` (all | marked | off) and the tolerance for numbers."""

    mode: str = "all"
    rtol: float = outputs.DEFAULT_RTOL
    atol: float = outputs.DEFAULT_ATOL


@dataclass(frozen=True)
class VerifyOptions:
    """How each file runs.

    Attributes:
        timeout: Seconds per file and backend.
        offline: Serve `keras.datasets.mnist.load_data()` from the local copy.
        check: How stored notebook outputs are compared.
        jobs: How many runs go side by side (each gets its share of the cores).
        smoke: Cap training (see `sandbox.SMOKE_MAX_STEPS`): a quick check that everything runs.
        smoke_sample: In a smoke run, serve only this many (training, test) images of a served dataset.
        seed: Seed Keras's random generators in each run as Keras is imported (None: as the file does).
        respect_pins: Let a file's own `KERAS_BACKEND` assignments take effect (default: the backend asked for wins).
        shell: "skip-installs" (default) or "run": shell escapes that install packages.
        keep_going: Run a notebook's cells after a failing one, and report each failing cell.
        data_cache: The download cache every run shares ("" Keras's own per run).
        offline_downloads: A download the cache cannot answer fails at once, by name (`--offline`).
        keep_executed: Keep every run's executed notebook and output tail in `kept_dir` (after a timeout, always).
        kept_dir: Where (`OUT/executed`; "" keeps nothing).
        pass_env: More of the caller's variables that each run gets (names or fnmatch patterns; see `environment`).
        device: auto (the GPU where a backend finds one), cpu or gpu: a run that asked for the GPU and ran on the CPU
            is "wrong device".
    """

    timeout: float = 600
    offline: bool = False
    check: OutputCheck = OutputCheck()
    jobs: int = 1
    smoke: bool = False
    smoke_sample: tuple[int, int] | None = None
    seed: int | None = None
    respect_pins: bool = False
    shell: str = cell_plans.SHELL_MODES[0]
    pass_env: tuple[str, ...] = ()
    keep_going: bool = False
    data_cache: str = ""
    offline_downloads: bool = False
    keep_executed: bool = False
    kept_dir: str = ""
    device: str = "auto"

    def recorded(self) -> dict:
        """The settings as `verify.json` records them (a merge compares all but the machine's: `shards.RUN_SETTINGS`)."""
        return {
            "smoke": self.smoke,
            "device": self.device,
            "smoke_sample": list(self.smoke_sample) if self.smoke_sample else None,
            "seed": self.seed,
            "offline_datasets": self.offline,
            "timeout_seconds": self.timeout,
            "compare_outputs": self.check.mode,
            "rtol": self.check.rtol,
            "atol": self.check.atol,
            "jobs": self.jobs,
            "respect_backend_pins": self.respect_pins,
            "keep_going": self.keep_going,
            "data_cache": self.data_cache,
            "offline_downloads": self.offline_downloads,
            "shell": self.shell,
            "pass_env": list(self.pass_env),
        }
