"""Coverage-guided fuzzing of netc's front end with atheris: ``python bench/fuzz_atheris.py``.

atheris (libFuzzer for Python) is a development tool, not a netc dependency::

    pip install atheris
    python bench/fuzz_atheris.py -max_total_time=600            # ten minutes
    python bench/fuzz_atheris.py --source --fmt -runs=20000     # the source backend and fmt too
    python bench/fuzz_atheris.py --replay FILE...               # rerun saved inputs, no atheris needed

Each input is the bytes of one spec file. It is written to a scratch folder and
run through what ``netc check`` does: read and decode (``dsl.loader``), parse
(Lark), elaborate within the default budgets and infer every shape
(``compiler.load``); ``import "std/..."`` resolves to the shipped block library.
With ``--source``, an accepted network is also emitted as PyTorch source (its
training build and its optimised deploy build; not formatted, so no ruff process
per input) and Python must compile the text. With ``--fmt``, the text goes
through ``netc fmt``'s reader and formatter too, and formatting the result again
must change nothing.

A finding is anything but an accepted spec or one positioned ``SpecError``
(``file:line:col: error:``, then the source line and a caret, at most 20,000
characters): any other exception, an error with no position, an error whose
rendering lacks the line and caret, generated source that does not compile, or
a formatting that a second run changes. Each distinct finding (what the harness
saw, or the exception's type and innermost netc frame) is printed once, with the
file its first input was saved to; every failing input is saved in
``--findings``, to be rerun with ``--replay``. Fuzzing goes on after a finding;
``--stop`` lets atheris stop at the first one instead, as libFuzzer does. A hang
ends the run through libFuzzer's ``-timeout`` (30 s unless given). Every minute,
and at the end of ``-runs`` or ``-max_total_time`` (handled here, so that it is
reached), it prints the executions and the count of each outcome; at the end,
the findings too, and it exits with status 1 if there were any.

The corpus (``--corpus``, a folder kept between runs) starts from the shipped
specs, ``specs/*.net`` and ``specs/std/*.net``; libFuzzer adds to it every input
that reaches new code. A dictionary of the tokens those specs use is passed with
``-dict`` (unless given). Half the mutations are libFuzzer's, on bytes; the
other half replace, repeat, swap or drop whole tokens (``--bytes-only``: none of
those). Every other argument goes to libFuzzer (``-max_total_time``, ``-runs``,
``-max_len``, ``-seed``; ``-help=1`` lists them). Run it under ``nice`` on a
shared machine.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

SEEDS = sorted((REPO / "specs").glob("*.net")) + sorted((REPO / "specs" / "std").glob("*.net"))
WORK = Path(tempfile.gettempdir()) / "netc-atheris"
# What an input runs through; netc imports most of it lazily, so it is imported up front.
INSTRUMENTED = [
    "dsl.loader",
    "dsl.fmt",
    "compiler.elaborate",
    "compiler.budgets",
    "compiler.lang_cli",
    "compiler.passes",
    "compiler.backends.source.emitter",
    "compiler.backends.source.render",
]
MAX_MESSAGE = 20_000  # characters, as in tests/fuzzing.py
_EXCERPT = re.compile(r"\s*\d+ \| .*\n\s*\| *\^+$")


class Finding(Exception):
    """Not an exception of netc's: what the harness itself found wrong."""


