"""infra/package_functions.py: the function source bundle Terraform uploads by content hash."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.infra.checks import ROOT, Checkout

SCRIPT = ROOT / "infra" / "package_functions.py"


def package(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "functions").mkdir(parents=True)
    (root / "functions" / "main.py").write_text("import shared\n")
    (root / "functions" / "README.md").write_text("not deployed\n")
    (root / "shared" / "sub" / "__pycache__").mkdir(parents=True)
    (root / "shared" / "__init__.py").write_text("")
    (root / "shared" / "topology.yaml").write_text("topics: []\n")
    (root / "shared" / "sub" / "__init__.py").write_text("X = 1\n")
    (root / "shared" / "sub" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "requirements.txt").write_text("pydantic==2.14.4\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    return root


def test_bundle_layout_is_what_cloud_functions_needs(tmp_path: Path) -> None:
    root = small_tree(tmp_path)
    out = tmp_path / "bundle.zip"
    proc = package(root, out)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [
            "main.py",
            "requirements.txt",
            "shared/__init__.py",
            "shared/sub/__init__.py",
            "shared/topology.yaml",
        ]
        assert zf.read("shared/sub/__init__.py") == b"X = 1\n"
    assert proc.stdout.strip().endswith("sha256=" + hashlib.sha256(out.read_bytes()).hexdigest())


def test_same_source_same_bytes_whatever_the_file_times(tmp_path: Path) -> None:
    root = small_tree(tmp_path)
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    assert package(root, first).returncode == 0
    for path in root.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert package(root, second).returncode == 0
    assert first.read_bytes() == second.read_bytes()
    (root / "shared" / "sub" / "__init__.py").write_text("X = 2\n")
    assert package(root, second).returncode == 0
    assert first.read_bytes() != second.read_bytes()


def test_a_tree_without_main_py_fails_loudly(tmp_path: Path) -> None:
    root = small_tree(tmp_path)
    (root / "functions" / "main.py").unlink()
    proc = package(root, tmp_path / "x.zip")
    assert proc.returncode == 1
    assert "functions/main.py is missing" in proc.stderr


def test_the_repository_bundles_and_terraform_reads_that_path(tmp_path: Path) -> None:
    # The real tree: main.py, requirements.txt and shared/ (copied, so nothing is written
    # into the work tree).
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "functions", root / "functions")
    shutil.copytree(ROOT / "shared", root / "shared")
    shutil.copy(ROOT / "requirements.txt", root / "requirements.txt")
    proc = package(root, root / "infra" / "build" / "functions-source.zip")
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(root / "infra" / "build" / "functions-source.zip") as zf:
        names = zf.namelist()
    assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/topology.yaml"} <= set(
        names
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # functions.tf uploads exactly the file the script writes by default.
    module = Checkout(ROOT).module()
    assert (ROOT / "infra" / module.local("functions_source_zip")).resolve() == (
        ROOT / "infra" / "build" / "functions-source.zip"
    )
