"""The source backend: generated modules agree with the runtime module, and read as promised.

Every shipped network spec is compiled at a small input (the spec's own
architecture, fewer pixels) and imported from the written file. The generated
module and the runtime module (compiler.backends.runtime) must then have the
same state_dict keys, shapes and, from the same seed, the same initial
weights; under the same perturbed weights they must give identical outputs in
eval and in train mode. In train mode both run the same ops in the same order,
so dropout draws the same masks from the same re-seeded generator: that is
what makes them equal with dropout on, aux heads included.

Perturbed weights, because with the specs' own small inits a GoogLeNet's
logits collapse to the final bias for every input (torchvision's trunc-normal
0.01 gives a spread of 1e-12 between two images), and an equality check on
that proves nothing. Each equivalence test asserts that the output depends on
the input.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import compiler
from compiler import ir, ops, regen
from compiler.backends import source
from compiler.backends.runtime import build_module

ROOT = Path(__file__).resolve().parent.parent

# Every shipped network spec, at a small input that keeps every layer valid
# (v1's aux heads pool 5x5 at 4a, so at least 6x6 there: 96 pixels).
SPECS = {
    "googlenet_v1": (3, 96, 96),
    "googlenet_lrn": (3, 96, 96),
    "googlenet_torchvision": (3, 64, 64),
    "googlenet_d2l": (1, 32, 32),
    "googlenet_cifar": (3, 16, 16),
    "googlenet_cifar_short": (3, 16, 16),
    "googlenet_cifar_short2": (3, 16, 16),
    "googlenet_naive": (3, 16, 16),
    "inception_v3_torchvision": (3, 299, 299),  # its aux head needs 299
    "inception_v4": (3, 75, 75),
    "inception_resnet_v2": (3, 75, 75),
}
WITH_AUX = ["googlenet_v1", "googlenet_lrn", "googlenet_torchvision", "inception_v3_torchvision"]
AUX_WEIGHTS = {"inception_v3_torchvision": {"AuxLogits": 0.4}}  # else aux1 and aux2 at 0.3
# The Inception family's own specs are large (24M-56M parameters): the equivalence tests
# run them once each, in tests/test_family.py, rather than in every test here.
FAMILY = ("inception_v3_torchvision", "inception_v4", "inception_resnet_v2")
LIGHT = [stem for stem in SPECS if stem not in FAMILY]


def load_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _build_dir() -> Path:
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="netc-test-source-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def generated(stem: str, deploy: bool = False, **params):
    """(net, the imported generated module) for a shipped spec at its small input."""
    net = compiler.load(ROOT / "specs" / f"{stem}.net", SPECS[stem], **params)
    text = source.emit(net, deploy=deploy)
    suffix = "_deploy" if deploy else ""
    extra = "".join(f"_{k}_{v}" for k, v in sorted(params.items()))
    path = _build_dir() / f"{stem}{suffix}{extra}.py"
    path.write_text(text, encoding="utf-8")
    return net, load_file(path, f"netc_generated_{path.stem}")


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Weights that keep activations O(1) through the whole network, and BN statistics
    far from their defaults, so that the logits depend on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            noise = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(noise * 0.1)
            elif t.dim() > 1:
                t.copy_(noise * (2.0 / t[0].numel()) ** 0.5)
            elif name.endswith("weight"):  # batch norm scale
                t.copy_(1 + 0.1 * noise)
            else:
                t.copy_(0.1 * noise)


def assert_depends_on_input(y: torch.Tensor) -> None:
    spread = (y[0] - y[1]).abs().max().item()
    assert spread > 0.01 * y.abs().max().item() and spread > 1e-3, spread


_pairs: dict[str, tuple] = {}


@pytest.fixture(scope="module", autouse=True)
def _forget_pairs():
    """The pairs built for this file's tests are dropped after it: they are large."""
    yield
    _pairs.clear()


def pair(stem: str):
    """The runtime and the generated training module, with the same perturbed weights.

    Each pair is built once (building and perturbing googlenet_naive's 65M
    parameters takes seconds); every caller gets its own deep copies to train or
    change."""
    if stem not in _pairs:
        net, module = generated(stem)
        runtime = build_module(net)
        perturb(runtime, 0)
        model = getattr(module, net.name)()
        model.load_state_dict(runtime.state_dict(), strict=True)
        _pairs[stem] = (net, module, runtime, model)
    net, module, runtime, model = _pairs[stem]
    return net, module, copy.deepcopy(runtime), copy.deepcopy(model)


