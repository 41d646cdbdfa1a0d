"""int8 against fp32 ONNX in onnxruntime: latency, and agreement on held-out digits.

Not a test. One command::

    python bench/int8_speed.py                 # googlenet_cifar latency; a small spec on digits
    python bench/int8_speed.py --compare       # also every calibration choice, side by side
    python bench/int8_speed.py --trained specs/googlenet_cifar.net runs/x/best.pt --set num_classes=10

Prints the CPU (model name and the SIMD flags that decide onnxruntime's int8
kernels: AVX2, AVX-512, VNNI, AMX), then:

* latency: ``--spec`` (default ``specs/googlenet_cifar.net`` at 10 classes,
  spec initialisation) exported with ``onnx_export.export`` and quantized with
  ``compiler.backends.quantize`` (calibrated on digits), both in onnxruntime
  with ``--threads`` intra-op threads (default 2), at batch 1 and 16. The two
  models run in interleaved rounds (one call of each per round, so a
  neighbour's load falls on both), after warm-up; medians and the int8/fp32
  ratio are reported.
* accuracy: a small Inception-style spec (batch norm, a concat of 1x1 and 3x3
  branches) trained briefly on digits with netc's training loop, its fp32 and
  int8 ONNX compared on digits' held-out split: top-1 agreement and each
  one's accuracy. ``--trained SPEC CHECKPOINT`` does the same for a model
  trained with ``netc train --data digits`` (its recorded ``--normalize`` and
  input shape used; ``--set`` as for the latency spec).
* ``--compare``: every calibration method x activation type, with and without
  onnxruntime's pre-processing, and with the first conv / last linear kept in
  float, on both models: how the defaults in quantize.py were chosen.

``time_interleaved`` and ``ort_session`` are what ``bench/deploy_speed.py``
imports for its int8 rows.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler import ir

# The accuracy model, the one tests/test_quantize.py trains: small enough to train in
# seconds, with what the deploy passes fold (batch norm) and what quantization must get
# right (a concat of branches).
SMALL = ROOT / "tests" / "int8_small.net"
NORMALIZE = "0.5,0.5"
SIMD = re.compile(r"^(avx2|avx512f|avx512bw|avx512_vnni|avx_vnni|avx512_bf16|amx_\w+)$")


# -- what anyone timing onnxruntime models can import ---------------------------------------


def ort_session(path: str | Path, threads: int) -> Callable[[np.ndarray], object]:
    """``path`` in onnxruntime's CPU provider, ``threads`` intra-op threads, all graph
    optimisations, no spinning (an idle pool would spin into the next model's time)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def time_interleaved(
    runs: dict[str, Callable[[Any], object]], x: Any, warmup: int = 3, rounds: int = 30
) -> dict[str, list[float]]:
    """Seconds per call of each of ``runs`` on ``x``: ``warmup`` untimed calls each, then
    ``rounds`` rounds of one call of each, in order, so that whatever else the machine
    does falls on all of them alike. Take the median of each list."""
    for run in runs.values():
        for _ in range(warmup):
            run(x)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - start)
    return times


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and its SIMD flags that matter for int8."""
    model, flags = "unknown", []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        if key.strip() == "flags" and not flags:
            flags = sorted(f for f in value.split() if SIMD.match(f))
    return model, flags


# -- models ---------------------------------------------------------------------------------


def export_fp32(net: ir.Network, path: Path, state=None) -> None:
    from compiler.backends import onnx_export

    onnx_export.export(net, path, state_dict=state)


def make_int8(
    net: ir.Network,
    fp32: Path,
    path: Path,
    normalize: str | None,
    batches: int,
    source: str = "digits",
    **options: Any,
) -> Any:
    from compiler.backends import quantize
    from compiler.training import ship

    data = ship.calibration_batches(net, source, normalize, batches, quantize.BATCH)
    return quantize.quantize(net, fp32, path, data, **options)


def held_out(net: ir.Network, normalize: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Digits' held-out split as ``net``'s input, and its labels."""
    from compiler.training import data

    dataset = data.load("digits", net.input_shape, net.out_shape[0])
    norm = data.parse_normalize(normalize, net.input_shape[0])
    prepare = data.Pipeline(net.input_shape, dataset.scale, normalize=norm)
    return prepare(dataset.test_x).numpy(), dataset.test_y.numpy()


