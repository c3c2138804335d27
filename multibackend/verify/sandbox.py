"""Inside the process that runs a course file for `verify`: what it may change, and what it reports.

This module runs in the verified process itself: the script's own process, or
the notebook's kernel (through an IPython start-up file, before the first
cell). It must not import Keras (the course file chooses when); it changes
Keras modules only when the course file imports them (see `runtime.import_hooks`).

- **The backend asked for stays.** `KERAS_BACKEND` is set by `verify` for the run.
  A course file that assigns it (`os.environ["KERAS_BACKEND"] = "jax"`, `%env`,
  `%set_env`, `keras.config.set_backend`) is recorded with its cell or line,
  and by default the assignment is not carried out: course notebooks tell
  readers to switch backends by editing that line. With `respect_pins` it is.
- **What ran.** `write_report` reads, after the file's code, which backend
  Keras actually used in this process (`keras.backend.backend()`) and the
  framework's version, which cells or lines trained or evaluated a model (Keras
  `fit`/`evaluate` and their batch forms) and where the served datasets were
  first loaded.
- **Smoke runs.** Keras's own cap (`KERAS_MAX_STEPS_PER_EPOCH`, set here before Keras is imported)
  shortens every epoch of `fit` and every `evaluate`; `predict` runs uncapped, since course code
  compares its predictions with labels of the input's length. `MULTIBACKEND_SMOKE=1` tells the file.
- **Measured.** Each `fit`, `evaluate` and `predict` call's steps are timed by a callback added to the call's
  own (`measure`); the run's peak memory and the device its weights lived on are reported.
- **Offline datasets**, sliced if asked (`course.offline`).
- **One download cache for every run** (`downloads`): Keras's `get_file` fills and reads the cache verify names,
  one run at a time per file; offline, a file the cache lacks fails at once by name.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from multibackend.verify import measure

# A smoke run: Keras's own debugging cap, every epoch of fit and every evaluate at most this many steps. The epochs
# stay as written: course code plots its histories against the epochs it asked for (`range(1, 11)` in Deep Learning
# with Python's chapter 5 failed under KERAS_MAX_EPOCHS=1). predict runs uncapped (see `sandbox`). Served datasets
# stay whole unless a sample is asked for: course code splits them by index (`images[10000:]` in its chapter 7 was
# empty with a 1,024-image slice).
SMOKE_MAX_STEPS = 16
# What a course file can read to know it runs as a smoke run.
SMOKE_ENV = "MULTIBACKEND_SMOKE"
SETTINGS_ENV = "MULTIBACKEND_VERIFY_SETTINGS"
KERAS_MODEL_MODULE = "keras.src.models.model"
TRAINING_METHODS = ("fit", "evaluate", "train_on_batch", "test_on_batch")


@dataclass(frozen=True)
class SandboxSettings:
    """What the verified process is told (a JSON file named by `MULTIBACKEND_VERIFY_SETTINGS`).

    Attributes:
        backend: The backend asked for.
        respect_pins: Whether the file's own assignments of `KERAS_BACKEND` take effect.
        offline: Serve `keras.datasets.mnist.load_data()` from the local copy.
        data_cache: The folder Keras's downloads go to and are read from (shared by the runs; "" Keras's own).
        offline_downloads: A download the cache cannot answer fails at once (`downloads.DatasetMissing`).
        smoke: A smoke run: Keras's step cap (`SMOKE_MAX_STEPS`), `predict` exempt from it.
        smoke_sample: The training and test images served (a smoke run that asks for it), else all.
        seed: Seeds Keras's random generators (and Python's, NumPy's, the backend's) as Keras is imported.
        script: The script's path (scripts only: where its lines are found).
        report: Where `write_report` writes.
    """

    backend: str
    respect_pins: bool = False
    offline: bool = False
    data_cache: str = ""
    offline_downloads: bool = False
    smoke: bool = False
    smoke_sample: tuple[int, int] | None = None
    seed: int | None = None
    script: str = ""
    report: str = "sandbox.json"

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: str | os.PathLike) -> SandboxSettings:
        values = json.loads(Path(path).read_text())
        if values.get("smoke_sample") is not None:
            values["smoke_sample"] = tuple(values["smoke_sample"])
        return cls(**values)


@dataclass
class _Record:
    """What happened in this process, by place: a notebook cell's run (see `_Cells`) or a script's line."""

    installed: bool = False
    pins: list[dict] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)
    datasets_loaded: list[int] = field(default_factory=list)
    shell_failures: list[dict] = field(default_factory=list)
    calls: list[measure.CallTiming] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)


class _Cells:
    """Which notebook cell is running, told by IPython's events; its execution count is known once it ends.

    A cell magic may run code with `run_cell` inside a cell: the outermost cell is the place.
    """

    def __init__(self) -> None:
        self.running: list[int] = []
        self.execution_counts: dict[int, int] = {}
        self._runs = itertools.count(1)

    def pre_run_cell(self, info=None) -> None:
        self.running.append(next(self._runs))

    def post_run_cell(self, result) -> None:
        run = self.running.pop() if self.running else 0
        if not self.running and run:
            self.execution_counts[run] = result.execution_count

    def execution_count(self, run: int) -> int:
        return self.execution_counts.get(run, 0)


_settings: SandboxSettings | None = None
_record = _Record()
_cells = _Cells()


def _place() -> int:
    """Where the course file is now: the running cell's run (notebooks), or the script's line (0: unknown)."""
    if _ipython() is not None:
        return _cells.running[0] if _cells.running else 0
    frame = sys._getframe(1)
    script = _settings.script if _settings else ""
    while frame is not None:
        if script and os.path.realpath(frame.f_code.co_filename) == script:
            return frame.f_lineno
        frame = frame.f_back
    return 0


def _ipython():
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


class _GuardedEnviron(type(os.environ)):  # type: ignore[misc]
    """`os.environ` that records assignments of KERAS_BACKEND and, unless pins are respected, ignores them."""

    def __setitem__(self, key, value):
        if key == "KERAS_BACKEND" and _settings is not None and value != _settings.backend:
            _record.pins.append({"value": str(value), "place": _place()})
            if not _settings.respect_pins:
                return
        super().__setitem__(key, value)

    def __delitem__(self, key):
        if key == "KERAS_BACKEND" and _settings is not None and not _settings.respect_pins:
            return
        super().__delitem__(key)


def _record_training(method):
    @functools.wraps(method)
    def recorded(self, *args, **kwargs):
        place = _place()
        if not _record.trained or _record.trained[-1] != place:
            _record.trained.append(place)
        return method(self, *args, **kwargs)

    recorded.__multibackend_recorded__ = True
    return recorded


def _uncapped(method):
    """`method` run without Keras's step cap: predictions keep the length of the input."""

    @functools.wraps(method)
    def uncapped(self, *args, **kwargs):
        from keras.src.backend import config

        cap = config.max_steps_per_epoch()
        config.set_max_steps_per_epoch(None)
        try:
            return method(self, *args, **kwargs)
        finally:
            config.set_max_steps_per_epoch(cap)

    uncapped.__multibackend_recorded__ = True
    return uncapped