# -- generated/ and the text itself ----------------------------------------------------------


def test_every_network_spec_is_tested():
    assert sorted(SPECS) == sorted(p.stem for p in regen.network_specs())
    assert sorted(WITH_AUX) == sorted(s for s in SPECS if generated(s)[0].aux)


def test_generated_folder_is_current(tmp_path):
    """CI's staleness check: regenerate into a temporary folder, compare with generated/."""
    written = regen.write_all(tmp_path)
    fresh = {p.name: p.read_bytes() for p in written}
    committed = {p.name: p.read_bytes() for p in (ROOT / "generated").glob("*.py")}
    assert sorted(fresh) == sorted(committed), "run: python -m compiler.regen"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale: {stale}; run: python -m compiler.regen"
    assert regen.stale() == []


def test_regen_check_exits_1_on_a_stale_file(tmp_path, monkeypatch):
    monkeypatch.setattr(regen, "GENERATED", tmp_path)
    regen.write_all(tmp_path)
    assert regen.main(["--check"]) == 0
    (tmp_path / "googlenet_v1.py").write_text("# edited\n")
    (tmp_path / "leftover.py").write_text("")
    assert regen.stale(tmp_path) == ["googlenet_v1.py", "leftover.py"]
    assert regen.main(["--check"]) == 1


