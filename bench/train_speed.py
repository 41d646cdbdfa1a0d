"""Training speed of ``netc train`` on this machine (prints figures, asserts nothing).

1. Step throughput (images/s in the second epoch) of ``netc train`` against a
   hand-written loop in the style of seed 004 (DataLoader over tensors,
   ``F.cross_entropy``, plain SGD) on the generated module of the same spec,
   same data and batch; each in a fresh process, rounds interleaved. The netc
   rows are with and without the glibc ``mallopt`` (``NETC_NO_MALLOPT=1``);
   each row has the minor page faults of its whole process (``resource.getrusage``:
   start-up, data and model included).
2. DDP: 2 processes x 1 thread (``--nproc 2``) against 1 process x 2 threads.
3. A stem and three Inception blocks trained on digits until 95% test top-1,
   with the wall time.

    python bench/train_speed.py [--quick]

The machine is shared: the load average is printed before and after, and every
figure is one run unless said otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIGITS_SPEC = """import "std/inception.net"

# A stem and three Inception blocks for 16x16 digits.
network DigitsInception(num_classes: int = 10) {
    input 1x16x16
    stem = ConvBlock(32, 3, padding=1)
    i1 = Inception(16, 16, 24, 4, 8, 8)
    maxpool(2, stride=2)
    i2 = Inception(24, 24, 32, 8, 12, 12)
    i3 = Inception(32, 32, 48, 8, 16, 16)
    global_avgpool
    flatten
    fc = linear(num_classes)
}
"""


def cpu() -> str:
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4")))
    return f"{model}; {os.cpu_count()} logical CPUs; flags: {' '.join(wanted)}"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# -- the children: one measurement per fresh process ----------------------------------------


def child_hand(spec: str, sets: list[str], input_shape: str, batch: int, n: int) -> dict:
    """Seed 004's loop on the generated source module."""
    import resource

    import torch
    import torch.nn.functional as F

    from compiler import load as load_net
    from compiler.backends.source import emit
    from compiler.training import data

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    params = dict(item.split("=") for item in sets)
    shape = tuple(int(v) for v in input_shape.split("x"))
    net = load_net(spec, shape, **{k: int(v) for k, v in params.items()})
    source = Path(tempfile.mkdtemp(prefix="netc-bench-src-")) / "generated_model.py"
    source.write_text(emit(net))
    module_spec = importlib.util.spec_from_file_location("generated_model", source)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    cls = getattr(module, net.name)
    torch.manual_seed(0)
    model = cls()
    dataset = data.load(f"synthetic:{n}", net.input_shape, net.out_shape[0])
    x = data.Pipeline(net.input_shape, dataset.scale)(dataset.train_x)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, dataset.train_y),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    speeds = []
    for _epoch in range(2):
        model.train()
        start, seen = time.perf_counter(), 0
        for images, target in loader:
            optimizer.zero_grad()
            output = model(images)
            main = output if isinstance(output, torch.Tensor) else output[0]
            loss = F.cross_entropy(main, target)
            loss.backward()
            optimizer.step()
            seen += len(target)
        speeds.append(seen / (time.perf_counter() - start))
    return {
        "images_per_s": speeds[-1],
        "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
    }


def child_netc(spec: str, sets: list[str], input_shape: str, batch: int, n: int, extra) -> dict:
    import resource

    from compiler.cli import load_network
    from compiler.training.loop import Config, train

    net = load_network(spec, tuple(sets), input_shape)
    out = tempfile.mkdtemp(prefix="netc-bench-")
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    config = Config(
        data=f"synthetic:{n}",
        out=out,
        epochs=2,
        batch_size=batch,
        lr=0.01,
        momentum=0.0,
        plot=False,
        threads=threads,
        **extra,
    )
    metrics = train(net, config)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return {"images_per_s": metrics[-1]["images_per_s"], "faults": faults}


def run_child(kind: str, args, env=None, extra=None) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--spec",
        args.spec,
        "--input",
        args.input,
        "--batch",
        str(args.batch),
        "--images",
        str(args.images),
    ]
    for item in args.set:
        command += ["--set", item]
    if extra:
        command += ["--extra", json.dumps(extra)]
    result = subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ddp_speed(args, nproc: int, threads: int) -> float:
    out = tempfile.mkdtemp(prefix="netc-bench-ddp-")
    command = [
        sys.executable,
        "-m",
        "compiler.cli",
        "train",
        args.spec,
        "--input",
        args.input,
        "--data",
        f"synthetic:{args.images}",
        "--epochs",
        "2",
        "--batch-size",
        str(args.batch),
        "--lr",
        "0.01",
        "--no-plot",
        "--out",
        out,
        "--nproc",
        str(nproc),
        "--threads",
        str(threads),
    ]
    for item in args.set:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(command, env=env, check=False, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"DDP run failed:\n{result.stdout}\n{result.stderr}")
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["images_per_s"]


