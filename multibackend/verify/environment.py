"""The environment of a verified run: an allow-list of the caller's variables, a home of its own, pip that refuses.

A run gets what a program needs to start and find its devices (PATH, locale,
temporary folders, proxies, certificates, GPU and thread settings), every
backend's own variables (`Backend.PASSED_ENVIRONMENT`) and those the caller
names with `--pass-env`; never the rest of the caller's environment (tokens,
passwords, `VIRTUAL_ENV`, a leftover `MULTIBACKEND_SMOKE`), as tox's `passenv`
does. Every `MULTIBACKEND_*` variable of a run is set by verify alone.

Installs are stopped at pip itself, whatever started it (a shell escape,
`subprocess`, `os.system`, `python -I -m pip`): `PIP_PYTHON` names a guard that
pip hands every command to; the guard refuses `install` and `uninstall` in one
line on stderr and passes every other command to this Python's pip.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import sys
from pathlib import Path

from multibackend.backends import NAMES, backend
from multibackend.runtime.cores import thread_limits
from multibackend.runtime.errors import UsageError

# The caller's variables every run gets (fnmatch patterns): starting programs, locale, temporary files, the network's
# proxies and certificates, devices and thread pools. Nothing that names a user's secrets.
PASSED_BY_DEFAULT = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "TMPDIR",
    "TEMP",
    "TMP",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "CUDA_*",
    "NVIDIA_*",
    "OMP_*",
    "MKL_*",
    "OPENBLAS_*",
)
# Set by verify for every run: the caller's values never reach it (a cap would cut a full run short).
SET_BY_VERIFY_PREFIX = "MULTIBACKEND_"
KERAS_CAPS = ("KERAS_MAX_EPOCHS", "KERAS_MAX_STEPS_PER_EPOCH")  # Keras reads them at import
PASS_ENV_NAME = re.compile(r"[A-Za-z_*?][A-Za-z0-9_*?]*")
PIP_GUARD = "pip-guard"
REFUSED_PIP_COMMANDS = ("install", "uninstall")


def check_pass_env(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The names (or fnmatch patterns) of `--pass-env`, checked.

    Raises:
        UsageError: for a name that is not a variable's name, or one that verify sets itself.
    """
    for name in names:
        if not PASS_ENV_NAME.fullmatch(name):
            raise UsageError(f"--pass-env {name!r}: not a variable name (letters, digits, _, and * or ? patterns)")
        if name.upper().startswith(SET_BY_VERIFY_PREFIX):
            raise UsageError(f"--pass-env {name}: MULTIBACKEND_* variables of a run are set by verify alone")
    return tuple(dict.fromkeys(names))


def passed_names(pass_env: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The patterns of the caller's variables that a run gets: the defaults, Keras's and every backend's own (Keras
    imports the other installed frameworks too), and `pass_env`."""
    backends_own = (pattern for name in NAMES for pattern in backend(name).PASSED_ENVIRONMENT)
    return (*PASSED_BY_DEFAULT, "KERAS_*", *backends_own, *pass_env)


def caller_variables(pass_env: tuple[str, ...] = (), environ: dict | None = None) -> dict:
    """The caller's variables that pass the allow-list (never a `MULTIBACKEND_*` one, nor Keras's step caps)."""
    environ = os.environ if environ is None else environ
    patterns = passed_names(pass_env)
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith(SET_BY_VERIFY_PREFIX)
        and name not in KERAS_CAPS
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    }


def home_variables(home: Path) -> dict[str, str]:
    """HOME and every folder tools derive from it (Keras's, Jupyter's, IPython's, matplotlib's, pip's user site)."""
    return {
        "HOME": str(home),
        "KERAS_HOME": str(home / ".keras"),
        "IPYTHONDIR": str(home / ".ipython"),
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "PYTHONUSERBASE": str(home / ".local"),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
    }


def run_environment(
    backend_name: str, workdir: Path, *, jobs: int = 1, pass_env: tuple[str, ...] = (), refuse_installs: bool = True
) -> dict[str, str]:
    """The whole environment of one run (verify adds its own `MULTIBACKEND_*` settings on top).

    Args:
        backend_name: The backend the run is under.
        workdir: The run's folder; its home and pip's guard are made in it.
        jobs: Runs side by side (each gets its share of the cores' threads).
        pass_env: More of the caller's variables (`--pass-env`).
        refuse_installs: Whether pip refuses to install and uninstall in the run.

    Returns:
        The variables, by name.
    """
    home = workdir / "home"
    home.mkdir()
    env = caller_variables(pass_env)
    env.update(thread_limits(jobs, env))
    env.update(home_variables(home))
    env.update(
        KERAS_BACKEND=backend_name,
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
        # `!pip` and `!python` in a notebook mean the environment that verify runs in.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
        PWD=str(workdir),
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the device settings are the job's: `runtime.backend`
    if refuse_installs:
        env["PIP_PYTHON"] = str(write_pip_guard(workdir))
    return env


PIP_GUARD_CODE = '''\
"""multibackend verify's guard: pip runs every command through here (PIP_PYTHON); installs are refused."""
import os
import sys

REFUSED = {refused!r}
PYTHON = {python!r}
runner, args = sys.argv[1], sys.argv[2:]
try:
    from pip._internal.cli.main_parser import create_main_parser

    command = (create_main_parser().parse_args(list(args))[1] or [""])[0]
except BaseException:  # a pip that parses otherwise: its first word that is no option
    command = next((arg for arg in args if not arg.startswith("-")), "")
if command in REFUSED:
    sys.stderr.write(
        f"multibackend verify: pip {{command}} refused: a verified run installs nothing "
        "(install the course's packages before verify, or run it with --shell run)\\n"
    )
    sys.exit(1)
os.execv(PYTHON, [PYTHON, runner, *args])
'''


def write_pip_guard(workdir: Path) -> Path:
    """Writes the guard that `PIP_PYTHON` names into `workdir`; returns its path."""
    code = workdir / f"{PIP_GUARD}.py"
    code.write_text(PIP_GUARD_CODE.format(refused=set(REFUSED_PIP_COMMANDS), python=sys.executable))
    guard = workdir / PIP_GUARD
    # pip runs PIP_PYTHON as an interpreter: a shell script that starts this Python isolated on the guard.
    guard.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I {shlex.quote(str(code))} "$@"\n')
    guard.chmod(0o755)
    return guard


def download_caches(cache: str, offline: bool, env: dict[str, str]) -> dict[str, str]:
    """Where the other dataset libraries of a run keep their downloads: in the shared cache too (kagglehub's and
    Hugging Face's, unless the caller passed their own), and Hugging Face told it is offline when the run is."""
    if not cache:
        return {}
    found = {}
    for name, folder in (("KAGGLEHUB_CACHE", "kagglehub"), ("HF_HOME", "huggingface")):
        if name not in env:
            found[name] = str(Path(cache) / folder)
    if offline:
        found.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return found
