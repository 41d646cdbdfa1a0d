"""Deploy builds against the training build, on a tiny spec (conv+bn+relu,
max pool, concat of sibling convolutions and a pool branch): NaN and inf, in
weights, batch-norm statistics or inputs, come out where the training build
has them, in the runtime deploy build (``load_training_checkpoint``) and the
generated deploy code (``from_training_checkpoint``) alike; and a checkpoint
that does not fit (a wrong shape, a missing or unexpected key, a value that is
no tensor) is one error naming the key, and both shapes where it is a shape.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
import torch

import compiler
from compiler import passes
from compiler.backends.runtime import CheckpointError, CheckpointValueError
from compiler.backends.source import emit

SPEC = """
block B(c: int) {
    concat {
        a = conv(c, 1) -> batchnorm -> relu
        b = conv(c, 1) -> batchnorm -> relu
        p = maxpool(3, stride=1, padding=1) -> conv(c, 1) -> batchnorm -> relu
    }
}
network T() {
    input 3xSxS
    stem = conv(4, 3, padding=1) -> batchnorm -> relu
    pool = maxpool(2, stride=2)
    m = B(4)
    pool2 = maxpool(2, stride=2)
TAIL}
"""
NAN, INF = float("nan"), float("inf")


@functools.cache
def builds(size: int, disable: tuple[str, ...] = (), tail: str = ""):
    """(the training build in eval, the optimised net, the generated deploy class)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.net"
        path.write_text(SPEC.replace("S", str(size)).replace("TAIL", tail))
        net = compiler.load(path)
    torch.manual_seed(0)
    train = compiler.build(net).eval()
    optimised = passes.optimise(net, disable=disable)
    namespace: dict = {}
    exec(compile(emit(optimised, deploy=True), "t.py", "exec"), namespace)  # noqa: S102
    return train, optimised, namespace["T"]


def outputs(size, disable, state, x):
    """The training build's, the runtime deploy build's and the generated deploy code's output."""
    train, optimised, generated = builds(size, disable)
    train.load_state_dict(state)
    deploy = compiler.build(optimised, deploy=True).eval()
    deploy.load_training_checkpoint(state)
    code, _ = generated.from_training_checkpoint(state)
    with torch.no_grad():
        return train(x), deploy(x), code.eval()(x)


CASES = {  # checkpoint key (or "input") -> (flat index, value)
    "nan weight": ("stem.0.weight", 0, NAN),
    "inf weight": ("stem.0.weight", 5, INF),
    "-inf weight in a stacked sibling": ("m.b.0.weight", 1, -INF),
    "nan weight after the pool branch": ("m.p.1.weight", 2, NAN),
    "nan running_var": ("m.a.1.running_var", 0, NAN),
    "inf bn bias": ("stem.1.bias", 1, INF),
    "nan input": ("input", 7, NAN),
    "inf input": ("input", 100, INF),
    "-inf input": ("input", 200, -INF),
}


