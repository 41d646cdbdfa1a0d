"""Seed 004's comparison on this machine: GoogLeNet (pytorch-cifar100 form), its Naive
form and depth variants, each trained N epochs with seed 004's recipe (Adadelta lr 1.0,
StepLR step 1 gamma 0.7, horizontal flips, normalisation 0.5/0.5), printing the seed's
table: top-1 error, top-5 error, parameters, time. Prints figures, asserts nothing.

    python bench/train_variants.py [--data digits|cifar10:PATH|cifar100:PATH] [--epochs N]
        [--input 3x32x32] [--only NAME ...]

The depth variants are the seed's that a spec can state exactly: Short keeps a3 b3 a4 d4
e4 a5 b5 (5,271,652 parameters at 100 classes, as the seed says) and Short2 a3 b3 a4 a5
b5 (3,523,556, as the seed says; a3 b3 a4 e4 b5 gives the same count); which blocks the seed's Long, Short3 and Short4 kept is
not said, and no removal of blocks from GoogLeNet gives their parameter counts, so they
are left out. Parameters are printed for the classes of the data (digits and CIFAR-10:
10). --input 3x32x32 (the specs' own) is the default: slow on a CPU, where --input 3x8x8
(digits' own size) is the short setting.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEAD = """import "std/cifar.net"

network {name}(num_classes: int = 100, dropout: float = 0.4) {{
    input 3x32x32
    prelayer = conv(192, 3, padding=1) -> batchnorm -> relu
"""
TAIL = """    avgpool = adaptive_avgpool(1)
    dropout = dropout2d(dropout)
    flatten
    linear = linear(num_classes)
}
"""
BLOCKS = {
    "a3": "64, 96, 128, 16, 32, 32",
    "b3": "128, 128, 192, 32, 96, 64",
    "a4": "192, 96, 208, 16, 48, 64",
    "b4": "160, 112, 224, 24, 64, 64",
    "c4": "128, 128, 256, 24, 64, 64",
    "d4": "112, 144, 288, 32, 64, 64",
    "e4": "256, 160, 320, 32, 128, 128",
    "a5": "256, 160, 320, 32, 128, 128",
    "b5": "384, 192, 384, 48, 128, 128",
}
VARIANTS = {  # name: blocks kept (the max pools stay after b3 and e4 when those are there)
    "GoogleNet Short": ("a3", "b3", "a4", "d4", "e4", "a5", "b5"),
    "GoogleNet Short2": ("a3", "b3", "a4", "a5", "b5"),
}


def variant_spec(name: str, kept: tuple[str, ...]) -> str:
    lines = [HEAD.format(name=name.replace(" ", ""))]
    for block, args in BLOCKS.items():
        if block in kept:
            lines.append(f"    {block} = CifarInception({args})\n")
        if block == "b3":
            lines.append("    maxpool = maxpool(3, stride=2, padding=1)\n")
        if block == "e4":
            lines.append("    maxpool(3, stride=2, padding=1)\n")
    return "".join(lines) + TAIL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input", default="3x32x32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="names of the rows to run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="netc-variants-"))
    classes = 100 if args.data.startswith("cifar100") else 10
    rows = {
        "GoogleNet Naive": ROOT / "specs" / "googlenet_naive.net",
        "GoogleNet": ROOT / "specs" / "googlenet_cifar.net",
    }
    for name, kept in VARIANTS.items():
        path = folder / f"{name.replace(' ', '_').lower()}.net"
        path.write_text(variant_spec(name, kept))
        rows[name] = path
    sys.path.insert(0, str(ROOT))
    from compiler import ir, load

    print(
        f"data {args.data}, input {args.input}, {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.threads} threads; Adadelta 1.0, StepLR(1, 0.7), hflip, normalize 0.5/0.5"
    )
    print("| model | Top 1 Error | Top 5 Error | Parameters | Time |")
    print("|---|---|---|---|---|")
    for name, spec in rows.items():
        if args.only and name not in args.only:
            continue
        std = spec.parent / "std"
        if not std.exists():
            std.symlink_to(ROOT / "specs" / "std")
        params = ir.total_params(load(spec, num_classes=classes).body)
        out = folder / name.replace(" ", "_")
        command = [
            sys.executable,
            "-m",
            "compiler.cli",
            "train",
            str(spec),
            "--set",
            f"num_classes={classes}",
            "--input",
            args.input,
            "--data",
            args.data,
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--optimizer",
            "adadelta",
            "--lr",
            "1.0",
            "--schedule",
            "step",
            "--step-size",
            "1",
            "--gamma",
            "0.7",
            "--hflip",
            "--normalize",
            "0.5,0.5",
            "--out",
            str(out),
            "--no-plot",
            "--threads",
            str(args.threads),
        ]
        start = time.perf_counter()
        result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(
                f"| {name} | failed: {result.stderr.strip().splitlines()[-1:]} | | {params:,} | |"
            )
            continue
        last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        train_s = sum(
            json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()
        )
        print(
            f"| {name} | {1 - last['test_acc']:.2f} | {1 - last['test_top5']:.2f} | {params:,} | "
            f"{int(wall // 60)}m{wall % 60:.0f}s ({train_s:.0f} s training) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
