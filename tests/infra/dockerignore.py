"""Which paths of a build context Docker sends, from a `.dockerignore` (no Docker daemon here).

The rules of Docker's matcher (moby/patternmatcher, which the legacy builder and BuildKit
share): a pattern is cleaned like a path (leading `/` dropped); `*` and `?` stay within one
path segment and `**` spans any number; `!` re-includes; the last pattern that matches
decides; a pattern matches a path or any of its parent directories; and a directory that is
excluded, with no `!` pattern below it, is not walked at all.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a `!` pattern: matching paths are sent again
    regex: re.Pattern[str]


def _regex(pattern: str) -> re.Pattern[str]:
    out = "^"
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*" and pattern[i + 1 : i + 2] == "*":
            i += 2
            if pattern[i : i + 1] == "/":
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            raise ValueError(f"character classes are not supported here: {pattern!r}")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def parse(path: Path) -> list[Pattern]:
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        text = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append(Pattern(text, exclusion, _regex(text)))
    return patterns


def _excluded(patterns: list[Pattern], path: str) -> bool:
    parents = path.split("/")[:-1]
    excluded = False
    for p in patterns:
        if p.exclusion != excluded:  # this pattern could not change the outcome
            continue
        match = bool(p.regex.match(path)) or any(
            p.regex.match("/".join(parents[: i + 1])) for i in range(len(parents))
        )
        if match:
            excluded = not p.exclusion
    return excluded


def sent(patterns: list[Pattern], path: str) -> bool:
    """Whether the file at `path` (relative to the context, with `/`) is in the context."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        directory = "/".join(parts[:i])
        walked_into = any(
            p.exclusion and (p.text + "/").startswith(directory + "/") for p in patterns
        )
        if _excluded(patterns, directory) and not walked_into:
            return False
    return not _excluded(patterns, path)
