"""Adversarial inputs for `multibackend-bench`."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.adversarial


def test_the_benchmark_refuses_an_output_file_too(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "multibackend.bench", "--out", str(tmp_path / "a-file")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "is a file" in result.stderr
