"""Path globs over POSIX paths relative to a source root, with gitignore-like rules.

* ``*`` matches within one path segment, ``?`` one character, ``[abc]`` a class;
* ``**`` matches any number of segments (``hr/**`` is everything under ``hr``);
* a pattern without ``/`` matches the file name at any depth (``*.pdf``);
* a pattern ending in ``/`` names a directory and everything below it (``archive/``);
* a leading ``/`` anchors at the root (``/README.md`` but not ``docs/README.md``).

Matching is case-sensitive, like the file systems these trees live on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def _translate_segment(segment: str) -> str:
    """Regex for one path segment of a glob (no ``/`` inside)."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = segment[i + 1 : end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(f"[{'^/' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile one glob (see the module docstring) to a regex over relative POSIX paths."""
    if not pattern or not pattern.strip("/"):
        raise ValueError(f"empty glob {pattern!r}")
    directory = pattern.endswith("/")
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    segments = pattern.strip("/").split("/")
    parts: list[str] = []
    for index, seg in enumerate(segments):
        last = index == len(segments) - 1
        if seg == "**":
            # '**' alone spans zero or more whole segments (with their separators).
            parts.append("(?:.*)" if last else "(?:[^/]+/)*")
        else:
            parts.append(_translate_segment(seg) + ("" if last else "/"))
    body = "".join(parts)
    if directory:
        body += "/.*"
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"{prefix}{body}")


@dataclass(frozen=True)
class GlobSet:
    """A list of globs; ``matches`` is true when any of them matches."""

    patterns: tuple[str, ...]
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(compile_glob(p) for p in self.patterns))

    def matches(self, rel_path: str) -> bool:
        return any(rx.fullmatch(rel_path) for rx in self._compiled)

    def matches_path_or_parent(self, rel_path: str) -> bool:
        """True when the path or one of its parent directories matches (exclude semantics)."""
        if self.matches(rel_path):
            return True
        parts = rel_path.split("/")
        return any(self.matches("/".join(parts[:n])) for n in range(1, len(parts)))


def glob_matches(pattern: str, rel_path: str) -> bool:
    return compile_glob(pattern).fullmatch(rel_path) is not None


__all__ = ["GlobSet", "compile_glob", "glob_matches"]
