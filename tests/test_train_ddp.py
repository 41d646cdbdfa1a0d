"""netc train under DDP (gloo on CPU, 1 thread per process): the loss curve of 2 processes
equals one process's at the same global batch, within 1e-5 relative (the gradient
all-reduce sums in another order), for a spec without batch norm but with an aux head
(in every step's loss, so DDP finds no unused parameter at step 2).

One test, two launches: epoch 1 on 2 "nodes" x 1 process rendezvousing on 127.0.0.1
(torchrun --nnodes 2 --node_rank 0/1, as across machines), then epoch 2 resumed from its
last.pt by `netc train --nproc 2` (torchrun's launcher, in-process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compiler.cli import main

SPEC = """
block Head(num_classes: int) {
    flatten
    fc = linear(num_classes)
}

network Tiny(num_classes: int = 10) {
    input 1x8x8
    c1 = conv(6, 3, padding=1) -> relu
    c2 = conv(8, 3, stride=2, padding=1) -> relu
    aux a1 = Head(num_classes) at c1 weight 0.3
    flatten
    fc = linear(num_classes)
}
"""

COMMON = ["--data", "synthetic:96", "--batch-size", "16", "--lr", "0.05", "--no-plot"]
RTOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")  # pytest captures stderr
def test_two_nodes_then_two_processes_match_one_process(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "tiny.net"
    spec.write_text(SPEC)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert main(["train", str(spec), *COMMON, "--epochs", "2", "--out", str(tmp_path / "one")]) == 0

    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node_rank={rank}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                "-m",
                "compiler.training",
                str(spec),
                *COMMON,
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "ddp"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "batch 16, 2 processes on cpu" in outputs[0]
    assert "epoch 1/1" not in outputs[1]  # rank 1 prints nothing of its own

    capsys.readouterr()
    assert (
        main(
            [
                "train",
                str(spec),
                *COMMON,
                "--epochs",
                "2",
                "--out",
                str(tmp_path / "ddp"),
                "--resume",
                str(tmp_path / "ddp" / "last.pt"),
                "--nproc",
                "2",
            ]
        )
        == 0
    )

    one, ddp = _metrics(tmp_path / "one"), _metrics(tmp_path / "ddp")
    assert [r["epoch"] for r in ddp] == [1, 2]
    for key in ("train_loss", "test_loss"):
        for a, b in zip(one, ddp):
            assert b[key] == pytest.approx(a[key], rel=RTOL), key
    for key in ("train_acc", "test_acc", "test_top5"):
        assert [r[key] for r in one] == [r[key] for r in ddp]
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert b["world"] == 2 and len(b["rng_ranks"]) == 2
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=RTOL, atol=1e-6)
