"""One download cache for every run: Keras's `get_file` in runs side by side fetches a file once, whole and
hash-checked; offline, a file the cache lacks fails the run at once by name. Downloads come from a local HTTP
server (no network here), which counts them."""

import hashlib
import http.server
import json
import threading
import time

import pytest

from ..conftest import QUICK_BACKEND, run_cli

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
CHUNKS = 16
CHUNK_SECONDS = 0.25  # the whole file takes 4 s: two runs that start together ask while it is still coming

FETCH_SCRIPT = """import time
import keras
open(__file__ + ".asked", "w").write(str(time.time()))
path = keras.utils.get_file("shared.bin", origin="{url}", file_hash="{digest}")
print("bytes", len(open(path, "rb").read()))
"""


class SlowServer(http.server.ThreadingHTTPServer):
    """Serves `PAYLOAD` at /shared.bin in slow chunks; counts the requests and when each answer started and ended."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SlowHandler)
        self.requests: list[tuple[str, float, float]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        started = time.time()
        if self.path != "/shared.bin":
            self.send_error(404)
            self.server.requests.append((self.path, started, time.time()))
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        size = len(PAYLOAD) // CHUNKS
        for index in range(CHUNKS):
            self.wfile.write(PAYLOAD[index * size : (index + 1) * size])
            self.wfile.flush()
            time.sleep(CHUNK_SECONDS)
        self.server.requests.append((self.path, started, time.time()))

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    serving = SlowServer()
    thread = threading.Thread(target=serving.serve_forever, daemon=True)
    thread.start()
    try:
        yield serving
    finally:
        serving.shutdown()
        serving.server_close()
        thread.join(timeout=10)


def test_runs_side_by_side_download_a_file_once_into_the_shared_cache(tmp_path, server):
    course = tmp_path / "course"
    course.mkdir()
    script = FETCH_SCRIPT.format(url=f"{server.url}/shared.bin", digest=hashlib.sha256(PAYLOAD).hexdigest())
    for name in ("first.py", "second.py"):
        (course / name).write_text(script)
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    result = run_cli(
        "verify",
        str(course),
        "--backends",
        QUICK_BACKEND,
        "--jobs",
        "2",
        "--list-datasets",
        "--data-cache",
        str(cache),
        "--out",
        str(out),
        env={"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [(path, _, answered)] = server.requests  # fetched once for both runs
    asked = [float((course / f"{name}.asked").read_text()) for name in ("first.py", "second.py")]
    assert path == "/shared.bin" and max(asked) < answered  # the second asked while the first was downloading
    assert (cache / "datasets" / "shared.bin").read_bytes() == PAYLOAD  # whole, and its hash was checked
    payload = json.loads((out / "verify.json").read_text())
    runs = payload["cells"]
    assert all(run["status"] == "passed" and run["last_line"] == "" for run in runs)
    assert sorted(run["downloads"][0]["downloaded"] for run in runs) == [False, True]
    assert payload["data_cache"] == str(cache.resolve())
    assert f"{server.url}/shared.bin: downloaded\n" in result.stdout


def test_offline_a_file_the_cache_lacks_fails_at_once_by_name(tmp_path, server):
    script = tmp_path / "needs_data.py"
    script.write_text('import keras\nkeras.utils.get_file("absent.bin", origin="' + server.url + '/absent.bin")\n')
    started = time.monotonic()
    result = run_cli(
        "verify",
        str(script),
        "--backends",
        QUICK_BACKEND,
        "--offline",
        "--list-datasets",
        "--data-cache",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 60 and server.requests == []  # no network tried, no minutes lost
    payload = json.loads((tmp_path / "out" / "verify.json").read_text())
    [run] = payload["cells"]
    assert run["error"].startswith(f"DatasetMissing: dataset missing: {server.url}/absent.bin (not in the cache")
    assert [(entry["file"], entry["downloaded"], entry["missing"]) for entry in run["downloads"]] == [
        ("absent.bin", False, True)
    ]
    assert payload["verdicts"][str(script)] == "not verified"
    assert f"dataset missing: {server.url}/absent.bin" in payload["verdict_details"][str(script)]
    assert result.stdout.split("datasets the runs asked for:\n")[1].startswith(f"{server.url}/absent.bin: missing\n")
