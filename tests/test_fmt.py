"""``netc fmt``: the canonical layout, pinned exactly; every shipped spec already in it;
idempotent and meaning-preserving on messed-up variants of the shipped specs
(hypothesis); the command's --check, --diff and --stdout modes, atomic rewrites, and
files that do not parse left alone."""

from __future__ import annotations

import dataclasses
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from compiler.cli import main
from compiler.elaborate import elaborate
from dsl.errors import SpecError
from dsl.fmt import format_text
from dsl.loader import load as load_files
from dsl.parser import parse

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(ROOT.glob("specs/*.net")) + sorted(ROOT.glob("specs/std/*.net"))
NETWORKS = [p for p in SPECS if p.parent.name == "specs"]


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- the layout, exactly -------------------------------------------------------------

MESSY = dedent(
    """


    # The file's doc.
    import   "std/inception.net"
    # Doc of B.
    block B( w:int,   n : int=7 , ) {
      a=conv( w , ( 1,n ) ,padding = ( 0 , n//2 ) )->relu()   # trailing
        b = conv((w * 2), (n, 1), padding=((n // 2), 0), stride=1, dilation=1, groups=1, bias=true)



      c = conv(w,   # after the first item
          3, padding=1)
      concat { p = conv(w, 1)
         q = maxpool(3, stride=1, padding=1) ->
           # between links
           conv(w, 1)
      # at the end of concat
      }
      # at the end of the block
    }
    network N(k: int = 10, s: float = -(1 + 2) * 3 - (4 - 5), flag: bool = true) { input 3x32x32
     scale_shift(scale=(1.0,1.0,1.0), shift=(0.0, 0.0, 0.0 )) if flag
     stem = B(8)
       relu if flag aux h = global_avgpool -> flatten -> linear(k) at stem weight 0.5 if flag
     head = conv(8, 1) -> global_avgpool -> flatten -> linear(k) -> relu -> dropout(0.5) -> linear(k)
     init conv = kaiming_normal(mode="fan_out") }
    # trailing file comment
    """
)

FORMATTED = dedent(
    """
    # The file's doc.
    import "std/inception.net"
    # Doc of B.
    block B(
        w: int,
        n: int = 7,
    ) {
        a = conv(w, (1, n), padding=(0, n // 2)) -> relu  # trailing
        b = conv(w * 2, (n, 1), padding=(n // 2, 0), stride=1, dilation=1, groups=1, bias=true)

        c = conv(
            w,  # after the first item
            3,
            padding=1,
        )
        concat {
            p = conv(w, 1)
            q = maxpool(3, stride=1, padding=1)
                # between links
                -> conv(w, 1)
            # at the end of concat
        }
        # at the end of the block
    }
    network N(k: int = 10, s: float = -(1 + 2) * 3 - (4 - 5), flag: bool = true) {
        input 3x32x32
        scale_shift(scale=(1.0, 1.0, 1.0), shift=(0.0, 0.0, 0.0)) if flag
        stem = B(8)
        relu if flag
        aux h = global_avgpool -> flatten -> linear(k) at stem weight 0.5 if flag
        head = conv(8, 1) -> global_avgpool -> flatten -> linear(k) -> relu -> dropout(0.5) -> linear(k)
        init conv = kaiming_normal(mode="fan_out")
    }
    # trailing file comment
    """
)


def test_the_canonical_layout():
    assert format_text(MESSY) == FORMATTED
    assert format_text(FORMATTED) == FORMATTED


