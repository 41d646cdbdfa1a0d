"""Machine-readable output: ``netc summary --json``, ``netc ir``, ``netc schema``,
``netc diff`` (table and ``--json``), and no terminal styling under NO_COLOR or
when stdout is not a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

import compiler
from compiler import ir
from compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
V1 = "specs/googlenet_v1.net"
SNAPSHOT = ROOT / "tests" / "snapshots" / "ir_schema.json"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("NO_COLOR", raising=False)


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


# -- summary --json -----------------------------------------------------------------------------


def test_summary_json_of_googlenet_v1(capsys):
    data = json.loads(run(capsys, "summary", V1, "--json"))
    assert list(data) == [
        "network",
        "source",
        "input",
        "output",
        "passes",
        "layers",
        "aux",
        "totals",
        "deploy_notes",
    ]
    assert data["network"] == "GoogLeNet" and data["source"] == V1
    assert (data["input"], data["output"], data["passes"]) == ([3, 224, 224], [1000], [])
    assert data["totals"] == {
        "params": 6_998_552,
        "macs": 1_582_671_872,
        "params_with_aux": 13_378_280,
        "macs_with_aux": 1_591_044_096,
    }
    assert len(data["layers"]) == 224 and data["deploy_notes"] == []
    assert data["layers"][:3] == [
        {
            "name": "conv1",
            "kind": "ConvBlock",
            "output": [64, 112, 112],
            "params": 9472,
            "macs": 118_013_952,
            "depth": 0,
            "leaf": False,
        },
        {
            "name": "conv1.conv",
            "kind": "conv 7x7/2",
            "output": [64, 112, 112],
            "params": 9472,
            "macs": 118_013_952,
            "depth": 1,
            "leaf": True,
        },
        {
            "name": "conv1.<relu>",
            "kind": "relu",
            "output": [64, 112, 112],
            "params": 0,
            "macs": 0,
            "depth": 1,
            "leaf": True,
        },
    ]
    assert data["layers"][-1] == {
        "name": "fc",
        "kind": "linear",
        "output": [1000],
        "params": 1_025_000,
        "macs": 1_024_000,
        "depth": 0,
        "leaf": True,
    }
    heads = [{k: v for k, v in a.items() if k != "layers"} for a in data["aux"]]
    assert heads == [
        {
            "name": "aux1",
            "tap": "inception4a",
            "weight": 0.3,
            "params": 3_188_840,
            "macs": 4_169_728,
        },
        {
            "name": "aux2",
            "tap": "inception4d",
            "weight": 0.3,
            "params": 3_190_888,
            "macs": 4_202_496,
        },
    ]
    assert [len(a["layers"]) for a in data["aux"]] == [11, 11]
    # The rows add up: leaves to the totals, a block's row to its leaves.
    leaves = [r for r in data["layers"] if r["leaf"]]
    assert sum(r["params"] for r in leaves) == data["totals"]["params"]
    assert sum(r["macs"] for r in leaves) == data["totals"]["macs"]


def test_summary_json_depth_and_deploy(capsys):
    data = json.loads(run(capsys, "summary", V1, "--json", "--depth", "0", "--deploy"))
    assert [r["name"] for r in data["layers"]] == [
        "conv1",
        "maxpool1",
        "conv2",
        "conv3",
        "maxpool2",
        "inception3a",
        "inception3b",
        "maxpool3",
        "inception4a",
        "inception4b",
        "inception4c",
        "inception4d",
        "inception4e",
        "maxpool4",
        "inception5a",
        "inception5b",
        "avgpool",
        "<flatten>",
        "fc",
    ]
    assert data["passes"] == [
        "drop_unused",
        "fold_bn",
        "fuse_relu",
        "fuse_siblings",
        "channels_last",
    ]
    assert data["aux"] == []
    assert data["totals"]["params"] == data["totals"]["params_with_aux"] == 6_998_552
    assert data["deploy_notes"] == [
        "deploy passes: drop_unused, fold_bn, fuse_relu, fuse_siblings, channels_last",
        "dropped 1 dropout layer; fused 57 ReLUs; fused 27 sibling 1x1 convolutions into 9",
        "aux heads dropped: aux1, aux2",
        *data["deploy_notes"][3:],
    ]
    assert len(data["deploy_notes"]) == 3 + 9  # one line per fused group


# -- ir and schema ------------------------------------------------------------------------------


def test_ir_is_the_checked_network_as_json(capsys):
    out = run(
        capsys, "ir", V1, "--set", "num_classes=10", "--set", "aux=false", "--input", "1x96x96"
    )
    data = json.loads(out)
    assert list(data)[:4] == ["name", "doc", "source", "params"]
    assert (data["name"], data["source"], data["input_shape"], data["out_shape"]) == (
        "GoogLeNet",
        V1,
        [1, 96, 96],
        [10],
    )
    assert data["values"] == {"num_classes": 10, "aux": False, "dropout": 0.4}
    expected = compiler.load(V1, (1, 96, 96), num_classes=10, aux=False)
    assert ir.Network.model_validate_json(out) == expected
    assert ir.total_params(expected.body) == 5_977_530


def test_ir_of_the_deploy_build(capsys):
    data = json.loads(run(capsys, "ir", V1, "--deploy", "--no-channels-last"))
    assert data["passes"] == ["drop_unused", "fold_bn", "fuse_relu", "fuse_siblings"]
    assert data["aux"] == [] and data["dropped_aux"] == ["aux1", "aux2"]
    assert data["memory_format"] == "contiguous_format"


def test_schema_is_the_snapshot(capsys):
    assert run(capsys, "schema") == SNAPSHOT.read_text(encoding="utf-8")


# -- diff ---------------------------------------------------------------------------------------

A_NET = """\
network Small(num_classes: int = 10) {
    input 3x16x16
    conv1 = conv(8, 3, padding=1)
    relu
    pool = maxpool(2, stride=2)
    head = flatten -> linear(num_classes)
}
"""
B_NET = A_NET.replace("conv(8, 3", "conv(16, 3").replace(
    "pool = maxpool(2, stride=2)", "conv2 = conv(16, 1)"
)


@pytest.fixture
def variants(tmp_path, monkeypatch):
    (tmp_path / "a.net").write_text(A_NET)
    (tmp_path / "b.net").write_text(B_NET)
    monkeypatch.chdir(tmp_path)
    return "a.net", "b.net"


def test_diff_json_rows(capsys, variants):
    data = json.loads(run(capsys, "diff", *variants, "--json"))
    assert list(data) == ["a", "b", "rows", "totals"]
    assert data["a"] == {
        "network": "Small",
        "source": "a.net",
        "input": [3, 16, 16],
        "output": [10],
    }
    rows = [
        (r["name"], r["change"], r["a"] and r["a"]["params"], r["b"] and r["b"]["params"])
        + (r["params_delta"], r["macs_delta"])
        for r in data["rows"]
    ]
    assert rows == [
        ("conv1", "changed", 224, 448, 224, 55_296),
        ("<relu>", "changed", 0, 0, 0, 0),  # its output: 8 -> 16 channels
        ("pool", "removed", 0, None, 0, 0),
        ("conv2", "added", None, 272, 272, 65_536),
        ("head", "changed", 5130, 40_970, 35_840, 35_840),
        ("head.0", "changed", 0, 0, 0, 0),
        ("head.1", "changed", 5130, 40_970, 35_840, 35_840),
    ]
    assert data["rows"][0]["a"] == {
        "kind": "conv 3x3",
        "output": [8, 16, 16],
        "params": 224,
        "macs": 55_296,
    }
    assert data["rows"][2]["b"] is None and data["rows"][3]["a"] is None
    assert data["totals"]["params"] == {"a": 5354, "b": 41_690, "delta": 36_336}
    assert data["totals"]["macs"] == {"a": 60_416, "b": 217_088, "delta": 156_672}
    assert data["totals"]["params_with_aux"] == data["totals"]["params"]


def _table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]


def test_diff_table(capsys, variants):
    out = run(capsys, "diff", *variants)
    assert out.startswith("A: Small (a.net)")
    assert "\x1b" not in out  # not a terminal: no styles
    assert _table_rows(out) == [
        ["conv1", "changed", "conv 3x3", "N x 8 x 16 x 16 -> N x 16 x 16 x 16"]
        + ["224", "448", "+224", "55,296", "110,592", "+55,296"],
        ["<relu>", "changed", "relu", "N x 8 x 16 x 16 -> N x 16 x 16 x 16"]
        + ["0", "0", "0", "0", "0", "0"],
        ["pool", "removed", "maxpool 2x2/2", "N x 8 x 8 x 8", "0", "", "0", "0", "", "0"],
        ["conv2", "added", "conv 1x1", "N x 16 x 16 x 16", "", "272", "+272", "", "65,536"]
        + ["+65,536"],
        ["head", "changed", "sequential", "N x 10", "5,130", "40,970", "+35,840", "5,120"]
        + ["40,960", "+35,840"],
        ["head.0", "changed", "flatten", "N x 512 -> N x 4096", "0", "0", "0", "0", "0", "0"],
        ["head.1", "changed", "linear", "N x 10", "5,130", "40,970", "+35,840", "5,120"]
        + ["40,960", "+35,840"],
        ["total", "", "", "N x 10", "5,354", "41,690", "+36,336", "60,416", "217,088"]
        + ["+156,672"],
    ]


def test_diff_of_a_spec_with_itself_lists_no_row(capsys):
    rows = _table_rows(run(capsys, "diff", V1, V1))
    assert rows[0] == ["(no layer differs)", "", "", "", "", "", "", "", "", ""]
    assert rows[1][:7] == ["total", "", "", "N x 1000", "6,998,552", "6,998,552", "0"]
    assert rows[2][:7] == ["total with aux heads (train)", "", "", "", "13,378,280"] + [
        "13,378,280",
        "0",
    ]
    assert len(_table_rows(run(capsys, "diff", V1, V1, "--all", "--depth", "0"))) == 20 + 2 + 2


def test_diff_of_the_seeds_variants(capsys):
    """The pytorch-cifar100 GoogLeNet against its naive variant (no 1x1 reductions),
    with the seeds' parameter counts."""
    data = json.loads(
        run(capsys, "diff", "specs/googlenet_cifar.net", "specs/googlenet_naive.net", "--json")
    )
    assert data["totals"]["params"] == {"a": 6_258_500, "b": 65_736_148, "delta": 59_477_648}
    top = [
        (r["name"], r["change"])
        for r in data["rows"]
        if (r["a"] or r["b"])["kind"].endswith("Inception")
    ]
    assert top == [
        (name, "changed") for name in ("a3", "b3", "a4", "b4", "c4", "d4", "e4", "a5", "b5")
    ]


