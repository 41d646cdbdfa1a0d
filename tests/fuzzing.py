"""The fuzzing harness: hostile inputs for netc, and the outcome of each.

A case is a set of files (the spec first, then any files it imports) and the
command-line arguments after the spec. ``make_case(seed, index)`` draws one
from four sources: a random valid spec (``specgen``), a mutated random spec, a
byte- or token-level mutation of a shipped spec (or of the block library it
imports), and a fixed list of extremes (deep nesting, huge numbers, odd bytes).

``run_case(case)`` runs ``netc check`` on it in this process, then ``netc
summary`` (for every ``summary_every``-th accepted case) and (for every
``compile_every``-th) ``netc compile``
into a temporary folder, and classifies what happened:

- ``ok``: accepted;
- ``error``: one ``file:line:col: error:`` message (exit status 1);
- ``unpositioned``: a ``netc: error:`` message with no position: a bug, since
  every error about spec content (an empty file, one with no network) names a
  place in the spec; only usage errors (click's, below) have none;
- ``usage``: click's usage error (exit status 2);
- ``other``: anything else (an uncaught exception, a wrong exit status, a
  message of another form, or longer than ``MAX_MESSAGE``) -- a bug;
- ``hang``: the case ran past its time limit (``signal.setitimer``).

Crashes (a dead process) are seen only from outside: ``bench/fuzz.py`` runs
cases in worker processes and records the case a worker died on.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import shutil
import signal
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from specgen import input_arg, random_case

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.net"))
LIBRARY = sorted((REPO / "specs" / "std").glob("*.net"))
MAX_MESSAGE = 20_000  # characters: an error message longer than this is a bug too
_POSITIONED = re.compile(r"\S.*:\d+:\d+: error: ")
FAILURES = ("unpositioned", "other", "hang", "crash")  # the outcomes that are bugs


@dataclass
class Case:
    files: dict[str, bytes]  # relative path -> content; the first one is the spec
    args: list[str] = field(default_factory=list)
    origin: str = ""

    @property
    def spec(self) -> str:
        return next(iter(self.files))


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok, error, unpositioned, usage, other, hang
    detail: str = ""  # for other: the exception and where it was raised; else the first line

    @property
    def failure(self) -> bool:
        return self.kind in FAILURES

    def signature(self) -> str:
        """What makes two failures the same: the kind and the detail's first line."""
        return f"{self.kind}: {self.detail.splitlines()[0] if self.detail else ''}"


# -- cases ------------------------------------------------------------------------------------