@pytest.mark.parametrize(
    ("source", "formatted"),
    [
        # A list breaks one item per line when it does not fit in 100 columns...
        (
            (
                "network N(number_of_classes: int = 1000, auxiliary: bool = true, "
                "dropout_rate: float = 0.4, w: int = 64) {\n}\n"
            ),
            (
                "network N(\n    number_of_classes: int = 1000,\n    auxiliary: bool = true,\n"
                "    dropout_rate: float = 0.4,\n    w: int = 64,\n) {}\n"
            ),
        ),
        # ... and a chain one link per line, below its first call.
        (
            (
                "block B(w: int) { s = conv(w, 3, padding=1) -> batchnorm(eps=0.001) -> relu "
                "-> conv(w, 3, padding=1) -> batchnorm -> relu }\n"
            ),
            (
                "block B(w: int) {\n    s = conv(w, 3, padding=1)\n        -> batchnorm(eps=0.001)\n"
                "        -> relu\n        -> conv(w, 3, padding=1)\n        -> batchnorm\n"
                "        -> relu\n}\n"
            ),
        ),
        # Parentheses only where precedence needs them; one-element tuples keep their comma.
        (
            (
                "network N(a: float = ((1)) - (2 - 3) + (4 * 5) / (6 // 7) - -(8), "
                "t: int = 1) {\n f = scale_shift((1.0,), (( 2.0 ),))\n}\n"
            ),
            (
                "network N(a: float = 1 - (2 - 3) + 4 * 5 / (6 // 7) - -8, t: int = 1) {\n"
                "    f = scale_shift((1.0,), (2.0,))\n}\n"
            ),
        ),
        # Numbers and strings are written as they were.
        (
            (
                "network N() {\n b = batchnorm(eps=1e-3, momentum=.5)\n"
                ' init conv = kaiming_normal(mode="fan_out")\n}'
            ),
            (
                "network N() {\n    b = batchnorm(eps=1e-3, momentum=.5)\n"
                '    init conv = kaiming_normal(mode="fan_out")\n}\n'
            ),
        ),
        # Blank lines: at most one in a row, none at the start or end of a body.
        (
            '\n\nimport "a.net"\n\n\n\nblock B() {\n\n  relu\n\n\n  relu\n\n}\n\n\n',
            'import "a.net"\n\nblock B() {\n    relu\n\n    relu\n}\n',
        ),
        # An empty body stays empty, unless a comment lives in it.
        (
            "block B(){}\nblock C() {\n  # nothing yet\n}\n",
            "block B() {}\nblock C() {\n    # nothing yet\n}\n",
        ),
        # Tabs, CRLF line ends and a comment right after an opening parenthesis.
        (
            "block B(w: int) {\r\n\tc = conv(  # why\r\n\t\tw, 1)\r\n}\r\n",
            "block B(w: int) {\n    c = conv(  # why\n        w,\n        1,\n    )\n}\n",
        ),
        # A list holding a broken list breaks too; a chain holding one in its first call
        # does not...
        (
            (
                "block B() {\n c = conv(64, (1, 7,), padding=(0, 3))\n"
                " d = conv(8,  # why\n 3) -> relu\n}\n"
            ),
            (
                "block B() {\n    c = conv(\n        64,\n        (\n            1,\n            7,\n"
                "        ),\n        padding=(0, 3),\n    )\n"
                "    d = conv(\n        8,  # why\n        3,\n    ) -> relu\n}\n"
            ),
        ),
        # ... but one in a later call does: its arguments would be indented twice.
        (
            "block B() {\n e = relu -> conv(8,  # why\n 3) -> relu\n f = relu -> conv(8, 3,)\n}\n",
            (
                "block B() {\n    e = relu\n        -> conv(\n            8,  # why\n            3,\n"
                "        )\n        -> relu\n    f = relu\n        -> conv(\n            8,\n"
                "            3,\n        )\n}\n"
            ),
        ),
        # A call too long for one line breaks its chain, wherever it is: so the trailing
        # comma it gets does not change the layout of a second run (atheris found it).
        (
            "block B() {\n c = conv(" + ", ".join([str(i) * 10 for i in range(1, 9)]) + ") -> relu\n}\n",
            (
                "block B() {\n    c = conv(\n"
                + "".join(f"        {str(i) * 10},\n" for i in range(1, 9))
                + "    )\n        -> relu\n}\n"
            ),
        ),
        (
            "block B() {\n c = relu -> conv(" + ", ".join([str(i) * 10 for i in range(1, 9)]) + ") -> relu\n}\n",
            (
                "block B() {\n    c = relu\n        -> conv(\n"
                + "".join(f"            {str(i) * 10},\n" for i in range(1, 9))
                + "        )\n        -> relu\n}\n"
            ),
        ),
        # A trailing comma counts after a parenthesised last item too.
        (
            "block B() {\n s = scale_shift(((1.0), (2.0),), shift=(0.0, 0.0))\n}\n",
            (
                "block B() {\n    s = scale_shift(\n        (\n            1.0,\n            2.0,\n"
                "        ),\n        shift=(0.0, 0.0),\n    )\n}\n"
            ),
        ),
        # A byte-order mark is dropped; a blank line before a closing brace too.
        ("\ufeffblock B() {\n relu\n # end\n\n}\n", "block B() {\n    relu\n    # end\n}\n"),
        ("", ""),
        ("# only a comment", "# only a comment\n"),
    ],
)
def test_layout_rules(source: str, formatted: str):
    assert format_text(source) == formatted
    assert format_text(formatted) == formatted


