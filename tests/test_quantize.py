"""netc compile --emit onnx --quantize int8: a small spec trained on digits, quantized
with calibration on digits, against its fp32 ONNX on the held-out split; the file's
quantization; the bad-usage errors (speed: bench/int8_speed.py, not a test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import compiler
from compiler.backends import quantize
from compiler.cli import main
from compiler.training import data, ship

torch.set_num_threads(1)

# Batch norm (folded by the deploy passes) and a concat of branches, as in Inception;
# bench/int8_speed.py trains the same spec.
SMALL = Path(__file__).parent / "int8_small.net"


def run(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The spec, its checkpoint (trained with --normalize 0.5,0.5) and its fp32 ONNX."""
    folder = tmp_path_factory.mktemp("int8")
    spec = SMALL
    out = folder / "run"
    assert (
        run(
            "train", spec, "--data", "digits", "--epochs", 8, "--schedule", "cosine",
            "--normalize", "0.5,0.5", "--out", out, "--no-plot",
        )
        == 0
    )  # fmt: skip
    fp32 = folder / "small.onnx"
    assert run("compile", spec, "--emit", "onnx", "--checkpoint", out / "best.pt", "-o", fp32) == 0
    return spec, out / "best.pt", fp32


def predictions(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1)


def test_int8_agrees_with_fp32_on_held_out_digits(trained, tmp_path: Path, capsys) -> None:
    spec, best, fp32 = trained
    int8 = tmp_path / "small.int8.onnx"
    capsys.readouterr()
    args = ["compile", spec, "--emit", "onnx", "--quantize", "int8", "--calibrate", "digits"]
    assert run(*args, "--checkpoint", best, "-o", int8) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {int8} (Small, deploy graph optimised by fold_bn+fuse_relu, ")
    assert (
        "trained weights, int8 QDQ: per-channel int8 weights, uint8 activations, minmax "
        "calibration on 256 digits images, normalised 0.5,0.5; opset 18, dynamic batch"
    ) in out
    assert [p.name for p in tmp_path.iterdir()] == [int8.name]  # no temporary left

    net = compiler.load(spec)
    digits = data.load("digits", net.input_shape, 10)
    prepare = data.Pipeline(net.input_shape, digits.scale, normalize=((0.5,), (0.5,)))
    x, y = prepare(digits.test_x).numpy(), digits.test_y.numpy()
    a, b = predictions(fp32, x), predictions(int8, x)
    assert (a == y).mean() > 0.9  # trained
    assert (a == b).mean() >= 0.99
    assert abs((a == y).mean() - (b == y).mean()) <= 0.01


def test_the_file_is_qdq_with_per_channel_symmetric_weights(trained, tmp_path: Path) -> None:
    spec, _, fp32 = trained
    net = compiler.load(spec)
    batches = ship.calibration_batches(net, "digits", "0.5,0.5", 2, quantize.BATCH)
    done = quantize.quantize(net, fp32, tmp_path / "q.onnx", batches)
    assert (done.images, done.method, done.activations, done.kept_float) == (64, "minmax", "uint8", ())
    model = onnx.load(str(tmp_path / "q.onnx"))
    onnx.checker.check_model(model, full_check=True)
    kinds = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= kinds
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = [
        n for n in model.graph.node
        if n.op_type == "DequantizeLinear" and inits.get(n.input[0], np.float32(0)).dtype == np.int8
    ]  # fmt: skip
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(weights) >= len(convs) + 1  # every conv's weight and the linear's
    for node in weights:
        scale, zero = inits[node.input[1]], inits[node.input[2]]
        channels = inits[node.input[0]].shape[0]
        assert scale.shape == (channels,) and channels > 1  # one scale per output channel
        assert not zero.any()  # symmetric
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["netc.network"] == "Small"
    assert meta["netc.quantization"].startswith("int8 QDQ, per-channel symmetric int8 weights")

    kept = compiler.quantize_int8(
        spec, fp32, tmp_path / "k.onnx", "digits", batches=1, activations="int8",
        keep_float=("first", "last"),
    )  # fmt: skip
    assert len(kept.kept_float) == 2
    model = onnx.load(str(tmp_path / "k.onnx"))
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(first.input[1]) != "DequantizeLinear"  # float weights


def test_bad_usage_is_one_line_errors(trained, tmp_path: Path, capsys) -> None:
    spec = trained[0]
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old")
    onnx_int8 = ["compile", spec, "--emit", "onnx", "--quantize", "int8", "-o", target]

    def error(*args: object, status: int = 1) -> str:
        capsys.readouterr()
        assert run(*args) == status
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert (
        error("compile", spec, "--quantize", "int8", "--calibrate", "digits", status=2)
        == "Error: --quantize int8 needs --emit onnx"
    )
    assert error(*onnx_int8, status=2) == (
        "Error: --quantize int8 needs --calibrate DATA: the images to calibrate on "
        "(digits, synthetic[:N], cifar10:PATH, cifar100:PATH or an image folder)"
    )
    assert (
        error("compile", spec, "--emit", "onnx", "--calibrate", "digits", status=2)
        == "Error: --calibrate needs --quantize int8"
    )
    assert error(*onnx_int8, "--calibrate", tmp_path / "nope") == (
        f"Error: --calibrate {tmp_path / 'nope'}: no such folder (expected digits, "
        "synthetic[:N], cifar10:PATH, cifar100:PATH or an image folder)"
    )
    assert error(*onnx_int8, "--calibrate", "digits", "--set", "num_classes=4") == (
        "Error: --calibrate digits has 10 classes but the network outputs 4 "
        "(try --set num_classes=10)"
    )
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "rgb" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "rgb" / name / "1.png")
    assert error(*onnx_int8, "--calibrate", tmp_path / "rgb", "--input", "2x16x16") == (
        f"Error: --calibrate {tmp_path / 'rgb'} has 3-channel images: the network's input has 2"
    )
    assert error(*onnx_int8, "--calibrate", "digits", "--normalize", "1,2,3") == (
        "Error: --normalize expects MEAN,STD or 1 means then 1 stds, got '1,2,3'"
    )
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx", "rgb"]


def test_a_failure_while_writing_leaves_nothing(trained, tmp_path: Path, capsys, monkeypatch):
    spec = trained[0]
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old")

    def fails(net, fp32, path, batches, **options):
        Path(path).write_bytes(b"half")
        raise quantize.QuantizeError("no calibration images")

    monkeypatch.setattr(quantize, "quantize", fails)
    args = ["compile", spec, "--emit", "onnx", "--quantize", "int8", "--calibrate", "digits"]
    assert run(*args, "-o", target) == 1
    assert capsys.readouterr().err.strip() == "Error: no calibration images"
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]
