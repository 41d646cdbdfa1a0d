"""Every unknown name gets a hint: "did you mean X?" for a near match, else what is
allowed there (the built-ins and the blocks in scope, the names in scope, the named
layers, the schemes). Each case pins the whole rendered error."""

from __future__ import annotations

import textwrap

import pytest

import compiler
from compiler.cli import main
from dsl.errors import SpecError

BUILTINS = (
    "adaptive_avgpool, avgpool, batchnorm, conv, dropout, dropout2d, flatten, gelu, "
    "global_avgpool, hardswish, identity, leaky_relu, linear, lrn, maxpool, relu, relu6, "
    "scale_shift, sigmoid, silu, softmax, tanh"
)

CASES = [
    pytest.param(
        """
        network N() {
            input 3x32x32
            t = frobnicate
        }
        """,
        f"""
        spec.net:3:9: error: unknown layer or block 'frobnicate'
            3 |     t = frobnicate
              |         ^^^^^^^^^^
        hint: expected one of the built-in layers ({BUILTINS}); no blocks are in scope (is an import missing?)
        """,
        id="no-near-layer-no-blocks",
    ),
    pytest.param(
        """
        import "std/inception.net"

        network N() {
            input 3x32x32
            a = add(1)
        }
        """,
        f"""
        spec.net:5:9: error: unknown layer or block 'add'
            5 |     a = add(1)
              |         ^^^
        hint: expected one of the built-in layers ({BUILTINS}) or a block in scope (ConvBlock, Inception, InceptionAux)
        """,
        id="no-near-layer-with-blocks",
    ),
    pytest.param(
        """
        import "std/inception.net"

        network N() {
            input 3x32x32
            c = convblock(8, 3)
        }
        """,
        """
        spec.net:5:9: error: unknown layer or block 'convblock'
            5 |     c = convblock(8, 3)
              |         ^^^^^^^^^
        hint: did you mean ConvBlock?
        """,
        id="near-block",
    ),
    pytest.param(
        """
        network N() {
            input 3x32x32
            Relu
        }
        """,
        """
        spec.net:3:5: error: unknown layer or block 'Relu'
            3 |     Relu
              |     ^^^^
        hint: did you mean relu?
        """,
        id="near-layer",
    ),
    pytest.param(
        """
        network N() {
            input 3x32x32
            c = conv(8, 3, pad=2)
        }
        """,
        """
        spec.net:3:20: error: 'conv' has no argument 'pad'
            3 |     c = conv(8, 3, pad=2)
              |                    ^^^^^
        hint: did you mean padding?
        """,
        id="near-argument",
    ),
    pytest.param(
        """
        network N() {
            input 3x32x32
            c = conv(8, 3, zz=1)
        }
        """,
        """
        spec.net:3:20: error: 'conv' has no argument 'zz'
            3 |     c = conv(8, 3, zz=1)
              |                    ^^^^
        hint: conv(out_channels, kernel_size, stride=..., padding=..., dilation=..., groups=..., bias=...)
        """,
        id="no-near-argument",
    ),
    pytest.param(
        """
        network N(k: int = size * 2) {
            input 3x32x32
        }
        """,
        """
        spec.net:1:20: error: unknown name 'size'
            1 | network N(k: int = size * 2) {
              |                    ^^^^
        hint: a default or an init argument is a constant: no names are in scope there
        """,
        id="name-in-a-default",
    ),
    pytest.param(
        """
        block B(w: int) {
            c = conv(widht, 3)
        }
        network N() {
            input 3x32x32
            b = B(8)
        }
        """,
        """
        spec.net:2:14: error: unknown name 'widht'
            2 |     c = conv(widht, 3)
              |              ^^^^^
        hint: names in scope: in_channels, w
        """,
        id="name-in-a-block",
    ),
    pytest.param(
        """
        network N(k: integer = 3) {
            input 3x32x32
        }
        """,
        """
        spec.net:1:14: error: unknown type 'integer'
            1 | network N(k: integer = 3) {
              |              ^^^^^^^
        hint: did you mean int?
        """,
        id="near-type",
    ),
    pytest.param(
        """
        network N(k: int = 10) {
            input 3x32x32
            c1 = conv(8, 3)
            aux h = flatten -> linear(k) at zzz weight 0.3
        }
        """,
        """
        spec.net:4:37: error: aux head 'h' taps 'zzz', which is not a named layer of the network
            4 |     aux h = flatten -> linear(k) at zzz weight 0.3
              |                                     ^^^
        hint: named layers of the network: c1
        """,
        id="no-near-tap",
    ),
    pytest.param(
        """
        network N() {
            input 3x32x32
            init linaer = normal(std=0.01)
        }
        """,
        """
        spec.net:3:10: error: cannot initialise 'linaer'
            3 |     init linaer = normal(std=0.01)
              |          ^^^^^^
        hint: did you mean linear?
        """,
        id="near-init-target",
    ),
    pytest.param(
        """
        network N() {
            input 3x32x32
            init conv = foo()
        }
        """,
        """
        spec.net:3:17: error: unknown initialisation 'foo'
            3 |     init conv = foo()
              |                 ^^^
        hint: schemes: kaiming_normal, kaiming_uniform, normal, trunc_normal, constant, xavier_uniform, xavier_normal
        """,
        id="no-near-init-scheme",
    ),
]


@pytest.mark.parametrize(("spec", "message"), CASES)
def test_unknown_names_get_a_hint(tmp_path, monkeypatch, spec: str, message: str):
    (tmp_path / "spec.net").write_text(textwrap.dedent(spec).lstrip("\n"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        compiler.load("spec.net")
    assert info.value.render() == textwrap.dedent(message).strip("\n")


def test_an_unknown_set_parameter_gets_the_list(tmp_path, monkeypatch, capsys):
    (tmp_path / "spec.net").write_text(
        "network N(num_classes: int = 10) {\n    input 3x32x32\n}\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["check", "spec.net", "--set", "classes=3"]) == 1
    assert capsys.readouterr().err == textwrap.dedent(
        """\
        <command line>:1:27: error: unknown parameter 'classes' of network N
            1 | netc check spec.net --set classes=3
              |                           ^^^^^^^
        hint: did you mean num_classes?
        """
    )
