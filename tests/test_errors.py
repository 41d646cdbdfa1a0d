"""Every bad spec ends in one exact message: ``path:line:col: error: ...``, the
source line under a gutter, a caret line under the culprit, and a ``hint:``
where one helps. Each case pins the whole rendered text, so a moved caret, a
reworded message or a lost hint fails here.

Spec files are written into ``tmp_path`` and loaded by a relative path from
there, so messages name ``spec.net``; ``{stdlib}`` stands for netc's own
``specs/`` folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import compiler
from compiler.cli import main
from dsl.errors import SpecError
from dsl.loader import STDLIB


def write(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def expected(text: str) -> str:
    return textwrap.dedent(text).strip("\n").replace("{stdlib}", str(STDLIB))


def error_of(tmp_path: Path, monkeypatch, files: dict[str, str], **params) -> str:
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        compiler.load("spec.net", **params)
    return info.value.render()


CASES = [
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3 padding=1)
                }
            """,
        },
        """
        spec.net:3:21: error: unexpected name 'padding', expected one of ')', ','
            3 |     c1 = conv(16, 3 padding=1)
              |                     ^^^^^^^
        """,
        id="syntax_unexpected_token",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3) $ relu
                }
            """,
        },
        """
        spec.net:3:22: error: unexpected character '$'
            3 |     c1 = conv(16, 3) $ relu
              |                      ^
        """,
        id="syntax_unexpected_character",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3
            """,
        },
        """
        spec.net:3:20: error: unexpected end of file, expected one of ')', ',', an operator
            3 |     c1 = conv(16, 3
              |                    ^
        """,
        id="syntax_unexpected_eof",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3
                }
            """,
        },
        """
        spec.net:4:1: error: unexpected '}', expected one of ')', ','
            4 | }
              | ^
        """,
        id="syntax_unclosed_call",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes = 10) {
                    input 3x32x32
                }
            """,
        },
        """
        spec.net:1:23: error: unexpected '=', expected ':'
            1 | network N(num_classes = 10) {
              |                       ^
        """,
        id="syntax_param_without_type",
    ),
    pytest.param(
        {
            "spec.net": """
                network N() {
                    input 3x32
                }
            """,
        },
        """
        spec.net:2:11: error: unexpected number 3, expected a shape like 3x224x224
            2 |     input 3x32
              |           ^
        """,
        id="syntax_bad_shape",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv2d(16, 3)
                }
            """,
        },
        """
        spec.net:3:10: error: unknown layer or block 'conv2d'
            3 |     c1 = conv2d(16, 3)
              |          ^^^^^^
        hint: did you mean conv?
        """,
        id="unknown_layer",
    ),
    pytest.param(
        {
            "spec.net": """
                import "std/inception.net"
                network N(num_classes: int = 10) {
                    input 3x32x32
                    i = Inceptoin(64, 96, 128, 16, 32, 32)
                }
            """,
        },
        """
        spec.net:4:9: error: unknown layer or block 'Inceptoin'
            4 |     i = Inceptoin(64, 96, 128, 16, 32, 32)
              |         ^^^^^^^^^
        hint: did you mean Inception?
        """,
        id="unknown_block",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3, strid=2)
                }
            """,
        },
        """
        spec.net:3:22: error: 'conv' has no argument 'strid'
            3 |     c1 = conv(16, 3, strid=2)
              |                      ^^^^^^^
        hint: did you mean stride?
        """,
        id="unknown_argument",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(kernel_size=3)
                }
            """,
        },
        """
        spec.net:3:10: error: 'conv' is missing argument 'out_channels'
            3 |     c1 = conv(kernel_size=3)
              |          ^^^^^^^^^^^^^^^^^^^
        hint: conv(out_channels, kernel_size, stride=..., padding=..., dilation=..., groups=..., bias=...)
        """,
        id="missing_argument",
    ),
    pytest.param(
        {
            "spec.net": """
                block B(width: int) {
                    c = conv(width, 1)
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    b = B()
                }
            """,
        },
        """
        spec.net:6:9: error: 'B' is missing argument 'width'
            6 |     b = B()
              |         ^^^
        hint: B(width)
        """,
        id="missing_block_argument",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3, 1, 0, 1, 1, true, 5)
                }
            """,
        },
        """
        spec.net:3:40: error: 'conv' takes at most 7 arguments, got 8
            3 |     c1 = conv(16, 3, 1, 0, 1, 1, true, 5)
              |                                        ^
        hint: conv(out_channels, kernel_size, stride=..., padding=..., dilation=..., groups=..., bias=...)
        """,
        id="too_many_positional",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, kernel_size=3, 2)
                }
            """,
        },
        """
        spec.net:3:34: error: positional argument after keyword arguments
            3 |     c1 = conv(16, kernel_size=3, 2)
              |                                  ^
        """,
        id="positional_after_keyword",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3, kernel_size=3)
                }
            """,
        },
        """
        spec.net:3:22: error: argument 'kernel_size' is given twice
            3 |     c1 = conv(16, 3, kernel_size=3)
              |                      ^^^^^^^^^^^^^
        """,
        id="argument_twice",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, "3")
                }
            """,
        },
        """
        spec.net:3:19: error: kernel_size expects an integer or a pair of integers, got string "3"
            3 |     c1 = conv(16, "3")
              |                   ^^^
        """,
        id="string_for_int",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16.0, 3)
                }
            """,
        },
        """
        spec.net:3:15: error: out_channels expects an integer, got float 16.0
            3 |     c1 = conv(16.0, 3)
              |               ^^^^
        """,
        id="float_for_int",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    p = maxpool(3, stride=2, ceil_mode=1)
                }
            """,
        },
        """
        spec.net:3:40: error: ceil_mode expects true or false, got int 1
            3 |     p = maxpool(3, stride=2, ceil_mode=1)
              |                                        ^
        """,
        id="int_for_bool",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3, padding="full")
                }
            """,
        },
        """
        spec.net:3:30: error: padding expects an integer, a pair, "same" or "valid", got string "full"
            3 |     c1 = conv(16, 3, padding="full")
              |                              ^^^^^^
        """,
        id="bad_padding_string",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c1 = conv(16, 3)
                    c1 = conv(16, 3)
                }
            """,
        },
        """
        spec.net:4:5: error: duplicate name 'c1' (first used at spec.net:3:5)
            4 |     c1 = conv(16, 3)
              |     ^^
        """,
        id="duplicate_layer",
    ),
    pytest.param(
        {
            "spec.net": """
                block B(c: int) {
                    concat {
                        p = conv(c, 1)
                        p = conv(c, 3, padding=1)
                    }
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    b = B(4)
                }
            """,
        },
        """
        spec.net:4:9: error: duplicate name 'p' (first used at spec.net:3:9)
            4 |         p = conv(c, 3, padding=1)
              |         ^
        """,
        id="duplicate_branch",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10, num_classes: int = 3) {
                    input 3x32x32
                }
            """,
        },
        """
        spec.net:1:34: error: parameter 'num_classes' is declared twice
            1 | network N(num_classes: int = 10, num_classes: int = 3) {
              |                                  ^^^^^^^^^^^^^^^^^^^^
        """,
        id="duplicate_param",
    ),
    pytest.param(
        {
            "lib.net": """
                # my own
                block ConvBlock(c: int) {
                    conv = conv(c, 1)
                }
            """,
            "spec.net": """
                import "lib.net"
                import "std/inception.net"
                network N(num_classes: int = 10) {
                    input 3x32x32
                }
            """,
        },
        """
        {stdlib}/std/inception.net:5:7: error: block 'ConvBlock' is already defined at lib.net:2:7
            5 | block ConvBlock(out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) {
              |       ^^^^^^^^^
        """,
        id="duplicate_block_across_files",
    ),
    pytest.param(
        {
            "spec.net": """
                block Loop(c: int) {
                    again = Loop(c)
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    l = Loop(4)
                }
            """,
        },
        """
        spec.net:2:13: error: block 'Loop' calls itself: Loop -> Loop
            2 |     again = Loop(c)
              |             ^^^^^^^
        """,
        id="block_calls_itself",
    ),
    pytest.param(
        {
            "spec.net": """
                block A(c: int) {
                    b = B(c)
                }
                block B(c: int) {
                    a = A(c + 1)
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    a = A(4)
                }
            """,
        },
        """
        spec.net:5:9: error: block 'A' calls itself: A -> B -> A
            5 |     a = A(c + 1)
              |         ^^^^^^^^
        """,
        id="block_calls_itself_indirectly",
    ),
    pytest.param(
        {
            "a.net": """
                import "b.net"
                block A() {
                    relu
                }
            """,
            "b.net": """
                import "a.net"
                block B() {
                    relu
                }
            """,
            "spec.net": """
                import "a.net"
                network N(num_classes: int = 10) {
                    input 3x32x32
                }
            """,
        },
        """
        b.net:1:1: error: import cycle: a.net -> b.net -> a.net
            1 | import "a.net"
              | ^^^^^^^^^^^^^^
        """,
        id="import_cycle",
    ),
    pytest.param(
        {
            "spec.net": """
                import "layers/missing.net"
                network N(num_classes: int = 10) {
                    input 3x32x32
                }
            """,
        },
        """
        spec.net:1:1: error: cannot find import "layers/missing.net"
            1 | import "layers/missing.net"
              | ^^^^^^^^^^^^^^^^^^^^^^^^^^^
        hint: looked in layers/, {stdlib}/layers/
        """,
        id="missing_import",
    ),
    pytest.param(
        {
            "spec.net": """
                network N() {
                    input 3x8x8
                    c = conv(4, 3, stride=2) -> conv(4, 3, stride=2) -> conv(4, 3)
                }
            """,
        },
        """
        spec.net:3:57: error: conv output would be -1x-1: the 1x1 input is too small
            3 |     c = conv(4, 3, stride=2) -> conv(4, 3, stride=2) -> conv(4, 3)
              |                                                         ^^^^^^^^^^
        hint: reduce the kernel or stride, add padding, or use a larger input
        """,
        id="spatial_size_zero",
    ),
    pytest.param(
        {
            "spec.net": """
                network N() {
                    input 3x8x8
                    p = maxpool(3, stride=3) -> maxpool(3, stride=3)
                }
            """,
        },
        """
        spec.net:3:33: error: maxpool output would be 0x0: the 2x2 input is too small
            3 |     p = maxpool(3, stride=3) -> maxpool(3, stride=3)
              |                                 ^^^^^^^^^^^^^^^^^^^^
        hint: reduce the kernel or stride, add padding, or use a larger input
        """,
        id="pool_output_zero",
    ),
    pytest.param(
        {
            "spec.net": """
                block B() {
                    concat {
                        a = conv(4, 1)
                        b = maxpool(3, stride=2)
                    }
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    b = B()
                }
            """,
        },
        """
        spec.net:4:9: error: concat inputs disagree on height x width: 32x32 ('a') vs 15x15 ('b')
            4 |         b = maxpool(3, stride=2)
              |         ^^^^^^^^^^^^^^^^^^^^^^^^
        hint: every branch must keep the same spatial size (check stride and padding)
        """,
        id="concat_hw_mismatch",
    ),
    pytest.param(
        {
            "spec.net": """
                block B() {
                    concat {
                        a = flatten
                    }
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    b = B()
                }
            """,
        },
        """
        spec.net:3:9: error: concat branch 'a' gives a flat vector; concat joins feature maps
            3 |         a = flatten
              |         ^^^^^^^^^^^
        """,
        id="concat_flat_branch",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(8, 3)
                    fc = linear(num_classes)
                }
            """,
        },
        """
        spec.net:4:10: error: linear needs a flat input, got a 8x30x30 feature map
            4 |     fc = linear(num_classes)
              |          ^^^^^^^^^^^^^^^^^^^
        hint: add flatten before it
        """,
        id="linear_unflattened",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    flatten
                    c = conv(8, 3)
                }
            """,
        },
        """
        spec.net:4:9: error: conv needs a C x H x W feature map, got a flat vector of 3072 features
            4 |     c = conv(8, 3)
              |         ^^^^^^^^^^
        """,
        id="conv_after_flatten",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    conv1 = conv(8, 3)
                    flatten
                    fc = linear(num_classes)
                    aux head = flatten -> linear(num_classes) at conv2
                }
            """,
        },
        """
        spec.net:6:50: error: aux head 'head' taps 'conv2', which is not a named layer of the network
            6 |     aux head = flatten -> linear(num_classes) at conv2
              |                                                  ^^^^^
        hint: did you mean conv1?
        """,
        id="aux_tap_unknown",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(lrn: bool = true) {
                    input 3x8x8
                    norm = lrn(5) if lrn
                    flatten
                    fc = linear(2)
                    aux head = flatten -> linear(2) at norm
                }
            """,
        },
        """
        spec.net:6:40: error: aux head 'head' taps 'norm', which is conditional (at spec.net:3:22)
            6 |     aux head = flatten -> linear(2) at norm
              |                                        ^^^^
        hint: tap a layer that is always there
        """,
        id="aux_tap_conditional",
    ),
    pytest.param(
        {
            "spec.net": """
                network N() {
                    input 3x8x8
                    c = conv(4, 1)
                    flatten
                    fc = linear(2)
                    aux main = flatten -> linear(2) at c
                }
            """,
        },
        """
        spec.net:6:9: error: aux head name 'main' is taken by the network's main output
            6 |     aux main = flatten -> linear(2) at c
              |         ^^^^
        hint: choose another name
        """,
        id="aux_named_main",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(width: int = 16) {
                    input 3x32x32
                    c = conv(widht, 3)
                }
            """,
        },
        """
        spec.net:3:14: error: unknown name 'widht'
            3 |     c = conv(widht, 3)
              |              ^^^^^
        hint: did you mean width?
        """,
        id="unknown_name",
    ),
    pytest.param(
        {
            "spec.net": """
                block B(ch1x1: int) {
                    c = conv(ch1x1 + ch3x3, 1)
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    b = B(4)
                }
            """,
        },
        """
        spec.net:2:22: error: unknown name 'ch3x3'
            2 |     c = conv(ch1x1 + ch3x3, 1)
              |                      ^^^^^
        hint: did you mean ch1x1?
        """,
        id="unknown_name_in_block",
    ),
    pytest.param(
        {
            "spec.net": """
                network N() {
                    c = conv(4, 1)
                }
            """,
        },
        """
        spec.net:1:9: error: network N has no input statement
            1 | network N() {
              |         ^
        hint: add `input 3x224x224` (channels x height x width) to its body
        """,
        id="missing_input",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    conv(16, 3) -> relu
                }
            """,
        },
        """
        spec.net:3:5: error: 'conv' has weights, so it needs a name
            3 |     conv(16, 3) -> relu
              |     ^^^^^^^^^^^
        hint: write `name = conv(...)`
        """,
        id="weights_unnamed",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(wide: bool = true) {
                    input 3x32x32
                    c = conv(16, 3)
                    more = conv(32, 1) if wide
                }
            """,
        },
        """
        spec.net:4:5: error: only single layers that keep the shape can be conditional
            4 |     more = conv(32, 1) if wide
              |     ^^^^^^^^^^^^^^^^^^^^^^^^^^
        hint: make the whole network a parameterised variant instead
        """,
        id="guard_changes_shape",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    r = relu if num_classes
                }
            """,
        },
        """
        spec.net:3:17: error: the condition expects true or false, got int 10
            3 |     r = relu if num_classes
              |                 ^^^^^^^^^^^
        """,
        id="guard_not_bool",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(width: integer = 16) {
                    input 3x32x32
                }
            """,
        },
        """
        spec.net:1:18: error: unknown type 'integer'
            1 | network N(width: integer = 16) {
              |                  ^^^^^^^
        hint: did you mean int?
        """,
        id="unknown_param_type",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(4, 1)
                    init conv = kaiming(mode="fan_out")
                }
            """,
        },
        """
        spec.net:4:17: error: unknown initialisation 'kaiming'
            4 |     init conv = kaiming(mode="fan_out")
              |                 ^^^^^^^
        hint: did you mean kaiming_normal?
        """,
        id="unknown_init_scheme",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(4, 1)
                    init conv = kaiming_normal(mode="fan_middle")
                }
            """,
        },
        """
        spec.net:4:37: error: mode must be one of fan_in, fan_out, got "fan_middle"
            4 |     init conv = kaiming_normal(mode="fan_middle")
              |                                     ^^^^^^^^^^^^
        hint: did you mean fan_in?
        """,
        id="bad_init_choice",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(4, 1)
                    init conv = normal(std=0.01)
                    init conv = normal(std=0.02)
                }
            """,
        },
        """
        spec.net:5:10: error: conv is initialised twice (first at spec.net:4:10)
            5 |     init conv = normal(std=0.02)
              |          ^^^^
        """,
        id="init_twice",
    ),
    pytest.param(
        {
            "spec.net": """
                import "std/inception.net"
                network N(num_classes: int = 10) {
                    input 3x32x32
                    ConvBlock(64, 1)
                }
            """,
        },
        """
        spec.net:4:5: error: block 'ConvBlock' needs a name: its layers become module attributes
            4 |     ConvBlock(64, 1)
              |     ^^^^^^^^^^^^^^^^
        hint: write `name = ConvBlock(...)`
        """,
        id="block_needs_name",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    class = conv(16, 1)
                }
            """,
        },
        """
        spec.net:3:5: error: layer name 'class' is a Python keyword
            3 |     class = conv(16, 1)
              |     ^^^^^
        hint: choose another name
        """,
        id="keyword_name",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    forward = conv(16, 1)
                }
            """,
        },
        """
        spec.net:3:5: error: layer name 'forward' would shadow an nn.Module attribute
            3 |     forward = conv(16, 1)
              |     ^^^^^^^
        hint: choose another name
        """,
        id="module_attribute_name",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    d = dropout(1.5)
                }
            """,
        },
        """
        spec.net:3:17: error: dropout probability must be between 0 and 1, got 1.5
            3 |     d = dropout(1.5)
              |                 ^^^
        """,
        id="dropout_out_of_range",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(16, 3, stride=0)
                }
            """,
        },
        """
        spec.net:3:28: error: stride must be at least 1, got 0
            3 |     c = conv(16, 3, stride=0)
              |                            ^
        """,
        id="stride_zero",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(16, 3, groups=2)
                }
            """,
        },
        """
        spec.net:3:9: error: groups=2 must divide both in_channels=3 and out_channels=16
            3 |     c = conv(16, 3, groups=2)
              |         ^^^^^^^^^^^^^^^^^^^^^
        """,
        id="groups_do_not_divide",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    p = maxpool(3, padding=2, dilation=2)
                }
            """,
        },
        """
        spec.net:3:9: error: padding=2 is more than half the kernel size 3
            3 |     p = maxpool(3, padding=2, dilation=2)
              |         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        hint: PyTorch allows padding of at most kernel_size // 2
        """,
        id="pool_padding_too_big",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(16, 3, stride=2, padding="same")
                }
            """,
        },
        """
        spec.net:3:9: error: padding=same needs stride=1
            3 |     c = conv(16, 3, stride=2, padding="same")
              |         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        hint: use an explicit padding
        """,
        id="same_padding_strided",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    flatten
                    softmax(dim=2)
                }
            """,
        },
        """
        spec.net:4:5: error: softmax dim=2 is out of range for an N x 3072 tensor
            4 |     softmax(dim=2)
              |     ^^^^^^^^^^^^^^
        hint: dim must be between -2 and 1
        """,
        id="softmax_dim",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                    c = conv(num_classes // 0, 1)
                }
            """,
        },
        """
        spec.net:3:29: error: division by zero
            3 |     c = conv(num_classes // 0, 1)
              |                             ^
        """,
        id="division_by_zero",
    ),
    pytest.param(
        {
            "spec.net": """
                block B() {
                    input 3x8x8
                }
                network N(num_classes: int = 10) {
                    input 3x32x32
                    b = B()
                }
            """,
        },
        """
        spec.net:2:5: error: 'input' belongs in a network, not in block B
            2 |     input 3x8x8
              |     ^^^^^^^^^^^
        """,
        id="input_in_block",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(num_classes: int = 10) {
                    input 3x32x32
                }
                network M() {
                    input 3x8x8
                }
            """,
        },
        """
        spec.net:4:9: error: a spec file holds one network; 'M' is the second
            4 | network M() {
              |         ^
        """,
        id="two_networks",
    ),
    pytest.param(
        {
            "spec.net": """
                block B() {
                    relu
                }
            """,
        },
        """
        spec.net:3:2: error: no network in this file, only 1 block
            3 | }
              |  ^
        hint: add `network Name(...) { ... }`; a file of blocks alone is a library: import it from a spec with a network
        """,
        id="no_network",
    ),
    pytest.param(
        {
            "spec.net": """
                network N(aux: bool = true) {
                    input 3x8x8
                    c = conv(aux * 2, 1)
                }
            """,
        },
        """
        spec.net:3:14: error: '*' needs numbers, got a bool
            3 |     c = conv(aux * 2, 1)
              |              ^^^
        """,
        id="bool_arithmetic",
    ),
]


