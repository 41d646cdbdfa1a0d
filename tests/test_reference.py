"""LANGUAGE.md and ``netc builtins`` agree with the built-in tables in the code:
the reference's generated section is current, every built-in is described, the
examples in the reference parse and check, and the command prints the same rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import compiler
from compiler import builtins as bi
from compiler import reference
from compiler.cli import main
from dsl.parser import parse

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = ROOT / "LANGUAGE.md"


def test_language_md_matches_the_builtin_tables():
    assert not reference.stale(), "LANGUAGE.md is stale: run python -m compiler.regen"
    text = LANGUAGE.read_text(encoding="utf-8")
    section = text[text.index(reference.BEGIN) : text.index(reference.END)]
    for name, spec in bi.BUILTINS.items():
        assert f"| `{name}` |" in section
        for arg in spec.args:
            assert f"| `{arg.name}` |" in section
    for name in bi.INIT_SCHEMES:
        assert f"| `{name}` |" in section


def test_every_builtin_is_described_and_every_kind_named():
    assert all(row.notes for row in reference.rows())
    kinds = {a.kind for s in bi.BUILTINS.values() for a in s.args}
    kinds |= {a.kind for args in bi.INIT_SCHEMES.values() for a in args}
    assert kinds <= set(reference.KINDS)


def test_rows_read_the_tables():
    rows = {row.name: row for row in reference.rows()}
    assert list(rows) == list(bi.BUILTINS)
    assert reference.signature(rows["conv"]) == (
        "conv(out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=true)"
    )
    assert rows["conv"].args[3] == reference.Arg(
        "padding",
        'int, (int, int), "same" or "valid"',
        "0",
        "≥ 0",
        'an int, a pair, "same" or "valid"',
    )
    assert [a.values for a in rows["dropout"].args] == ["0 to 1"]
    assert rows["maxpool"].args[1].doc == "the kernel size by default"
    assert reference.signature(rows["maxpool"]) == (
        "maxpool(kernel_size, stride=kernel_size, padding=0, dilation=1, ceil_mode=false)"
    )
    assert reference.signature(rows["batchnorm"]) == "batchnorm(eps=1e-5, momentum=0.1)"
    assert (
        rows["global_avgpool"].notes
        == "Average pooling to 1x1: one value per channel; output_size=(1, 1)"
    )
    assert rows["linear"].notes == (
        "Fully connected layer; in_features is inferred; an init target (init linear = ...)"
    )
    inits = {row.name: row for row in reference.init_rows()}
    assert reference.signature(inits["kaiming_normal"]) == (
        'kaiming_normal(mode="fan_in", nonlinearity="leaky_relu")'
    )
    assert inits["kaiming_normal"].notes.startswith(
        'mode: "fan_in", "fan_out"; nonlinearity: "relu"'
    )


def test_render_replaces_only_the_generated_section(tmp_path):
    stale = f"# Title\n\nprose\n\n{reference.BEGIN}\nold table\n{reference.END}\n\nmore prose\n"
    path = tmp_path / "LANGUAGE.md"
    path.write_text(stale, encoding="utf-8")
    assert reference.stale(path)
    assert reference.write(path)
    fresh = path.read_text(encoding="utf-8")
    assert fresh == (
        f"# Title\n\nprose\n\n{reference.BEGIN}\n\n{reference.markdown()}\n{reference.END}\n\n"
        "more prose\n"
    )
    assert not reference.stale(path) and not reference.write(path)
    with pytest.raises(ValueError, match="LANGUAGE.md has no section"):
        reference.render("no markers here")


def test_the_reference_examples_parse_and_check(tmp_path, monkeypatch):
    examples = re.findall(r"```net\n(.*?)```", LANGUAGE.read_text(encoding="utf-8"), re.DOTALL)
    checked = 0
    monkeypatch.chdir(tmp_path)
    for i, example in enumerate(examples):
        spec = parse(example, f"example{i}.net")
        if any(d.is_network for d in spec.definitions):
            (tmp_path / f"example{i}.net").write_text(example, encoding="utf-8")
            compiler.load(f"example{i}.net")
            checked += 1
    assert checked == 4


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_netc_builtins_prints_the_rows(capsys):
    assert main(["builtins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert columns(lines[0]) == ["layer", "argument", "type", "default", "values", "notes"]
    assert columns(lines[1]) == [
        "conv",
        "out_channels",
        "int",
        "required",
        "≥ 1",
        "2-d convolution; in_channels is inferred; an init target (init conv = ...)",
    ]
    assert columns(lines[2]) == ["kernel_size", "int or (int, int)", "required", "≥ 1"]
    relu = next(line for line in lines if line.startswith("relu "))
    assert columns(relu) == [
        "relu",
        "inplace",
        "bool",
        "false",
        "Rectified linear unit; overwrite the input (not where others read it)",
    ]
    rows = sum(max(1, len(s.args)) for s in bi.BUILTINS.values())
    inits = sum(max(1, len(a)) for a in bi.INIT_SCHEMES.values())
    assert len(lines) == 1 + rows + 1 + 1 + inits  # a header, the layers, a blank, a header
    assert columns(lines[rows + 2]) == [
        "init scheme",
        "argument",
        "type",
        "default",
        "values",
        "notes",
    ]


def test_netc_builtins_markdown_is_the_reference_section(capsys):
    assert main(["builtins", "--markdown"]) == 0
    assert capsys.readouterr().out == reference.markdown()


def test_netc_builtins_draws_a_table_on_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(["builtins"]) == 0
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # rich's colours off
    assert re.search(r"┃ layer\s+┃ argument\s+┃ type\s+┃ default\s+┃ values\s+┃ notes", out)
    assert re.search(
        r"│ conv\s+│ out_channels\s+│ int\s+│ required\s+│ ≥ 1\s+│ 2-d convolution", out
    )


def test_python_m_compiler_reference(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "LANGUAGE.md"
    text = LANGUAGE.read_text(encoding="utf-8")
    copy.write_text(text.replace("| `conv` |", "| `konv` |"), encoding="utf-8")
    monkeypatch.setattr(reference, "LANGUAGE_MD", copy)
    assert reference.main(["--check"]) == 1
    assert capsys.readouterr().err == ("LANGUAGE.md is stale; run: python -m compiler.reference\n")
    assert reference.main([]) == 0
    assert capsys.readouterr().out == "wrote LANGUAGE.md\n"
    assert copy.read_text(encoding="utf-8") == text
    assert reference.main(["--check"]) == 0


def test_netc_builtins_has_no_styles_under_no_color(capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(["builtins"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert re.search(
        r"│ conv\s+│ out_channels\s+│ int\s+│ required\s+│ ≥ 1\s+│ 2-d convolution", out
    )
