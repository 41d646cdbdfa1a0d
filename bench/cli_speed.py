"""Wall time of `netc check` and `netc compile`, and of the ONNX export.

    python bench/cli_speed.py [--runs 7] [--spec specs/googlenet_v1.net]

Each command runs in a fresh process (as a user runs it), several times; the
median, min and max wall times are printed. `netc` is the installed console
script when it is on PATH (through whatever shim the environment puts in
front of it), and `python -m compiler.cli` in any case. The ONNX export is
timed in-process (the graph written from the IR, onnx.checker, the bytes;
then the whole CLI command once). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(command: list[str], cwd: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def show(label: str, times: list[float]) -> None:
    print(
        f"{label:<48} median {statistics.median(times):6.3f} s   "
        f"min {min(times):6.3f}   max {max(times):6.3f}   ({len(times)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "googlenet_v1.net"))
    args = parser.parse_args()
    spec = str(Path(args.spec).resolve())
    out = Path(tempfile.mkdtemp(prefix="netc-bench-"))

    launchers = [("python -m compiler.cli", [sys.executable, "-m", "compiler.cli"])]
    if shutil.which("netc"):
        launchers.insert(0, ("netc", [shutil.which("netc")]))
    print(f"spec: {spec}")
    show("python -c pass (interpreter start)", wall([sys.executable, "-c", "pass"], out, args.runs))
    for label, launcher in launchers:
        show(f"{label} check", wall([*launcher, "check", spec], out, args.runs))
        show(f"{label} compile", wall([*launcher, "compile", spec, "-o", str(out)], out, args.runs))
        show(
            f"{label} compile --deploy",
            wall([*launcher, "compile", spec, "--deploy", "-o", str(out / "d.py")], out, args.runs),
        )

    import compiler
    from compiler.backends import onnx_export

    net = compiler.load(spec)
    times = []
    for index in range(3):
        info = onnx_export.export(net, out / f"model{index}.onnx")
        times.append(info.seconds)
    show(f"ONNX export + check, in-process (opset {info.opset})", times)
    print(f"{'':<48} first run {times[0]:.3f} s (exporter warm-up), {info.bytes / 1e6:.1f} MB")
    launcher = launchers[0][1]
    show(
        f"{launchers[0][0]} compile --emit onnx",
        wall([*launcher, "compile", spec, "--emit", "onnx", "-o", str(out)], out, 1),
    )
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
