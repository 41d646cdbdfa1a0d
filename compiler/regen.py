"""Regenerate generated/: the emitted source of every spec in specs/ that defines a network.

    python -m compiler.regen            # rewrite generated/
    python -m compiler.regen --check    # only compare; exit 1 if generated/ is stale

Each spec gives ``generated/<stem>.py`` (the training build) and
``generated/<stem>_deploy.py`` (the deploy build, optimised by every pass in
``compiler.passes``, with a loader for training checkpoints); the built-in
tables of LANGUAGE.md are rewritten too (``compiler.reference``). Specs are
compiled from the repository root with paths relative to it, so the bytes do
not depend on where this runs. tests/test_source.py runs the check, so CI fails on a stale
file.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated"


def network_specs() -> list[Path]:
    """specs/*.net files that define a network (the block library in specs/std/ does not)."""
    from dsl.parser import parse

    return [
        path
        for path in sorted(SPECS.glob("*.net"))
        if any(d.is_network for d in parse(path.read_text(encoding="utf-8"), str(path)).definitions)
    ]


def render_all() -> dict[str, str]:
    """File name in generated/ -> its text."""
    import compiler
    from compiler.backends.source import emit
    from compiler.passes import optimise

    files: dict[str, str] = {}
    with contextlib.chdir(ROOT):
        for path in network_specs():
            relative = path.relative_to(ROOT).as_posix()
            net = compiler.load(relative)
            files[f"{path.stem}.py"] = emit(net, source=relative)
            files[f"{path.stem}_deploy.py"] = emit(optimise(net), deploy=True, source=relative)
    return files


def stale(folder: Path | None = None) -> list[str]:
    """What differs between ``folder`` (generated/) and a fresh rendering: names of wrong,
    missing or extra files."""
    folder = folder or GENERATED
    files = render_all()
    present = {p.name for p in folder.glob("*.py")}
    wrong = [
        name
        for name, text in files.items()
        if name not in present or (folder / name).read_bytes() != text.encode("utf-8")
    ]
    return sorted(wrong + [name for name in present if name not in files])


def write_all(folder: Path | None = None) -> list[Path]:
    folder = folder or GENERATED
    folder.mkdir(parents=True, exist_ok=True)
    files = render_all()
    for old in folder.glob("*.py"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        target = folder / name
        target.write_bytes(text.encode("utf-8"))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compiler.regen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    from compiler import reference

    if args.check:
        wrong = [f"generated/{name}" for name in stale()]
        wrong += ["LANGUAGE.md (its built-in tables)"] if reference.stale() else []
        for name in wrong:
            print(f"{name} is stale", file=sys.stderr)
        if wrong:
            print("run: python -m compiler.regen", file=sys.stderr)
        return 1 if wrong else 0
    for path in write_all():
        print(f"wrote {path.relative_to(ROOT)}")
    if reference.write():
        print("wrote LANGUAGE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
