"""The fuzzing harness in CI: random valid specs are accepted with the shapes and
parameter counts the generator computed (and torch agrees on a sample), and
mutated specs and extremes end in one clean error, never anything else.

The big campaign is ``bench/fuzz.py --count 100000``; this runs about 2,000
cases in-process (a few seconds each hundred) and asserts zero failures.
"""

from __future__ import annotations

import collections
import os
import random
import tempfile

import pytest
from fuzzing import Case, _classify, extremes, make_case, run_case
from specgen import random_case

import compiler
from compiler import ir
from compiler.elaborate import Override
from dsl.errors import SpecError


def _load(case, folder):
    path = os.path.join(folder, "gen.net")
    with open(path, "w", encoding="utf-8") as file:
        file.write(case.text)
    overrides = [Override(*item.split("=", 1)) for item in case.sets]
    return compiler.load(path, case.input_shape, overrides)


def test_generated_specs_have_the_generators_shapes_and_parameter_counts():
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(300):
            case = random_case(random.Random(seed))
            net = _load(case, folder)
            assert (net.out_shape, ir.total_params(net.body)) == (case.out_shape, case.params), (
                seed,
                case.text,
            )


def test_a_sample_built_in_torch_has_the_inferred_output_shape_and_parameter_count():
    import torch

    with tempfile.TemporaryDirectory() as folder:
        for seed in range(1000, 1040):
            case = random_case(random.Random(seed))
            net = _load(case, folder)
            model = compiler.build(net).eval()
            with torch.no_grad():
                out = model(torch.zeros(2, *net.input_shape))
            assert tuple(out.shape) == (2, *net.out_shape), (seed, case.text)
            assert sum(p.numel() for p in model.parameters()) == ir.total_params(net.body), seed


def test_the_generator_is_deterministic():
    assert random_case(random.Random(5)) == random_case(random.Random(5))
    assert make_case(3, 17) == make_case(3, 17)


@pytest.mark.parametrize("case", extremes(), ids=lambda c: c.origin)
def test_extremes_end_in_a_clean_outcome(case):
    outcome = run_case(case, timeout=20, compile_every=1)
    assert not outcome.failure, outcome


def test_two_thousand_mutated_and_generated_cases_have_no_failure():
    counts = collections.Counter()
    failures = []
    for index in range(1, 2001):
        if index % 50 == 0:  # the extremes: tested above
            continue
        outcome = run_case(make_case(11, index), timeout=20, compile_every=0, index=index, summary_every=10)
        counts[outcome.kind] += 1
        if outcome.failure:
            failures.append((index, outcome))
    assert failures == []
    assert counts["ok"] > 300 and counts["error"] > 800, counts


def test_an_error_without_a_position_is_a_failure_and_a_usage_error_is_not():
    unpositioned = _classify(1, "", "netc: error: spec.net defines no network\n", None)
    assert (unpositioned.kind, unpositioned.failure) == ("unpositioned", True)
    positioned = _classify(1, "", "spec.net:3:2: error: no network in this file, only 1 block\n", None)
    assert (positioned.kind, positioned.failure) == ("error", False)
    usage = _classify(2, "", "Usage: netc check [OPTIONS] SPEC\n", None)
    assert (usage.kind, usage.failure) == ("usage", False)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "block B() {\n    relu\n}\n"])
def test_a_file_with_no_network_is_a_positioned_error_with_no_temporary_path(text):
    outcome = run_case(Case({"net.net": text.encode()}))
    assert outcome.kind == "error" and outcome.detail.startswith("net.net:"), outcome


def _atheris_harness(tmp_path):
    """bench/fuzz_atheris.py's harness, which runs without atheris (--replay)."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "bench", "fuzz_atheris.py")
    spec = importlib.util.spec_from_file_location("fuzz_atheris", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return module, module.Harness(scratch, tmp_path / "findings", source=True, fmt=True, stop=False)


def test_the_atheris_harness_tells_a_positioned_error_from_a_finding(tmp_path, monkeypatch):
    module, harness = _atheris_harness(tmp_path)
    shipped = (module.REPO / "specs" / "googlenet_v1.net").read_bytes()
    assert harness.run_one(shipped) == "ok"
    assert harness.run_one(b"") == "error"
    assert harness.run_one(b"network N( {") == "error"
    monkeypatch.setattr(compiler, "load", lambda path: 1 / 0)
    assert harness.run_one(shipped).startswith("finding: ZeroDivisionError at test_fuzz.py:")
    assert [p.read_bytes() for p in (tmp_path / "findings").iterdir()] == [shipped]

    def unpositioned(path):
        raise SpecError("no place")

    monkeypatch.setattr(compiler, "load", unpositioned)
    assert harness.run_one(b"relu") == "finding: an error with no position: no place"
    assert harness.counts == {"ok": 1, "error": 2, "finding": 2}
