"""The block library ships with the package: ``import "std/..."`` resolves from
any folder, through the installed data package ``netc_library`` (which
setuptools maps to ``specs/``, the library's single source in the repository).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from compiler.cli import main
from dsl.loader import STDLIB

ROOT = Path(__file__).resolve().parent.parent

USER_SPEC = """\
# A user's network in a folder of its own, built from the installed block library.
import "std/inception.net"

network Tiny(num_classes: int = 10) {
    input 3x32x32
    stem = ConvBlock(16, 3, padding=1)
    mixed = Inception(8, 8, 16, 4, 8, 8)
    global_avgpool
    flatten
    fc = linear(num_classes)
}
"""
# 3x3 stem 448; Inception on 16 channels: 136 + (136 + 1,168) + (68 + 808) + 136; fc 410.
CHECK_LINE = (
    r"mine\.net: ok: Tiny, input N x 3 x 32 x 32 -> output N x 10, "
    r"3,310 parameters, 0\.00 GMACs \(\d+ ms\)\n"
)


def test_the_library_is_the_installed_package():
    spec = importlib.util.find_spec("netc_library")
    assert spec is not None and spec.submodule_search_locations is not None
    assert STDLIB == Path(next(iter(spec.submodule_search_locations)))
    shipped = sorted(p.name for p in (STDLIB / "std").glob("*.net"))
    assert shipped == sorted(p.name for p in (ROOT / "specs" / "std").glob("*.net"))
    assert shipped == ["cifar.net", "inception.net", "torchvision.net"]


def test_std_import_resolves_outside_the_repo(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.net").write_text(USER_SPEC)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "mine.net"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert re.fullmatch(CHECK_LINE, out)


def test_a_local_file_comes_before_the_library(tmp_path, monkeypatch, capsys):
    """Search order: the importing file's folder, then the library."""
    (tmp_path / "std").mkdir()
    (tmp_path / "std" / "inception.net").write_text(
        "block ConvBlock(out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) {\n"
        "    conv = conv(out_channels, kernel_size, stride=stride, padding=padding)\n"
        "}\n"
        "block Inception(ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,"
        " pool_proj: int) {\n"
        "    conv = conv(ch1x1, 1)\n"
        "}\n"
    )
    (tmp_path / "mine.net").write_text(USER_SPEC)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "mine.net"]) == 0
    out, _ = capsys.readouterr()
    # The local blocks: stem 448, one 1x1 convolution 136, fc on 8 channels 90.
    assert "N x 10, 674 parameters," in out


@pytest.mark.parametrize("name", ["cifar", "inception", "torchvision"])
def test_every_library_file_parses_alone(tmp_path, monkeypatch, capsys, name):
    (tmp_path / "lib.net").write_text(f'import "std/{name}.net"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["check", "lib.net"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("netc: error: lib.net defines no network")
