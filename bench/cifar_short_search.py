"""Which Inception modules does seed 004's "GoogleNet Short" (and Short2) drop?

Seed 004 gives parameter counts for variants of the pytorch-cifar100 GoogLeNet that it
names but does not draw. This script writes specs/googlenet_cifar.net with every subset of
its nine Inception modules removed (2^9 - 1 specs; the max pools stay), lets netc count the
parameters of each at 100 and at 10 classes (``compiler.load``: no torch), and prints the
subsets whose counts are the seed's. Run: ``python bench/cifar_short_search.py``.
"""

from __future__ import annotations

import itertools
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import compiler
from compiler import ir

SEED_004 = {  # name: (parameters at 100 classes, at 10)
    "GoogleNet": (6_258_500, 6_166_250),
    "GoogleNet Long": (9_641_924, 9_549_674),
    "GoogleNet Short": (5_271_652, 5_179_402),
    "GoogleNet Short2": (3_523_556, 3_431_306),
    "GoogleNet Short3": (1_985_220, 1_892_970),
    "GoogleNet Short4": (1_650_084, 1_557_834),
}
MODULES = ("a3", "b3", "a4", "b4", "c4", "d4", "e4", "a5", "b5")


def main() -> None:
    text = (ROOT / "specs" / "googlenet_cifar.net").read_text(encoding="utf-8")
    wanted = {counts: name for name, counts in SEED_004.items()}
    start = time.perf_counter()
    matched: set[str] = set()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "variant.net"
        for size in range(len(MODULES)):
            for removed in itertools.combinations(MODULES, size):
                lines = [
                    line
                    for line in text.splitlines()
                    if not any(re.match(rf"\s+{name} = ", line) for name in removed)
                ]
                path.write_text("\n".join(lines), encoding="utf-8")
                counts = tuple(
                    ir.total_params(compiler.load(path, num_classes=n).body) for n in (100, 10)
                )
                if counts in wanted:
                    matched.add(wanted[counts])
                    kept = [m for m in MODULES if m not in removed]
                    print(
                        f"{wanted[counts]}: {counts[0]:,} / {counts[1]:,} parameters: "
                        f"remove {', '.join(removed) or 'nothing'} (keep {' '.join(kept)})"
                    )
    tried = 2 ** len(MODULES) - 1
    print(f"{tried} variants counted in {time.perf_counter() - start:.1f} s")
    missing = [name for name in SEED_004 if name not in matched]
    print("not made by removing modules:", ", ".join(missing) or "none")


if __name__ == "__main__":
    main()