def _watch_training(module) -> None:
    model = module.Model
    for name in measure.MEASURED_METHODS:
        method = getattr(model, name, None)
        if method is not None and not getattr(method, "__multibackend_recorded__", False):
            setattr(model, name, measure.measured(method, _place, _record.calls, _record.devices))
    for name in TRAINING_METHODS:
        method = getattr(model, name, None)
        if method is not None and not getattr(method, "__multibackend_recorded__", False):
            setattr(model, name, _record_training(method))
    if _settings is not None and _settings.smoke and not getattr(model.predict, "__multibackend_recorded__", False):
        model.predict = _uncapped(model.predict)


def _dataset_loaded() -> None:
    _record.datasets_loaded.append(_place())


def _register_backend_magic(shell) -> None:
    """A `%%backend NAME` cell magic for notebooks that use the convention without defining it.

    `verify` runs such a cell only under its backend (see `cells.gate`), so the magic just runs it;
    a notebook's own definition replaces this one.
    """

    def backend(line, cell):
        result = shell.run_cell(cell)
        result.raise_error()

    if "backend" not in shell.magics_manager.magics["cell"]:
        shell.register_magic_function(backend, "cell", "backend")


def _watch_shell_commands(shell) -> None:
    """Records each `!command` that exits non-zero: a failed `!wget` otherwise shows only through a later error."""
    system = shell.system

    def recorded_system(command, *args, **kwargs):
        result = system(command, *args, **kwargs)
        code = shell.user_ns.get("_exit_code", 0)
        if code:
            _record.shell_failures.append({"command": str(command), "exit": code, "place": _place()})
        return result

    shell.system = recorded_system


