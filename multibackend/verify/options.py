"""verify's run options, declared once: `multibackend verify` and the pytest plugin (`--multibackend-*`) take the
same options with the same types, checks and defaults, and build `VerifyOptions` the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from multibackend.runtime.errors import UsageError
from multibackend.runtime.numbers import non_negative_float, positive_float, seed_int
from multibackend.verify.cells import SHELL_MODES
from multibackend.verify.outputs import COMPARE_MODES, DEFAULT_ATOL, DEFAULT_RTOL
from multibackend.verify.shards import Shard, parse_shard


def shard_argument(text: str) -> Shard:
    """argparse type: K/N."""
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def sample_sizes(text: str) -> tuple[int, int]:
    """argparse type: TRAIN,TEST, two positive integers."""
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"must be two positive integers TRAIN,TEST, got {text!r}")
    return int(parts[0]), int(parts[1])


def variable_name(text: str) -> str:
    """argparse type: an environment variable's name, or an fnmatch pattern of names."""
    from multibackend.verify.environment import check_pass_env

    try:
        return check_pass_env([text])[0]
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix(f"--pass-env {text!r}: ")) from None


@dataclass(frozen=True)
class RunOption:
    """One option: its name without dashes (`timeout`: `--timeout`, `--multibackend-timeout`) and its argparse
    keywords (type, default, choices, action, metavar, help)."""

    name: str
    keywords: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


RUN_OPTIONS = (
    RunOption(
        "device",
        {
            "choices": ("auto", "cpu", "gpu"),
            "default": "auto",
            "help": "where each run's backend computes: auto, the GPU where the backend finds one (its own device "
            "logic decides), else the CPU; a run that asked for the GPU and ran on the CPU is 'wrong device', "
            "never passed (default: auto)",
        },
    ),
    RunOption(
        "timeout", {"type": positive_float, "default": 600, "help": "seconds per file and backend (default: 600)"}
    ),
    RunOption(
        "offline-datasets",
        {
            "choices": ("auto", "on", "off"),
            "default": "auto",
            "help": "serve keras.datasets.mnist.load_data() from the verified local copy "
            "(auto: when the download host is unreachable; default: auto)",
        },
    ),
    RunOption(
        "compare-outputs",
        {
            "choices": COMPARE_MODES,
            "default": COMPARE_MODES[0],
            "help": "which notebook cells' stored outputs are compared: all (nbval) but those marked "
            "NBVAL_IGNORE_OUTPUT, only those marked NBVAL_CHECK_OUTPUT (nbval-lax), or off (default: all)",
        },
    ),
    RunOption(
        "rtol",
        {
            "type": non_negative_float,
            "default": DEFAULT_RTOL,
            "help": f"relative tolerance for numbers that are not integers (default: {DEFAULT_RTOL:g})",
        },
    ),
    RunOption(
        "atol",
        {
            "type": non_negative_float,
            "default": DEFAULT_ATOL,
            "help": f"absolute tolerance for numbers that are not integers (default: {DEFAULT_ATOL:g}: the course's "
            "MNIST accuracy on any backend passes, one 1.5 points lower fails)",
        },
    ),
    RunOption(
        "smoke",
        {
            "action": "store_true",
            "help": "a quick check that everything runs: every epoch of fit, and every evaluate, at most 16 steps "
            "(Keras's KERAS_MAX_STEPS_PER_EPOCH; the epochs as written; predict whole); stored outputs compared "
            "only before the first cell that trains",
        },
    ),
    RunOption(
        "smoke-sample",
        {
            "type": sample_sizes,
            "metavar": "TRAIN,TEST",
            "help": "with --smoke: keras.datasets.mnist.load_data() (served offline) gives only the first TRAIN "
            "training and TEST test images, so hand-written training loops are short too; code that splits the data "
            "by index (images[10000:]) then breaks",
        },
    ),
    RunOption(
        "seed",
        {
            "type": seed_int,
            "help": "seed Keras's random generators in each run as Keras is imported (keras.utils.set_random_seed), "
            "so that reruns and shards print the same numbers (default: as the file does)",
        },
    ),
    RunOption(
        "data-cache",
        {
            "metavar": "DIR",
            "help": "the download cache every run shares: keras.utils.get_file (every keras.datasets loader), "
            "kagglehub and Hugging Face read and fill it, one run at a time per file (default: the caller's Keras "
            "folder, $KERAS_HOME or ~/.keras)",
        },
    ),
    RunOption(
        "offline",
        {
            "action": "store_true",
            "help": "no downloads: a file the cache lacks fails the run at once, naming it (the verdict: not "
            "verified, dataset missing)",
        },
    ),
    RunOption(
        "keep-going",
        {
            "action": "store_true",
            "help": "run a notebook's cells after a failing one (as nbclient's allow_errors) and report every failing "
            "cell, those that fail only after an earlier error marked so; the run still fails",
        },
    ),
    RunOption(
        "keep-executed",
        {
            "action": "store_true",
            "help": "keep each run's executed notebook and the end of its output in OUT/executed/ (after a timeout "
            "the output is kept in any case)",
        },
    ),
    RunOption(
        "respect-backend-pins",
        {
            "action": "store_true",
            "help": "run files that set KERAS_BACKEND themselves as written; a run pinned to another backend is "
            "reported as pinned, never as passed (default: the backend asked for wins)",
        },
    ),
    RunOption(
        "shell",
        {
            "choices": SHELL_MODES,
            "default": SHELL_MODES[0],
            "help": "skip-installs: shell escapes that install packages are not run, and reported, and pip refuses "
            "to install or uninstall however it is started; run: everything as written, this environment first on "
            "PATH (default: skip-installs)",
        },
    ),
    RunOption(
        "pass-env",
        {
            "type": variable_name,
            "action": "append",
            "default": [],
            "metavar": "NAME",
            "help": "also give each run this variable of the caller's environment (repeatable; fnmatch patterns such "
            "as 'KAGGLE_*'); by default a run gets PATH, locale, temporary folders, proxies, certificates, device and "
            "thread settings and the backends' own variables, never the caller's other variables",
        },
    ),
    RunOption(
        "shard",
        {
            "type": shard_argument,
            "metavar": "K/N",
            "help": "run only the K-th of N balanced shares of the (file, backend) runs, e.g. one CI job each; "
            "`verify merge` joins the shards' results",
        },
    ),
    RunOption(
        "durations-from",
        {
            "metavar": "VERIFY_JSON",
            "help": "with --shard: balance the shares by the seconds each run took in this earlier verify.json",
        },
    ),
)


