"""TensorFlow's start-up chatter on stderr: captured while it imports, shown only when the import fails."""

import subprocess
import sys
from pathlib import Path

from ..conftest import REPO

# TensorFlow 2.21's libraries log through Abseil before it is initialized, whatever TF_CPP_MIN_LOG_LEVEL says: a
# stand-in that writes to file descriptor 2 at import, as they do, makes the check the same on any CPU.
CHATTY_PACKAGE = """import os
os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\\n")
print("a Python warning at import", file=__import__("sys").stderr)
{tail}
"""


def import_with_quiet_logs(tmp_path: Path, tail: str = "") -> subprocess.CompletedProcess:
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(CHATTY_PACKAGE.format(tail=tail))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from multibackend.runtime.backend import quiet_framework_logs\n"
        "quiet_framework_logs()\n"
        "import tensorflow\n"
        "print('imported', tensorflow.__loader__.__class__.__name__)\n"
        "print('stderr works after it', file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )


def test_tensorflow_s_import_writes_nothing_on_stderr_and_leaves_stderr_working(tmp_path):
    result = import_with_quiet_logs(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "imported SourceFileLoader\n"  # the package keeps its own loader
    assert result.stderr == "stderr works after it\n"


def test_a_failed_tensorflow_import_shows_what_it_wrote(tmp_path):
    result = import_with_quiet_logs(tmp_path, tail="raise ImportError('libtensorflow_framework.so.2: not found')")
    assert result.returncode == 1
    assert "oneDNN custom operations are on." in result.stderr and "a Python warning at import" in result.stderr
    assert result.stderr.strip().endswith("ImportError: libtensorflow_framework.so.2: not found")


def test_a_hidden_tensorflow_stays_hidden_whichever_comes_first():
    code = (
        "from multibackend.runtime.backend import hide_other_frameworks, quiet_framework_logs\n"
        "hide_other_frameworks('jax')\n"
        "quiet_framework_logs()\n"  # after the hiding: its finder comes first in sys.meta_path
        "try:\n    import tensorflow\nexcept ModuleNotFoundError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout == "No module named 'tensorflow' (hidden: not this job's backend)\n", result.stderr
