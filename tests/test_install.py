"""The block library ships with the package: ``import "std/..."`` resolves from
any folder, through the installed data package ``netc_library`` (which
setuptools maps to ``specs/``, the library's single source in the repository).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
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
    assert shipped == [
        "cifar.net",
        "inception.net",
        "inception_v3.net",
        "inception_v4.net",
        "torchvision.net",
    ]


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
    assert err.startswith("lib.net:1:") and "error: no network in this file, only 1 import" in err


# -- a wheel, installed into a fresh virtual environment -----------------------------------------


def _run(*argv: str | Path, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_wheel_installs_and_runs_outside_the_repo(tmp_path):
    """Build a wheel from a copy of the sources, install it (not editable) into a
    new venv, and check and compile a user spec that imports the block library, in
    a folder outside the repository. The venv reuses this interpreter's
    dependencies through a .pth file (no torch reinstall); Python does not run the
    .pth files of a folder a .pth file adds, so the editable netc stays out."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("dsl", "compiler", "specs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _run(
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        wheels,
        source,
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = wheels.glob("netc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        library = sorted(n for n in archive.namelist() if n.startswith("netc_library/"))
    names = ("cifar", "inception", "inception_v3", "inception_v4", "torchvision")
    assert library == [f"netc_library/std/{n}.net" for n in names]

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            cwd=tmp_path,
            env=env,
        ).strip()
    )
    spec = importlib.util.find_spec("torch")
    assert spec is not None and spec.origin is not None
    (site / "dependencies.pth").write_text(str(Path(spec.origin).parent.parent) + "\n")
    _run(
        *pip, "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path, env=env
    )

    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.net").write_text(USER_SPEC)
    where = _run(
        python,
        "-c",
        "import compiler, dsl.loader; print(compiler.__file__); print(dsl.loader.STDLIB)",
        cwd=work,
        env=env,
    )
    assert where.splitlines() == [
        str(site / "compiler" / "__init__.py"),
        str(site / "netc_library"),
    ]
    netc = venv / "bin" / "netc"
    assert re.fullmatch(CHECK_LINE, _run(netc, "check", "mine.net", cwd=work, env=env))
    out = _run(netc, "compile", "mine.net", cwd=work, env=env)
    assert re.fullmatch(r"wrote mine\.py \(Tiny, training build, \d+ lines; \d+\.\d\d s\)\n", out)
    assert "class Tiny(nn.Module):" in (work / "mine.py").read_text()