def add_run_options(add: Callable[..., object], prefix: str = "") -> None:
    """Declares every run option through `add` (`ArgumentParser.add_argument`, or a pytest group's `addoption`).

    Args:
        add: The function that declares one option from its flag and argparse keywords.
        prefix: Put before each name (`multibackend-` in pytest).
    """
    for option in RUN_OPTIONS:
        keywords = dict(option.keywords)
        if prefix:
            keywords["dest"] = (prefix + option.name).replace("-", "_")
        add(f"--{prefix}{option.name}", **keywords)


def data_cache(given: str | None) -> str:
    """The download cache's absolute path: as given, else the caller's Keras folder (where Keras itself caches)."""
    import os
    from pathlib import Path

    folder = Path(given or os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--data-cache {given or folder}: not a folder")
    return str(folder.resolve())


def build_options(value: Callable[[str], object], *, jobs: int):
    """`VerifyOptions` from the run options' values, checked together.

    Args:
        value: The value of an option by its `dest` (`timeout`, `smoke_sample`, ...).
        jobs: Runs side by side.

    Returns:
        (`VerifyOptions`, the shard or None, the earlier durations or None).

    Raises:
        UsageError: for options that do not go together, or a `--durations-from` file that cannot be used.
    """
    from multibackend.course.offline import resolve_option
    from multibackend.runtime.devices import nvidia_driver_present
    from multibackend.verify.model import OutputCheck, VerifyOptions
    from multibackend.verify.shards import earlier_durations

    if value("durations_from") and not value("shard"):
        raise UsageError("--durations-from needs --shard (it balances the shares)")
    if value("smoke_sample") and not value("smoke"):
        raise UsageError("--smoke-sample needs --smoke (a full run serves the whole dataset)")
    durations = earlier_durations(value("durations_from")) if value("durations_from") else None
    if value("device") == "gpu" and not nvidia_driver_present():
        raise UsageError("--device gpu: this machine has no NVIDIA GPU driver (use --device auto or cpu)")
    offline = resolve_option(value("offline_datasets"))
    if value("smoke_sample") and not offline:
        raise UsageError("--smoke-sample needs the offline datasets (--offline-datasets on): only those are sliced")
    options = VerifyOptions(
        timeout=value("timeout"),
        offline=offline,
        jobs=jobs,
        smoke=value("smoke"),
        smoke_sample=value("smoke_sample"),
        seed=value("seed"),
        respect_pins=value("respect_backend_pins"),
        keep_going=value("keep_going"),
        data_cache=data_cache(value("data_cache")),
        offline_downloads=value("offline"),
        keep_executed=value("keep_executed"),
        shell=value("shell"),
        device=value("device"),
        pass_env=tuple(dict.fromkeys(value("pass_env") or ())),
        check=OutputCheck(value("compare_outputs"), rtol=value("rtol"), atol=value("atol")),
    )
    return options, value("shard"), durations
