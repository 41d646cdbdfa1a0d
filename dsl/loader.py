"""Read a spec file and everything it imports, in dependency order.

``import "path.net"`` is resolved against the importing file's folder first,
then against the block library: the data package ``netc_library``, which
setuptools maps to ``specs/`` in this repository and ships with ``specs/std/``
inside every install (wheel or editable), so ``import "std/inception.net"``
resolves from any folder.

Only regular files are read (a folder, a FIFO or a device is refused without
being opened for reading, so nothing blocks), at most ``max_bytes`` of them,
decoded as UTF-8 (a byte order mark is dropped; a bad byte is an error at its
line and column), and imports nest at most ``max_import_depth`` deep.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import stat
from pathlib import Path
from typing import BinaryIO

from dsl import ast
from dsl.errors import Span, SpecError, register_source
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
MAX_BYTES = 16 * 1024 * 1024  # a spec file larger than this is refused unread
MAX_IMPORT_DEPTH = 64

# Every file the last ``load`` read (resolved), so that ``netc compile`` never
# writes over one of them.
loaded: list[Path] = []


def load(
    path: str | Path, max_bytes: int = MAX_BYTES, max_import_depth: int = MAX_IMPORT_DEPTH
) -> list[ast.SpecFile]:
    """The root spec and its imports, each file once, imports before importers."""
    files: list[ast.SpecFile] = []
    loaded.clear()
    _Loader(max_bytes, max_import_depth).load(Path(path), None, [], {}, files)
    return files


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):  # outside the working folder, or it was deleted
        return str(path)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute() if path.is_absolute() else path


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _read_at_most(file: BinaryIO, limit: int) -> bytes:
    """The file's bytes, but no more than ``limit + 1`` (one more than allowed says it
    is too large), read in pieces: a limit of 2**62 (none) is not a buffer to allocate."""
    parts, size = [], 0
    while size <= limit:
        part = file.read(min(limit + 1 - size, 1 << 24))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def read_spec(path: Path, shown: str, span: Span | None, max_bytes: int = MAX_BYTES) -> str:
    """The text of one spec file, or a ``SpecError`` saying why it cannot be read."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise SpecError(
                f"cannot read {shown[:200]}...: the file name is too long", span
            ) from None
        raise SpecError(f"cannot read {shown}: {_reason(err)}", span) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"cannot read {shown}: it is a folder", span, hint="give a .net file")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(
                f"cannot read {shown}: it is not a regular file (a FIFO, a socket or a device)",
                span,
            )
        if info.st_size > max_bytes:
            raise SpecError(
                f"cannot read {shown}: {info.st_size:,} bytes is more than a spec may be "
                f"({max_bytes:,})",
                span,
                hint="raise the limit with --max-file-size",
            )
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = _read_at_most(file, max_bytes)
    except OSError as err:
        raise SpecError(f"cannot read {shown}: {_reason(err)}", span) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read
        raise SpecError(f"cannot read {shown}: more than {max_bytes:,} bytes", span)
    return decode(data, shown)


def decode(data: bytes, shown: str) -> str:
    """UTF-8 text (a leading byte order mark dropped); a bad byte is an error at its place."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        register_source(shown, data.decode("utf-8", "replace"))
        raise SpecError(
            f"invalid UTF-8: byte 0x{data[err.start]:02x} cannot start or continue a character",
            Span(shown, line, column, line, column + 1),
            hint="save the spec as UTF-8",
        ) from None


class _Loader:
    def __init__(self, max_bytes: int, max_import_depth: int):
        self.max_bytes = max_bytes
        self.max_import_depth = max_import_depth

    def load(
        self,
        path: Path,
        span: Span | None,
        stack: list[Path],
        seen: dict[Path, ast.SpecFile],
        files: list[ast.SpecFile],
    ) -> None:
        # Depth first, with an explicit stack of (file, its imports still to load).
        root = self._read(path, span, stack, seen)
        if root is None:
            return
        todo = [(path, root, list(root.imports))]
        while todo:
            file_path, spec, imports = todo[-1]
            if not imports:
                todo.pop()
                stack.pop()
                seen[_resolved(file_path)] = spec
                files.append(spec)
                continue
            imp = imports.pop(0)
            if len(stack) >= self.max_import_depth:
                raise SpecError(
                    f"imports nested too deeply: more than {self.max_import_depth} files deep",
                    imp.span,
                    hint="an import chain this long is almost certainly a mistake",
                )
            child_path = _resolve(imp, file_path)
            child = self._read(child_path, imp.span, stack, seen)
            if child is not None:
                todo.append((child_path, child, list(child.imports)))

    def _read(
        self, path: Path, span: Span | None, stack: list[Path], seen: dict[Path, ast.SpecFile]
    ) -> ast.SpecFile | None:
        key = _resolved(path)
        if key in stack:
            cycle = " -> ".join(_display(p) for p in stack[stack.index(key) :] + [key])
            raise SpecError(f"import cycle: {cycle}", span)
        if key in seen:
            return None
        shown = _display(path) if span else str(path)
        text = read_spec(path, shown, span, self.max_bytes)
        spec = parse(text, shown)
        loaded.append(key)
        stack.append(key)
        return spec


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a folder we may not search
        return False


def _resolve(imp: ast.Import, importer: Path) -> Path:
    candidates = [importer.parent / imp.path, STDLIB / imp.path]
    for candidate in candidates:
        if _is_file(candidate):
            return candidate
    if len(imp.path) > 255:
        raise SpecError(
            f'cannot find import "{imp.path[:60]}...": the path is too long ({len(imp.path):,} characters)',
            imp.span,
        )
    looked = ", ".join(dict.fromkeys(_display(c.parent) + "/" for c in candidates))
    hint = f"looked in {looked}"
    unsearchable = [c.parent for c in candidates if _unsearchable(c.parent)]
    if unsearchable:
        hint += f"; cannot search {', '.join(map(_display, unsearchable))} (permission denied)"
    raise SpecError(f'cannot find import "{imp.path}"', imp.span, hint=hint)


def _unsearchable(folder: Path) -> bool:
    try:
        return folder.is_dir() and not os.access(folder, os.X_OK)
    except OSError:
        return False
