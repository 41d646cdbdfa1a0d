"""``netc graph``: the picture, drawn by the real Graphviz ``dot`` and read back.

Every shipped spec is drawn to SVG (training and deploy builds) and the SVG is
parsed: node counts, which clusters hold which nodes (from the drawn
geometry, which is what a reader sees), branch order left to right, the shapes
on the edges, dashed aux heads, the deploy build's fused nodes. All of it in
one process; each picture is drawn once (``dot`` takes well under a second on
GoogLeNet).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.net"))
V1 = "specs/googlenet_v1.net"
TV = "specs/googlenet_torchvision.net"
SVG = "{http://www.w3.org/2000/svg}"


def test_graphviz_is_installed():
    assert shutil.which("dot"), "the tests draw with Graphviz's dot: apt-get install graphviz"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass
class Drawing:
    nodes: dict[str, tuple[Box, list[str]]]  # node name -> where, its label lines
    clusters: dict[str, tuple[Box, str, bool]]  # cluster name -> where, its label, dashed
    edges: dict[str, tuple[list[str], bool]]  # "a->b" -> label, dashed

    def around(self, node: str) -> set[str]:
        """The clusters whose drawn outline holds ``node``'s, without ``cluster_``."""
        x0, y0, x1, y1 = self.nodes[node][0]
        return {
            name.removeprefix("cluster_")
            for name, ((a0, b0, a1, b1), _, _) in self.clusters.items()
            if a0 <= x0 and x1 <= a1 and b0 <= y0 and y1 <= b1
        }

    def x(self, node: str) -> float:
        x0, _, x1, _ = self.nodes[node][0]
        return (x0 + x1) / 2


