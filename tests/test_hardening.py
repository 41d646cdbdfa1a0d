"""Hostile inputs answered as issue 11 asks: exact messages, no traceback, nothing clobbered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import compiler
from compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
NET = "network N() {{\n    input 3x8x8\n{body}\n}}\n"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def spec(tmp_path: Path, body: str, name: str = "n.net", data: bytes | None = None) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if data is not None else NET.format(body=body).encode())
    return str(path)


def test_a_huge_integer_literal_is_refused_at_the_literal(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(" + "9" * 5000 + ", 1)")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == f"{path}:3:14: error: integer too large: 5,000 digits (at most 19)"


def test_a_huge_or_odd_input_on_the_command_line(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(4, 1)")
    for shape in ("9" * 5000 + "x1x1", "3x²x8"):
        status, _, err = run(capsys, "check", path, "--input", shape)
        assert status == 1
        assert err.splitlines()[0].endswith(
            f"error: --input expects channels x height x width, got '{shape}'"
        )


def test_products_past_64_bits_are_refused(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(4294967296 * 4294967296, 1)")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == f"{path}:3:14: error: number out of range: it overflows a 64-bit integer"


@pytest.mark.parametrize("size", ["0", "-1"])
def test_adaptive_avgpool_needs_a_positive_size(tmp_path, capsys, size):
    path = spec(tmp_path, f"    adaptive_avgpool({size})")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == f"{path}:3:22: error: output_size must be at least 1, got {size}"


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_set_refuses_values_that_are_not_finite(tmp_path, capsys, value):
    path = spec(tmp_path, "", data=b"network N(f: float = 1.0) {\n    input 3x8x8\n    lrn(2, k=f)\n}\n")
    status, _, err = run(capsys, "check", path, "--set", f"f={value}")
    assert status == 1
    assert "error: number out of range: it overflows a 64-bit float" in err.splitlines()[0]


@pytest.mark.parametrize(
    "expr", ["-" * 10_000 + "1", "1+" * 10_000 + "1", "(" * 10_000 + "1" + ",)" * 10_000, "1+" * 486 + "1"]
)
def test_deep_expressions_are_nested_too_deeply(tmp_path, capsys, expr):
    path = spec(tmp_path, f"    c = conv(4, {expr})")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert "error: nested too deeply: more than 120 levels of expressions" in err.splitlines()[0]


def test_300_nested_blocks_are_nested_too_deeply(tmp_path, capsys):
    blocks = "".join(f"block B{i}() {{\n    a = B{i - 1}()\n}}\n" for i in range(1, 300))
    text = blocks.replace("a = B0()", "c = conv(4, 1)") + NET.format(body="    b = B299()")
    path = spec(tmp_path, "", data=text.encode())
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == (
        f"{path}:707:9: error: blocks nested too deeply (B299 -> B298 -> B297 -> ... -> B236 -> B235): "
        "65 levels of nested blocks, more than the budget of 64"
    )
    assert "hint: raise it with --max-depth" in err


def test_exponential_expansion_fails_fast(tmp_path, capsys):
    blocks = "".join(f"block D{i}() {{\n    a = D{i - 1}()\n    b = D{i - 1}()\n}}\n" for i in range(1, 25))
    text = blocks.replace("a = D0()\n    b = D0()", "c = conv(4, 3, padding=1)") + NET.format(body="    d = D24()")
    path = spec(tmp_path, "", data=text.encode())
    start = time.perf_counter()
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert time.perf_counter() - start < 2
    assert err.splitlines()[0] == (
        f"{path}:98:9: error: d = D24(...) expands too far: 8,388,608 layers, more than the budget of 250,000"
    )


def test_a_spec_needing_100_gb_fails_in_milliseconds_everywhere(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(100000, 3, padding=1)\n    d = conv(100000, 3, padding=1)")
    expected = (
        f"{path}:4:9: error: the network is too large at this layer: 90,002,900,000 parameters, "
        "more than the budget of 2,000,000,000"
    )
    for argv in (["check"], ["summary"], ["compile", "-o", str(tmp_path / "o.py")],
                 ["compile", "--emit", "onnx", "-o", str(tmp_path / "o.onnx")]):
        start = time.perf_counter()
        status, _, err = run(capsys, argv[0], path, *argv[1:])
        assert (status, err.splitlines()[0]) == (1, expected)
        assert time.perf_counter() - start < 1
    assert run(capsys, "check", path, "--max-params", "0", "--max-macs", "0")[0] == 0
    with pytest.raises(compiler.SpecError, match="budget of 1,000"):
        compiler.load(path, budget=compiler.Budget(max_params=1000))


def test_onnx_beyond_protobufs_limit_is_refused_before_anything_is_built(tmp_path, capsys):
    text = b"network Big() {\n    input 3x4x4\n    flatten\n    fc = linear(50000)\n    fc2 = linear(12000)\n}\n"
    path = spec(tmp_path, "", data=text)
    status, _, err = run(capsys, "compile", path, "--emit", "onnx", "-o", str(tmp_path / "b.onnx"))
    assert status == 1
    assert err.splitlines()[0] == (
        f"{path}:1:9: error: network Big has 2.4 GB of float32 weights: more than one ONNX file "
        "can hold (2 GB, protobuf's limit)"
    )
    assert not (tmp_path / "b.onnx").exists()


def test_inputs_that_are_not_files(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.net")
    (tmp_path / "dir.net").mkdir()
    for path, reason in (
        (tmp_path / "fifo.net", "it is not a regular file (a FIFO, a socket or a device)"),
        ("/dev/zero", "it is not a regular file (a FIFO, a socket or a device)"),
    ):
        status, _, err = run(capsys, "check", str(path))
        assert (status, err.splitlines()[0]) == (1, f"netc: error: cannot read {path}: {reason}")
    status, _, err = run(capsys, "check", str(tmp_path / "dir.net"))  # click's own check
    assert status == 2 and f"File '{tmp_path / 'dir.net'}' is a directory." in err


def test_a_file_past_the_size_budget_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "big.net"
    with open(path, "wb") as file:
        file.truncate(200 * 1024 * 1024)
    status, _, err = run(capsys, "check", str(path))
    assert status == 1
    assert err.splitlines()[0] == (
        f"netc: error: cannot read {path}: 209,715,200 bytes is more than a spec may be (16,777,216)"
    )


def test_bom_crlf_and_invalid_utf8(tmp_path, capsys):
    good = NET.format(body="    c = conv(4, 1)")
    assert run(capsys, "check", spec(tmp_path, "", "bom.net", b"\xef\xbb\xbf" + good.encode()))[0] == 0
    assert run(capsys, "check", spec(tmp_path, "", "crlf.net", good.replace("\n", "\r\n").encode()))[0] == 0
    path = spec(tmp_path, "", "latin.net", NET.format(body="    c = conv(4, 1)\n    d = caf\xe9").encode("latin-1"))
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines() == [
        f"{path}:4:12: error: invalid UTF-8: byte 0xe9 cannot start or continue a character",
        "    4 |     d = caf\ufffd",
        "      |            ^",
        "hint: save the spec as UTF-8",
    ]


def test_line_separators_in_comments_do_not_shift_the_shown_line(tmp_path, capsys):
    path = spec(tmp_path, "    # a\u2028b\x0cc\n    c = conv(4, 1)\n    d = nope")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[:3] == [
        f"{path}:5:9: error: unknown layer or block 'nope'",
        "    5 |     d = nope",
        "      |         ^^^^",
    ]


def test_a_long_line_is_shown_as_a_window_around_the_caret(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(4, 1) " + "relu " * 1000 + "(")
    status, _, err = run(capsys, "check", path)
    lines = err.splitlines()
    assert lines[0] == f"{path}:4:1: error: unexpected '}}', expected one of ')', a value"
    path = spec(tmp_path, "    c = conv(4, 1) " + "relu " * 1000 + "nope", "long.net")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == f"{path}:3:5020: error: unknown layer or block 'nope'"
    assert lines[1].startswith("    3 | ...") and lines[1].endswith("relu nope") and len(lines[1]) < 120
    assert lines[2].endswith("^^^^") and len(lines[2]) == len(lines[1])


def test_a_missing_arrow_is_named(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(4, 1) conv(8, 1)")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == f"{path}:3:20: error: missing '->' between 'conv' and 'conv'"


def test_import_paths_too_long_or_unsearchable(tmp_path, capsys):
    path = spec(tmp_path, "", data=('import "' + "a/" * 3000 + 'b.net"\n' + NET.format(body="relu")).encode())
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == (
        f'{path}:1:1: error: cannot find import "{"a/" * 30}...": the path is too long (6,005 characters)'
    )


def test_a_968_file_import_chain_is_nested_too_deeply(tmp_path, capsys):
    for i in range(968):
        (tmp_path / f"f{i}.net").write_text(f'import "f{i + 1}.net"\n' if i < 967 else "")
    path = spec(tmp_path, "", data=('import "f0.net"\n' + NET.format(body="relu")).encode())
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert "error: imports nested too deeply: more than 64 files deep" in err.splitlines()[0]


def test_markup_in_a_path_is_shown_as_written(tmp_path, capsys):
    path = spec(tmp_path, "    c = conv(4, 1)", "[red][/]n.net")
    status, out, _ = run(capsys, "summary", path)
    assert status == 0 and f"({path})" in out.replace("\n", "")


def test_a_deleted_working_folder(tmp_path, capsys, monkeypatch):
    path = spec(tmp_path, "    c = conv(4, 1)")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    status, _, err = run(capsys, "compile", path)
    assert (status, err.splitlines()[0]) == (1, "netc: error: cannot write the output: the working folder was deleted")


# -- errors about the whole file: positioned too -------------------------------------------------

HINT = "hint: add `network Name(...) { ... }`"
LIBRARY_HINT = HINT + "; a file of blocks alone is a library: import it from a spec with a network"
BLOCK = "block B() {\n    relu\n}\n"


@pytest.mark.parametrize(
    "data,message",
    [
        pytest.param(b"", ["1:1: error: empty file, expected a network", "    1 | ", "      | ^", HINT], id="empty"),
        pytest.param(b"\n\n   \n\t\n", ["1:1: error: empty file, expected a network", "    1 | ", "      | ^", HINT],
                     id="blank lines"),
        pytest.param(b"\xef\xbb\xbf\r\n", ["1:1: error: empty file, expected a network", "    1 | ", "      | ^", HINT],
                     id="a byte order mark alone"),
        pytest.param(b"# a spec\n# to come\n\n",
                     ["2:10: error: no network in this file, only comments", "    2 | # to come",
                      "      |          ^", HINT], id="only comments"),
        pytest.param("# a\u2028b\x0cc\n".encode(),
                     ["1:8: error: no network in this file, only comments", "    1 | # a b c",
                      "      |        ^", HINT], id="only a comment with line separators"),
        pytest.param(BLOCK.encode(),
                     ["3:2: error: no network in this file, only 1 block", "    3 | }", "      |  ^", LIBRARY_HINT],
                     id="only a block"),
        pytest.param((BLOCK + "\n" + BLOCK.replace("B", "C") + "# end\n\n").replace("\n", "\r\n").encode(),
                     ["8:6: error: no network in this file, only 2 blocks", "    8 | # end", "      |      ^",
                      LIBRARY_HINT], id="only blocks, CRLF"),
        pytest.param(b'import "std/cifar.net"\n',
                     ["1:23: error: no network in this file, only 1 import", '    1 | import "std/cifar.net"',
                      "      |                       ^", HINT], id="only an import"),
        pytest.param(('import "std/cifar.net"\n' + BLOCK).encode(),
                     ["4:2: error: no network in this file, only 1 block and 1 import", "    4 | }", "      |  ^",
                      LIBRARY_HINT], id="a block and an import"),
    ],
)
def test_a_file_with_no_network_is_an_error_at_its_end(tmp_path, capsys, data, message):
    path = spec(tmp_path, "", data=data)
    status, _, err = run(capsys, "check", path)
    assert (status, err.splitlines()) == (1, [f"{path}:{message[0]}", *message[1:]])


def test_an_unexpected_end_of_file_counts_lines_as_the_parser_does(tmp_path, capsys):
    path = spec(tmp_path, "", data="network N() {\n    # a\u2028b\x0cc\n\n".encode())
    status, _, err = run(capsys, "check", path)
    assert (status, err.splitlines()[:3]) == (1, [
        (f"{path}:2:12: error: unexpected end of file, expected one of '[', 'add', 'aux', 'concat', "
         "'init', 'input', 'mul', '}', a name"),
        "    2 |     # a b c",
        "      |            ^",
    ])


def test_fmt_reads_as_check_does(tmp_path, capsys):
    path = spec(tmp_path, "", "latin.net", NET.format(body="    d = caf\xe9").encode("latin-1"))
    status, _, err = run(capsys, "fmt", "--check", path)
    assert (status, err.splitlines()[0]) == (
        1, f"{path}:3:12: error: invalid UTF-8: byte 0xe9 cannot start or continue a character"
    )
    fifo = tmp_path / "fifo.net"
    os.mkfifo(fifo)  # read, it would wait for a writer forever
    status, _, err = run(capsys, "fmt", "--check", str(fifo))
    assert (status, err.splitlines()[0]) == (
        1, f"netc: error: cannot read {fifo}: it is not a regular file (a FIFO, a socket or a device)"
    )



def test_fmt_takes_the_file_size_limit_its_hint_names(tmp_path, capsys):
    path = spec(tmp_path, "", data=NET.format(body="    c = conv(4, 1)").encode())
    size = Path(path).stat().st_size
    status, _, err = run(capsys, "fmt", "--check", "--max-file-size", "10", path)
    assert (status, err.splitlines()) == (1, [
        f"netc: error: cannot read {path}: {size:,} bytes is more than a spec may be (10)",
        "hint: raise the limit with --max-file-size",
    ])
    for limit in ("0", str(size)):
        status, out, _ = run(capsys, "fmt", "--check", "--max-file-size", limit, path)
        assert (status, out) == (0, "1 file already formatted\n")
        # 0 is no limit, not a buffer of 2**62 bytes (a MemoryError once)
        status, out, _ = run(capsys, "check", "--max-file-size", limit, path)
        assert status == 0 and out.startswith(f"{path}: ok: ")


# -- output files -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink", "read-only", "spec", "import"])
def test_output_refuses_what_it_must_not_replace(tmp_path, capsys, kind):
    (tmp_path / "lib.net").write_text("block B() {\n    c = conv(4, 1)\n}\n")
    path = spec(tmp_path, "", data=('import "lib.net"\n' + NET.format(body="    b = B()")).encode())
    target = tmp_path / "out.py"
    reason = {
        "fifo": "it is not a regular file (a FIFO, a socket or a device)",
        "device": "it is not a regular file (a FIFO, a socket or a device)",
        "symlink": "it is a symbolic link",
        "read-only": "it is read-only",
        "spec": "it is the spec itself",
        "import": "the spec imports it",
    }[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        target = Path("/dev/null")
    elif kind == "symlink":
        (tmp_path / "real.py").write_text("old")
        target.symlink_to(tmp_path / "real.py")
    elif kind == "read-only":
        target.write_text("old")
        target.chmod(0o444)
    elif kind == "spec":
        target = Path(path)
    else:
        target = tmp_path / "lib.net"
    before = target.read_bytes() if target.is_file() else None
    status, _, err = run(capsys, "compile", path, "-o", str(target))
    assert status == 1 and err.splitlines()[0].endswith(f"error: cannot write {target}: {reason}")
    if before is not None:
        assert target.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def _kill_during(argv: list[str], folder: Path, delay: float, signum: int) -> int:
    process = subprocess.Popen(
        [sys.executable, "-m", "compiler.cli", *argv], cwd=folder, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    time.sleep(delay)
    process.send_signal(signum)
    return process.wait()


@pytest.mark.parametrize("emit", ["py", "onnx"])
def test_a_compile_killed_at_any_moment_leaves_the_old_output_and_no_temporary_file(tmp_path, emit):
    spec_path = tmp_path / "n.net"
    spec_path.write_text(NET.format(body="    c = conv(4, 1)\n    relu"))
    target = tmp_path / f"out.{emit}"
    argv = ["compile", str(spec_path), "--emit", emit, "-o", str(target)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "compiler.cli", *argv], check=True, cwd=tmp_path,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    whole = time.perf_counter() - start
    new = target.read_bytes()
    # Kills spread over a whole compile as long as this machine takes for one:
    # starting up, elaborating, writing.
    delays = [whole * f for f in (0.3, 0.6, 0.9)]
    for delay, signum in zip(delays, [signal.SIGTERM, signal.SIGINT, signal.SIGTERM]):
        target.write_bytes(b"old output")
        _kill_during(argv, tmp_path, delay, signum)
        assert target.read_bytes() in (b"old output", new)
        assert not list(tmp_path.glob(".*.tmp")), delay


NAMES = """network A(ScaleShift: int = 4, OrderedDict: int = 2) {
    input 3x4x4
    concat {
        scale_shift = conv(ScaleShift, 1) -> scale_shift((1.0, 2.0, 3.0, 4.0), (0.0, 0.0, 0.0, 0.0))
        b = conv(OrderedDict, 1) -> relu
    }
    s = scale_shift((1.0, 1.0, 1.0, 1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    scale_shift((1.0, 1.0, 1.0, 1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    x2 = conv(3, 1) -> conv(3, 1)
}
"""


@pytest.mark.parametrize("deploy", [False, True])
def test_spec_names_that_collide_with_the_emitted_helpers(tmp_path, deploy):
    import torch

    from compiler import passes
    from compiler.backends.source import emit

    path = tmp_path / "a.net"
    path.write_text(NAMES)
    net = compiler.load(path)
    built = passes.optimise(net) if deploy else net
    namespace: dict = {}
    exec(compile(  # noqa: S102 -- the generated module, under test
        emit(built, deploy=deploy), "a.py", "exec"
    ), namespace)
    torch.manual_seed(0)
    reference = compiler.build(net).eval()
    if deploy:
        generated, _ = namespace["A"].from_training_checkpoint(reference.state_dict())
    else:
        generated = namespace["A"]()
        generated.load_state_dict(reference.state_dict())
    generated.eval()
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(generated(x), reference(x))
    assert "ScaleShift_1" in emit(built, deploy=deploy)


@pytest.mark.parametrize(
    "shape, layers, out",
    [
        ("3x1x1", "c = conv(4, 1, stride=(1, 2), padding=1, dilation=2)", (2, 4, 3, 2)),
        ("2x1x1", "c = conv(12, (3, 1), stride=(1, 2), padding=3, dilation=2) -> relu", (2, 12, 3, 4)),
    ],
)
def test_deploy_builds_keep_shapes_that_crash_pytorchs_nhwc_kernel_off_it(tmp_path, shape, layers, out):
    """PyTorch's channels_last convolution segfaults on these: the deploy build stays NCHW."""
    path = tmp_path / "s.net"
    path.write_text(f"network S() {{\n    input {shape}\n    {layers}\n}}\n")
    script = (
        "import sys, torch, compiler\n"
        "from compiler import passes\n"
        "net = passes.optimise(compiler.load(sys.argv[1]))\n"
        "assert 'channels_last' not in net.passes, net.passes\n"
        "m = compiler.build(net, deploy=True).eval()\n"
        "with torch.no_grad():\n"
        "    print(tuple(m(torch.randn(2, *net.input_shape)).shape))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, str(out)), done.stderr[-2000:]