def _seeded(keras) -> None:
    """Seeds a run as Keras is imported, before the file builds a model: reruns and shards print the same numbers.

    A file that seeds itself later wins, as it would anywhere.
    """
    keras.utils.set_random_seed(_settings.seed)


def install(settings: SandboxSettings | None = None) -> None:
    """Sets up this process for a verify run (settings default: the file named by `MULTIBACKEND_VERIFY_SETTINGS`)."""
    global _settings
    from multibackend.course import offline
    from multibackend.runtime.import_hooks import on_import
    from multibackend.verify import downloads

    _settings = settings or SandboxSettings.read(os.environ[SETTINGS_ENV])
    if _settings.smoke:  # Keras reads its cap as it is imported; a notebook's kernel is told here too
        os.environ.update(KERAS_MAX_STEPS_PER_EPOCH=str(SMOKE_MAX_STEPS), **{SMOKE_ENV: "1"})
    os.environ.__class__ = _GuardedEnviron
    on_import(KERAS_MODEL_MODULE, _watch_training)
    if _settings.seed is not None:
        on_import("keras", _seeded)
    downloads.install(_settings.data_cache, _settings.offline_downloads)
    if _settings.offline:
        sample = offline.Sample(*_settings.smoke_sample) if _settings.smoke_sample else None
        offline.install(sample, on_load=_dataset_loaded)
    shell = _ipython()
    if shell is not None:
        shell.events.register("pre_run_cell", _cells.pre_run_cell)
        shell.events.register("post_run_cell", _cells.post_run_cell)
        _register_backend_magic(shell)
        _watch_shell_commands(shell)
    _record.installed = True


def backend_in_use() -> tuple[str, str, str]:
    """The backend Keras uses in this process, the framework's version and Keras's ("" when Keras is not imported)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return "", "", ""
    name = keras.backend.backend()
    module = sys.modules.get(name)
    version = getattr(module, "__version__", "") if module is not None else ""
    return name, str(version), str(getattr(keras, "__version__", ""))


def _downloads_asked() -> list[dict]:
    downloads = sys.modules.get("multibackend.verify.downloads")
    return list(downloads.fetched) if downloads is not None else []


def write_report(path: str | os.PathLike | None = None) -> None:
    """Writes what happened in this process as JSON (default: the settings' report path).

    Places are execution counts in a notebook's kernel, lines in a script (0: not known).
    """
    backend, version, keras_version = backend_in_use()
    place = _cells.execution_count if _ipython() is not None else (lambda line: line)
    report = {
        "installed": _record.installed,
        "python": sys.executable,
        "backend_used": backend,
        "framework_version": version,
        "keras_version": keras_version,
        "pins": [{"value": pin["value"], "place": place(pin["place"])} for pin in _record.pins],
        "trained": [place(run) for run in _record.trained],
        "datasets_loaded": [place(run) for run in _record.datasets_loaded],
        "downloads": _downloads_asked(),
        "shell_failures": [{**failure, "place": place(failure["place"])} for failure in _record.shell_failures],
        "calls": measure.as_json(_record.calls, place),
        "device_used": measure.device_used(_record.devices),
        "peak_memory_mb": measure.peak_memory_mb(),
        "peak_gpu_memory_mb": measure.peak_gpu_memory_mb(),
    }
    target = Path(path or (_settings.report if _settings else "sandbox.json"))
    target.write_text(json.dumps(report))