def _box(group: ET.Element) -> Box:
    numbers: list[float] = []
    for shape in group:
        if shape.tag in (SVG + "path", SVG + "polygon"):
            text = shape.get("d") or shape.get("points") or ""
            numbers += map(float, re.findall(r"-?\d+(?:\.\d+)?", text))
        elif shape.tag == SVG + "ellipse":
            cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
            numbers += [cx - rx, cy - ry, cx + rx, cy + ry]
        elif shape.tag == SVG + "text" and not numbers:  # shape=plain: only its text
            numbers += [float(shape.get("x")), float(shape.get("y"))]
    xs, ys = numbers[0::2], numbers[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _dashed(group: ET.Element) -> bool:
    return any(s.get("stroke-dasharray") for s in group if s.tag in (SVG + "path", SVG + "polygon"))


def parse(svg: bytes) -> Drawing:
    drawing = Drawing({}, {}, {})
    for group in ET.fromstring(svg).iter(SVG + "g"):
        title = group.findtext(SVG + "title")
        texts = [t.text or "" for t in group.iter(SVG + "text")]
        kind = group.get("class")
        if kind == "node":
            drawing.nodes[title] = (_box(group), texts)
        elif kind == "cluster":
            drawing.clusters[title] = (_box(group), "\n".join(texts), _dashed(group))
        elif kind == "edge":
            drawing.edges[title] = (texts, _dashed(group))
    return drawing


@functools.cache
def drawn(spec: str, *flags: str) -> tuple[Drawing, str]:
    """``spec`` drawn to SVG through the CLI, parsed; and its DOT from stdout."""
    with tempfile.TemporaryDirectory(prefix="netc-graph-") as folder:
        target = Path(folder) / "net.svg"
        assert main(["graph", spec, *flags, "-o", str(target)]) == 0
        svg = target.read_bytes()
    return parse(svg), _dot(spec, *flags)


def _dot(spec: str, *flags: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["graph", spec, *flags]) == 0
    return out.getvalue()


# -- every shipped spec ----------------------------------------------------------------------

# Nodes at the default depth (1: the network's own blocks expanded, the blocks
# inside them one node each), with input and output. GoogLeNet: conv1..3 as
# conv + relu (6), 4 max pools, 9 Inceptions x 8 (branch1; branch2 and branch3 two
# ConvBlocks; branch4 pool + ConvBlock; concat), avgpool, flatten, dropout, fc,
# input, output, and 2 aux heads x 9 (8 layers and their output) = 106. LRN: 2 more.
# torchvision: BasicConv2d is conv, bn, relu (+3); its aux head has 7 layers (-2);
# transform_input is off. CIFAR: prelayer 3, 9 x 23 (1x1 3, 3x3 path 6, 5x5 path 9,
# pool path 4, concat), 2 pools, avgpool, dropout, flatten, linear, input, output.
# naive: prelayer 3, 9 x 11, 2 pools, 4, 2. d2l: 139.
# Short and Short2 (seed 004): CIFAR less 2 and 4 Inceptions. The Inception family's
# counts are as drawn (their joins: v3 11 modules, v4 19, Inception-ResNet-v2 43).
NODES = {
    "googlenet_cifar.net": 218,
    "googlenet_cifar_short.net": 172,
    "googlenet_cifar_short2.net": 126,
    "inception_v3_torchvision.net": 145,
    "inception_v4.net": 204,
    "inception_resnet_v2.net": 429,
    "googlenet_d2l.net": 139,
    "googlenet_lrn.net": 108,
    "googlenet_naive.net": 110,
    "googlenet_torchvision.net": 107,
    "googlenet_v1.net": 106,
}
# Deploy: no aux heads, no dropout; conv+bn+relu one node. Where sibling 1x1s fuse
# (all but naive), an Inception is: fused head, split, branch1 (its slice), branch2
# one conv, branch3 one (CIFAR: two), pool + conv, concat = 8 (CIFAR 9). v1: 5 stem
# nodes + 9 x 8 + avgpool, flatten, fc + input, output = 84.
DEPLOY_NODES = {
    "googlenet_cifar.net": 89,
    "googlenet_cifar_short.net": 71,
    "googlenet_cifar_short2.net": 53,
    "inception_v3_torchvision.net": 127,
    "inception_v4.net": 197,
    "inception_resnet_v2.net": 445,
    "googlenet_d2l.net": 84,
    "googlenet_lrn.net": 86,
    "googlenet_naive.net": 53,
    "googlenet_torchvision.net": 84,
    "googlenet_v1.net": 84,
}


CONCATS = {
    "googlenet_cifar_short.net": 7,
    "googlenet_cifar_short2.net": 5,
    "inception_v3_torchvision.net": 11,
    "inception_v4.net": 19,
    "inception_resnet_v2.net": 43,
}


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
@pytest.mark.parametrize("spec", SPECS)
def test_every_shipped_spec_draws(spec, deploy, capfd):
    flags = ("--deploy",) if deploy else ()
    drawing, dot = drawn(f"specs/{spec}", *flags)
    assert len(drawing.nodes) == (DEPLOY_NODES if deploy else NODES)[spec]
    assert capfd.readouterr().err == ""  # dot warned about nothing
    # Every node's id is unique, every cluster's too, and none is empty.
    assert len(set(re.findall(r"subgraph (\S+) \{", dot))) == len(drawing.clusters)
    assert all(box[2] > box[0] for box, _, _ in drawing.clusters.values())
    assert ("input" in drawing.nodes) and drawing.around("input") == set()
    assert drawing.around("output") == set()
    assert any("aux" in n.lower() for n in drawing.nodes) == (not deploy and "aux" in dot)
    # Every concat's branches run left to right as written: its in-edges are written
    # in spec order, and the nodes they come from are drawn in that order.
    joins = [n for n in drawing.nodes if n.endswith("/concat")]
    assert len(joins) == CONCATS.get(spec, 9)
    if not spec.startswith("googlenet"):
        return  # branches of other widths; a fork inside a residual is drawn as it fits
    for join in joins:
        tails = re.findall(rf'\t"?([^"\s]+)"? -> "?{re.escape(join)}"?[ \n]', dot)
        xs = [drawing.x(tail) for tail in tails]
        assert len(tails) == 4 and xs == sorted(xs), (join, tails, xs)


def test_depth_collapses_deeper_blocks():
    assert len(drawn(V1, "--depth", "0")[0].nodes) == 26  # 20 top-level, in, out, 2 x 2 aux
    two = drawn(V1, "--depth", "2")[0]
    assert len(two.nodes) == 162  # every ConvBlock as conv + relu: 56 more
    assert two.around("inception3a.branch2.1.conv") == {
        "inception3a",
        "inception3a.branch2",
        "inception3a.branch2.1",
    }


# -- GoogLeNet: clusters, branch order, shapes, aux heads -------------------------------------


def test_clusters_nest_as_the_spec():
    g, _ = drawn(V1)
    assert g.around("input") == set()
    assert g.around("conv1.conv") == {"conv1"}
    assert g.around("inception3a.branch1") == {"inception3a"}
    for branch in ("branch2", "branch3", "branch4"):
        assert g.around(f"inception3a.{branch}.1") == {"inception3a", f"inception3a.{branch}"}
    assert g.around("inception3a/concat") == {"inception3a"}
    for pool in ("maxpool1", "maxpool2", "maxpool3", "maxpool4"):
        assert g.around(pool) == set(), pool  # between blocks, not inside the next one
    assert g.clusters["cluster_inception3a"][1] == "inception3a: Inception"
    assert g.clusters["cluster_inception3a.branch2"][1] == "branch2"


BLOCKS = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]