@pytest.mark.parametrize("args", [["format", "--check"], ["check"], ["check", "--isolated"]])
def test_generated_passes_ruff(args):
    ruff = source._ruff()
    done = subprocess.run(
        [ruff, *args, "generated"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_output_is_deterministic_across_hash_seeds():
    script = (
        "import hashlib, sys, compiler\n"
        "from compiler.backends.source import emit\n"
        "from compiler.passes import optimise\n"
        "for stem in sys.argv[1:]:\n"
        "    net = compiler.load(f'specs/{stem}.net')\n"
        "    for deploy in (False, True):\n"
        "        print(stem, deploy, hashlib.sha256(emit(net, deploy).encode()).hexdigest())\n"
        "    print(stem, hashlib.sha256(emit(optimise(net), True).encode()).hexdigest())\n"
    )
    runs = [  # side by side: each is mostly waiting for ruff
        subprocess.Popen(
            [sys.executable, "-c", script, *SPECS],
            cwd=ROOT,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in ("0", "1", "4242", "random")
    ]
    outputs = set()
    for run in runs:
        stdout, stderr = run.communicate()
        assert run.returncode == 0, stderr
        outputs.add(stdout)
    assert len(outputs) == 1 and len(next(iter(outputs)).splitlines()) == 3 * len(SPECS)


def test_source_emission_does_not_import_torch():
    script = (
        "import sys, compiler\n"
        "from compiler.backends.source import emit\n"
        "emit(compiler.load('specs/googlenet_torchvision.net'))\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _tree(stem: str, deploy: bool = False) -> ast.Module:
    return ast.parse((ROOT / "generated" / f"{stem}{'_deploy' if deploy else ''}.py").read_text())


def test_googlenet_v1_reads_like_hand_written_code():
    text = (ROOT / "generated" / "googlenet_v1.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    assert text.startswith(
        "# @generated by netc from specs/googlenet_v1.net — do not edit\n"
        '"""GoogLeNet (Inception v1), as in the canonical PyTorch implementation.\n'
    )
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["ConvBlock", "Inception", "InceptionAux", "GoogLeNetOutputs", "GoogLeNet"]
    imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports == [
        "from typing import NamedTuple",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
    ]
    assert "AUX_LOSS_WEIGHTS = {'aux1': 0.3, 'aux2': 0.3}" in [ast.unparse(n) for n in tree.body]
    # Expressions as the spec wrote them, in the block's own scope.
    assert (
        "        self.branch2 = nn.Sequential(\n            ConvBlock(in_channels, ch3x3red, 1), ConvBlock(ch3x3red, ch3x3, 3, padding=1)\n        )\n"
        in text
    )
    assert "        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)\n" in text
    assert (
        "    def __init__(self, *, num_classes: int = 1000, aux: bool = True, dropout: float = 0.4) -> None:\n"
        in text
    )
    # Shape comments where the shape changes, symbolic inside a block.
    assert "        x = self.maxpool1(x)  # N x 64 x 56 x 56\n" in text
    assert "        branch1 = self.branch1(x)  # N x ch1x1 x H x W\n" in text
    assert (
        "        # N x (ch1x1 + ch3x3 + ch5x5 + pool_proj) x H x W\n        return torch.cat([branch1, branch2, branch3, branch4], 1)\n"
        in text
    )
    assert "        x = self.conv(x)  # N x out_channels x H' x W'\n" in text
    assert "        x = self.dropout(x)\n" in text  # keeps the shape: no comment
    assert "            aux1 = self.aux1(x)  # N x 1000 (num_classes)\n" in text
    # The aux heads are built only if aux, and in train mode only they run.
    assert "        if aux:\n            self.aux1 = InceptionAux(512, num_classes)\n" in text
    assert "        if self.aux1 is not None and self.training:\n" in text


def test_every_forward_line_that_changes_the_shape_has_a_comment():
    for path in (ROOT / "generated").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        lines = path.read_text(encoding="utf-8").splitlines()
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            forward = next(
                (f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"),
                None,
            )
            if forward is None:
                continue
            assert lines[forward.body[0].lineno - 2].strip().startswith("# N x"), (
                path.name,
                cls.name,
            )
            for stmt in ast.walk(forward):
                if not isinstance(stmt, (ast.Assign, ast.Return)) or stmt.value is None:
                    continue
                call = stmt.value
                if not isinstance(call, ast.Call):
                    continue
                code = ast.unparse(call.func)
                if code == "F.relu" and isinstance(call.args[0], ast.Call):  # a fused conv's
                    code = ast.unparse(call.args[0].func)
                if code.endswith("Outputs") or code == "x.contiguous":  # no shape changes
                    continue
                keeps = code in ("F.relu", "F.dropout", "F.dropout2d", "scale_shift") or (
                    code.startswith("self.") and _keeps_shape(cls.name, code, path)
                )
                if keeps:
                    continue
                here, above = lines[stmt.lineno - 1], lines[stmt.lineno - 2].strip()
                assert "# N x" in here or above.startswith("# N x"), (path.name, cls.name, here)


def _keeps_shape(cls: str, attr: str, path: Path) -> bool:
    """Named weightless layers that keep the shape (dropout, lrn, bn) need no comment."""
    text = path.read_text(encoding="utf-8")
    name = attr.split(".", 1)[1]
    for ctor in (
        "nn.Dropout(",
        "nn.Dropout2d(",
        "nn.LocalResponseNorm(",
        "nn.BatchNorm2d(",
        "nn.ReLU(",
    ):
        if f"self.{name} = {ctor}" in text:
            return True
    return False


def test_deploy_source_has_no_aux_code():
    for stem in WITH_AUX:
        net, _ = generated(stem)
        tree = _tree(stem, deploy=True)
        heads = {h.name for h in net.aux}
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        strings = [
            (n.value, type(parent).__name__)
            for parent in ast.walk(tree)
            for n in ast.iter_child_nodes(parent)
            if isinstance(n, ast.Constant) and n.value in heads
        ]
        assert not heads & (names | attrs), stem
        assert {s for s, _ in strings} <= heads and all(p == "Tuple" for _, p in strings)
        shown = repr(tuple(h.name for h in net.aux))
        assert f"AUX_HEADS = {shown}" in [ast.unparse(n) for n in tree.body]
        classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        assert not any(c.startswith("InceptionAux") or c.endswith("Outputs") for c in classes)
        assert "loss" not in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "aux" not in {
            a.arg
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef)
            for a in n.args.kwonlyargs
        }


def test_two_instances_that_need_different_code_get_two_classes(tmp_path):
    """A block whose flatten size depends on its input size cannot be one class."""
    spec = tmp_path / "heads.net"
    spec.write_text(
        "block Head(n: int) {\n    conv = conv(8, 1)\n    flatten\n    fc = linear(n)\n}\n"
        "network TwoHeads() {\n    input 3x8x8\n    p = conv(4, 1)\n    q = maxpool(2)\n"
        "    aux a = Head(4) at p\n    aux b = Head(4) at q\n    r = conv(2, 1)\n}\n"
    )
    net = compiler.load(spec)
    text = source.emit(net)
    tree = ast.parse(text)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["Head", "Head_1", "TwoHeadsOutputs", "TwoHeads"]
    assert "self.fc = nn.Linear(512, n)" in text and "self.fc = nn.Linear(128, n)" in text
    assert "self.a = Head(4, 4)" in text and "self.b = Head_1(4, 4)" in text
    path = tmp_path / "two_heads.py"
    path.write_text(text)
    module = load_file(path, "netc_two_heads")
    runtime = build_module(net)
    perturb(runtime, 3)
    model = module.TwoHeads()
    model.load_state_dict(runtime.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(0)
    expected = runtime(x)
    torch.manual_seed(0)
    got = model(x)
    assert type(got)._fields == type(expected)._fields == ("main", "a", "b")
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


def test_aux_heads_under_different_conditions(tmp_path):
    """Each head is built if its own condition holds. The outputs' NamedTuple has a
    field per declared head, None for a head that is off (the runtime's namedtuple
    leaves that field out: a generated module has one fixed outputs class)."""
    spec = tmp_path / "mixed.net"
    spec.write_text(
        "block Head(k: int = 1, n: int) {\n    conv = conv(8, k)\n    global_avgpool\n"
        "    flatten\n    fc = linear(n)\n}\n"
        "network Mixed(a: bool = true, b: bool = false) {\n    input 3x8x8\n    p = conv(4, 1)\n"
        "    aux one = Head(n=4) at p weight 0.3 if a\n    aux two = Head(3, 5) at p weight 0.2 if b\n"
        "    r = conv(2, 1) -> flatten\n}\n"
    )
    net = compiler.load(spec)
    text = source.emit(net)
    assert "def __init__(self, in_channels: int, k: int = 1, *, n: int) -> None:" in text
    assert "self.one = Head(4, n=4)" in text and "self.two = Head(4, k=3, n=5)" in text
    assert "    one: torch.Tensor | None\n" in text
    path = tmp_path / "mixed.py"
    path.write_text(text)
    module = load_file(path, "netc_mixed")
    runtime = build_module(net)
    perturb(runtime, 4)
    model = module.Mixed()
    model.load_state_dict(runtime.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(0)
    expected = runtime(x)
    torch.manual_seed(0)
    got = model(x)
    assert type(expected)._fields == ("main", "one") and type(got)._fields == ("main", "one", "two")
    assert torch.equal(got.main, expected.main) and torch.equal(got.one, expected.one)
    assert got.two is None
    target = torch.tensor([0, 1])
    assert torch.equal(module.loss(got, target), runtime.loss(expected, target))
    assert type(torch.jit.script(model)(x))._fields == ("main", "one", "two")


# -- the generated module against the runtime module ---------------------------------------


@pytest.mark.parametrize("stem", LIGHT)
def test_same_state_dict_and_same_init(stem):
    net, module = generated(stem)
    torch.manual_seed(0)
    runtime = build_module(net)
    torch.manual_seed(0)
    model = getattr(module, net.name)()
    a, b = runtime.state_dict(), model.state_dict()
    assert list(a) == list(b)
    assert [t.shape for t in a.values()] == [t.shape for t in b.values()]
    # The init method follows the spec's init rules, in the same module order.
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stem", LIGHT)
def test_same_outputs_in_eval(stem):
    net, _, runtime, model = pair(stem)
    runtime.eval()
    model.eval()
    x = torch.randn(2, *SPECS[stem])
    with torch.no_grad():
        expected, got = runtime(x), model(x)
    assert isinstance(got, torch.Tensor) and got.shape == (2, *net.out_shape)
    assert_depends_on_input(got)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("stem", LIGHT)
def test_same_outputs_in_train(stem):
    net, module, runtime, model = pair(stem)
    runtime.train()
    model.train()
    x = torch.randn(2, *SPECS[stem])
    torch.manual_seed(7)
    expected = runtime(x)
    torch.manual_seed(7)
    got = model(x)
    if net.aux:
        assert type(got).__name__ == f"{net.name}Outputs"
        assert type(got)._fields == type(expected)._fields == ("main", *(h.name for h in net.aux))
        for field in got._fields:
            assert torch.equal(getattr(got, field), getattr(expected, field)), field
            assert_depends_on_input(getattr(got, field))
        target = torch.tensor([0, 1])
        assert torch.equal(module.loss(got, target), runtime.loss(expected, target))
        assert (
            module.AUX_LOSS_WEIGHTS
            == {h.name: h.weight for h in net.aux}
            == AUX_WEIGHTS.get(stem, {"aux1": 0.3, "aux2": 0.3})
        )
        assert torch.equal(
            module.loss(got.main, target), torch.nn.functional.cross_entropy(got.main, target)
        )
    else:
        assert torch.equal(got, expected)
        assert_depends_on_input(got)
    # Batch norm updated its running statistics the same way.
    a, b = runtime.state_dict(), model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dropout_really_runs_in_train_mode():
    """The train-mode equality above is not vacuous: another seed gives other outputs."""
    _, _, _runtime, model = pair("googlenet_v1")
    x = torch.randn(2, *SPECS["googlenet_v1"])
    torch.manual_seed(7)
    a = model.train()(x)
    torch.manual_seed(8)
    b = model(x)
    assert not torch.equal(a.main, b.main) and not torch.equal(a.aux1, b.aux1)


@pytest.mark.parametrize("stem", ["googlenet_v1", "googlenet_torchvision"])
def test_aux_false_builds_no_heads_and_returns_a_tensor(stem):
    net, module = generated(stem)
    model = getattr(module, net.name)(aux=False).train()
    assert model.aux1 is None and model.aux2 is None
    assert not any(k.startswith("aux") for k in model.state_dict())
    runtime = build_module(compiler.load(ROOT / "specs" / f"{stem}.net", SPECS[stem], aux=False))
    assert list(model.state_dict()) == list(runtime.state_dict())
    assert isinstance(model(torch.randn(2, *SPECS[stem])), torch.Tensor)


def test_transform_input_is_a_constructor_argument():
    _net, module = generated("googlenet_torchvision")
    runtime = build_module(
        compiler.load(
            ROOT / "specs" / "googlenet_torchvision.net",
            SPECS["googlenet_torchvision"],
            transform_input=True,
        )
    )
    perturb(runtime, 5)
    model = module.GoogLeNetTV(transform_input=True)
    model.load_state_dict(runtime.state_dict())
    plain = module.GoogLeNetTV()
    plain.load_state_dict(runtime.state_dict())
    x = torch.randn(2, *SPECS["googlenet_torchvision"])
    with torch.no_grad():
        assert torch.equal(model.eval()(x), runtime.eval()(x))
        assert not torch.equal(plain.eval()(x), model(x))


@pytest.mark.parametrize("stem", LIGHT)
def test_deploy_build_loads_a_training_checkpoint(stem):
    net, _module, runtime, _ = pair(stem)
    _, deploy_module = generated(stem, deploy=True)
    checkpoint = runtime.state_dict()
    model, dropped = getattr(deploy_module, net.name).from_training_checkpoint(checkpoint)
    heads = tuple(h.name for h in net.aux)
    assert deploy_module.AUX_HEADS == heads
    assert dropped == [k for k in checkpoint if k.split(".")[0] in heads]
    assert bool(dropped) == bool(heads)
    deployed = build_module(net, deploy=True)
    deployed.load_state_dict({k: v for k, v in checkpoint.items() if k not in dropped}, strict=True)
    assert list(model.state_dict()) == list(deployed.state_dict())
    x = torch.randn(2, *SPECS[stem])
    with torch.no_grad():
        got, expected = model.eval()(x), deployed.eval()(x)
    assert_depends_on_input(got)
    assert torch.equal(got, expected)
    assert isinstance(model.train()(x), torch.Tensor)  # no aux outputs, even in training


def test_deploy_loader_errors_on_any_other_mismatch():
    _net, _, runtime, _ = pair("googlenet_v1")
    _, deploy_module = generated("googlenet_v1", deploy=True)
    cls = deploy_module.GoogLeNet
    checkpoint = runtime.state_dict()
    missing = {k: v for k, v in checkpoint.items() if k != "fc.bias"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "fc.bias"'):
        cls.from_training_checkpoint(missing)
    for extra in ("fc.scale", "aux3.fc.weight", "aux1x.weight"):
        with pytest.raises(RuntimeError, match=rf'Unexpected key\(s\) in state_dict: "{extra}"'):
            cls.from_training_checkpoint({**checkpoint, extra: torch.zeros(1)})
    wrong = {**checkpoint, "fc.weight": torch.zeros(3, 3)}
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        cls.from_training_checkpoint(wrong)
    _model, dropped = cls.from_training_checkpoint(checkpoint, num_classes=1000)
    assert len(dropped) == sum(1 for k in checkpoint if k.startswith(("aux1.", "aux2.")))
    with pytest.raises(TypeError):
        cls.from_training_checkpoint(checkpoint, aux=True)  # a deploy build has no aux parameter


def test_set_changes_the_defaults():
    net = compiler.load(
        ROOT / "specs" / "googlenet_v1.net", SPECS["googlenet_v1"], num_classes=10, aux=False
    )
    text = source.emit(net)
    init = next(
        f for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == "GoogLeNet"
        for f in n.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"
    )  # fmt: skip
    assert (
        ast.unparse(init.args)
        == "self, *, num_classes: int=10, aux: bool=False, dropout: float=0.4"
    )
    assert "x = self.fc(x)  # N x 10 (num_classes)" in text


# -- what else runs the generated module ------------------------------------------------------

# TorchScript and torch.export take seconds per spec, so they run on the two canonical
# specs: aux heads with their outputs tuple and an `aux` switch (v1); batch norm, an input
# transform under a condition (torchvision). Every op kind, named and
# unnamed, is scripted in test_every_op_as_module_and_as_function_matches_the_runtime, and
# the optimised deploy builds in test_source_deploy.py.
REPRESENTATIVE = ["googlenet_v1", "googlenet_torchvision"]


@pytest.mark.parametrize("stem", REPRESENTATIVE)
def test_torch_jit_script(stem):
    net, _, _, model = pair(stem)
    scripted = torch.jit.script(model)
    x = torch.randn(2, *SPECS[stem])
    torch.manual_seed(3)
    expected = model.train()(x)
    torch.manual_seed(3)
    got = scripted.train()(x)
    if net.aux:
        assert type(got)._fields == ("main", "aux1", "aux2")
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(scripted.eval()(x), model.eval()(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("stem", REPRESENTATIVE)
def test_torch_export(stem):
    _, _, _, model = pair(stem)
    model.eval()
    x = torch.randn(2, *SPECS[stem])
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=1e-6)


def test_torch_compile_fullgraph():
    """fullgraph=True: Dynamo must capture forward as one graph, no breaks.

    Backend aot_eager runs Dynamo and AOTAutograd, the part the generated code
    decides; inductor adds C++ code generation, about 100 s cold on two cores,
    so it runs only with NETC_SLOW_TESTS=1 (test_torch_compile_inductor).
    """
    torch._dynamo.reset()
    _, _, _, model = pair("googlenet_v1")
    model.eval()
    x = torch.randn(2, *SPECS["googlenet_v1"])
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=1e-6)


@pytest.mark.skipif(
    not os.environ.get("NETC_SLOW_TESTS"),
    reason="inductor takes ~100 s cold; set NETC_SLOW_TESTS=1",
)
def test_torch_compile_inductor():
    torch._dynamo.reset()
    _, _, _, model = pair("googlenet_d2l")
    model.eval()
    x = torch.randn(2, *SPECS["googlenet_d2l"])
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


# -- the op tables ---------------------------------------------------------------------------

KNOWN_OPS = (
    "conv", "batchnorm", "relu", "maxpool", "avgpool", "adaptive_avgpool", "lrn",
    "dropout", "dropout2d", "flatten", "linear", "softmax", "scale_shift", "fused_conv",
    "relu6", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "hardswish", "identity",
)  # fmt: skip


def test_every_op_has_a_module_and_every_weightless_op_a_function():
    """What the source backend writes comes from each op's Torch descriptor (compiler.ops)."""
    assert set(KNOWN_OPS) == set(ir.OP_KINDS)
    for kind in KNOWN_OPS:
        spec = ops.OPS[kind].torch
        assert spec.helper or hasattr(torch.nn, spec.module), kind
        if kind not in ir.STATEFUL_OPS and kind != "identity":  # unnamed: the input itself
            assert spec.function is not None, kind


def test_every_op_as_module_and_as_function_matches_the_runtime(tmp_path):
    """One small spec with every op, named (a module) and unnamed (a call)."""
    spec = tmp_path / "ops.net"
    spec.write_text(
        "network Ops(p: float = 0.25, k: int = 3) {\n"
        "    input 3x12x12\n"
        "    scale_shift(scale=(0.5, 1.0, 2.0), shift=(0.1, 0.2, 0.3))\n"
        "    norm = scale_shift(scale=(2.0, 1.0, 0.5), shift=(0.0, -0.1, 0.1))\n"
        "    c = conv(8, k, padding=1, dilation=1, groups=1, bias=false)\n"
        "    bn = batchnorm(eps=0.001, momentum=0.2)\n"
        "    r = relu\n"
        "    relu\n"
        "    r6 = relu6(inplace=true)\n"
        "    relu6\n"
        "    lr = leaky_relu(0.1)\n"
        "    leaky_relu(negative_slope=0.2, inplace=true)\n"
        "    sg = sigmoid\n"
        "    sigmoid\n"
        "    th = tanh\n"
        "    tanh\n"
        "    ge = gelu\n"
        "    gelu\n"
        "    si = silu\n"
        "    silu(inplace=true)\n"
        "    hs = hardswish\n"
        "    hardswish\n"
        "    i = identity\n"
        "    identity\n"
        "    mp = maxpool(k, stride=1, padding=1, ceil_mode=true)\n"
        "    maxpool((2, 3), stride=1, padding=(1, 1), dilation=1)\n"
        "    ap = avgpool(3, stride=1, padding=1, count_include_pad=false)\n"
        "    avgpool(2, stride=1, ceil_mode=true)\n"
        "    l = lrn(3, alpha=0.001, beta=0.5, k=2.0)\n"
        "    lrn(2)\n"
        "    d2 = dropout2d(p)\n"
        "    dropout2d(p / 2)\n"
        '    g = conv(8, 3, padding="same", groups=2)\n'
        "    aap = adaptive_avgpool((4, 3))\n"
        "    adaptive_avgpool(2)\n"
        "    f = flatten\n"
        "    d = dropout(p)\n"
        "    dropout(0.1)\n"
        "    fc = linear(10, bias=true)\n"
        "    s = softmax(dim=1)\n"
        "    softmax\n"
        "}\n"
    )
    net = compiler.load(spec)
    text = source.emit(net)
    for expected in (
        "x = scale_shift(x, [0.5, 1.0, 2.0], [0.1, 0.2, 0.3])",
        "self.norm = ScaleShift([2.0, 1.0, 0.5], [0.0, -0.1, 0.1])",
        "self.c = nn.Conv2d(3, 8, k, padding=1, dilation=1, groups=1, bias=False)",
        "x = F.max_pool2d(x, (2, 3), stride=1, padding=(1, 1), dilation=1)",
        "x = F.avg_pool2d(x, 2, stride=1, ceil_mode=True)",
        "x = F.local_response_norm(x, 2)",
        "x = F.dropout2d(x, self.p / 2, self.training)",
        "self.g = nn.Conv2d(8, 8, 3, padding='same', groups=2)".replace("'", '"'),
        "x = F.adaptive_avg_pool2d(x, 2)",
        "x = F.dropout(x, 0.1, self.training)",
        "return F.softmax(x, dim=1)",
        "self.r6 = nn.ReLU6(inplace=True)",
        "x = F.leaky_relu(x, negative_slope=0.2, inplace=True)",
        "self.lr = nn.LeakyReLU(negative_slope=0.1)",
        "x = torch.sigmoid(x)",
        "x = torch.tanh(x)",
        "x = F.gelu(x)",
        "x = F.silu(x, inplace=True)",
        "self.hs = nn.Hardswish()",
        "self.i = nn.Identity()",
        "self.s = nn.Softmax(dim=1)",
    ):
        assert expected in text, expected
    path = tmp_path / "ops.py"
    path.write_text(text)
    module = load_file(path, "netc_ops")
    runtime = build_module(net)
    perturb(runtime, 9)
    model = module.Ops()
    model.load_state_dict(runtime.state_dict(), strict=True)
    x = torch.randn(2, 3, 12, 12)
    for train in (True, False):
        runtime.train(train)
        model.train(train)
        torch.manual_seed(1)
        expected = runtime(x)
        torch.manual_seed(1)
        assert torch.equal(model(x), expected)
    torch.jit.script(model)