class Harness:
    def __init__(self, scratch: Path, findings: Path, source: bool, fmt: bool, stop: bool):
        self.path = scratch / "spec.net"
        self.findings = findings
        self.source, self.fmt, self.stop = source, fmt, stop
        self.max_runs, self.max_time = 0, 0.0  # 0: no limit (-runs, -max_total_time)
        self.counts: collections.Counter[str] = collections.Counter()
        self.seen: dict[str, Path] = {}
        self.began = self.shown = time.monotonic()

    def one_input(self, data: bytes) -> None:
        try:
            self.counts[self.run(data)] += 1
        except Exception as exc:  # every escape is a finding
            self.counts["finding"] += 1
            self.report(data, exc)
            if self.stop:
                raise
        if self.done():
            self.finish()
        if time.monotonic() - self.shown > 60:  # a line a minute, in case the run is killed
            self.shown = time.monotonic()
            print(f"\n{self.summary().splitlines()[0]}", file=sys.stderr, flush=True)

    def run_one(self, data: bytes) -> str:
        """One input's outcome, in words (``--replay``)."""
        try:
            outcome = self.run(data)
            self.counts[outcome] += 1
            return outcome
        except Exception as exc:  # noqa: BLE001 -- every escape is a finding
            self.counts["finding"] += 1
            self.report(data, exc)
            own = isinstance(exc, Finding)  # its message says what it is
            return f"finding: {first_line(exc) if own else f'{where(exc)}: {first_line(exc)}'}"

    def done(self) -> bool:
        runs = sum(self.counts.values())
        if self.max_runs and runs >= self.max_runs:
            return True
        return bool(self.max_time) and time.monotonic() - self.began >= self.max_time

    def finish(self) -> None:
        """Print the summary and end the process: libFuzzer's own end skips Python's."""
        print(f"\n{self.summary()}", file=sys.stderr, flush=True)
        shutil.rmtree(self.path.parent, ignore_errors=True)
        os._exit(1 if self.seen else 0)

    def run(self, data: bytes) -> str:
        import compiler
        from dsl.errors import SpecError

        self.path.write_bytes(data)
        if self.fmt:
            self.format()
        try:
            net = compiler.load(self.path)
        except SpecError as err:
            check_rendering(err)
            return "error"
        if self.source:
            emit(net, str(self.path))
        return "ok"

    def format(self) -> None:
        from compiler.lang_cli import _read
        from dsl.errors import SpecError
        from dsl.fmt import format_text

        try:
            once = format_text(_read(self.path), str(self.path))
        except SpecError as err:
            check_rendering(err)
            return
        try:
            again = format_text(once, str(self.path))
        except SpecError as err:
            raise Finding(f"fmt's output does not parse: {err.message}") from None
        if again != once:
            raise Finding("fmt is not idempotent")

    def report(self, data: bytes, exc: BaseException) -> None:
        """Save the input (every one, for ``--replay``); print each distinct finding once."""
        signature = where(exc)
        self.findings.mkdir(parents=True, exist_ok=True)
        saved = self.findings / f"{hashlib.sha1(data).hexdigest()[:16]}.net"
        saved.write_bytes(data)
        if signature in self.seen:
            return
        self.seen[signature] = saved
        print(
            f"\n#### finding {len(self.seen)}: {signature}\n     {first_line(exc)}\n     input: {saved}",
            file=sys.stderr,
            flush=True,
        )

    def summary(self) -> str:
        total = sum(self.counts.values())
        seconds = time.monotonic() - self.began
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(self.counts.items()))
        lines = [
            f"{total:,} executions in {seconds:.0f} s ({total / max(seconds, 1e-9):.1f}/s): {counts}",
            f"distinct findings: {len(self.seen)}",
        ]
        lines += [f"  {signature}\n    {saved}" for signature, saved in self.seen.items()]
        return "\n".join(lines)


def check_rendering(err) -> None:
    """A positioned error, rendered with its source line and caret, not too long."""
    if err.span is None:
        raise Finding(f"an error with no position: {err.message}")
    rendered = err.render()
    lines = rendered.split("\n")
    if len(rendered) > MAX_MESSAGE:
        raise Finding(f"an error message of {len(rendered):,} characters")
    if len(lines) < 3 or not _EXCERPT.fullmatch("\n".join(lines[1:3])):
        raise Finding(f"an error shown without its line and caret: {lines[0][:200]}")


def emit(net, source: str) -> None:
    """Both builds' source, unformatted; Python must compile it."""
    from compiler.backends.source.emitter import build_plan
    from compiler.backends.source.render import render
    from compiler.passes import optimise

    for deploy, built in ((False, net), (True, optimise(net))):
        text = render(build_plan(built, deploy), source)
        try:
            compile(text, "<generated>", "exec")
        except SyntaxError as err:
            build = "deploy" if deploy else "training"
            raise Finding(
                f"the {build} build's source does not compile: {err.msg} at line {err.lineno}"
            ) from None


def where(exc: BaseException) -> str:
    """What makes two findings the same: the harness's own finding (what it is), or
    the exception's type and the innermost netc frame."""
    if isinstance(exc, Finding):
        return str(exc).split(":")[0]
    frames = traceback.extract_tb(exc.__traceback__)
    netc = [f for f in frames if "/compiler/" in f.filename or "/dsl/" in f.filename] or frames
    last = netc[-1] if netc else None
    place = f" at {Path(last.filename).name}:{last.lineno} ({last.name})" if last else ""
    return f"{type(exc).__name__}{place}"


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else ""


