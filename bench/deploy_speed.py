"""Deploy speed: netc's models against torchvision's GoogLeNet, side by side, in one run.

Not a test. Run it with a Python that has torchvision and netc (with its
dependencies, and onnxscript for PyTorch's own ONNX exporter), e.g. a side
virtualenv::

    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/pip install -e '.[test]' onnxscript
    /tmp/tvenv/bin/python bench/deploy_speed.py            # both specs, batch 1 and 16
    /tmp/tvenv/bin/python bench/deploy_speed.py --batches 16 --no-compile

CPU, ``torch.set_num_threads(<cores>)``, eval mode under ``torch.inference_mode()``,
3x224x224 inputs. Every row is timed in the same rounds (one call of each row
per round, round-robin, so that a neighbour's load spreads over all rows), and
the median per batch is reported after warm-up. Ratios are against the first
row. GFLOP/s is netc's own MAC count x 2 / time; "% peak" compares it with a
large fp32 matmul in onnxruntime measured in the same run (faster than
torch's matmul here), the practical peak of the machine.

Rows: torchvision's googlenet eager, the same channels_last, under torch.compile
(inductor with freezing) and in onnxruntime (its ONNX export); for each spec,
netc's runtime module (unoptimised), the generated module (the source
backend), the optimised deploy build as a runtime module (compiler.passes) and
as generated source (what users ship), that under torch.compile with the same
options, and its ONNX export in onnxruntime (``--int8``: also its int8 build, as
``netc compile --emit onnx --quantize int8`` writes it).
For a spec whose architecture torchvision does not ship (googlenet_v1), the same
rows for its hand-written twin in tests/reference_models.py give the targets a
like-for-like baseline as well. Where torchvision is missing, the hand-written reference in
tests/reference_models.py stands in, and the table says so. All models get
the same weights: a netc training checkpoint (spec initialisation, batch-norm
statistics perturbed away from 0/1) loaded into each.

On a GPU (``--device cuda``, issue 10's GPU rows; never in tests)::

    python bench/deploy_speed.py --device cuda                      # fp32, batch 256
    python bench/deploy_speed.py --device cuda --autocast bf16

the same torch rows run there (no ONNX, int8, memory or profile rows), each call
followed by a synchronisation, and "% peak" compares with the device's own
8192^3 matmul in the rows' dtype. ``--autocast bf16`` works on the CPU too.

``--profile`` adds, at the largest batch, where the eager rows spend their time
(torch.profiler) and the eager bound: netc's convolution time over the
baseline's whole forward, the best ratio any change outside the convolutions
could give.

``--mallopt`` keeps freed blocks in glibc's heap for every row (what netc
train and eval do): without it, each large activation is fresh pages from the
OS on every call, for torchvision and netc alike. ``--memory`` adds the peak
resident memory of each deploy model at the largest batch, each in a fresh
process. The first lines name the CPU and its vector extensions: compare rows
of one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if "--compile-cache" not in sys.argv:  # compile times from cold, not from the disk cache
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "0"
    os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "0"
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import compiler
from compiler import ir, passes
from compiler.backends.runtime import build_module

SPECS = ("googlenet_torchvision", "googlenet_v1")
INPUT = (3, 224, 224)
# Specs whose architecture torchvision does not ship: the same network written by hand,
# torchvision style, so that the targets also have a like-for-like baseline (googlenet_v1
# has 5x5 convolutions in branch 3 and a 3x3 fourth pool: 5% more MACs than torchvision's).
HAND_WRITTEN = {"googlenet_v1": "GoogLeNetV1"}
COMPILE_OPTIONS = {"freezing": True}  # inductor options, the same for every compiled row


@dataclass
class Placement:
    """Where the rows run: the device, and the autocast dtype (None: fp32)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    autocast: torch.dtype | None = None

    def put(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.device)

    def call(self, run: Callable[[torch.Tensor], object], x: torch.Tensor) -> None:
        if self.autocast is None:
            run(x)
        else:
            with torch.autocast(self.device.type, dtype=self.autocast):
                run(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize()


ON = Placement()  # main() sets it from --device and --autocast


@dataclass
class Row:
    name: str
    run: Callable[[torch.Tensor], object] | None  # None: not available (see note)
    macs: int  # per image, netc's count
    note: str = ""
    setup_s: dict[int, float] = field(default_factory=dict)  # batch -> compile/first-call time
    times: dict[int, list[float]] = field(default_factory=dict)


# -- models ------------------------------------------------------------------------------------


def training_checkpoint(net: ir.Network, seed: int = 0) -> dict[str, torch.Tensor]:
    """The spec's initialisation, batch-norm statistics and affine moved off
    their defaults (as after training), so that folding has work to do."""
    torch.manual_seed(seed)
    module = build_module(net)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.1, 0.1, generator=g)
    return module.state_dict()