def test_branches_left_to_right_in_spec_order():
    g, dot = drawn(V1)
    for block in BLOCKS:
        firsts = [
            f"inception{block}.branch1",
            *(f"inception{block}.branch{i}.0" for i in (2, 3, 4)),
        ]
        xs = [g.x(node) for node in firsts]
        assert xs == sorted(xs), (block, xs)
        declared = [dot.index(f'"{node}" [') for node in firsts]
        assert declared == sorted(declared)


def test_edges_carry_the_shapes():
    g, _ = drawn(V1)
    assert g.edges["input->conv1.conv"][0] == ["3x224x224"]
    assert g.edges["conv1.conv->conv1/relu"][0] == ["64x112x112"]
    # The tensor into inception3a: labelled once, on the edge to its first branch.
    into = {k: v for k, v in g.edges.items() if k.startswith("maxpool2->")}
    assert sorted(into) == [
        "maxpool2->inception3a.branch1",
        "maxpool2->inception3a.branch2.0",
        "maxpool2->inception3a.branch3.0",
        "maxpool2->inception3a.branch4.0",
    ]
    assert [v[0] for v in into.values()] == [["192x28x28"], [], [], []]
    assert g.edges["inception3a.branch2.0->inception3a.branch2.1"][0] == ["96x28x28"]
    tails = ["branch1", "branch2.1", "branch3.1", "branch4.1"]
    outs = [g.edges[f"inception3a.{tail}->inception3a/concat"][0] for tail in tails]
    assert outs == [["64x28x28"], ["128x28x28"], ["32x28x28"], ["32x28x28"]]
    assert g.edges["inception3a/concat->inception3b.branch1"][0] == ["256x28x28"]
    assert g.edges["avgpool->flatten"][0] == ["1024x1x1"]
    assert g.edges["fc->output"][0] == ["1000"]


def test_nodes_carry_parameters_and_macs():
    g, _ = drawn(V1)
    # A layer's name is shown where it says more than its kind.
    assert g.nodes["conv1.conv"][1] == ["conv 7x7/2", "9,472 params · 118M MACs"]
    assert g.nodes["dropout"][1] == ["dropout 0.4"]
    assert g.nodes["conv1/relu"][1] == ["relu"]
    assert g.nodes["inception3a.branch2.1"][1] == [
        "ConvBlock: conv 3x3, relu",
        "110,720 params · 86.7M MACs",  # 96 x 128 x 3 x 3 x 28 x 28
    ]
    assert g.nodes["fc"][1] == ["fc", "linear", "1,025,000 params · 1.02M MACs"]
    assert g.nodes["maxpool1"][1] == ["maxpool1", "maxpool 3x3/2 ceil"]


