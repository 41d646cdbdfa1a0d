"""Settings for the whole test session.

One intra-op thread for torch (OpenMP, MKL, oneDNN) in the tests and in every
process they start, unless the environment says otherwise. The tests run small
tensors, where a second thread gains little; and on a busy machine (a CI runner,
a benchmark, another suite) every parallel region waits at OpenMP's barrier for
a thread the OS has descheduled: with two threads on a loaded two-core machine
the suite took four times as long. Set here, before anything imports torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


# -- the ONNX exports, in the background ---------------------------------------------------------
# test_onnx.py checks an export of every shipped spec; exporting is the slowest thing the
# suite does (see onnx_exports.py). It starts in a second process once the tests are
# collected, and test_onnx.py runs last, so on two cores it overlaps the rest of the suite.
# NETC_ONNX_IN_PROCESS=1 turns this off: test_onnx.py then exports as it goes.

TESTS = Path(__file__).resolve().parent


def _onnx_stems(items: list[pytest.Item]) -> list[str]:
    """The specs whose export the selected tests use (test_onnx.py's ``exported``)."""
    stems = {
        item.callspec.params["exported"]
        for item in items
        if hasattr(item, "callspec") and "exported" in item.callspec.params
    }
    return sorted(stems)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == "test_onnx.py")  # stable: the rest keep order


def pytest_collection_finish(session: pytest.Session) -> None:
    stems = _onnx_stems(session.items)
    if not stems or os.environ.get("NETC_ONNX_IN_PROCESS"):
        return
    folder = Path(tempfile.mkdtemp(prefix="netc-onnx-"))
    paths = [str(TESTS.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    with open(folder / "log.txt", "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, str(TESTS / "onnx_exports.py"), str(folder), *stems],
            cwd=TESTS.parent,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    session.config._netc_onnx_exports = (process, folder)  # read by test_onnx.py


def pytest_unconfigure(config: pytest.Config) -> None:
    started = getattr(config, "_netc_onnx_exports", None)
    if started is not None:
        process, folder = started
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