def torchvision_googlenet() -> tuple[torch.nn.Module, str]:
    try:
        import torchvision

        model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
        return model, f"torchvision {torchvision.__version__} googlenet"
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests"))
        from reference_models import GoogLeNetTorchvision

        model = GoogLeNetTorchvision(aux_logits=True)
        return model, "hand-written reference (tests/reference_models.py; torchvision missing)"


def generated_module(
    net: ir.Network, state_dict, deploy: bool = False
) -> tuple[torch.nn.Module | None, str]:
    """netc's generated source for ``net``, executed, with the checkpoint loaded: the
    training build's file, or (``deploy``, ``net`` optimised) the deploy file, which
    loads the training checkpoint through its ``from_training_checkpoint``."""
    try:
        from compiler.backends.source import emit
    except ImportError:
        return None, "n/a: source backend missing"
    namespace: dict = {"__name__": f"netc_generated_{net.name}"}
    code = emit(net, deploy=deploy)
    exec(compile(code, f"<generated {net.source}>", "exec"), namespace)  # noqa: S102 (netc's own output)
    cls = namespace[net.name]
    if deploy:
        module, _dropped = cls.from_training_checkpoint(state_dict)
    else:
        module = cls()
        module.load_state_dict(state_dict, strict=True)
    return ON.put(module.eval()), ""


def compiled(module: torch.nn.Module) -> Callable:
    return torch.compile(module, options=COMPILE_OPTIONS)


def onnx_session(path: Path, threads: int) -> Callable[[torch.Tensor], object]:
    """``path`` in onnxruntime, set up as bench/int8_speed.py sets it up, fed tensors."""
    from int8_speed import ort_session

    run = ort_session(path, threads)
    return lambda x: run(x.numpy())


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def export_onnx(module: torch.nn.Module, path: Path) -> float:
    """torchvision's model through PyTorch's own exporter (torch.export; it needs
    onnxscript, which netc itself no longer does), with the settings netc used
    before it wrote its graphs from the IR."""
    start = time.perf_counter()
    with quiet(), torch.no_grad():
        torch.onnx.export(
            module,
            (torch.randn(2, *INPUT),),
            str(path),
            dynamo=True,
            opset_version=18,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            optimize=True,
        )
    return time.perf_counter() - start


def export_netc(net: ir.Network, deploy: ir.Network, checkpoint, path: Path) -> float:
    """netc's own ONNX export of the ``deploy`` build of ``net``, from a training checkpoint."""
    import inspect

    try:
        from compiler.backends import onnx_export
    except ImportError:
        module = build_module(deploy, deploy=True).eval()
        module.load_training_checkpoint(checkpoint)
        return export_onnx(module, path)
    with quiet():
        if "deploy" in inspect.signature(onnx_export.export).parameters:
            return onnx_export.export(net, path, state_dict=checkpoint, deploy=deploy).seconds
        module = build_module(deploy, deploy=True).eval()
        module.load_training_checkpoint(checkpoint)
        return onnx_export.export(deploy, path, state_dict=module.state_dict()).seconds


def int8_row(net: ir.Network, spec: str, fp32: Path, work: Path, threads: int, macs: int) -> Row:
    """netc's int8 ONNX (``--quantize int8``) of the fp32 export at ``fp32``, calibrated
    on 8 batches of 32 synthetic images (for latency, what the images are does not matter)."""
    from compiler.backends import quantize
    from compiler.training import ship

    path = work / f"{spec}.int8.onnx"
    batches = ship.calibration_batches(net, "synthetic", None, 8, quantize.BATCH)
    with quiet():
        done = quantize.quantize(net, fp32, path, batches)
    return Row(
        f"{spec}: its int8 ONNX (QDQ) in onnxruntime",
        onnx_session(path, threads),
        macs,
        note=f"quantized in {done.seconds:.1f} s",
    )


