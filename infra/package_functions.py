"""Packages the Cloud Functions source bundle: one zip for every function.

Layout at the zip's root, as Cloud Functions' Python runtime wants it:

    main.py (and any other functions/*.py)   the entry points
    requirements.txt                          the repository's pinned runtime dependencies
    shared/...                                the package every function imports

The zip is reproducible: entries in sorted order, stored uncompressed, with a fixed
timestamp and fixed permissions, no __pycache__ or .pyc. The same source gives the same
bytes, so Terraform (functions.tf) names the uploaded object by the zip's SHA-256 and an
unchanged tree redeploys nothing.

    python3 infra/package_functions.py            # -> infra/build/functions-source.zip
    python3 infra/package_functions.py --out X.zip --root /path/to/checkout
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("infra/build/functions-source.zip")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


class PackagingError(RuntimeError):
    """The tree cannot make a working bundle; the message says what is missing."""


def bundle_entries(root: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) for every file of the bundle, sorted by name."""
    functions = root / "functions"
    if not (functions / "main.py").is_file():
        raise PackagingError(f"{functions / 'main.py'} is missing: nothing to deploy")
    requirements = root / "requirements.txt"
    if not requirements.is_file():
        raise PackagingError(f"{requirements} is missing: the functions' dependencies")
    shared = root / "shared"
    if not (shared / "__init__.py").is_file():
        raise PackagingError(f"{shared / '__init__.py'} is missing: the functions import shared/")

    entries = [(p.name, p) for p in functions.glob("*.py") if p.is_file()]
    entries.append(("requirements.txt", requirements))
    for path in shared.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or path.suffix in SKIPPED_SUFFIXES:
            continue
        if SKIPPED_DIRS.intersection(rel.parts):
            continue
        entries.append((rel.as_posix(), path))
    return sorted(entries)


def write_bundle(root: Path, out: Path) -> str:
    """Writes the zip and returns its SHA-256 (hex)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, path in bundle_entries(root):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            # Stored, not deflated: the bytes then depend on nothing but the files (zlib
            # versions differ in their output), and the bundle is small.
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, so the permissions above are read as such
            zf.writestr(info, path.read_bytes())
    tmp.replace(out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository checkout")
    parser.add_argument("--out", type=Path, default=None, help=f"zip path (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    out: Path = args.out if args.out is not None else root / DEFAULT_OUT
    try:
        digest = write_bundle(root, out)
    except PackagingError as e:
        print(f"package_functions: {e}", file=sys.stderr)
        return 1
    print(f"{out} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
