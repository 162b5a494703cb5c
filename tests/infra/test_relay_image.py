"""relay/Dockerfile and its build context, read from the files Cloud Build uses (no Docker
daemon here): bytecode compiled at build time and kept, the Python of the functions, and a
context that holds what the image copies and none of what the test step writes beside it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.infra import dockerignore
from tests.infra.checks import DEFAULT, ROOT, Checkout

DOCKERFILE = ROOT / "relay" / "Dockerfile"
# The legacy builder reads only the context's root file; BuildKit prefers the Dockerfile's own.
ROOT_IGNORE = ROOT / ".dockerignore"
BUILDKIT_IGNORE = ROOT / "relay" / "Dockerfile.dockerignore"

# What cloudbuild.yaml's test step (make test) and a developer's machine leave in the
# workspace, and the rest of the repository: none of it belongs in the image.
NEVER_SENT = (
    ".venv/bin/python",
    ".venv/lib/python3.12/site-packages/grpc/__init__.py",
    ".venv/checkov/bin/checkov",
    ".devstack/firestore/data.json",
    "devstack/node_modules/firebase-tools/package.json",
    "devstack/emulators.py",
    "relay/node_modules/firebase/package.json",
    "relay/node_modules/.installed",
    "relay/package.json",
    "relay/package-lock.json",
    "relay/copy-vendor.mjs",
    "relay/Dockerfile",
    "node_modules/x/index.js",
    "tests/infra/checks.py",
    "bench/results/golden_path.json",
    "functions/main.py",
    "infra/build/functions-source.zip",
    "infra/apex.tfvars",
    ".git/HEAD",
    "cloudbuild.yaml",
    "shared/__pycache__/config.cpython-312.pyc",
    "relay/__pycache__/app.cpython-311.pyc",
    "shared/agents/__pycache__/pipeline.cpython-312.pyc",
)


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _runtime_version() -> str:
    """The functions' Python as X.Y (python312 -> 3.12)."""
    runtimes = {
        f.get("build_config", 0, "runtime")
        for f in Checkout(ROOT).module(DEFAULT).instances("google_cloudfunctions2_function")
    }
    assert len(runtimes) == 1, runtimes
    m = re.fullmatch(r"python3(\d+)", str(runtimes.pop()))
    assert m, runtimes
    return f"3.{m.group(1)}"


def test_the_image_runs_the_functions_python() -> None:
    (base,) = [arg for op, arg in _instructions() if op == "FROM"]
    assert base == f"python:{_runtime_version()}-slim"


def test_bytecode_is_compiled_at_build_time_and_nothing_forbids_it() -> None:
    steps = _instructions()
    env = " ".join(arg for op, arg in steps if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE" not in env
    runs = [arg for op, arg in steps if op == "RUN"]
    assert not [r for r in runs if "--no-compile" in r]
    # The dependencies, and the standard library the base image ships without bytecode.
    pip = [r for r in runs if "pip install" in r]
    assert len(pip) == 1
    assert re.search(
        rf"python -m compileall -q /usr/local/lib/python{_runtime_version()}\b", pip[0]
    )
    # The app's own code, after it is copied (WORKDIR /app).
    assert ("WORKDIR", "/app") in steps
    copied = max(i for i, (op, arg) in enumerate(steps) if op == "COPY")
    app = [
        i
        for i, (op, arg) in enumerate(steps)
        if op == "RUN" and "compileall" in arg and "/app/shared" in arg and "/app/relay" in arg
    ]
    assert app, "no RUN compiles /app/shared and /app/relay"
    assert app[0] > copied, "the app is compiled before it is copied"


def test_the_root_dockerignore_is_there_and_buildkits_says_the_same() -> None:
    assert ROOT_IGNORE.is_file(), "no /.dockerignore: the legacy builder would send everything"
    root_rules = [p.text for p in dockerignore.parse(ROOT_IGNORE)]
    assert root_rules == [p.text for p in dockerignore.parse(BUILDKIT_IGNORE)]


@pytest.mark.parametrize("ignore", [ROOT_IGNORE, BUILDKIT_IGNORE], ids=lambda p: p.name)
def test_the_context_leaves_out_the_workspace_and_the_rest_of_the_repository(ignore: Path) -> None:
    patterns = dockerignore.parse(ignore)
    assert [p for p in NEVER_SENT if dockerignore.sent(patterns, p)] == []


def _files(directory: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d not in ("node_modules", "__pycache__")]
        out += [Path(dirpath, f).relative_to(ROOT).as_posix() for f in filenames]
    return out


@pytest.mark.parametrize("ignore", [ROOT_IGNORE, BUILDKIT_IGNORE], ids=lambda p: p.name)
def test_the_context_holds_everything_the_image_copies(ignore: Path) -> None:
    patterns = dockerignore.parse(ignore)
    copies = [arg.split()[0] for op, arg in _instructions() if op == "COPY"]
    assert copies == ["requirements.txt", "shared/", "relay/"]
    build_only = {"relay/Dockerfile", "relay/Dockerfile.dockerignore", "relay/package.json"}
    build_only |= {"relay/package-lock.json", "relay/copy-vendor.mjs"}
    needed = ["requirements.txt", *_files(ROOT / "shared"), *_files(ROOT / "relay")]
    needed = [p for p in needed if p not in build_only and not p.endswith(".pyc")]
    # The chat page and the Firebase SDK it loads from the relay (committed, copied from
    # relay/node_modules by relay/copy-vendor.mjs): the image serves them.
    for page in ("relay/static/index.html", "relay/static/vendor/firebase/firebase-auth.js"):
        assert page in needed
    assert [p for p in needed if not dockerignore.sent(patterns, p)] == []


def test_the_matcher_follows_dockers_rules(tmp_path: Path) -> None:
    """The rules the two tests above rely on, each shown once."""
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*\n!keep/\nkeep/drop/\n**/*.tmp\n!keep/**/want.tmp\n/lead/x\n")
    patterns = dockerignore.parse(ignore)
    assert not dockerignore.sent(patterns, "top.txt")  # `*`: every top-level entry
    assert not dockerignore.sent(patterns, "other/deep/file.txt")  # ... and all below it
    assert dockerignore.sent(patterns, "keep/a/b.txt")  # `!keep/` re-includes the tree
    assert not dockerignore.sent(patterns, "keep/drop/c.txt")  # the last match decides
    assert not dockerignore.sent(patterns, "keep/a/x.tmp")  # `**` spans directories
    assert dockerignore.sent(patterns, "keep/a/b/want.tmp")
    assert [p.text for p in patterns][-1] == "lead/x"  # cleaned like a path