def matmul_row(threads: int, n: int = 2048) -> Row:
    """An n x n x n fp32 matmul in onnxruntime, timed with the other rows (its
    input is fixed: ``macs`` is per call, whatever the batch)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    tensor = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "abc"]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", tensor[:2], tensor[2:]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feed = {k: rng.random((n, n), dtype=np.float32) for k in "ab"}
    return Row(f"onnxruntime fp32 matmul {n}^3", lambda x: session.run(None, feed), n**3)


def torch_matmul_row(n: int = 8192) -> Row:
    """The device's own large matmul in the rows' dtype: the practical peak off the CPU."""
    dtype = ON.autocast or torch.float32
    a, b = (torch.randn(n, n, device=ON.device, dtype=dtype) for _ in "ab")
    name = f"torch {str(dtype).removeprefix('torch.')} matmul {n}^3 on {ON.device.type}"
    return Row(name, lambda x: torch.mm(a, b), n**3)


def peak_gflops(row: Row, batch: int) -> float:
    return 2 * row.macs / statistics.median(row.times[batch]) / 1e9


# -- the run -------------------------------------------------------------------------------------


def build_rows(args, threads: int, work: Path) -> tuple[list[Row], dict[str, tuple[Row, ...]]]:
    rows: list[Row] = []
    targets: dict[str, tuple[Row, ...]] = {}
    tv_net = compiler.load(ROOT / "specs" / "googlenet_torchvision.net")
    tv_macs = ir.total_macs(tv_net.body)

    reference, label = torchvision_googlenet()
    reference.load_state_dict(training_checkpoint(tv_net), strict=True)
    tv_rows = baseline_rows(
        label, reference.eval(), tv_macs, args, work / "torchvision.onnx", threads
    )
    rows += tv_rows
    targets["torchvision"] = tuple(tv_rows)

    for spec in args.specs:
        net = compiler.load(ROOT / "specs" / f"{spec}.net")
        macs = ir.total_macs(net.body)
        checkpoint = training_checkpoint(net)
        if spec in HAND_WRITTEN:
            twin = hand_written(spec)
            twin.load_state_dict(checkpoint, strict=True)
            twin_rows = baseline_rows(
                f"{spec}: hand-written twin ({HAND_WRITTEN[spec]}) eager",
                twin.eval(),
                macs,
                args,
                work / f"{spec}.hand-written.onnx",
                threads,
            )
            rows += twin_rows
            targets[f"{spec} twin"] = tuple(twin_rows)
        runtime = ON.put(build_module(net).eval())
        runtime.load_state_dict(checkpoint, strict=True)
        generated, why = generated_module(net, checkpoint)
        optimised = passes.optimise(net)
        deploy = build_module(optimised, deploy=True).eval()
        deploy.load_training_checkpoint(checkpoint)
        deploy = ON.put(deploy)
        shipped, why_not = generated_module(optimised, checkpoint, deploy=True)
        spec_rows = [
            Row(f"{spec}: netc runtime module", runtime, macs),
            Row(f"{spec}: netc generated module", generated, macs, note=why),
            Row(
                f"{spec}: netc optimised deploy, runtime module",
                deploy,
                macs,
                note=", ".join(optimised.passes),
            ),
            Row(f"{spec}: netc generated deploy source", shipped, macs, note=why_not),
        ]
        if args.compile and shipped is not None:
            spec_rows.append(
                Row(
                    f"{spec}: the generated deploy source under torch.compile",
                    compiled(shipped),
                    macs,
                )
            )
        if args.onnx:
            for_onnx = passes.optimise(net, target="onnx")
            path = work / f"{spec}.onnx"
            seconds = export_netc(net, for_onnx, checkpoint, path)
            spec_rows.append(
                Row(
                    f"{spec}: its ONNX export in onnxruntime",
                    onnx_session(path, threads),
                    macs,
                    note=f"export {seconds:.1f} s",
                )
            )
            if args.int8:
                spec_rows.append(int8_row(net, spec, path, work, threads, macs))
        rows += spec_rows
        targets[spec] = tuple(spec_rows)
        if args.ablation:
            for name in passes.PASSES:
                off = passes.optimise(net, disable={name})
                source, _ = generated_module(off, checkpoint, deploy=True)
                rows.append(Row(f"{spec}:   generated deploy without {name}", source, macs))
    return rows, targets


def baseline_rows(
    label: str, model: torch.nn.Module, macs: int, args, onnx_path: Path, threads: int
) -> list[Row]:
    """A hand-written PyTorch model as a user would run it: eager, channels_last, under
    torch.compile and through PyTorch's ONNX exporter in onnxruntime."""
    if args.onnx:
        seconds = export_onnx(model, onnx_path)  # on the CPU, before it moves
    model = ON.put(model)
    model_cl = build_copy(model).to(memory_format=torch.channels_last)
    rows = [
        Row(label, model, macs),
        Row("  the same, channels_last", channels_last_call(model_cl), macs),
    ]
    if args.compile:
        rows.append(Row("  the same (channels_last) under torch.compile", compiled(model_cl), macs))
    if args.onnx:
        rows.append(
            Row(
                "  its ONNX export in onnxruntime",
                onnx_session(onnx_path, threads),
                macs,
                note=f"export {seconds:.1f} s",
            )
        )
    return rows