def test_diff_errors_name_the_file(capsys, variants):
    assert main(["diff", "a.net", "missing.net"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("netc: error: cannot read missing.net")


# -- colours ------------------------------------------------------------------------------------


def _in_a_terminal(argv: list[str], no_color: bool) -> bytes:
    """What ``netc ARGV`` writes to a pseudo-terminal."""
    netc = Path(sys.executable).with_name("netc")
    command = [str(netc)] if netc.exists() else [sys.executable, "-m", "compiler.cli"]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({"TERM": "xterm-256color", "COLUMNS": "200"})
    if no_color:
        env["NO_COLOR"] = "1"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*command, *argv], cwd=ROOT, env=env, stdout=follower, stderr=follower
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert process.wait() == 0, out
    return out


@pytest.mark.parametrize(
    "argv", [["summary", "specs/googlenet_d2l.net", "--depth", "0"], ["diff", V1, V1]]
)
def test_no_color_means_plain_text_in_a_terminal(argv):
    styled = _in_a_terminal(argv, no_color=False)
    plain = _in_a_terminal(argv, no_color=True)
    assert re.search(rb"\x1b\[[0-9;]*m", styled)  # rich styles a terminal's output
    assert b"\x1b" not in plain
    strip = re.sub(rb"\x1b\[[0-9;]*m", b"", styled)
    assert strip == plain


def test_not_a_terminal_means_plain_text(capsys):
    assert "\x1b" not in run(capsys, "summary", V1, "--depth", "0")