def digits_to_95(quick: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="netc-bench-digits-"))
    spec = folder / "digits_inception.net"
    spec.write_text(DIGITS_SPEC)
    epochs = 6 if quick else 12
    command = [
        sys.executable,
        "-m",
        "compiler.cli",
        "train",
        str(spec),
        "--data",
        "digits",
        "--epochs",
        str(epochs),
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--normalize",
        "0.5,0.5",
        "--out",
        str(folder / "run"),
        "--no-plot",
        "--threads",
        "2",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"digits run failed:\n{result.stdout}\n{result.stderr}")
    rows = [
        json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    reached = next((r for r in rows if r["test_acc"] >= 0.95), None)
    train_s = 0.0
    for r in rows:
        train_s += r["seconds"]
        if r is reached:
            break
    first_line = result.stdout.splitlines()[0]
    print(f"  {first_line}")
    for r in rows:
        print(f"  epoch {r['epoch']:2d}: test top-1 {r['test_acc']:.2%}, {r['seconds']:.1f} s")
    if reached:
        print(
            f"  >= 95% at epoch {reached['epoch']} ({reached['test_acc']:.2%}): "
            f"{train_s:.1f} s of training; the whole command took {wall:.1f} s for {epochs} epochs"
        )
    else:
        print(
            f"  95% not reached in {epochs} epochs (best {max(r['test_acc'] for r in rows):.2%}); "
            f"{wall:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "googlenet_cifar.net"))
    parser.add_argument("--set", action="append", default=None)
    parser.add_argument("--input", default="3x16x16", help="CxHxW (smaller than 32x32: CPU)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=256, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--extra", default="{}")
    args = parser.parse_args()
    args.set = args.set if args.set is not None else ["num_classes=10"]
    if args.child:
        if args.child == "hand":
            result = child_hand(args.spec, args.set, args.input, args.batch, args.images)
        else:
            result = child_netc(
                args.spec, args.set, args.input, args.batch, args.images, json.loads(args.extra)
            )
        print(json.dumps(result))
        return
    if args.quick:
        args.rounds, args.images = 1, 128

    print(f"CPU: {cpu()}")
    print(f"load average before: {load()} (a shared machine: other jobs run alongside)")
    print(
        f"\n1. {Path(args.spec).name} {' '.join(args.set)} at {args.input}, batch {args.batch}, "
        f"{args.images} images/epoch, 1 thread, images/s of epoch 2 ({args.rounds} rounds, "
        "fresh process each)"
    )
    rows = {
        "hand-written loop (generated module, plain SGD)": ({}, None),
        "netc train": ({}, {}),
        "netc train without mallopt": ({"NETC_NO_MALLOPT": "1"}, {}),
        "netc train --channels-last": ({}, {"channels_last": True}),
    }
    results: dict[str, list[dict]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (env, extra) in rows.items():
            kind = "hand" if extra is None else "netc"
            results[name].append(run_child(kind, args, env, extra))
    base = max(
        r["images_per_s"] for r in results["hand-written loop (generated module, plain SGD)"]
    )
    for name, runs in results.items():
        best = max(r["images_per_s"] for r in runs)
        faults = min(r["faults"] for r in runs)
        print(
            f"  {name:52s} {best:8.1f} img/s  ratio {best / base:5.2f}  "
            f"minor faults {faults / 1e3:8.1f} k"
        )

    print("\n2. DDP on the same model: 2 processes x 1 thread vs 1 process x 2 threads")
    two = ddp_speed(args, 2, 1)
    one = ddp_speed(args, 1, 2)
    print(
        f"  --nproc 2 (1 thread each): {two:.1f} img/s; 1 process, 2 threads: {one:.1f} img/s; "
        f"ratio {two / one:.2f}"
    )

    print(
        "\n3. A stem and three Inception blocks on digits (1x16x16), Adam 3e-3, batch 32, 2 threads"
    )
    digits_to_95(args.quick)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