def test_aux_heads_dashed_and_train_only():
    g, _ = drawn(V1)
    for name, tap in (("aux1", "inception4a"), ("aux2", "inception4d")):
        _, label, dashed = g.clusters[f"cluster_{name}"]
        assert label == f"{name}: InceptionAux · aux head, train only, loss x0.3" and dashed
        aux_edges = {k: v for k, v in g.edges.items() if name in k}
        assert f"{tap}/concat->{name}.averagePool" in aux_edges
        assert all(dashed for _, dashed in aux_edges.values())
        assert g.nodes[f"{name}/output"][1] == [f"{name} output", "(train only)"]
        assert g.around(f"{name}.fc2") == {name}
    solid = [k for k, (_, dashed) in g.edges.items() if not dashed]
    assert not [k for k in solid if "aux" in k]
    # The tap's tensor is labelled on the body's edge, not the aux head's.
    assert g.edges["inception4a/concat->inception4b.branch1"][0] == ["512x14x14"]
    assert g.edges["inception4a/concat->aux1.averagePool"][0] == []


# -- the deploy view ---------------------------------------------------------------------------


def test_deploy_shows_what_was_fused():
    g, dot = drawn(TV, "--deploy")
    assert not [n for n in g.nodes if "aux" in n]
    assert "aux heads dropped: aux1, aux2" in dot
    assert "deploy build: drop_unused, fold_bn, fuse_relu, fuse_siblings, channels_last" in dot
    assert g.nodes["conv1.conv"][1] == [
        "fused conv 7x7/2 +bn +relu",
        "9,472 params · 118M MACs",  # bn bias: +64
    ]
    head = "inception3a.branch1_branch2_branch3"
    assert g.nodes[head][1] == [
        "branch1.conv + branch2.0.conv + branch3.0.conv",
        "conv 1x1 +bn +relu (3 fused)",
        "33,968 params · 26.5M MACs",  # 192 x 176 + 176, x 28 x 28
    ]
    assert g.nodes["inception3a/split"][1] == ["split 64/96/16"]
    assert g.edges[f"maxpool2->{head}"][0] == ["192x28x28"]
    assert g.edges[f"{head}->inception3a/split"][0] == ["176x28x28"]
    assert g.edges["inception3a/split->inception3a.branch1"][0] == ["64x28x28"]
    assert g.edges["inception3a/split->inception3a.branch2.1"][0] == ["96x28x28"]
    assert g.edges["inception3a/split->inception3a.branch3.1"][0] == ["16x28x28"]
    assert g.edges["maxpool2->inception3a.branch4.0"][0] == []  # labelled on the head's edge
    # Left to right as written: branch1's slice, branch2, branch3, the pool branch.
    for block in BLOCKS:
        p = f"inception{block}"
        firsts = [f"{p}.branch1", f"{p}.branch2.1", f"{p}.branch3.1", f"{p}.branch4.0"]
        xs = [g.x(n) for n in firsts]
        assert xs == sorted(xs), (block, xs)
        assert g.around(f"{p}/split") == {p} and g.around(f"{p}.branch3.1") == {p, f"{p}.branch3"}


def test_deploy_passes_switched_off():
    g, dot = drawn(TV, "--deploy", "--no-fuse-siblings")
    assert not [n for n in g.nodes if n.endswith("/split")]
    assert "deploy build: drop_unused, fold_bn, fuse_relu, channels_last" in dot
    assert g.nodes["inception3a.branch1"][1] == [
        "branch1",
        "BasicConv2d: conv 1x1 +bn +relu",
        "12,352 params · 9.63M MACs",
    ]
    plain, _ = drawn(TV, "--deploy", "--no-fold-bn", "--no-fuse-relu", "--no-fuse-siblings")
    assert plain.nodes["conv1.bn"][1][:2] == ["bn", "batchnorm"]


# -- output formats and errors -----------------------------------------------------------------


