"""netc train / eval / compile --checkpoint: training a tiny spec, checkpoints, resume,
the data readers, evaluation and shipping the trained weights (DDP: test_train_ddp.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import compiler
from compiler.cli import main
from compiler.training import TrainingError, checkpoint, data, evaluate
from compiler.training.loop import loss

torch.set_num_threads(1)

# A tiny spec: dropout (so resume must restore the torch generator) and one aux head.
TINY = """
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
    drop = dropout(0.2)
    fc = linear(num_classes)
}
"""

# Batch norm and two sibling 1x1 convolutions: the deploy passes fold and fuse here.
BN = """
block ConvBN(c: int, k: int, padding: int = 0) {
    conv = conv(c, k, padding=padding, bias=false)
    bn = batchnorm
    relu
}

network Mini(num_classes: int = 4) {
    input 3x16x16
    stem = ConvBN(8, 3, padding=1)
    maxpool(2, stride=2)
    concat {
        b1 = ConvBN(4, 1)
        b2 = ConvBN(4, 1) -> ConvBN(6, 3, padding=1)
        b3 = maxpool(3, stride=1, padding=1) -> ConvBN(2, 1)
    }
    aux side = Side(num_classes) at stem weight 0.5
    global_avgpool
    flatten
    fc = linear(num_classes)
}

block Side(num_classes: int) {
    global_avgpool
    flatten
    fc = linear(num_classes)
}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.net"
    path.write_text(TINY)
    return path


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    path = tmp_path / "mini.net"
    path.write_text(BN)
    return path


def run(*args: str) -> int:
    return main([str(a) for a in args])


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_loss_is_main_plus_weighted_aux(tiny: Path) -> None:
    torch.manual_seed(0)
    model = compiler.build(tiny).train()
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4])
    out = model(x)
    ce = torch.nn.functional.cross_entropy
    assert model.aux_weights == {"a1": 0.3}
    expected = ce(out.main, y) + 0.3 * ce(out.a1, y)
    assert torch.equal(loss(out, y, model.aux_weights), expected)
    assert torch.equal(loss(out, y, model.aux_weights), model.loss(out, y))
    smooth = ce(out.main, y, label_smoothing=0.1) + 0.3 * ce(out.a1, y, label_smoothing=0.1)
    assert torch.equal(loss(out, y, model.aux_weights, 0.1), smooth)
    assert torch.equal(loss(out.main, y, {}), ce(out.main, y))


def test_train_writes_checkpoints_metrics_plot(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        run(
            "train",
            tiny,
            "--data",
            "digits",
            "--epochs",
            "2",
            "--out",
            out,
            "--batch-size",
            "32",
            "--lr",
            "0.05",
        )
        == 0
    )
    rows = metrics(out)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert rows[1]["test_acc"] > 0.5  # ten classes: chance is 0.1
    text = capsys.readouterr().out
    assert (
        "training Tiny (1,790 parameters, 5,640 with aux a1 x0.3) on digits: 1438 train / 359 test"
        in text
    )
    assert "epoch 2/2: train loss" in text
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["format"] == checkpoint.FORMAT and last["epoch"] == 2
    assert last["network"] == "Tiny" and last["params"] == {"num_classes": 10}
    assert last["spec"]["text"] == TINY
    assert set(last["rng"]) == {"torch", "numpy", "python"}
    assert set(last["model"]) == set(compiler.build(tiny).state_dict())
    assert "a1.fc.weight" in last["model"]
    assert last["config"]["lr"] == 0.05 and last["config"]["batch_size"] == 32
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["best_acc"] == max(r["test_acc"] for r in rows)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_exactly(tiny: Path, tmp_path: Path) -> None:
    common = [
        "--data",
        "digits",
        "--batch-size",
        "64",
        "--lr",
        "0.05",
        "--hflip",
        "--crop-padding",
        "1",
        "--schedule",
        "step",
        "--gamma",
        "0.5",
        "--no-plot",
    ]
    assert run("train", tiny, "--epochs", "2", "--out", tmp_path / "whole", *common) == 0
    assert run("train", tiny, "--epochs", "1", "--out", tmp_path / "part", *common) == 0
    assert (
        run(
            "train",
            tiny,
            "--epochs",
            "2",
            "--out",
            tmp_path / "part",
            *common,
            "--resume",
            tmp_path / "part" / "last.pt",
        )
        == 0
    )
    whole, part = metrics(tmp_path / "whole"), metrics(tmp_path / "part")
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        assert [r[key] for r in whole] == [r[key] for r in part], key
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 2


