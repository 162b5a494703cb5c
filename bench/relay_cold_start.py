"""The relay image's start-up imports with and without bytecode (docs/benchmarks.md).

What `relay/Dockerfile` changes, measured without Docker. The official `python:3.12-slim`
image ships its standard library without bytecode (its build deletes every `.pyc`, and the
test suites), and the old relay image added none: `pip install --no-compile` and
`PYTHONDONTWRITEBYTECODE=1`, so every cold start compiled the standard library, grpc, the
Google clients, pydantic and the app again. This script copies an interpreter of the image's
version the way that image lays it out (no `.pyc`, no test suites), installs
`requirements.txt` into it as the old image did, adds `shared/` and `relay/`, and makes a
second copy compiled the way the new image is (`compileall` of the standard library with
site-packages, and of the app), and a third with site-packages and the app compiled but not
the standard library (what it adds). Each run is a fresh `python -c "import relay.__main__"` (the
import chain of the image's `python -m relay`) with `PYTHONDONTWRITEBYTECODE=1`, so the
uncompiled copy stays uncompiled; the copies alternate, after one warm-up each.

    python3 -m bench.relay_cold_start --python ~/.pyenv/versions/3.12.1/bin/python3.12 --runs 9

Needs the package index (pip installs `requirements.txt`) and ~1 GB in the temporary directory.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = "import relay.__main__"
# What the official image's build removes from its Python (docker-library/python).
IMAGE_REMOVES = ("__pycache__", "*.pyc", "*.pyo", "test", "tests", "idle_test", "libpython*.a")
# The caller's environment (pip's settings among it), less what would point Python elsewhere.
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")},
    "PYTHONDONTWRITEBYTECODE": "1",
}


def output(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout.strip()


def pyc_count(tree: Path) -> int:
    return sum(1 for _ in tree.rglob("*.pyc"))


class Copy:
    """An interpreter tree laid out like the image's /usr/local, and the app beside it."""

    def __init__(self, root: Path, executable_name: str) -> None:
        self.root = root
        self.python = root / "python" / "bin" / executable_name
        self.app = root / "app"

    def run(self, *args: str) -> str:
        return output([str(self.python), *args], cwd=self.app)


def prepare(python: str, work: Path) -> dict[str, Copy]:
    """The old image's layout (no bytecode anywhere), the new one's (compiled), and the new
    one without the standard library's bytecode."""
    prefix = Path(output([python, "-c", "import sys; print(sys.base_prefix)"]))
    plain = Copy(work / "plain", Path(python).name)
    shutil.copytree(
        prefix, plain.root / "python", symlinks=True, ignore=shutil.ignore_patterns(*IMAGE_REMOVES)
    )
    ignore_app = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")
    for package in ("shared", "relay"):
        shutil.copytree(ROOT / package, plain.app / package, ignore=ignore_app)
    # The copy must run from itself (its own standard library and site-packages).
    if Path(plain.run("-c", "import sys; print(sys.prefix)")) != plain.root / "python":
        raise SystemExit(f"{plain.python} does not run from its own tree")
    plain.run("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
              "-r", str(ROOT / "requirements.txt"))  # fmt: skip
    if (n := pyc_count(plain.root)) != 0:
        raise SystemExit(f"{plain.root} should hold no bytecode, found {n} .pyc files")

    compiled = Copy(work / "compiled", Path(python).name)
    shutil.copytree(plain.root, compiled.root, symlinks=True)
    stdlib = compiled.run("-c", "import sysconfig; print(sysconfig.get_path('stdlib'))")
    compiled.run("-m", "compileall", "-q", stdlib, str(compiled.app))

    partial = Copy(work / "partial", Path(python).name)
    shutil.copytree(plain.root, partial.root, symlinks=True)
    packages = partial.run("-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    partial.run("-m", "compileall", "-q", packages, str(partial.app))
    return {
        "no bytecode (old image)": plain,
        "compiled (new image)": compiled,
        "compiled but the standard library": partial,
    }


def timed_import(copy: Copy) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one fresh interpreter importing the app.
    The CPU time is what a dedicated vCPU would spend, less disturbed by a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    copy.run("-c", IMPORT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--python", required=True, help="an interpreter of the image's version")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-imports-") as tmp:
        copies = prepare(args.python, Path(tmp))
        plain = copies["no bytecode (old image)"]
        version = plain.run("--version")
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in copies}
        for copy in copies.values():
            timed_import(copy)  # warm-up: the file cache, not counted
        for _ in range(args.runs):
            for label, copy in copies.items():
                times[label].append(timed_import(copy))
        if pyc_count(plain.root) != 0:
            raise SystemExit("the uncompiled copy gained bytecode during the runs")
    print(f"`{IMPORT}`, {version}, {args.runs} runs each, alternating; median (range)")
    print("| image | wall s | x old | CPU s | x old |")
    print("|---|---|---|---|---|")
    base = [statistics.median(t[k] for t in times["no bytecode (old image)"]) for k in (0, 1)]
    for label, runs in times.items():
        cells = []
        for k in (0, 1):
            values = [t[k] for t in runs]
            med = statistics.median(values)
            cells += [f"{med:.2f} ({min(values):.2f}-{max(values):.2f})", f"{med / base[k]:.2f}"]
        print(f"| {label} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