@pytest.mark.parametrize("files,message", CASES)
def test_error_message(tmp_path, monkeypatch, files, message):
    assert error_of(tmp_path, monkeypatch, files) == expected(message)


def test_cases_are_distinct():
    messages = [expected(p.values[1]).splitlines()[0] for p in CASES]
    assert len(CASES) >= 25
    assert len(set(messages)) == len(messages)


def test_tabs_keep_the_caret_under_the_culprit(tmp_path, monkeypatch):
    files = {"spec.net": "network N() {\n\tinput 3x8x8\n\tc = conv(4, 3, stride=-1)\n}\n"}
    assert error_of(tmp_path, monkeypatch, files) == expected(
        """
        spec.net:3:24: error: stride must be at least 1, got -1
            3 |  c = conv(4, 3, stride=-1)
              |                        ^^
        """
    )


def test_python_api_overrides(tmp_path, monkeypatch):
    files = {"spec.net": CASES[0].values[0]["spec.net"].replace(" padding=1", ", padding=1")}
    assert error_of(tmp_path, monkeypatch, files, num_clases=3) == expected(
        """
        netc: error: unknown parameter 'num_clases' of network N
        hint: did you mean num_classes?
        """
    )
    assert error_of(tmp_path, monkeypatch, files, num_classes="ten") == (
        "netc: error: parameter 'num_classes' is int, so it expects an integer, got 'ten'"
    )
    assert error_of(tmp_path, monkeypatch, files, num_classes=2.5) == (
        "netc: error: parameter 'num_classes' expects an integer, got float 2.5"
    )