def test_checkpoint_killed_mid_save_leaves_previous(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save({"format": checkpoint.FORMAT, "epoch": 1, "w": torch.ones(3)}, path)

    def dies(state, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # as if killed part-way

    monkeypatch.setattr(checkpoint, "_write", dies)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"format": checkpoint.FORMAT, "epoch": 2, "w": torch.zeros(3)}, path)
    kept = torch.load(path, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_bad_inputs_are_one_line_errors(tiny: Path, tmp_path: Path, capsys) -> None:
    assert run("train", tiny, "--data", tmp_path / "nope", "--out", tmp_path / "o") == 1
    err = capsys.readouterr().err
    assert err == (
        f"Error: --data {tmp_path / 'nope'}: no such folder (expected digits, "
        "synthetic[:N], cifar10:PATH, cifar100:PATH or an image folder)\n"
    )
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert (
        run("train", tiny, "--data", "synthetic:64", "--out", tmp_path / "o", "--resume", garbage)
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith(f"Error: checkpoint {garbage}: cannot be read (") and err.count("\n") == 1
    assert (
        run("train", tiny, "--data", "digits", "--out", tmp_path / "o", "--normalize", "1,2,3") == 1
    )
    assert capsys.readouterr().err == (
        "Error: --normalize expects MEAN,STD or 1 means then 1 stds, got '1,2,3'\n"
    )
    assert (
        run("train", tiny, "--data", "digits", "--out", tmp_path / "o", "--set", "num_classes=3")
        == 1
    )
    assert "has 10 classes but the network outputs 3 (try --set num_classes=10)" in (
        capsys.readouterr().err
    )
    assert run("eval", tiny, "--checkpoint", tmp_path / "none.pt", "--data", "digits") == 1
    assert capsys.readouterr().err == f"Error: checkpoint {tmp_path / 'none.pt'}: no such file\n"


def test_toml_config_sets_defaults(tiny: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'optimizer = "adadelta"\nlr = 1.0\nschedule = "step"\n'
        "gamma = 0.7\nbatch-size = 32\nepochs = 1\nno_plot = true\n"
    )
    out = tmp_path / "run"
    assert (
        run(
            "train",
            tiny,
            "--config",
            config,
            "--data",
            "synthetic:64",
            "--out",
            out,
            "--gamma",
            "0.5",
        )
        == 0
    )
    recorded = torch.load(out / "last.pt", weights_only=True)["config"]
    assert (recorded["optimizer"], recorded["lr"], recorded["batch_size"]) == ("adadelta", 1.0, 32)
    assert recorded["gamma"] == 0.5  # the command line wins
    assert not (out / "curves.png").exists()
    config.write_text("epoch = 3\n")
    assert run("train", tiny, "--config", config, "--data", "digits", "--out", out) == 2
    assert f"{config}: unknown key 'epoch'" in capsys.readouterr().err


# -- data ------------------------------------------------------------------------------


def _cifar_batch(path: Path, n: int, labels_key: bytes, seed: int, classes: int) -> None:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        labels_key: [int(v) for v in rng.integers(0, classes, n)],
        b"batch_label": b"x",
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_and_cifar100_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in (1, 2):
        _cifar_batch(folder / f"data_batch_{i}", 6, b"labels", i, 10)
    _cifar_batch(folder / "test_batch", 4, b"labels", 9, 10)
    names = [f"n{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    d = data.load(f"cifar10:{tmp_path}", (3, 32, 32), 10)  # the folder above works too
    assert d.train_x.shape == (12, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
    raw = pickle.loads((folder / "data_batch_2").read_bytes())
    assert torch.equal(d.train_x[6:].reshape(6, -1), torch.from_numpy(raw[b"data"]))
    assert d.train_y[6:].tolist() == raw[b"labels"] and d.classes[3] == "n3"

    c100 = tmp_path / "c100"
    c100.mkdir()
    _cifar_batch(c100 / "train", 5, b"fine_labels", 1, 100)
    _cifar_batch(c100 / "test", 3, b"fine_labels", 2, 100)
    d = data.load(f"cifar100:{c100}", (3, 32, 32), 100)
    assert len(d.train_y) == 5 and len(d.classes) == 100
    assert d.test_y.tolist() == pickle.loads((c100 / "test").read_bytes())[b"fine_labels"]

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "train").write_bytes(pickle.dumps(print))  # any global but numpy's is refused
    with pytest.raises(TrainingError, match=r"not a CIFAR python batch \(builtins.print is not"):
        data.load(f"cifar100:{evil}", (3, 32, 32), 100)


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 1)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
                suffix = ".png" if i % 2 == 0 else ".jpg"
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}{suffix}")
    d = data.load(str(tmp_path), (3, 16, 16), 2)
    assert d.classes == ("cat", "dog") and d.train_x.shape == (6, 3, 10, 12)
    assert d.train_y.tolist() == [0, 0, 0, 1, 1, 1] and d.test_y.tolist() == [0, 1]
    first = np.array(Image.open(tmp_path / "train" / "cat" / "0.png"))
    assert torch.equal(d.train_x[0], torch.from_numpy(first).permute(2, 0, 1))
    flat = tmp_path / "train"  # no split folders: a fifth held out
    d = data.load(str(flat), (1, 8, 8), 2)
    assert len(d.train_y) + len(d.test_y) == 6 and len(d.test_y) == 1
    assert d.train_x.shape[1] == 1  # read as grey for a one-channel network


def test_pipeline_fits_and_augments() -> None:
    d = data.load("digits", (3, 16, 16), 10)
    assert d.train_x.shape == (1438, 1, 8, 8) and len(d.test_y) == 359
    fit = data.Pipeline((3, 16, 16), d.scale, normalize=((0.5,) * 3, (0.5,) * 3))
    x = fit(d.train_x[:4])
    assert x.shape == (4, 3, 16, 16) and torch.equal(x[:, 0], x[:, 2])
    assert x.min() >= -1.0 and x.max() <= 1.0
    images = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    flip = data.Pipeline((1, 4, 4), 1.0, hflip=True)
    g = torch.Generator().manual_seed(3)
    chosen = torch.rand(2, generator=torch.Generator().manual_seed(3)) < 0.5
    out = flip(images, g)
    for i in range(2):
        assert torch.equal(out[i], images[i].float().flip(2) if chosen[i] else images[i].float())
    crop = data.Pipeline((1, 4, 4), 1.0, crop_padding=2)(images, torch.Generator().manual_seed(0))
    assert crop.shape == (2, 1, 4, 4)
    assert torch.equal(fit(d.test_x[:2]), fit(d.test_x[:2]))


# -- eval and shipping -------------------------------------------------------------------


def test_eval_reports_topk_and_confusion(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        run(
            "train",
            tiny,
            "--data",
            "digits",
            "--epochs",
            "1",
            "--out",
            out,
            "--lr",
            "0.05",
            "--no-plot",
        )
        == 0
    )
    row = metrics(out)[0]
    capsys.readouterr()
    assert run("eval", tiny, "--checkpoint", out / "best.pt", "--data", "digits") == 0
    text = capsys.readouterr().out
    assert f"Tiny on digits (test, 359 images): top-1 {row['test_acc']:.2%}" in text
    assert f"top-5 {row['test_top5']:.2%}" in text and "confusion matrix" in text


def test_recalibrate_bn_is_a_cumulative_average(mini: Path) -> None:
    torch.manual_seed(0)
    model = compiler.build(mini).eval()
    x = torch.rand(12, 3, 16, 16)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(5.0)
    count = evaluate.recalibrate_bn(model, x, lambda b: b, batch_size=4)
    assert count == 5 and not model.training
    stem = model.stem.bn
    assert stem.momentum == 0.1 and int(stem.num_batches_tracked) == 3
    with torch.no_grad():
        per_batch = [model.stem.conv(x[i : i + 4]).mean((0, 2, 3)) for i in (0, 4, 8)]
    torch.testing.assert_close(stem.running_mean, torch.stack(per_batch).mean(0))


def test_shipped_deploy_and_onnx_predict_as_trained(mini: Path, tmp_path: Path, capsys) -> None:
    import importlib.util

    import onnxruntime

    out = tmp_path / "run"
    assert (
        run(
            "train",
            mini,
            "--data",
            "synthetic:48",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--out",
            out,
            "--no-plot",
            "--set",
            "num_classes=4",
        )
        == 0
    )
    capsys.readouterr()
    assert (
        run(
            "eval",
            mini,
            "--set",
            "num_classes=4",
            "--checkpoint",
            out / "best.pt",
            "--data",
            "synthetic:48",
            "--recalibrate-bn",
        )
        == 0
    )
    assert "recalibrated 5 batch norms over 48 training images" in capsys.readouterr().out
    trained = torch.load(out / "best.pt", weights_only=True)["model"]
    net = compiler.load(mini, num_classes=4)
    model = compiler.build(net).eval()
    model.load_state_dict(trained)
    d = data.load("synthetic:48", net.input_shape, 4)
    x = data.Pipeline(net.input_shape, d.scale)(d.test_x)
    with torch.no_grad():
        expected = model(x)

    assert (
        run(
            "compile",
            mini,
            "--set",
            "num_classes=4",
            "--deploy",
            "--checkpoint",
            out / "best.pt",
            "-o",
            tmp_path / "mini_deploy.py",
        )
        == 0
    )
    assert "trained weights in" in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("mini_deploy", tmp_path / "mini_deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    deploy = module.Mini()
    deploy.load_state_dict(torch.load(tmp_path / "mini_deploy.pt", weights_only=True), strict=True)
    with torch.no_grad():
        got = deploy.eval()(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))

    assert (
        run(
            "compile",
            mini,
            "--set",
            "num_classes=4",
            "--emit",
            "onnx",
            "--checkpoint",
            out / "best.pt",
            "-o",
            tmp_path / "mini.onnx",
        )
        == 0
    )
    session = onnxruntime.InferenceSession(str(tmp_path / "mini.onnx"))
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(onnx_out), expected, rtol=0, atol=1e-4)
    assert torch.equal(torch.from_numpy(onnx_out).argmax(1), expected.argmax(1))

    other = tmp_path / "other.net"
    other.write_text(TINY)
    assert (
        run(
            "compile",
            other,
            "--emit",
            "onnx",
            "--checkpoint",
            out / "best.pt",
            "-o",
            tmp_path / "x.onnx",
        )
        == 1
    )
    assert (
        capsys.readouterr().err
        == f"Error: checkpoint {out / 'best.pt'} is of network Mini, not Tiny\n"
    )
    assert not (tmp_path / "x.onnx").exists()