def hand_written(spec: str) -> torch.nn.Module:
    """The same architecture as ``spec``, written by hand in PyTorch (tests/reference_models.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_models

    return getattr(reference_models, HAND_WRITTEN[spec])(aux_logits=True)


def build_copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


def channels_last_call(module: torch.nn.Module) -> Callable:
    return lambda x: module(x.contiguous(memory_format=torch.channels_last))


def time_rows(rows: list[Row], batch: int, warmup: int, rounds: int) -> None:
    """Each row once per round, in order; the matmul row too, so that whatever
    else the machine does spreads over all of them."""
    x = torch.randn(batch, *INPUT, generator=torch.Generator().manual_seed(batch))
    x = x.to(ON.device)
    live = [r for r in rows if r.run is not None]
    with torch.inference_mode():
        for row in live:
            start = time.perf_counter()
            ON.call(row.run, x)  # the first call compiles, packs weights, plans
            row.setup_s[batch] = time.perf_counter() - start
            for _ in range(warmup - 1):
                ON.call(row.run, x)
            row.times[batch] = []
        for _ in range(rounds):
            for row in live:
                start = time.perf_counter()
                ON.call(row.run, x)
                row.times[batch].append(time.perf_counter() - start)


def report(rows: list[Row], batches: list[int], peaks: dict[int, float], threads: int) -> None:
    width = max(len(r.name) for r in rows)
    for batch in batches:
        peak = peaks[batch]
        first = statistics.median(rows[0].times[batch])
        print(
            f"\nbatch {batch}, {INPUT[0]}x{INPUT[1]}x{INPUT[2]}, {threads} threads: "
            f"median ms per batch over {len(rows[0].times[batch])} rounds"
        )
        print(
            f"{'':{width}}  {'ms':>9}  {'ratio':>6}  {'min ms':>8}  {'img/s':>7}  {'GFLOP/s':>7}"
            f"  {'% peak':>6}"
        )
        for row in rows:
            if row.run is None:
                print(f"{row.name:{width}}  {row.note}")
                continue
            t = statistics.median(row.times[batch])
            gflops = 2 * row.macs * batch / t / 1e9
            note = f"  {row.note}" if row.note else ""
            print(
                f"{row.name:{width}}  {t * 1e3:9.1f}  {t / first:6.3f}  "
                f"{min(row.times[batch]) * 1e3:8.1f}  {batch / t:7.1f}  "
                f"{gflops:7.1f}  {100 * gflops / peak:5.1f}%{note}"
            )


def report_setup(rows: list[Row], batches: list[int]) -> None:
    slow = [r for r in rows if r.run is not None and "torch.compile" in r.name]
    if not slow:
        return
    print(
        "\ncompile time (first call: tracing + inductor with "
        f"{', '.join(f'{k}={v}' for k, v in COMPILE_OPTIONS.items())}), per batch size:"
    )
    for row in slow:
        print(
            f"  {row.name.strip()}: "
            + ", ".join(f"batch {b}: {row.setup_s[b]:.1f} s" for b in batches)
        )


def find_row(rows: tuple[Row, ...], text: str) -> Row | None:
    """The first row of ``rows`` that runs here and has ``text`` in its name."""
    return next((r for r in rows if text in r.name and r.run is not None), None)


def report_targets(groups: dict[str, tuple[Row, ...]], batch: int, peak: float) -> None:
    """Issue 10's targets, each a ratio of two rows' medians in this run."""
    if batch not in groups["torchvision"][0].times:
        return

    def ms(row: Row) -> float:
        return statistics.median(row.times[batch]) * 1e3

    print(f"\ntargets at batch {batch}:")
    for spec, rs in groups.items():
        if spec == "torchvision" or spec.endswith(" twin"):
            continue
        # The runtime deploy module makes the generated source's calls (the same
        # outputs, bit for bit): its row is there to show that, not as a target.
        shipped = find_row(rs, "generated deploy source")
        comp, onnx_row, int8_row = (
            find_row(rs, "torch.compile"),
            find_row(rs, "ONNX"),
            find_row(rs, "int8"),
        )
        baselines = [("torchvision", groups["torchvision"])]
        if f"{spec} twin" in groups:  # the same architecture by hand: equal MACs
            baselines.append(("the hand-written twin", groups[f"{spec} twin"]))
        checks = []
        for who, base in baselines:
            checks += [
                (
                    f"generated deploy eager <= 0.8 x {who} channels_last",
                    shipped,
                    find_row(base, "channels_last"),
                    0.8,
                ),
                (
                    f"generated deploy under torch.compile <= {who}'s",
                    comp,
                    find_row(base, "torch.compile"),
                    1.0,
                ),
                (
                    f"netc ONNX in onnxruntime <= {who}'s export",
                    onnx_row,
                    find_row(base, "ONNX"),
                    1.0,
                ),
            ]
        checks.append(("int8 ONNX <= 0.5 x netc's fp32 ONNX", int8_row, onnx_row, 0.5))
        for what, mine, theirs, limit in checks:
            if mine is None or theirs is None:
                continue
            ratio = ms(mine) / ms(theirs)
            print(
                f"  {spec}: {what}: {ms(mine):.1f} / {ms(theirs):.1f} ms = {ratio:.3f} "
                f"[{'met' if ratio <= limit else 'MISSED'}]"
            )
        if onnx_row:
            gflops = 2 * onnx_row.macs * batch / (ms(onnx_row) / 1e3) / 1e9
            print(
                f"  {spec}: netc ONNX in onnxruntime, % of the matmul's GFLOP/s: "
                f"{gflops:.0f} / {peak:.0f} = {100 * gflops / peak:.0f}%"
            )


# -- profile -----------------------------------------------------------------------------------


def profile_row(row: Row, batch: int, calls: int = 3) -> dict[str, float]:
    """Self CPU time per ATen operator over ``calls`` forwards, in ms per forward."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(batch, *INPUT, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode(), stderr_to_devnull():  # the profiler's own chatter
        ON.call(row.run, x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                ON.call(row.run, x)
    per_op: dict[str, float] = {}
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            per_op[event.key] = event.self_cpu_time_total / 1e3 / calls
    return per_op


@contextlib.contextmanager
def stderr_to_devnull():
    """File descriptor 2 to /dev/null: kineto writes to it from C++."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def report_profile(groups: dict[str, tuple[Row, ...]], batch: int) -> None:
    """Where the eager time goes, and what that bounds: if everything but the
    convolutions took no time at all, netc's generated deploy source would run in its
    convolution time, so that over the baseline's total is the best ratio eager
    PyTorch could reach with these convolution calls."""
    eager = []
    for group, rows in groups.items():
        if group == "torchvision" or group.endswith(" twin"):
            row, label = find_row(rows, "channels_last"), f"{group} channels_last"
        else:
            row, label = (
                find_row(rows, "generated deploy source"),
                f"{group}: netc generated deploy source",
            )
        if row is not None:
            eager.append((row, label))
    print(f"\nprofile at batch {batch} (self CPU ms per forward, torch.profiler):")
    totals: dict[str, tuple[float, float]] = {}
    for row, label in eager:
        per_op = profile_row(row, batch)
        total = sum(per_op.values())
        conv = sum(t for op, t in per_op.items() if "conv" in op)  # oneDNN and the slow path
        gflops = 2 * row.macs * batch / (conv / 1e3) / 1e9
        top = sorted(per_op.items(), key=lambda item: -item[1])[:5]
        print(
            f"  {label}: {total:.1f} ms, convolutions {conv:.1f} ms ({100 * conv / total:.0f}%, "
            f"{gflops:.0f} GFLOP/s in them); "
            + ", ".join(f"{op.removeprefix('aten::')} {t:.1f}" for op, t in top)
        )
        totals[label] = (total, conv)
    for label, (_total, conv) in totals.items():
        if "netc" not in label:
            continue
        spec = label.split(":")[0]
        for base in ("torchvision channels_last", f"{spec} twin channels_last"):
            if base in totals:
                print(
                    f"  {label}: convolutions alone / {base} = {conv:.1f} / "
                    f"{totals[base][0]:.1f} ms = {conv / totals[base][0]:.3f} (the eager bound)"
                )


# -- memory ------------------------------------------------------------------------------------


def memory_child(kind: str, spec: str, batch: int, onnx_file: str, threads: int) -> None:
    """In a fresh process: build one model, then run two forwards at ``batch``; print
    the resident memory after building and the peak during the forwards (MiB)."""
    torch.set_num_threads(threads)
    run = _memory_model(kind, spec, onnx_file, threads)
    import gc

    gc.collect()
    x = torch.randn(batch, *INPUT)
    built = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak, to the current RSS
    with torch.inference_mode():
        for _ in range(2):
            run(x)
    print(f"{built / 1024:.0f} {_status_kib('VmHWM') / 1024:.0f}")


def _memory_model(kind: str, spec: str, onnx_file: str, threads: int) -> Callable:
    if kind == "onnxruntime":  # the file holds its weights
        return onnx_session(Path(onnx_file), threads)
    net = compiler.load(ROOT / "specs" / f"{spec}.net")
    checkpoint = training_checkpoint(net)
    if kind in ("torchvision channels_last", "hand-written twin channels_last"):
        model = torchvision_googlenet()[0] if kind.startswith("torchvision") else hand_written(spec)
        model.load_state_dict(checkpoint, strict=True)
        return channels_last_call(model.eval().to(memory_format=torch.channels_last))
    if kind == "runtime deploy":
        deploy = build_module(passes.optimise(net), deploy=True).eval()
        deploy.load_training_checkpoint(checkpoint)
        return deploy
    shipped, _ = generated_module(passes.optimise(net), checkpoint, deploy=True)
    assert shipped is not None, "the source backend is missing"
    return shipped


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def report_memory(args, batch: int, threads: int, onnx_files: dict[str, Path]) -> None:
    """Each model in its own process, so that one's heap does not hide another's peak."""
    import subprocess

    print(f"\nresident memory, batch {batch} (MiB; each model alone in a fresh process):")
    print(f"  {'':58}  {'built':>7}  {'peak':>7}  {'forward':>7}")
    cases = [("torchvision channels_last", "googlenet_torchvision", "")]
    for spec in args.specs:
        if spec in HAND_WRITTEN:
            cases.append(("hand-written twin channels_last", spec, ""))
        cases += [("runtime deploy", spec, ""), ("generated deploy", spec, "")]
    cases += [("onnxruntime", name, str(path)) for name, path in onnx_files.items()]
    for kind, spec, onnx_file in cases:
        command = [sys.executable, __file__, "--memory-child", kind, spec, str(batch), onnx_file]
        command += ["--mallopt"] if args.mallopt else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        label = f"{spec}: {kind}" if kind != "onnxruntime" else f"{spec}: ONNX in onnxruntime"
        if done.returncode != 0:
            print(f"  {label:58}  failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        built, peak = map(float, done.stdout.split()[-2:])
        print(f"  {label:58}  {built:7.0f}  {peak:7.0f}  {peak - built:7.0f}")


def busy_seconds() -> tuple[float, float] | None:
    """CPU seconds the whole machine and this process have used so far (Linux)."""
    import resource

    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    mine = sum(  # this process and the ones it waited for (--memory's)
        u.ru_utime + u.ru_stime
        for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    return (user + nice + system + irq + softirq + steal) / ticks, mine


def other_processes(at_start, start: float, threads: int) -> float | None:
    """The share of the machine other processes used since ``start``."""
    now = busy_seconds()
    if at_start is None or now is None:
        return None
    machine, mine = now[0] - at_start[0], now[1] - at_start[1]
    return max(0.0, machine - mine) / ((time.perf_counter() - start) * threads)


def cpu_line() -> str:
    """The CPU's model name and its vector extensions, from /proc/cpuinfo (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU: unknown"
    fields = dict(line.split(":", 1) for line in info.splitlines()[:40] if ":" in line)
    model = fields.get("model name\t", "unknown").strip()
    flags = fields.get("flags\t\t", "").split()
    wanted = [f for f in flags if f.startswith(("avx", "fma", "amx")) or f == "f16c"]
    return f"CPU: {model}; {' '.join(wanted) or 'no AVX'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="+", default=list(SPECS))
    parser.add_argument(
        "--batches", nargs="+", type=int, help="default: 1 and 16 on the CPU, 256 on a GPU"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, or cuda for the GPU rows (no ONNX, int8, memory or profile rows there)",
    )
    parser.add_argument(
        "--autocast",
        choices=["bf16"],
        help="run every torch row under torch.autocast in this dtype (fp32 without it)",
    )
    parser.add_argument(
        "--rounds", type=int, default=0, help="timed rounds (default: 20 at batch 1, 5 at 16)"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument(
        "--compile-cache", action="store_true", help="let inductor reuse its disk cache"
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also the generated deploy source with each pass off",
    )
    parser.add_argument(
        "--mallopt",
        action="store_true",
        help="keep freed blocks in glibc's heap (as netc train does) for every row",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also the peak resident memory of each deploy model at the largest batch",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also each spec's int8 ONNX (netc compile --quantize int8) in onnxruntime",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also where the eager rows spend their time at the largest batch (torch.profiler)",
    )
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ON.device = torch.device(args.device)
    ON.autocast = {"bf16": torch.bfloat16, None: None}[args.autocast]
    on_gpu = ON.device.type != "cpu"
    if on_gpu:  # onnxruntime, RSS and the CPU profile are CPU measurements
        if not (ON.device.type == "cuda" and torch.cuda.is_available()):
            sys.exit(f"--device {args.device}: no such device here")
        args.onnx = args.int8 = args.memory = args.profile = False
    args.batches = args.batches or ([256] if on_gpu else [1, 16])

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    if args.mallopt:
        from compiler.training.loop import tune_allocator

        if not tune_allocator():
            sys.exit("--mallopt: glibc's mallopt is not available here")
    if args.memory_child:
        kind, spec, batch, onnx_file = args.memory_child
        memory_child(kind, spec, int(batch), onnx_file, threads)
        return
    print(
        f"torch {torch.__version__}, {threads} threads, "
        f"onnxruntime {__import__('onnxruntime').__version__}, python {sys.version.split()[0]}"
    )
    print(cpu_line())
    if on_gpu:
        print(
            f"device: {torch.cuda.get_device_name(ON.device)}; "
            f"TF32 in convolutions {torch.backends.cudnn.allow_tf32}, "
            f"in matmuls {torch.backends.cuda.matmul.allow_tf32}"
        )
    print(f"dtype: {'autocast ' + args.autocast if args.autocast else 'fp32'}")
    print(f"allocator: glibc{' with mallopt (--mallopt)' if args.mallopt else ', defaults'}")
    start = time.perf_counter()
    busy_at_start = busy_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        rows, groups = build_rows(args, threads, Path(tmp))
        print(f"built and exported in {time.perf_counter() - start:.0f} s")
        matmul = torch_matmul_row() if on_gpu else matmul_row(threads)
        peaks = {}
        for batch in args.batches:
            rounds = args.rounds or (20 if batch == 1 or on_gpu else 5)
            time_rows([*rows, matmul], batch, args.warmup, rounds)
            peaks[batch] = peak_gflops(matmul, batch)
            print(f"batch {batch}: {matmul.name}: {peaks[batch]:.0f} GFLOP/s (the peak below)")
        report(rows, args.batches, peaks, threads)
        report_setup(rows, args.batches)
        for batch in args.batches:
            report_targets(groups, batch, peaks[batch])
        if args.profile:
            report_profile(groups, max(args.batches))
        if args.memory:
            onnx_files = {p.stem: p for p in sorted(Path(tmp).glob("*.onnx"))}
            report_memory(args, max(args.batches), threads, onnx_files)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    others = other_processes(busy_at_start, start, threads)
    if others is not None:
        print(
            f"other processes used {100 * others:.0f}% of the machine during the run"
            + (": the times are inflated, ratios less so" if others > 0.1 else "")
        )


if __name__ == "__main__":
    main()
