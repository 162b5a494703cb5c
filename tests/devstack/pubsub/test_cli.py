"""The `python -m devstack.pubsub` entry point."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(60)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.pubsub", "--host", "127.0.0.1", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_port_in_use_exits_non_zero(emulator_host):
    port = emulator_host.rsplit(":", 1)[1]
    proc = _start("--port", port)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode != 0
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert lines[-1]["severity"] == "ERROR"
    assert lines[-1]["message"] == "cannot listen"
    assert port in lines[-1]["address"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_logs_listening_and_stops_cleanly_on_signal(sig):
    proc = _start("--port", "0")
    assert proc.stderr is not None
    listening = json.loads(proc.stderr.readline())
    assert listening["severity"] == "INFO"
    assert listening["message"] == "listening"
    assert listening["port"] > 0
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert [json.loads(line)["message"] for line in rest.splitlines()] == ["stopping", "stopped"]