def agreement(
    fp32: Path, int8: Path, x: np.ndarray, y: np.ndarray
) -> tuple[float, float, float, float]:
    """Top-1 agreement of the two models, each one's top-1 accuracy, and the int8
    logits' error: the RMS of their difference over the RMS of the fp32 logits."""
    a, b = (np.asarray(ort_session(p, 2)(x)) for p in (fp32, int8))
    error = float(np.sqrt(((a - b) ** 2).mean() / (a**2).mean()))
    a, b = a.argmax(1), b.argmax(1)
    return float((a == b).mean()), float((a == y).mean()), float((b == y).mean()), error


def train_small(folder: Path, epochs: int) -> tuple[ir.Network, dict, str]:
    import contextlib
    import io

    import torch

    import compiler
    from compiler.training.loop import Config, train

    net = compiler.load(SMALL)
    config = Config(
        data="digits", out=str(folder / "run"), epochs=epochs, normalize=NORMALIZE, plot=False
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        metrics = train(net, config)
    print(
        f"trained {net.name} on digits for {epochs} epochs: "
        f"held-out top-1 {max(m['test_acc'] for m in metrics):.2%} (PyTorch, best.pt)"
    )
    state = torch.load(folder / "run" / "best.pt", weights_only=True)["model"]
    return net, state, NORMALIZE


# -- the report -----------------------------------------------------------------------------


def latency(
    net: ir.Network, fp32: Path, int8: Path, batches: Sequence[int], threads: int, rounds: int
) -> None:
    runs = {"fp32": ort_session(fp32, threads), "int8": ort_session(int8, threads)}
    print(f"\n{net.name}, {'x'.join(map(str, net.input_shape))}, {threads} threads:")
    print(f"{'batch':>5}  {'fp32 ms':>9}  {'int8 ms':>9}  {'int8/fp32':>9}  {'rounds':>6}")
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal(
            (batch, *net.input_shape), dtype=np.float32
        )
        times = time_interleaved(runs, x, warmup=3, rounds=rounds)
        f, i = (statistics.median(times[k]) for k in ("fp32", "int8"))
        print(f"{batch:5d}  {f * 1e3:9.2f}  {i * 1e3:9.2f}  {i / f:9.3f}  {rounds:6d}")


def accuracy(
    net: ir.Network, fp32: Path, int8: Path, normalize: str | None, what: str = "int8"
) -> tuple[float, float, float]:
    x, y = held_out(net, normalize)
    agree, acc32, acc8, error = agreement(fp32, int8, x, y)
    print(
        f"{what:<40} agreement {agree:7.2%}  fp32 top-1 {acc32:7.2%}  int8 top-1 {acc8:7.2%}  "
        f"({(acc8 - acc32) * 100:+.2f} points, {len(y)} held-out images), "
        f"logit error {error:.2%}"
    )
    return agree, acc32, acc8


VARIANTS: list[tuple[str, dict[str, Any]]] = [
    (
        f"{m}, {a}{', pre-processed' if p else ''}",
        {"method": m, "activations": a, "preprocess": p},
    )
    for m in ("minmax", "entropy", "percentile")
    for a in ("uint8", "int8")
    for p in (False, True)
] + [
    ("minmax, uint8, first conv in float", {"keep_float": ("first",)}),
    ("minmax, uint8, last linear in float", {"keep_float": ("last",)}),
    ("minmax, uint8, both in float", {"keep_float": ("first", "last")}),
]
# What changes the graph that runs (the calibration method changes only scales).
SPEED_VARIANTS = [
    (name, options)
    for name, options in VARIANTS
    if options.get("method", "minmax") == "minmax"
    and not (options.get("preprocess") and options.get("activations") == "int8")
]


def compare(
    net: ir.Network,
    fp32: Path,
    work: Path,
    normalize: str | None,
    batches: int,
    threads: int,
    rounds: int,
    timed: bool,
    variants: list[tuple[str, dict[str, Any]]] = VARIANTS,
) -> None:
    """Each variant's agreement (and, when ``timed``, its batch-16 latency against fp32)."""
    print(f"\n{net.name}: calibration choices ({batches} batches of calibration images)")
    runs: dict[str, Callable[[Any], object]] = {"fp32": ort_session(fp32, threads)}
    for i, (name, options) in enumerate(variants):
        path = work / f"variant{i}.onnx"
        start = time.perf_counter()
        make_int8(net, fp32, path, normalize, batches, **options)
        took = time.perf_counter() - start
        accuracy(net, fp32, path, normalize, f"{name} ({took:.1f} s)")
        runs[name] = ort_session(path, threads)
    if timed:
        x = np.random.default_rng(16).standard_normal((16, *net.input_shape), dtype=np.float32)
        times = time_interleaved(runs, x, warmup=2, rounds=rounds)
        base = statistics.median(times["fp32"])
        print(f"batch 16 latency, {threads} threads, {rounds} interleaved rounds:")
        for name, values in times.items():
            t = statistics.median(values)
            print(f"  {name:<40} {t * 1e3:8.2f} ms  {t / base:6.3f}x fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "googlenet_cifar.net"))
    parser.add_argument("--set", dest="sets", action="append", default=None, metavar="NAME=VALUE")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of the small spec")
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("--trained", nargs=2, metavar=("SPEC", "CHECKPOINT"))
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    import compiler
    from compiler.elaborate import Override
    from compiler.training import ship

    model, flags = cpu()
    print(f"CPU: {model}, {os.cpu_count()} cores; flags: {' '.join(flags) or 'none of note'}")
    print(
        f"onnxruntime {ort.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}"
    )
    sets = args.sets if args.sets is not None else ["num_classes=10"]
    overrides = [Override(*s.split("=", 1)) for s in sets]
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        net = compiler.load(args.spec, overrides=overrides)
        export_fp32(net, work / "fp32.onnx")
        result = make_int8(
            net, work / "fp32.onnx", work / "int8.onnx", NORMALIZE, args.calibration_batches
        )
        print(
            f"\n{net.name}: quantized in {result.seconds:.1f} s ({result.quantized} "
            f"DequantizeLinear nodes), {(work / 'fp32.onnx').stat().st_size / 1e6:.1f} MB -> "
            f"{result.bytes / 1e6:.1f} MB"
        )
        latency(
            net, work / "fp32.onnx", work / "int8.onnx", args.batches, args.threads, args.rounds
        )

        small, state, small_norm = train_small(work, args.epochs)
        export_fp32(small, work / "small.onnx", state)
        make_int8(
            small,
            work / "small.onnx",
            work / "small.int8.onnx",
            small_norm,
            args.calibration_batches,
        )
        print()
        accuracy(small, work / "small.onnx", work / "small.int8.onnx", small_norm, "small spec")
        timed, timed_fp32, timed_norm = net, work / "fp32.onnx", NORMALIZE
        if args.trained:
            spec, path = args.trained
            recorded = torch.load(path, map_location="cpu", weights_only=True)
            shape = recorded.get("input_shape") if isinstance(recorded, dict) else None
            timed = compiler.load(spec, tuple(shape) if shape else None, overrides)
            timed_fp32 = work / "trained.onnx"
            state, recorded = ship.read_state(path, timed)
            timed_norm = recorded.get("normalize")
            export_fp32(timed, timed_fp32, state)
            make_int8(
                timed,
                timed_fp32,
                work / "trained.int8.onnx",
                timed_norm,
                args.calibration_batches,
            )
            accuracy(
                timed,
                timed_fp32,
                work / "trained.int8.onnx",
                timed_norm,
                f"{timed.name} ({Path(path).name})",
            )
        if args.compare:
            compare(
                small,
                work / "small.onnx",
                work,
                small_norm,
                args.calibration_batches,
                args.threads,
                args.rounds,
                timed=False,
            )
            compare(
                timed,
                timed_fp32,
                work,
                timed_norm,
                args.calibration_batches,
                args.threads,
                max(5, args.rounds // 3),
                timed=True,
                variants=VARIANTS if args.trained else SPEED_VARIANTS,
            )


if __name__ == "__main__":
    main()
