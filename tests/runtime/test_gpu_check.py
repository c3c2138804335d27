"""scripts/gpu_check.sh refuses bad arguments before running anything (its full run is a device check)."""

import subprocess

import pytest

from ..conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "usage:"),
        (["out", "--device", "tpu"], "--device must be gpu or cpu"),
        (["out", "--epochs", "0"], "--epochs must be a positive integer"),
        (["out", "--bogus"], "usage:"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, arguments, message):
    arguments = [str(tmp_path / a) if a == "out" else a for a in arguments]
    result = subprocess.run(["bash", str(SCRIPT), *arguments], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "out").exists()