@pytest.mark.parametrize("disable", [(), ("fuse_relu",)], ids=["all passes", "no fuse_relu"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("size, batch", [(8, 2), (32, 64)], ids=["small", "large"])
def test_deploy_builds_keep_nan_and_inf(size, batch, case, disable):
    """Small activations, and ones of 1 MB and more (oneDNN picks its kernels by size)."""
    train, _, _ = builds(size, disable)
    torch.manual_seed(1)
    state = {k: v.clone() for k, v in train.state_dict().items()}
    x = torch.randn(batch, 3, size, size)
    key, index, value = CASES[case]
    (x if key == "input" else state[key]).view(-1)[index] = value
    expected, deploy, code = outputs(size, disable, state, x)
    assert expected.isnan().any() or expected.isinf().any()  # the case is one
    for got in (deploy, code):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, equal_nan=True)
        assert torch.equal(got.isnan(), expected.isnan())
        assert torch.equal(got.isposinf(), expected.isposinf())
        assert torch.equal(got.isneginf(), expected.isneginf())


TAIL = "    flatten\n    fc = linear(3)\n"


def state_of():
    train, _, _ = builds(8, (), TAIL)
    return {k: v.clone() for k, v in train.state_dict().items()}


def both_errors(state):
    """What the runtime deploy build and the generated code raise on ``state``."""
    _, optimised, generated = builds(8, (), TAIL)
    errors = []
    for load in (
        compiler.build(optimised, deploy=True).load_training_checkpoint,
        generated.from_training_checkpoint,
    ):
        with pytest.raises(Exception) as err:
            load(state)
        errors.append(err.value)
    return errors


@pytest.mark.parametrize(
    "change, runtime, code",
    [
        ({"stem.1.running_var": torch.ones(5)},  # feeds a folded batch norm
         "the checkpoint does not fit T: stem.1.running_var has shape (5,), expected (4,)",
         'size mismatch for "stem.1.running_var": expected shape (4,), got (5,)'),
        ({"stem.0.weight": torch.ones(4, 3, 3, 1)},
         "the checkpoint does not fit T: stem.0.weight has shape (4, 3, 3, 1), expected (4, 3, 3, 3)",
         'size mismatch for "stem.0.weight": expected shape (4, 3, 3, 3), got (4, 3, 3, 1)'),
        ({"m.b.1.bias": torch.ones(2)},  # a stacked sibling's batch norm
         "the checkpoint does not fit T: m.b.1.bias has shape (2,), expected (4,)",
         'size mismatch for "m.b.1.bias": expected shape (4,), got (2,)'),
        ({"m.a.0.weight": torch.ones(5, 4, 1, 1), **{f"m.a.1.{s}": torch.ones(5) for s in
          ("weight", "bias", "running_mean", "running_var")}, "m.a.0.bias": torch.ones(5)},
         "the checkpoint does not fit T: m.a.0.weight has shape (5, 4, 1, 1), expected (4, 4, 1, 1)",
         ('size mismatch for "m.a_b.weight": expected shape (8, 4, 1, 1) from '
          '"m.a.0.weight" (5, 4, 1, 1), "m.b.0.weight" (4, 4, 1, 1)')),
        ({"m.a.1.weight": [1.0] * 4},
         "the checkpoint does not fit T: m.a.1.weight is a list, not a tensor",
         '"m.a.1.weight" is a list, not a tensor'),
    ],
)  # fmt: skip
def test_fused_sources_of_the_wrong_shape_or_no_tensor(change, runtime, code):
    state = {**state_of(), **change}
    got_runtime, got_code = both_errors(state)
    assert (type(got_runtime), str(got_runtime)) == (CheckpointValueError, runtime)
    assert isinstance(got_runtime, ValueError)
    assert (type(got_code), str(got_code)) == (RuntimeError, code)


def test_unfused_keys_are_checked_as_load_state_dict_does():
    """The linear layer keeps its keys: PyTorch's strict load names key and both shapes."""
    state = {**state_of(), "fc.weight": torch.ones(3, 5)}
    message = (
        "size mismatch for fc.weight: copying a param with shape torch.Size([3, 5]) from "
        "checkpoint, the shape in current model is torch.Size([3, 48])."
    )
    for err in both_errors(state):
        assert type(err) is RuntimeError
        assert str(err).splitlines()[1].strip() == message
    runtime, code = both_errors({**state_of(), "fc.bias": "zeros"})
    assert (type(runtime), str(runtime)) == (
        CheckpointValueError, "the checkpoint does not fit T: fc.bias is a str, not a tensor"
    )
    assert type(code) is RuntimeError
    assert str(code).splitlines()[1].strip() == (
        'While copying the parameter named "fc.bias", expected torch.Tensor or Tensor-like '
        "object from checkpoint but received <class 'str'>"
    )


def test_missing_and_unexpected_keys():
    state = state_of()
    del state["stem.1.running_mean"], state["fc.bias"]
    state["extra.weight"] = torch.ones(1)
    runtime, code = both_errors(state)
    assert (type(runtime), str(runtime)) == (
        CheckpointError,
        (
            "the checkpoint does not fit T: missing keys: stem.1.running_mean; "
            "unexpected keys: extra.weight"
        ),
    )
    assert isinstance(runtime, KeyError)
    assert (type(code), str(code)) == (
        RuntimeError, 'Missing key(s) in state_dict: "stem.1.running_mean"'
    )
    del state["extra.weight"]
    state["stem.1.running_mean"] = torch.zeros(4)
    _, code = both_errors(state)
    assert type(code) is RuntimeError
    assert 'Missing key(s) in state_dict: "fc.bias"' in str(code)