class TokenMutator:
    """libFuzzer's byte mutations for half the inputs, token-level ones for the rest
    (``tests/fuzzing.mutate_tokens``: tokens deleted, repeated, swapped, replaced by
    the shipped specs' words or by hostile ones), which keep more inputs parseable."""

    def __init__(self) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from fuzzing import _vocabulary, mutate_tokens

        self.vocabulary = _vocabulary()
        self.mutate_tokens = mutate_tokens

    def __call__(self, data: bytes, max_size: int, seed: int) -> bytes:
        import atheris

        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        text = data.decode("utf-8", "surrogateescape")
        mutated = self.mutate_tokens(rng, text, self.vocabulary)
        return mutated.encode("utf-8", "surrogateescape")[:max_size]


def seed_corpus(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for spec in SEEDS:
        target = corpus / f"seed-{spec.parent.name}-{spec.name}"
        if not target.exists():
            shutil.copyfile(spec, target)


def write_dictionary(path: Path) -> None:
    """libFuzzer's dictionary: the words and symbols of the shipped specs."""
    token = re.compile(r"[A-Za-z_]\w*|\d+x\d+x\d+|\d+|->|//|[(){}\[\],=:+\-*/\"#]")
    words = {
        t for spec in SEEDS for t in token.findall(spec.read_text(encoding="utf-8")) if len(t) <= 24
    }
    words |= {"\n", "\r\n", "\t", "\ufeff", "\u2028", "1e999", "9" * 30, "0", "-1"}
    lines = []
    for word in sorted(words):
        escaped = "".join(
            f"\\x{b:02x}" if b < 0x20 or b >= 0x7F or b in b'\\"' else chr(b)
            for b in word.encode("utf-8")
        )
        lines.append(f'"{escaped}"')
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--source", action="store_true", help="emit accepted networks as source too"
    )
    parser.add_argument("--fmt", action="store_true", help="format every input too")
    parser.add_argument(
        "--bytes-only", action="store_true", help="libFuzzer's byte mutations alone"
    )
    parser.add_argument("--stop", action="store_true", help="stop at the first finding")
    parser.add_argument("--corpus", type=Path, default=WORK / "corpus", help="the corpus folder")
    parser.add_argument("--findings", type=Path, default=WORK / "findings", help="saved findings")
    parser.add_argument(
        "--replay", nargs="+", type=Path, metavar="FILE", help="run these inputs and stop"
    )
    args, libfuzzer = parser.parse_known_args()
    scratch = Path(tempfile.mkdtemp(prefix="netc-atheris-"))
    harness = Harness(scratch, args.findings, args.source, args.fmt, args.stop)
    try:
        if args.replay:
            for path in args.replay:
                print(f"{path}: {harness.run_one(path.read_bytes())}")
            return
        import atheris

        with atheris.instrument_imports(include=["dsl", "compiler", "lark"]):
            for module in INSTRUMENTED:  # imported here, so that coverage is seen in them
                importlib.import_module(module)
        seed_corpus(args.corpus)
        # The run's length is kept here, not given to libFuzzer, whose exit would skip the summary.
        for arg in list(libfuzzer):
            if arg.startswith(("-runs=", "-max_total_time=")):
                libfuzzer.remove(arg)
                name, value = arg[1:].split("=", 1)
                if name == "runs":
                    harness.max_runs = int(value)
                else:
                    harness.max_time = float(value)
        if not any(a.startswith("-dict=") for a in libfuzzer):
            write_dictionary(scratch / "netc.dict")
            libfuzzer.append(f"-dict={scratch / 'netc.dict'}")
        if not any(a.startswith("-timeout=") for a in libfuzzer):
            libfuzzer.append("-timeout=30")
        if not any(not a.startswith("-") for a in libfuzzer):
            libfuzzer.append(str(args.corpus))
        extra = {} if args.bytes_only else {"custom_mutator": TokenMutator()}
        atheris.Setup([sys.argv[0], *libfuzzer], harness.one_input, **extra)
        atheris.Fuzz()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        print(harness.summary(), file=sys.stderr, flush=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