def test_python_api_input_shape(tmp_path, monkeypatch):
    files = {"spec.net": "network N() {\n    flatten\n}\n"}  # no input statement
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    for shape, message in [
        ((3, 0, 8), "netc: error: input 3x0x8 has an empty dimension"),
        ((3, 8), "netc: error: input shape must be (channels, height, width), got (3, 8)"),
    ]:
        with pytest.raises(SpecError) as info:
            compiler.load("spec.net", shape)
        assert info.value.render() == message
    assert compiler.load("spec.net", (2, 3, 4)).out_shape == (24,)


def test_empty_input_statement(tmp_path, monkeypatch):
    files = {"spec.net": "network N() {\n    input 0x8x8\n}\n"}
    assert error_of(tmp_path, monkeypatch, files) == expected(
        """
        spec.net:2:5: error: input 0x8x8 has an empty dimension
            2 |     input 0x8x8
              |     ^^^^^^^^^^^
        """
    )


# -- through the command line ---------------------------------------------------------

SPEC = """
    network N(num_classes: int = 10, aux: bool = true) {
        input 3x32x32
        c = conv(8, 3)
        flatten
        fc = linear(num_classes)
    }
"""

CLI_CASES = [
    pytest.param(
        ["check", "spec.net", "--set", "num_clases=3"],
        """
        <command line>:1:27: error: unknown parameter 'num_clases' of network N
            1 | netc check spec.net --set num_clases=3
              |                           ^^^^^^^^^^
        hint: did you mean num_classes?
        """,
        id="set_unknown_parameter",
    ),
    pytest.param(
        ["check", "spec.net", "--set", "num_classes=ten"],
        """
        <command line>:1:39: error: parameter 'num_classes' is int, so it expects an integer, got 'ten'
            1 | netc check spec.net --set num_classes=ten
              |                                       ^^^
        """,
        id="set_wrong_type_int",
    ),
    pytest.param(
        ["summary", "spec.net", "--set", "aux=a"],
        """
        <command line>:1:33: error: parameter 'aux' is bool, so it expects true or false, got 'a'
            1 | netc summary spec.net --set aux=a
              |                                 ^
        """,
        id="set_wrong_type_bool",
    ),
    pytest.param(
        ["check", "spec.net", "--set", "num_classes"],
        """
        <command line>:1:27: error: --set expects name=value, got 'num_classes'
            1 | netc check spec.net --set num_classes
              |                           ^^^^^^^^^^^
        hint: for example --set num_classes=10
        """,
        id="set_without_value",
    ),
    pytest.param(
        ["check", "spec.net", "--input", "3x32"],
        """
        <command line>:1:29: error: --input expects channels x height x width, got '3x32'
            1 | netc check spec.net --input 3x32
              |                             ^^^^
        hint: for example --input 3x224x224
        """,
        id="input_two_dims",
    ),
    pytest.param(
        ["summary", "spec.net", "--input", "3x0x32"],
        """
        <command line>:1:31: error: --input expects channels x height x width, got '3x0x32'
            1 | netc summary spec.net --input 3x0x32
              |                               ^^^^^^
        hint: for example --input 3x224x224
        """,
        id="input_zero",
    ),
    pytest.param(
        ["check", "spec.net", "--input", "1x2x2"],
        """
        spec.net:3:9: error: conv output would be 0x0: the 2x2 input is too small
            3 |     c = conv(8, 3)
              |         ^^^^^^^^^^
        hint: reduce the kernel or stride, add padding, or use a larger input
        """,
        id="input_too_small_for_the_network",
    ),
    pytest.param(
        ["check", "missing.net"],
        """
        netc: error: cannot read missing.net: No such file or directory
        """,
        id="missing_spec_file",
    ),
]


@pytest.mark.parametrize("argv,message", CLI_CASES)
def test_cli_error(tmp_path, monkeypatch, capsys, argv, message):
    write(tmp_path, {"spec.net": SPEC})
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == expected(message) + "\n"


NETC = Path(sys.executable).with_name("netc")


@pytest.mark.parametrize(
    "files,argv",
    [
        ({"spec.net": SPEC.replace("conv(8, 3)", "conv(8, 3")}, ["check", "spec.net"]),
        ({"spec.net": SPEC}, ["summary", "spec.net", "--set", "nope=1"]),
        ({"spec.net": SPEC.replace("flatten\n", "")}, ["summary", "spec.net"]),
    ],
    ids=["syntax", "set", "shape"],
)
def test_console_script_exits_1_without_traceback(tmp_path, files, argv):
    """The real entry point, in a fresh process: status 1, one message on stderr."""
    write(tmp_path, files)
    command = [str(NETC)] if NETC.exists() else [sys.executable, "-m", "compiler.cli"]
    result = subprocess.run(
        [*command, *argv],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1
    assert result.stderr.startswith(("spec.net:", "<command line>:"))
