"""``netc builtins`` and ``netc fmt``: the language's own commands.

Registered on the ``netc`` group by compiler/cli.py. Neither imports torch.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import click

from compiler.budgets import DEFAULT
from dsl.errors import SpecError


@click.command(name="builtins")
@click.option("--markdown", is_flag=True, help="Print the Markdown tables of LANGUAGE.md.")
def builtins_command(markdown: bool) -> None:
    """List every built-in layer and init scheme: arguments, types, defaults.

    A table on a terminal, aligned plain text otherwise."""
    from compiler import reference

    if markdown:
        click.echo(reference.markdown(), nl=False)
        return
    sections = [("layer", reference.rows()), ("init scheme", reference.init_rows())]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        from compiler.display import use_colour

        console = Console(color_system="auto" if use_colour() else None)
        for first, rows in sections:
            table = Table(first, *reference.HEADER)
            for row in rows:
                lines = reference.cells(row)
                for i, line in enumerate(lines):
                    table.add_row(*line, end_section=i == len(lines) - 1)
            console.print(table)
        return
    for index, (first, rows) in enumerate(sections):
        lines = [(first, *reference.HEADER)]
        lines += [line for row in rows for line in reference.cells(row)]
        widths = [max(len(line[i]) for line in lines) for i in range(5)]
        if index:
            click.echo()
        for line in lines:
            click.echo("  ".join([*(v.ljust(w) for v, w in zip(line, widths)), line[5]]).rstrip())


@click.command(name="fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--check", is_flag=True, help="Change nothing; list the files that would change, exit 1 if any."
)
@click.option("--diff", "show_diff", is_flag=True, help="Change nothing; print a unified diff.")
@click.option(
    "--stdout", "to_stdout", is_flag=True, help="Change nothing; print the formatted text."
)
@click.option(
    "--max-file-size",
    type=click.IntRange(min=0),
    default=DEFAULT.max_file_size,
    metavar="N",
    help=f"Read at most N bytes of a file [default: {DEFAULT.max_file_size:,}; 0: none].",
)
def fmt_command(
    paths: tuple[str, ...], check: bool, show_diff: bool, to_stdout: bool, max_file_size: int
) -> None:
    """Format .net files in place (folders: every .net file under them).

    Canonical layout, comments kept; a file that does not parse is reported
    and left as it was."""
    from dsl.fmt import format_text

    files = _spec_files(paths)
    changed, failed = [], 0
    for path in files:
        try:
            text = _read(path, max_file_size or 2**62)  # 0: no limit, as for check
            formatted = format_text(text, str(path))
        except SpecError as err:  # reported; the file is left as it was
            click.echo(err.render(), err=True)
            failed += 1
            continue
        if to_stdout:
            click.echo(formatted, nl=False)
            continue
        if formatted == text:
            continue
        changed.append(path)
        if show_diff:
            diff = difflib.unified_diff(
                text.splitlines(keepends=True),
                formatted.splitlines(keepends=True),
                f"{path} (original)",
                f"{path} (formatted)",
            )
            click.echo("".join(diff), nl=False)
        elif check:
            click.echo(f"would reformat {path}")
        else:
            _replace(path, formatted)
            click.echo(f"reformatted {path}")
    if not (to_stdout or changed or failed) and check:
        click.echo(f"{len(files)} file{'s' * (len(files) != 1)} already formatted")
    unchanged = len(files) - len(changed) - failed
    if not (to_stdout or check or show_diff) and unchanged:
        click.echo(f"{unchanged} file{'s' * (unchanged != 1)} left unchanged")
    if failed or ((check or show_diff) and changed):
        raise click.exceptions.Exit(1)


def _read(path: Path, max_bytes: int = DEFAULT.max_file_size) -> str:
    """The file's text as ``netc check`` reads it (a FIFO or a device refused unread, a
    bad byte an error at its line and column), with universal newlines."""
    from dsl.loader import read_spec

    text = read_spec(path, str(path), None, max_bytes)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _spec_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        found = sorted(path.rglob("*.net")) if path.is_dir() else [path]
        files.extend(p for p in found if p not in files)
    return files


def _replace(path: Path, text: str) -> None:
    """Write ``text`` over ``path`` through a temporary file in its folder, keeping its
    mode; through a symbolic link, the file it points to."""
    import tempfile

    path = path.resolve()

    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise SpecError(f"cannot write to folder {path.parent}: {err.strerror}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise SpecError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
