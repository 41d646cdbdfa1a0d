"""The ``netc check`` and ``netc summary`` commands, and the Python API.

The commands run in-process through ``compiler.cli.main`` (fast), and once
through the installed console script. ``check`` and ``summary`` need no
tensors, so they must never import torch.
"""

from __future__ import annotations

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


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


# -- check ----------------------------------------------------------------------------


def test_check_prints_one_line(capsys):
    out = run(capsys, "check", V1)
    assert out.count("\n") == 1
    assert re.fullmatch(
        r"specs/googlenet_v1\.net: ok: GoogLeNet, input N x 3 x 224 x 224 -> output N x 1000, "
        r"6,998,552 parameters \(13,378,280 with 2 aux heads\), 1\.58 GMACs \(\d+ ms\)\n",
        out,
    )


def test_check_with_overrides(capsys):
    out = run(
        capsys, "check", V1, "--set", "num_classes=10", "--set", "aux=false", "--input", "1x96x96"
    )
    assert out.startswith(
        "specs/googlenet_v1.net: ok: GoogLeNet, input N x 1 x 96 x 96 -> output N x 10, "
        "5,977,530 parameters, 0.28 GMACs ("
    )


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "specs").glob("*.net")))
def test_check_every_shipped_spec(capsys, spec):
    assert f"specs/{spec}: ok: " in run(capsys, "check", f"specs/{spec}")


def test_check_through_the_console_script():
    netc = Path(sys.executable).with_name("netc")
    command = [str(netc)] if netc.exists() else [sys.executable, "-m", "compiler.cli"]
    result = subprocess.run(
        [*command, "check", V1], cwd=ROOT, capture_output=True, check=False, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(
        "specs/googlenet_v1.net: ok: GoogLeNet, input N x 3 x 224 x 224"
    )


# -- summary ----------------------------------------------------------------------------


def table(text: str) -> dict[str, list[str]]:
    """Rows of the rendered table: name -> the other cells."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("│"):
            name, *cells = (cell.strip() for cell in line.strip("│").split("│"))
            rows.setdefault(name, cells)
    return rows


def test_summary_table(capsys):
    out = run(capsys, "summary", V1)
    rows = table(out)
    assert "…" not in out  # nothing cut short, even into a pipe
    assert "input N x 3 x 224 x 224" in out
    assert "MACs: multiply-accumulates per image" in out
    assert rows["conv1"] == ["ConvBlock", "N x 64 x 112 x 112", "9,472", "118,013,952"]
    assert rows["conv1.conv"] == ["conv 7x7/2", "N x 64 x 112 x 112", "9,472", "118,013,952"]
    assert rows["maxpool1"] == ["maxpool 3x3/2 ceil", "N x 64 x 56 x 56", "0", "0"]
    assert rows["inception3a"] == ["Inception", "N x 256 x 28 x 28", "163,696", "128,049,152"]
    assert rows["inception3a.branch2"][0] == "sequential"
    assert rows["inception3a.branch2.1.conv"] == [
        "conv 3x3",
        "N x 128 x 28 x 28",
        "110,720",
        "86,704,128",
    ]
    assert rows["inception5b"][1:3] == ["N x 1024 x 7 x 7", "1,444,080"]
    assert rows["fc"] == ["linear", "N x 1000", "1,025,000", "1,024,000"]
    assert rows["total"] == ["", "N x 1000", "6,998,552", "1,582,671,872"]
    # aux heads: after the main total, under a train-only heading, each marked
    lines = out.splitlines()
    total = next(i for i, line in enumerate(lines) if line.startswith("│ total "))
    heading = next(i for i, line in enumerate(lines) if "train only" in line)
    aux1 = next(i for i, line in enumerate(lines) if line.startswith("│ aux1 "))
    assert total < heading < aux1
    assert rows["aux1"][1:] == ["N x 1000", "3,188,840", "4,169,728"]
    assert "inception4a" in rows["aux1"][0] and "0.3" in rows["aux1"][0]
    assert rows["aux2.fc1"] == ["linear", "N x 1024", "2,098,176", "2,097,152"]
    assert [c for c in rows["total with aux heads (train)"] if c] == ["13,378,280", "1,591,044,096"]


def test_summary_overrides(capsys):
    out = run(capsys, "summary", V1, "--set", "num_classes=10", "--set", "aux=false")
    rows = table(out)
    assert rows["fc"] == ["linear", "N x 10", "10,250", "10,240"]
    assert rows["total"][:3] == ["", "N x 10", "5,983,802"]
    assert "aux1" not in rows and "train only" not in out

    out = run(capsys, "summary", V1, "--input", "1x96x96", "--depth", "0")
    rows = table(out)
    assert "input N x 1 x 96 x 96" in out
    assert rows["conv1"] == ["ConvBlock", "N x 64 x 48 x 48", "3,200", "7,225,344"]
    assert rows["inception5b"][1] == "N x 1024 x 3 x 3"
    assert "conv1.conv" not in rows  # --depth 0: top-level nodes only
    assert rows["total"][2] == "6,992,280"


def test_summary_rows_are_plain_data():
    from compiler.backends.summary import rows

    net = compiler.load(ROOT / V1)
    by_name = {r.name: r for r in rows(net.body, enabled=net.enabled)}
    row = by_name["inception3a.branch2.1.conv"]
    assert (row.kind, row.shape, row.params, row.macs, row.depth, row.leaf) == (
        "conv 3x3",
        (128, 28, 28),
        110_720,
        86_704_128,
        4,
        True,
    )
    assert sum(r.params for r in by_name.values() if r.leaf) == 6_998_552


# -- no torch for check and summary ---------------------------------------------------

NO_TORCH = """
import sys
from compiler.cli import main
assert main(["check", "specs/googlenet_v1.net"]) == 0
heavy = {"torch", "onnx", "onnxruntime", "jinja2", "rich"} & set(sys.modules)
assert not heavy, heavy
assert main(["summary", "specs/googlenet_torchvision.net", "--set", "transform_input=true"]) == 0
heavy = {"torch", "onnx", "onnxruntime", "jinja2"} & set(sys.modules)
assert not heavy, heavy
import compiler
compiler.load("specs/googlenet_naive.net", num_classes=10)
assert "torch" not in sys.modules
print("no torch")
"""


def test_check_and_summary_never_import_torch():
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH], cwd=ROOT, capture_output=True, check=False, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("no torch\n")


# -- the Python API ----------------------------------------------------------------------


def test_load_returns_the_checked_ir():
    net = compiler.load(ROOT / V1)
    assert isinstance(net, ir.Network)
    assert (net.name, net.input_shape, net.out_shape) == ("GoogLeNet", (3, 224, 224), (1000,))
    assert net.values == {"num_classes": 1000, "aux": True, "dropout": 0.4}
    assert [a.name for a in net.active_aux()] == ["aux1", "aux2"]

    small = compiler.load(ROOT / V1, (1, 96, 96), num_classes=10, aux=False)
    assert (small.input_shape, small.out_shape) == ((1, 96, 96), (10,))
    assert small.values["aux"] is False and small.active_aux() == ()


def test_build_returns_a_module():
    import torch

    model = compiler.build(ROOT / "specs/googlenet_d2l.net", num_classes=7)
    assert isinstance(model, torch.nn.Module)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 96, 96)).shape == (1, 7)
    net = compiler.load(ROOT / V1, aux=False)
    with torch.device("meta"):
        from_ir = compiler.build(net)
        deploy = compiler.build(ROOT / V1, deploy=True)
    assert set(from_ir.state_dict()) == set(deploy.state_dict())
    assert not any(k.startswith("aux") for k in deploy.state_dict())