def test_png_dot_and_stdout(tmp_path, capsys):
    png, dot_file = tmp_path / "net.png", tmp_path / "net.dot"
    assert main(["graph", V1, "-o", str(png)]) == 0
    assert re.fullmatch(
        rf"wrote {re.escape(str(png))} \(GoogLeNet, png, \d+ kB; \d+\.\d\d s\)\n",
        capsys.readouterr().out,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["graph", V1, "-o", str(dot_file)]) == 0
    capsys.readouterr()
    stdout = _dot(V1)
    assert dot_file.read_text(encoding="utf-8") == stdout
    # The README's pipe: netc graph SPEC | dot -Tsvg > net.svg
    svg = subprocess.run(["dot", "-Tsvg"], input=stdout.encode(), capture_output=True, check=True)
    assert svg.stderr == b"" and len(parse(svg.stdout).nodes) == NODES["googlenet_v1.net"]
    # An existing folder gets SPEC_NAME.svg.
    assert main(["graph", V1, "-o", str(tmp_path)]) == 0
    assert parse((tmp_path / "googlenet_v1.svg").read_bytes()).nodes["input"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["googlenet_v1.svg", "net.dot", "net.png"]


def test_quoting_of_odd_paths(tmp_path):
    """Paths with quotes, spaces, commas, braces, angle brackets and a backslash
    (an escape in a DOT label) reach Graphviz quoted and are drawn as written."""
    folder = tmp_path / 'a "b", {c}; <d> \\l'
    folder.mkdir()
    spec = folder / "tiny.net"
    spec.write_text(
        "block B(c: int) {\n  concat {\n    p = conv(c, 1)\n    q = maxpool(3, stride=1, padding=1)\n"
        "  }\n}\n"
        "network Tiny() {\n  input 3x8x8\n  b = B(4)\n  flatten\n  fc = linear(2)\n}\n",
        encoding="utf-8",
    )
    target = folder / "t.svg"
    assert main(["graph", str(spec), "-o", str(target)]) == 0
    g = parse(target.read_bytes())
    assert sorted(g.nodes) == ["b.p", "b.q", "b/concat", "fc", "flatten", "input", "output"]
    assert g.edges["b/concat->flatten"][0] == ["7x8x8"]
    title = ET.fromstring(target.read_bytes()).findall(f"{SVG}g/{SVG}text")
    assert title[0].text == f"Tiny ({spec})"


def error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    return err


def test_missing_folder_is_a_positioned_error(tmp_path, capsys):
    err = error(capsys, "graph", V1, "-o", "nowhere/net.svg")
    assert err == (
        "<command line>:1:38: error: output folder nowhere does not exist\n"
        "    1 | netc graph specs/googlenet_v1.net -o nowhere/net.svg\n"
        "      |                                      ^^^^^^^^^^^^^^^\n"
        "hint: create it first\n"
    )
    assert not Path("nowhere").exists()


def test_unknown_format_is_a_positioned_error(capsys):
    err = error(capsys, "graph", V1, "-o", "net.jpg")
    assert err == (
        "<command line>:1:38: error: cannot tell the picture format of net.jpg\n"
        "    1 | netc graph specs/googlenet_v1.net -o net.jpg\n"
        "      |                                      ^^^^^^^\n"
        "hint: name the file .svg, .png or .dot\n"
    )
    assert not Path("net.jpg").exists()


def test_dot_missing_names_what_to_install(tmp_path, capsys, monkeypatch):
    target = tmp_path / "net.svg"
    target.write_text("old picture", encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    err = error(capsys, "graph", V1, "-o", str(target))
    assert err.startswith(
        "<command line>:1:38: error: cannot draw the picture: Graphviz's dot program is not installed\n"
    )
    assert err.endswith(
        "hint: install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
        "graphviz), or leave out -o to print DOT\n"
    )
    assert target.read_text(encoding="utf-8") == "old picture"  # nothing clobbered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.svg"]  # no temporary left
    assert main(["graph", V1, "-o", str(tmp_path / "net.dot")]) == 0  # DOT needs no dot


def test_no_fuse_flags_need_deploy(capsys):
    assert main(["graph", V1, "--no-fold-bn"]) == 2
    assert "--no-fold-bn switches off a deploy pass: it needs --deploy" in capsys.readouterr().err


NO_TORCH = """
import sys
from compiler.cli import main
assert main(["graph", "specs/googlenet_torchvision.net", "--deploy", "-o", sys.argv[1]]) == 0
heavy = {"torch", "onnx", "onnxruntime", "jinja2"} & set(sys.modules)
assert not heavy, heavy
print("no torch")
"""


def test_graph_never_imports_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tmp_path / "net.svg")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("no torch\n")
