"""Read a spec file and everything it imports, in dependency order.

``import "path.net"`` is resolved against the importing file's folder first,
then against the block library: the data package ``netc_library``, which
setuptools maps to ``specs/`` in this repository and ships with ``specs/std/``
inside every install (wheel or editable), so ``import "std/inception.net"``
resolves from any folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dsl import ast
from dsl.errors import Span, SpecError
from dsl.parser import parse


def _library() -> Path:
    """The installed block library's folder (the one holding ``std/``).

    Read from the package's search path rather than importlib.resources.files:
    an editable install makes it a namespace package whose path also holds
    setuptools' placeholder entry, which files() rejects on Python 3.11.
    """
    spec = importlib.util.find_spec("netc_library")
    locations = spec.submodule_search_locations or [] if spec else []
    folders = [Path(p) for p in locations if Path(p).is_dir()]
    if not folders:
        raise RuntimeError("netc is not installed: run `pip install -e .` (see README)")
    return folders[0]


STDLIB = _library()


def load(path: str | Path) -> list[ast.SpecFile]:
    """The root spec and its imports, each file once, imports before importers."""
    files: list[ast.SpecFile] = []
    _load(Path(path), None, [], {}, files)
    return files


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load(
    path: Path,
    span: Span | None,
    stack: list[Path],
    seen: dict[Path, ast.SpecFile],
    files: list[ast.SpecFile],
) -> None:
    key = path.resolve()
    if key in stack:
        cycle = " -> ".join(_display(p) for p in stack[stack.index(key) :] + [key])
        raise SpecError(f"import cycle: {cycle}", span)
    if key in seen:
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SpecError(f"cannot read {_display(path)}: {reason}", span) from None
    spec = parse(text, _display(path) if span else str(path))
    stack.append(key)
    for imp in spec.imports:
        _load(_resolve(imp, path), imp.span, stack, seen, files)
    stack.pop()
    seen[key] = spec
    files.append(spec)


def _resolve(imp: ast.Import, importer: Path) -> Path:
    candidates = [importer.parent / imp.path, STDLIB / imp.path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(dict.fromkeys(_display(c.parent) + "/" for c in candidates))
    raise SpecError(f'cannot find import "{imp.path}"', imp.span, hint=f"looked in {looked}")