def test_a_syntax_error_is_the_usual_positioned_error():
    with pytest.raises(SpecError) as info:
        format_text("block B() {\n    c = conv(16, 3 padding=1)\n}\n", "bad.net")
    assert info.value.render() == dedent(
        """
        bad.net:2:20: error: unexpected name 'padding', expected one of ')', ','
            2 |     c = conv(16, 3 padding=1)
              |                    ^^^^^^^
        """
    ).rstrip("\n")


def test_a_deeply_nested_spec_is_an_error_not_a_traceback():
    text = "network N(a: int = " + "+".join(["1"] * 3000) + ") {\n}\n"
    with pytest.raises(SpecError) as info:
        format_text(text, "deep.net")
    assert info.value.render().startswith("deep.net:1:")
    assert ": error: nested too deeply" in info.value.render().splitlines()[0]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_spec_is_formatted(path: Path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text


def test_the_language_reference_examples_are_formatted():
    text = (ROOT / "LANGUAGE.md").read_text(encoding="utf-8")
    examples = re.findall(r"```net\n(.*?)```", text, re.DOTALL)
    assert len(examples) == 10
    for example in examples:
        assert format_text(example, "LANGUAGE.md") == example


# -- idempotent and meaning-preserving, on messed-up specs -----------------------------

_TOKEN = re.compile(
    r"""\#[^\n]*|"[^"\n]*"|->|//|\d+x\d+x\d+
    |\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?
    |[A-Za-z0-9_]+|\S""",
    re.VERBOSE,
)
_WORDY = re.compile(r'[A-Za-z0-9_."]')
_GAPS = ["", " ", "   ", "\n", "\n\n\n", "\t", "\n        ", " \n  "]


def mess(text: str, rnd, commas: bool = False) -> str:
    """``text`` with its tokens kept and the space between them random: line breaks,
    indents and blank lines anywhere (inside parentheses and chains too), and new
    comments, on lines of their own or after code; with ``commas``, trailing commas
    before some closing parentheses (which may turn ``(x)`` into a one-element tuple)."""
    tokens = _TOKEN.findall(text)
    out = [rnd.choice(["", "\n\n", "  "])]
    for i, token in enumerate(tokens):
        out.append(token)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if commas and nxt == ")" and token not in "(," and rnd.random() < 0.3:
            out.append(",")
        gap = rnd.choice(_GAPS)
        if rnd.random() < 0.04:
            gap += f"  # note {i}\n" if rnd.random() < 0.5 else f"\n# note {i}\n"
        if token.startswith("#") and "\n" not in gap:
            gap += "\n"
        if not gap and _WORDY.match(token[-1]) and nxt and _WORDY.match(nxt[0]):
            gap = " "
        out.append(gap)
    return "".join(out)


def meaning(text: str, path: str):
    """What a spec says, without where it says it: the AST minus spans."""

    def strip(value):
        if dataclasses.is_dataclass(value):
            return {
                f.name: strip(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if not f.name.endswith("span")
            }
        if isinstance(value, tuple):
            return tuple(strip(v) for v in value)
        return value

    return strip(parse(text, path))


def ir_without_spans(files, text: str, path: str) -> dict:
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "span"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    net = elaborate([*files[:-1], parse(text, path)])
    return strip(net.model_dump(mode="json"))


# No shrinking: a smaller seed is no smaller a spec.
FAST = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
}


@settings(max_examples=60, **FAST)
@given(path=st.sampled_from(SPECS), seed=st.integers(0, 2**32))
def test_fmt_is_idempotent_and_keeps_the_syntax_tree(path: Path, seed: int):
    rnd = random.Random(seed)
    messed = mess(path.read_text(encoding="utf-8"), rnd, commas=True)
    once = format_text(messed, "x.net")
    assert format_text(once, "x.net") == once
    assert meaning(once, "x.net") == meaning(messed, "x.net")


_FILES = {p: load_files(p) for p in NETWORKS}


@settings(max_examples=15, **FAST)
@given(path=st.sampled_from(NETWORKS), seed=st.integers(0, 2**32))
def test_fmt_keeps_the_ir(path: Path, seed: int):
    rnd = random.Random(seed)
    files = _FILES[path]
    messed = mess(path.read_text(encoding="utf-8"), rnd)
    formatted = format_text(messed, str(path))
    assert ir_without_spans(files, formatted, str(path)) == ir_without_spans(
        files, messed, str(path)
    )


try:  # the fuzz generator of tests/test_fuzz.py, where it is merged
    import specgen
except ImportError:
    specgen = None


@pytest.mark.skipif(specgen is None, reason="tests/specgen.py (the fuzz generator) is absent")
@settings(max_examples=40, **FAST)
@given(seed=st.integers(0, 2**32))
def test_fmt_on_the_fuzz_generators_specs(seed: int):
    assert specgen is not None
    text, _, _ = specgen.random_spec(random.Random(seed))
    for source in (text, mess(text, random.Random(seed), commas=True)):
        once = format_text(source, "gen.net")
        assert format_text(once, "gen.net") == once
        assert meaning(once, "gen.net") == meaning(source, "gen.net")


# -- the command --------------------------------------------------------------------

GOOD = "block B() {\n    relu\n}\n"
UGLY = "block B(){ relu }\n"


def files_in(tmp_path: Path, **texts: str) -> dict[str, Path]:
    paths = {}
    for name, text in texts.items():
        path = tmp_path / f"{name}.net"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths


def test_fmt_rewrites_in_place_and_keeps_the_mode(tmp_path, monkeypatch, capsys):
    paths = files_in(tmp_path, good=GOOD, ugly=UGLY)
    paths["ugly"].chmod(0o640)
    monkeypatch.chdir(tmp_path)
    assert main(["fmt", "good.net", "ugly.net"]) == 0
    assert capsys.readouterr().out == "reformatted ugly.net\n1 file left unchanged\n"
    assert paths["ugly"].read_text(encoding="utf-8") == GOOD
    assert paths["ugly"].stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.net", "ugly.net"]


def test_fmt_writes_through_a_symbolic_link(tmp_path, monkeypatch, capsys):
    paths = files_in(tmp_path, ugly=UGLY)
    (tmp_path / "link.net").symlink_to(paths["ugly"])
    monkeypatch.chdir(tmp_path)
    assert main(["fmt", "link.net"]) == 0
    assert capsys.readouterr().out == "reformatted link.net\n"
    assert (tmp_path / "link.net").is_symlink()
    assert paths["ugly"].read_text(encoding="utf-8") == GOOD


def test_fmt_check_lists_what_would_change_and_writes_nothing(tmp_path, monkeypatch, capsys):
    files_in(tmp_path, good=GOOD, ugly=UGLY)
    monkeypatch.chdir(tmp_path)
    assert main(["fmt", "--check", "."]) == 1
    assert capsys.readouterr().out == "would reformat ugly.net\n"
    assert (tmp_path / "ugly.net").read_text(encoding="utf-8") == UGLY
    (tmp_path / "ugly.net").write_text(GOOD, encoding="utf-8")
    assert main(["fmt", "--check", "."]) == 0
    assert capsys.readouterr().out == "2 files already formatted\n"


def test_fmt_diff_and_stdout_write_nothing(tmp_path, monkeypatch, capsys):
    files_in(tmp_path, ugly=UGLY)
    monkeypatch.chdir(tmp_path)
    assert main(["fmt", "--diff", "ugly.net"]) == 1
    assert capsys.readouterr().out == dedent(
        """
        --- ugly.net (original)
        +++ ugly.net (formatted)
        @@ -1 +1,3 @@
        -block B(){ relu }
        +block B() {
        +    relu
        +}
        """
    )
    assert main(["fmt", "--stdout", "ugly.net"]) == 0
    assert capsys.readouterr().out == GOOD
    assert (tmp_path / "ugly.net").read_text(encoding="utf-8") == UGLY


def test_fmt_reports_a_file_that_does_not_parse_and_leaves_it_alone(tmp_path, monkeypatch, capsys):
    bad = "block B( {\n"
    paths = files_in(tmp_path, a_bad=bad, ugly=UGLY)
    monkeypatch.chdir(tmp_path)
    assert main(["fmt", "a_bad.net", "ugly.net"]) == 1
    captured = capsys.readouterr()
    assert captured.err == dedent(
        """
        a_bad.net:1:10: error: unexpected '{', expected one of ')', a name
            1 | block B( {
              |          ^
        """
    )
    assert captured.out == "reformatted ugly.net\n"
    assert paths["a_bad"].read_text(encoding="utf-8") == bad
    assert paths["ugly"].read_text(encoding="utf-8") == GOOD


def test_fmt_never_imports_torch():
    code = (
        "import sys; from compiler.cli import main; "
        "assert main(['fmt', '--check', 'specs']) == 0; "
        "assert main(['builtins']) == 0; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("16 files already formatted\nlayer ")