_HOSTILE_TOKENS = [
    "9" * 5000, "1" + "0" * 30, "1e999", "1e308", "inf", "nan", "0", "-1", "-", "+", "*", "//",
    "/", "(", ")", "{", "}", ",", "=", "->", "x", '"', '"same"', "true", "\ufeff", "\u2028",
    "\x0c", "\r\n", "\t", "\x00", "é", "²", "[/]", "scale_shift", "ScaleShift", "OrderedDict",
    "self", "in_channels", "torch", "forward", "import", "block", "network", "concat", "input",
    "aux", "init", "if", "at", "weight", "3x0x0", "0x1x1", "1x1x1", "99999x99999x99999",
    "adaptive_avgpool(0)", "adaptive_avgpool(-1)", "conv(99999999999999999999, 1)",
]
_HOSTILE_VALUES = [
    "inf", "-inf", "nan", "1e999", "9" * 5000, "-1", "0", "", "x", "1.5", "true", "2", "1e-320",
    "99999999999999999999", "[/]", "\u2028",
]
_HOSTILE_INPUTS = [
    "3x²x8", "0x1x1", "9" * 5000 + "x1x1", "3x224", "3x1x1", "1x1x1", "3x64x64", "-3x4x4",
    "3X32X32", " 3x8x8", "3x8x8x", "x", "", "1x99999999x99999999", "4x7x9",
]
_TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\d+\.\d*(?:[eE][+-]?\d+)?|\w+|->|//|.', re.DOTALL)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def mutate_tokens(rng: random.Random, text: str, vocabulary: list[str]) -> str:
    tokens = _tokens(text)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        if not tokens:
            tokens = [rng.choice(vocabulary)]
        i = rng.randrange(len(tokens))
        what = rng.random()
        if what < 0.2:
            del tokens[i]
        elif what < 0.35:
            tokens.insert(i, tokens[i])
        elif what < 0.5:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif what < 0.75:
            tokens[i] = rng.choice(vocabulary)
        elif what < 0.9:
            tokens.insert(i, rng.choice(_HOSTILE_TOKENS))
        else:  # a token repeated many times: deep nesting, long lines
            tokens.insert(i, rng.choice(["(", "-", "1+", "(1,", "x", " ", "#", "a"]) * rng.choice([50, 300, 2000]))
    return "".join(tokens)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4])):
        if not buf:
            buf.extend(b"x")
        i = rng.randrange(len(buf))
        what = rng.random()
        if what < 0.25:
            buf[i] ^= 1 << rng.randrange(8)
        elif what < 0.45:
            buf.insert(i, rng.randrange(256))
        elif what < 0.6:
            del buf[i : i + rng.randint(1, 40)]
        elif what < 0.75:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j : j + rng.randint(1, 200)]
        elif what < 0.9:
            buf[i:i] = rng.choice([b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\r", b"\x0c", b"\x00"])
        else:
            del buf[i:]
    return bytes(buf)


def _mutated_args(rng: random.Random, text: str) -> list[str]:
    args: list[str] = []
    params = re.findall(r"(\w+)\s*:\s*(?:int|float|bool|str)", text)
    for _ in range(rng.choice([0, 0, 1, 2])):
        name = rng.choice(params) if params and rng.random() < 0.8 else rng.choice(["nope", "", "="])
        args += ["--set", f"{name}={rng.choice(_HOSTILE_VALUES)}"]
    if rng.random() < 0.2:
        args += ["--input", rng.choice(_HOSTILE_INPUTS)]
    return args


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for path in [*SPECS, *LIBRARY]:
        words.update(t for t in _tokens(path.read_text(encoding="utf-8")) if not t.isspace())
    return sorted(words)


_VOCABULARY: list[str] = []


def make_case(seed: int, index: int) -> Case:
    """Case ``index`` of the campaign ``seed``: the same on every machine."""
    global _VOCABULARY
    if not _VOCABULARY:
        _VOCABULARY = _vocabulary()
    rng = random.Random(f"{seed}:{index}")
    source = rng.random()
    if index % 50 == 0:
        ext = extremes()
        return ext[(index // 50) % len(ext)]
    if source < 0.3:
        case = random_case(rng)
        args = [a for s in case.sets for a in ("--set", s)] + input_arg(case.input_shape)
        return Case({"net.net": case.text.encode()}, args, "generated")
    if source < 0.4:
        case = random_case(rng)
        text = mutate_tokens(rng, case.text, _VOCABULARY)
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:
            data = mutate_bytes(rng, data)
        args = [a for s in case.sets for a in ("--set", s)] + input_arg(case.input_shape)
        if rng.random() < 0.3:
            args = _mutated_args(rng, text)
        return Case({"net.net": data}, args, "generated+mutated")
    spec = rng.choice(SPECS)
    text = spec.read_text(encoding="utf-8")
    files: dict[str, bytes] = {spec.name: text.encode()}
    target = spec.name
    if rng.random() < 0.25:  # mutate the block library it imports instead (found first)
        imported = re.findall(r'import "([^"]+)"', text)
        if imported:
            target = imported[0]
            files[target] = (REPO / "specs" / target).read_bytes()
    original = files[target].decode()
    if rng.random() < 0.6:
        data = mutate_tokens(rng, original, _VOCABULARY).encode("utf-8", "surrogatepass")
    else:
        data = mutate_bytes(rng, original.encode())
    files[target] = data
    args = _mutated_args(rng, text) if rng.random() < 0.5 else []
    return Case(files, args, f"mutated {Path(target).name}")


def extremes() -> list[Case]:
    """Hand-made hostile inputs (issue 11), each expected to be accepted or refused cleanly."""
    net = "network N() {{\n    input 3x8x8\n{body}\n}}\n"

    def spec(body: str, args: list[str] | None = None, origin: str = "") -> Case:
        return Case({"n.net": net.format(body=body).encode()}, args or [], origin)

    chain = "".join(f"block B{i}() {{\n    a = B{i - 1}()\n}}\n" for i in range(1, 300))
    twice = "".join(f"block D{i}() {{\n    a = D{i - 1}()\n    b = D{i - 1}()\n}}\n" for i in range(1, 21))
    return [
        spec(f"    c = conv({'9' * 5000}, 1)", origin="huge int literal"),
        spec("    c = conv(4, 1)", ["--input", "9" * 5000 + "x1x1"], "huge --input"),
        spec(f"    c = conv({'9' * 30}, 1)", origin="26+ digit channels"),
        spec(f"    maxpool({'9' * 400}, stride=1)", origin="huge pool kernel"),
        spec("    adaptive_avgpool(0)", origin="adaptive_avgpool(0)"),
        spec("    adaptive_avgpool(-1)", origin="adaptive_avgpool(-1)"),
        spec("    c = conv(4, " + "-" * 10_000 + "1)", origin="10,000 unary minus"),
        spec("    c = conv(4, " + "1+" * 10_000 + "1)", origin="10,000-term sum"),
        spec("    c = conv(4, " + "(" * 10_000 + "1" + ",)" * 10_000 + ")", origin="10,000 nested tuples"),
        spec("    c = conv(4, " + "(" * 2000 + "1" + ")" * 2000 + ")", origin="2,000 parentheses"),
        Case({"n.net": (chain.replace("a = B0()", "c = conv(4, 1)") + net.format(body="    b = B299()")).encode()},
             [], "300 nested blocks"),
        Case({"n.net": (twice.replace("a = D0()\n    b = D0()", "c = conv(4, 3, padding=1)")
                        + net.format(body="    d = D20()")).encode()}, [], "exponential expansion"),
        Case({"n.net": (b"network Net(f: float = 1.0) {\n    input 3x8x8\n    dropout(0.5)\n"
                        b"    c = conv(4, 1)\n    lrn(2, alpha=f)\n}\n")}, ["--set", "f=inf"], "--set f=inf"),
        spec("    c = conv(4, 1)", ["--input", "3x²x8"], "--input 3x²x8"),
        Case({"n.net": b"\xef\xbb\xbf" + net.format(body="    c = conv(4, 1)").encode()}, [], "BOM"),
        Case({"n.net": net.format(body="    c = conv(4, 1)").replace("\n", "\r\n").encode()}, [], "CRLF"),
        Case({"n.net": net.format(body="    # a\u2028b\x0cc\n    c = conv(4, 1)\n    d = nope").encode()},
             [], "U+2028 and form feed in a comment"),
        Case({"n.net": net.format(body="    c = conv(4, 1)\n    d = caf\xe9").encode("latin-1")}, [], "latin-1"),
        Case({"n.net": net.format(body="    c = conv(4, 1) " + "x" * 5000 + " (").encode()}, [], "long line"),
        Case({"n.net": ('import "' + "a/" * 3000 + 'b.net"\n' + net.format(body="relu")).encode()},
             [], "long import path"),
        Case({"[/]n.net": net.format(body="    c = conv(4, 1)").encode()}, [], "markup in the path"),
        Case({"n.net": net.format(body="    c = conv(4, 1) conv(8, 1)").encode()}, [], "missing arrow"),
    ]


# -- running ----------------------------------------------------------------------------------


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _invoke(argv: list[str]) -> tuple[int | None, str, str, BaseException | None]:
    from compiler.cli import main

    out, err = io.StringIO(), io.StringIO()
    caught = None
    status = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except _Timeout:
            raise
        except BaseException as exc:  # noqa: BLE001 -- every escape is a finding
            caught = exc
    return status, out.getvalue(), err.getvalue(), caught


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    netc = [f for f in frames if "/compiler/" in f.filename or "/dsl/" in f.filename] or frames
    last = netc[-1] if netc else None
    place = f" at {Path(last.filename).name}:{last.lineno} ({last.name})" if last else ""
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}{place}: {message}"


def _classify(status, out: str, err: str, exc: BaseException | None) -> Outcome:
    if exc is not None:
        return Outcome("other", _where(exc))
    if status == 0:
        return Outcome("ok")
    first = err.splitlines()[0] if err else ""
    if len(err) > MAX_MESSAGE:
        return Outcome("other", f"error message of {len(err):,} characters: {first[:200]}")
    if status == 1 and _POSITIONED.match(first):
        return Outcome("error", first)
    if status == 1 and first.startswith("netc: error: "):
        return Outcome("unpositioned", first)
    if status == 2:
        return Outcome("usage", first)
    return Outcome("other", f"exit status {status}: {first[:200]}")


def run_case(
    case: Case, timeout: float = 10.0, compile_every: int = 10, index: int = 0, summary_every: int = 1
) -> Outcome:
    """Check the case in this process (then summary and sometimes compile); classify it.

    The case's temporary folder is cut out of the outcome's detail, so that the same
    failure in two cases has the same signature."""
    folder = Path(tempfile.mkdtemp(prefix="netc-fuzz-"))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        outcome = _run_in(case, folder, compile_every, index, summary_every)
        return Outcome(outcome.kind, outcome.detail.replace(f"{folder}/", ""))
    except _Timeout:
        return Outcome("hang", f"past {timeout:g} s: {case.origin}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(folder, ignore_errors=True)


def _run_in(case: Case, folder: Path, compile_every: int, index: int, summary_every: int) -> Outcome:
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    spec = str(folder / case.spec)
    outcome = _classify(*_invoke(["check", spec, *case.args]))
    if outcome.kind != "ok" or not summary_every or index % summary_every:
        return outcome
    summary = _classify(*_invoke(["summary", spec, *case.args]))
    if summary.kind != "ok":
        return Outcome("other", f"summary: {summary.detail}") if summary.kind != "other" else summary
    if compile_every and index % compile_every == 0:
        done = _classify(*_invoke(["compile", spec, *case.args, "-o", str(folder / "out.py")]))
        if done.kind != "ok":
            return Outcome("other", f"compile: {done.detail}") if done.kind != "other" else done
    return outcome
