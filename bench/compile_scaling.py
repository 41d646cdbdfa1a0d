"""Compile-time scaling: specs of 10, 100 and 1,000 Inception blocks.

Not a test. For each size, writes a spec (the standard library's Inception
block, repeated, on a 32x32 input so that every block keeps the spatial size)
and times, best of a few runs:

- check: ``netc check`` in a fresh process, as it reports itself (parse,
  imports, elaboration, shape inference), and the process's wall time
  (start-up and imports included); ``compiler.load`` in this process;
- summary rows, the deploy passes (``compiler.passes.optimise``);
- source emission (``compiler.backends.source.emit``, ruff formatting
  included), when the source backend exists.

Growth should be linear (the per-block column flat) and check under 1 s at
1,000 blocks::

    python3 bench/compile_scaling.py [--sizes 10 100 1000] [--repeat 3]

``--chain 1000 10000 100000`` times instead a flat chain of that many layers
(1x1 convolutions and ReLUs on a 1x4x4 input), each command in a fresh
process (wall time, start-up included): ``netc check``, ``netc summary``,
``netc compile`` and ``netc compile --emit onnx`` (``--no-onnx`` to skip it).
The per-1,000-layers columns should stay flat. ``--wide 1000 10000`` does the
same for one concat of that many branches (each a 1x1 convolution and a ReLU).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import compiler
from compiler import ir, passes
from compiler.backends import summary


def spec_text(blocks: int) -> str:
    lines = [
        f"# {blocks} Inception blocks (bench/compile_scaling.py).",
        f'import "{ROOT / "specs" / "std" / "inception.net"}"',
        "",
        "network Deep(num_classes: int = 10) {",
        "    input 3x32x32",
        "    stem = ConvBlock(192, 3, padding=1)",
    ]
    lines += [f"    block{i} = Inception(64, 96, 128, 16, 32, 32)" for i in range(blocks)]
    lines += [
        "    avgpool = adaptive_avgpool(1)",
        "    flatten",
        "    fc = linear(num_classes)",
        "}",
        "",
    ]
    return "\n".join(lines)


def best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def netc_check(path: Path) -> float:
    """Run ``netc check`` in a fresh process; the seconds it reports for itself."""
    done = subprocess.run(
        [sys.executable, "-m", "compiler.cli", "check", str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return int(re.search(r"\((\d+) ms\)", done.stdout).group(1)) / 1e3


def chain_text(layers: int) -> str:
    lines = ["network Chain() {", "    input 1x4x4"]
    lines += [f"    r{i} = relu" if i % 2 else f"    c{i} = conv(1, 1)" for i in range(layers)]
    return "\n".join([*lines, "}", ""])


def wide_text(branches: int) -> str:
    lines = ["network Wide() {", "    input 1x4x4", "    concat {"]
    lines += [f"        b{i} = conv(1, 1) -> relu" for i in range(branches)]
    return "\n".join([*lines, "    }", "}", ""])


def chains(
    sizes: list[int], onnx: bool, text: Callable[[int], str] = chain_text, label: str = "layers"
) -> None:
    commands = {"check": ["check"], "summary": ["summary"], "compile": ["compile", "-o", "out.py"]}
    if onnx:
        commands["onnx"] = ["compile", "--emit", "onnx", "-o", "out.onnx"]
    print(f"{label:>8}  " + "  ".join(f"{name:>8}  {'/1k':>6}" for name in commands))
    with tempfile.TemporaryDirectory() as tmp:
        for layers in sizes:
            path = Path(tmp) / f"chain{layers}.net"
            path.write_text(text(layers), encoding="utf-8")
            cells = []
            for argv in commands.values():
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "compiler.cli", argv[0], str(path), *argv[1:]],
                    check=True,
                    capture_output=True,
                    cwd=tmp,
                    env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
                )
                seconds = time.perf_counter() - start
                cells.append(f"{seconds:7.2f}s  {seconds / layers * 1e3:5.2f}s")
            print(f"{layers:8d}  " + "  ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chain", nargs="+", type=int, help="time flat chains of these lengths")
    parser.add_argument("--wide", nargs="+", type=int, help="time concats of these many branches")
    parser.add_argument("--no-onnx", action="store_true", help="with --chain: skip the ONNX export")
    args = parser.parse_args()
    if args.chain or args.wide:
        if args.chain:
            chains(args.chain, onnx=not args.no_onnx)
        if args.wide:
            chains(args.wide, onnx=not args.no_onnx, text=wide_text, label="branches")
        return
    try:
        from compiler.backends.source import emit
    except ImportError:
        emit = None

    print(
        f"{'blocks':>6}  {'nodes':>7}  {'check':>8}  {'per block':>9}  {'process':>8}  "
        f"{'load()':>8}  {'summary':>8}  {'passes':>8}  {'emit':>8}  {'per block':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for blocks in args.sizes:
            path = Path(tmp) / f"deep{blocks}.net"
            path.write_text(spec_text(blocks), encoding="utf-8")
            net = compiler.load(path)
            nodes = sum(1 for _ in ir.walk(net.body))
            load = best(lambda path=path: compiler.load(path), args.repeat)
            reported = []
            process = best(
                lambda path=path, reported=reported: reported.append(netc_check(path)), args.repeat
            )
            check = min(reported)
            rows = best(lambda net=net: summary.rows(net.body), args.repeat)
            optimise = best(lambda net=net: passes.optimise(net), args.repeat)
            if emit is not None:
                emitted = best(lambda net=net: emit(net), args.repeat)
                emit_text = f"{emitted * 1e3:6.0f}ms  {emitted / blocks * 1e3:7.2f}ms"
            else:
                emit_text = f"{'n/a: source backend missing':>19}"
            print(
                f"{blocks:6d}  {nodes:7d}  {check * 1e3:6.0f}ms  {check / blocks * 1e3:7.2f}ms  "
                f"{process * 1e3:6.0f}ms  {load * 1e3:6.0f}ms  {rows * 1e3:6.0f}ms  "
                f"{optimise * 1e3:6.0f}ms  {emit_text}"
            )


if __name__ == "__main__":
    main()
