"""The ONNX exports tests/test_onnx.py checks, one per shipped spec.

Exporting is the slowest thing the suite does (torch.export traces and
decomposes each network: 3 to 8 s a spec), and it does not depend on anything
else the suite does, so conftest.py starts it in a process of its own when the
session begins: on a two-core machine it runs beside the rest of the suite
(which uses one thread, see conftest.py). test_onnx.py waits for it, and
exports in-process whatever the background run did not give it.

    python tests/onnx_exports.py FOLDER STEM...

writes FOLDER/STEM.onnx and FOLDER/STEM.json (what ``onnx_export.export``
returned) for each STEM, from the same perturbed weights test_onnx.py builds
(``plain_deploy_module``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import compiler
from compiler import ir
from compiler.backends import onnx_export
from compiler.backends.runtime import build_module

try:
    from test_source import SPECS, perturb
except ImportError:  # tests/ imported as a package
    from tests.test_source import SPECS, perturb

ROOT = Path(__file__).resolve().parent.parent
SEED = 11


def plain_deploy_module(stem: str) -> tuple[ir.Network, torch.nn.Module]:
    """The spec at its small test input, and its plain deploy module with perturbed weights."""
    net = compiler.load(ROOT / "specs" / f"{stem}.net", SPECS[stem])
    module = build_module(net, deploy=True).eval()
    perturb(module, SEED)
    return net, module


def export(stem: str, folder: Path) -> onnx_export.Exported:
    """``stem``'s optimised deploy graph, exported from ``plain_deploy_module``'s weights."""
    net, module = plain_deploy_module(stem)
    info = onnx_export.export(net, folder / f"{stem}.onnx", state_dict=module.state_dict())
    record = {"opset": info.opset, "seconds": info.seconds, "bytes": info.bytes}
    partial = folder / f"{stem}.json.tmp"
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(folder / f"{stem}.json")  # whole, or not there: test_onnx.py polls for it
    return info


def exported(stem: str, folder: Path) -> onnx_export.Exported | None:
    """What ``export`` wrote for ``stem`` into ``folder``, or None if it did not."""
    record = folder / f"{stem}.json"
    if not record.exists():
        return None
    fields = json.loads(record.read_text(encoding="utf-8"))
    return onnx_export.Exported(path=folder / f"{stem}.onnx", **fields)


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    for stem in argv[1:]:
        export(stem, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
