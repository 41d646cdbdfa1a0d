"""The ``netc`` command line: check, summary, graph, compile, ir, schema, diff.

Every error a spec can cause is printed as one ``file:line:col: error:``
message and the command exits with status 1; no traceback reaches the user.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from compiler import ir
from compiler.budgets import DEFAULT, WORDS, Budget, flag
from compiler.elaborate import Override
from compiler.lang_cli import builtins_command, fmt_command
from compiler.training.commands import register as register_training
from dsl.errors import Span, SpecError, register_source

COMMAND_LINE = "<command line>"
_budget: Budget = DEFAULT  # set from the --max-* options of the command being run
_argv: list[str] = []


def _command_line_span(arg: str, part: str = "", at: int = 0) -> Span:
    """The span of ``part`` of one argument (found from index ``at`` on), in the
    command line as typed."""
    text = " ".join(["netc", *map(shlex.quote, _argv)])
    register_source(COMMAND_LINE, text)
    start = text.find(shlex.quote(arg))
    start = 0 if start < 0 else start + max(shlex.quote(arg).find(part, at), 0)
    width = len(part or arg)
    return Span(COMMAND_LINE, 1, start + 1, 1, start + 1 + width)


def _overrides(sets: tuple[str, ...]) -> list[Override]:
    result = []
    for item in sets:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise SpecError(
                f"--set expects name=value, got '{item}'",
                _command_line_span(item),
                hint="for example --set num_classes=10",
            )
        result.append(
            Override(
                name.strip(),
                value.strip(),
                _command_line_span(item, name),
                _command_line_span(item, value.strip(), len(name) + 1),
            )
        )
    return result


def _input_shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    if (
        len(parts) != 3
        or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts)
        or 0 in map(int, parts)
    ):
        raise SpecError(
            f"--input expects channels x height x width, got '{text}'",
            _command_line_span(text),
            hint="for example --input 3x224x224",
        )
    c, h, w = map(int, parts)
    return (c, h, w)


def load_network(
    spec: str, sets: tuple[str, ...], input_text: str | None, budget: Budget | None = None
) -> ir.Network:
    from compiler import load

    # The IR lives as long as this process: frozen, the cyclic garbage collector
    # never scans it, not even once after loading (a fifth of `check` on a
    # 1,000-block spec; bench/compile_scaling.py).
    gc.disable()
    try:
        return load(spec, _input_shape(input_text), _overrides(sets), budget=budget or _budget)
    finally:
        gc.freeze()
        gc.enable()


def _budget_options(command):
    """One ``--max-<what>`` option per budget (compiler.budgets), for ``load_network``."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        global _budget
        _budget = DEFAULT.replace(**{field: kwargs.pop(field) for field in WORDS})
        return command(*args, **kwargs)

    for field in reversed(WORDS):
        wrapper = click.option(
            flag(field),
            field,
            type=click.IntRange(0),
            metavar="N",
            help=f"Budget: at most N {WORDS[field]} [default: {getattr(DEFAULT, field):,}; 0: none].",
        )(wrapper)
    return wrapper


def spec_options(command):
    command = click.option(
        "--input", "input_text", metavar="CxHxW", help="Override the spec's input, e.g. 1x96x96."
    )(command)
    command = click.option(
        "--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a network parameter."
    )(command)
    command = click.argument("spec", type=click.Path(dir_okay=False))(command)
    return _budget_options(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netc")
def cli() -> None:
    """netc: compile .net network specs to PyTorch."""


@cli.command()
@spec_options
def check(spec: str, sets: tuple[str, ...], input_text: str | None) -> None:
    """Parse, elaborate and shape-check SPEC; print one line."""
    start = time.perf_counter()
    net = load_network(spec, sets, input_text)
    elapsed = time.perf_counter() - start
    params = ir.total_params(net.body)
    heads = net.active_aux()
    aux = sum(ir.total_params((h.head,)) for h in heads)
    plural = "s" if len(heads) != 1 else ""
    with_aux = f" ({params + aux:,} with {len(heads)} aux head{plural})" if heads else ""
    from compiler.display import show_shape

    click.echo(
        f"{spec}: ok: {net.name}, input {show_shape(net.input_shape)} -> "
        f"output {show_shape(net.out_shape)}, {params:,} parameters{with_aux}, "
        f"{ir.total_macs(net.body) / 1e9:.2f} GMACs ({elapsed * 1000:.0f} ms)"
    )


def pass_options(command):
    """``--deploy`` and one ``--no-<pass>`` switch per deploy pass (compiler.passes).

    The command receives ``deploy`` and ``passes_off`` (the names switched off);
    ``deploy_network`` turns them into the network to use."""
    from compiler.passes import DESCRIPTIONS

    for name in reversed(DESCRIPTIONS):
        flag = name.replace("_", "-")
        command = click.option(
            f"--no-{flag}", f"no_{name}", is_flag=True, help=f"Deploy: do not {DESCRIPTIONS[name]}."
        )(command)
    command = click.option(
        "--deploy",
        is_flag=True,
        help="The deploy build: aux heads dropped, optimisation passes run.",
    )(command)
    return command


def deploy_network(
    net: ir.Network, deploy: bool, switches: dict[str, bool], target: str = "runtime"
) -> ir.Network:
    """``net`` after the deploy passes not switched off (``switches``: ``no_<pass>`` flags)
    and not left out for ``target`` (``compiler.passes.TARGETS``)."""
    off = [name.removeprefix("no_") for name, value in switches.items() if value]
    if off and not deploy:
        flags = " ".join(f"--no-{name.replace('_', '-')}" for name in off)
        raise click.UsageError(f"{flags} switches off a deploy pass: it needs --deploy")
    if not deploy:
        return net
    from compiler.passes import optimise

    return optimise(net, disable=off, target=target)


@cli.command()
@spec_options
@click.option("--depth", type=click.IntRange(0), help="Show nodes down to this nesting depth only.")
@click.option("--json", "as_json", is_flag=True, help="The table as JSON: rows and totals.")
@pass_options
def summary(
    spec: str,
    sets: tuple[str, ...],
    input_text: str | None,
    depth: int | None,
    as_json: bool,
    deploy: bool,
    **switches: bool,
) -> None:
    """Print SPEC's per-layer table: name, kind, output shape, parameters, MACs.

    With --deploy, the optimised deploy build, and what its passes fused."""
    from compiler.backends.summary import render, to_json

    net = load_network(spec, sets, input_text)
    built = deploy_network(net, deploy, switches)
    if as_json:
        click.echo(json.dumps(to_json(built, max_depth=depth, original=net), indent=2))
    else:
        render(built, max_depth=depth, original=net)


@cli.command(name="ir")
@spec_options
@pass_options
def ir_(
    spec: str, sets: tuple[str, ...], input_text: str | None, deploy: bool, **switches: bool
) -> None:
    """Print SPEC's checked IR as JSON (its schema: `netc schema`)."""
    from compiler.backends.jsonout import network_json

    net = load_network(spec, sets, input_text)
    click.echo(network_json(deploy_network(net, deploy, switches)), nl=False)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the IR that `netc ir` prints."""
    from compiler.backends.jsonout import schema_json

    click.echo(schema_json(), nl=False)


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override, in both.")
@click.option("--input", "input_text", metavar="CxHxW", help="Override the input of both.")
@click.option("--depth", type=click.IntRange(0), help="Compare nodes down to this depth only.")
@click.option("--all", "everything", is_flag=True, help="List unchanged rows too.")
@click.option("--json", "as_json", is_flag=True, help="Every row and the totals as JSON.")
def diff(
    a: str,
    b: str,
    sets: tuple[str, ...],
    input_text: str | None,
    depth: int | None,
    everything: bool,
    as_json: bool,
) -> None:
    """Compare two networks layer by layer: parameters and MACs, added, removed, changed."""
    from compiler.backends import diff as diff_backend

    nets = load_network(a, sets, input_text), load_network(b, sets, input_text)
    if as_json:
        click.echo(json.dumps(diff_backend.to_json(*nets, max_depth=depth), indent=2))
    else:
        diff_backend.render(*nets, max_depth=depth, everything=everything)


@cli.command()
@spec_options
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Draw to a file: .svg, .png or .dot (or an existing folder: SPEC_NAME.svg) "
    "[default: DOT to stdout].",
)
@click.option(
    "--depth",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Expand blocks down to this nesting depth.",
)
@pass_options
def graph(
    spec: str,
    sets: tuple[str, ...],
    input_text: str | None,
    output: str | None,
    depth: int,
    deploy: bool,
    **switches: bool,
) -> None:
    """Draw SPEC's network with Graphviz, or print it as DOT (`| dot -Tsvg` draws it).

    With --deploy, the optimised deploy build: what its passes fused."""
    from compiler.backends import graph as picture

    start = time.perf_counter()
    net = deploy_network(load_network(spec, sets, input_text), deploy, switches)
    dot = picture.to_dot(net, max_depth=depth)
    if output is None:
        click.echo(dot, nl=False)
        return
    span = _command_line_span(output)
    fmt = "svg" if Path(output).is_dir() else Path(output).suffix.lower().lstrip(".")
    if fmt not in picture.FORMATS:
        raise SpecError(
            f"cannot tell the picture format of {output}",
            span,
            hint="name the file .svg, .png or .dot",
        )
    target = _output_path(spec, output, ".svg")
    try:
        data = dot.encode("utf-8") if fmt == "dot" else picture.render(dot, fmt)
    except picture.RenderError as err:
        raise SpecError(err.message, span, hint=err.hint) from None
    _write_atomic(target, lambda tmp: tmp.write_bytes(data), output)
    elapsed = time.perf_counter() - start
    click.echo(
        f"wrote {_shown(target)} ({net.name}, {fmt}, {len(data) / 1e3:.0f} kB; {elapsed:.2f} s)"
    )


@dataclass(frozen=True)
class Calibration:
    """The options of ``compile --quantize int8``: what to calibrate on, and how."""

    source: str | None = None  # --calibrate: a netc train --data source
    batches: int | None = None  # None: quantize.DEFAULT_BATCHES
    normalize: str | None = None  # None: the checkpoint's, as trained
    method: str | None = None
    activations: str | None = None
    keep_float: tuple[str, ...] = ()

    def given(self) -> list[str]:
        """The flags given, for "needs --quantize int8"."""
        flags = {
            "--calibrate": self.source,
            "--calibration-batches": self.batches,
            "--calibration-method": self.method,
            "--normalize": self.normalize,
            "--activations": self.activations,
            "--keep-float": self.keep_float,
        }
        return [flag for flag, value in flags.items() if value]


def quantize_options(command):
    """``--quantize int8`` and its calibration options, given to the command as one
    ``calibration`` (``Calibration``)."""
    from compiler.backends import quantize

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        kwargs["calibration"] = Calibration(
            kwargs.pop("calibrate"),
            kwargs.pop("calibration_batches"),
            kwargs.pop("normalize"),
            kwargs.pop("calibration_method"),
            kwargs.pop("activations"),
            kwargs.pop("keep_float"),
        )
        return command(*args, **kwargs)

    for decorator in reversed(
        [
            click.option(
                "--quantize",
                type=click.Choice(["int8"]),
                help="With --emit onnx: a statically quantized model (QDQ, per-channel int8 "
                "weights), calibrated on --calibrate.",
            ),
            click.option(
                "--calibrate",
                metavar="DATA",
                help="Images to calibrate on, as netc train's --data: digits, synthetic[:N], "
                "cifar10:PATH, cifar100:PATH or an image folder (its training split).",
            ),
            click.option(
                "--calibration-batches",
                type=click.IntRange(1),
                metavar="N",
                help=f"Calibrate on N batches of {quantize.BATCH} images "
                f"[default: {quantize.DEFAULT_BATCHES}].",
            ),
            click.option(
                "--calibration-method",
                type=click.Choice(quantize.METHODS),
                help=f"How activation ranges are chosen [default: {quantize.DEFAULT_METHOD}].",
            ),
            click.option(
                "--normalize",
                metavar="MEAN,STD",
                help="Normalise calibration images as netc train's --normalize "
                "[default: as the checkpoint was trained].",
            ),
            click.option(
                "--activations",
                type=click.Choice(quantize.ACTIVATIONS),
                help=f"Activation type [default: {quantize.DEFAULT_ACTIVATIONS}].",
            ),
            click.option(
                "--keep-float",
                type=click.Choice(quantize.KEEP_FLOAT),
                multiple=True,
                help="Leave the first convolution or the last linear layer in float32 "
                "(repeatable).",
            ),
        ]
    ):
        wrapper = decorator(wrapper)
    return wrapper


def _check_quantize_usage(emit_kind: str, quantize: str | None, calibration: Calibration) -> None:
    if quantize is None:
        given = calibration.given()
        if given:
            raise click.UsageError(f"{given[0]} needs --quantize int8")
        return
    if emit_kind != "onnx":
        raise click.UsageError(f"--quantize {quantize} needs --emit onnx")
    if calibration.source is None:
        raise click.UsageError(
            f"--quantize {quantize} needs --calibrate DATA: the images to calibrate on "
            "(digits, synthetic[:N], cifar10:PATH, cifar100:PATH or an image folder)"
        )


@cli.command(name="compile")
@spec_options
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="File to write, or an existing folder [default: ./SPEC_NAME.py, .onnx or .int8.onnx].",
)
@click.option(
    "--emit",
    "emit_kind",
    type=click.Choice(["py", "onnx"]),
    default="py",
    show_default=True,
    help="Standalone PyTorch source, or ONNX (always the deploy graph, optimised).",
)
@click.option(
    "--checkpoint",
    metavar="PATH",
    help="Trained weights (netc train's best.pt): into the ONNX, or NAME.pt beside the source.",
)
@quantize_options
@pass_options
def compile_(
    spec: str,
    sets: tuple[str, ...],
    input_text: str | None,
    output: str | None,
    emit_kind: str,
    checkpoint: str | None,
    quantize: str | None,
    calibration: Calibration,
    deploy: bool,
    **switches: bool,
) -> None:
    """Compile SPEC to standalone PyTorch source, or to ONNX; print what was written.

    With --deploy, the optimised deploy build: no aux heads, and a loader that
    turns a training checkpoint into its weights. With --emit onnx --quantize
    int8 --calibrate DATA, a statically quantized int8 ONNX model for CPUs."""
    start = time.perf_counter()
    _check_quantize_usage(emit_kind, quantize, calibration)
    net = load_network(spec, sets, input_text)
    onnx = emit_kind == "onnx"  # always the deploy graph, with the ONNX target's passes
    built = deploy_network(net, deploy or onnx, switches, "onnx" if onnx else "runtime")
    if quantize:
        _compile_int8(spec, net, built, output, checkpoint, calibration, start)
        return
    target = _output_path(spec, output, f".{emit_kind}")
    passes = [p for p in built.passes if p != "drop_unused"]
    optimised = f" optimised by {'+'.join(passes)}" if passes else ""
    state, _recorded = _trained_state(checkpoint, net) if checkpoint else (None, {})
    if emit_kind == "py":
        from compiler.backends.source import emit

        text = emit(built, deploy=deploy)
        if state is not None:  # the weights first: the source is the last thing written
            from compiler.training import ship

            weights = target.with_suffix(".pt")
            _write_atomic(
                weights, lambda tmp: ship.save_weights(net, built, state, deploy, tmp), output
            )
        _write_atomic(target, lambda tmp: tmp.write_bytes(text.encode("utf-8")), output)
        build = f"deploy build{optimised}" if deploy else "training build"
        what = f"{net.name}, {build}, {text.count(chr(10))} lines"
        if state is not None:
            what += f"; trained weights in {_shown(weights)}, strict load_state_dict"
    else:
        from compiler.backends import onnx_export

        done = []
        _write_atomic(
            target,
            lambda tmp: done.append(onnx_export.export(net, tmp, state_dict=state, deploy=built)),
            output,
        )
        trained = ", trained weights" if state is not None else ""
        what = (
            f"{net.name}, deploy graph{optimised}{trained}, opset {done[0].opset}, dynamic batch, "
            f"{done[0].bytes / 1e6:.1f} MB; export {done[0].seconds:.1f} s"
        )
    elapsed = time.perf_counter() - start
    click.echo(f"wrote {_shown(target)} ({what}; {elapsed:.2f} s)")


def _compile_int8(
    spec: str,
    net: ir.Network,
    built: ir.Network,
    output: str | None,
    checkpoint: str | None,
    calibration: Calibration,
    start: float,
) -> None:
    """``compile --emit onnx --quantize int8``: the fp32 export, then the quantized model
    from it, written atomically (the fp32 file is a temporary one beside the target)."""
    from compiler.backends import onnx_export, quantize
    from compiler.training import TrainingError, ship

    target = _output_path(spec, output, ".int8.onnx")
    state, recorded = _trained_state(checkpoint, net) if checkpoint else (None, {})
    normalize = calibration.normalize or recorded.get("normalize")  # as it was trained
    try:
        batches = ship.calibration_batches(
            net,
            calibration.source or "",
            normalize,
            calibration.batches or quantize.DEFAULT_BATCHES,
            quantize.BATCH,
        )
    except TrainingError as err:
        raise click.ClickException(str(err)) from None
    done: list = []

    def write(tmp: Path) -> None:
        fp32 = tmp.with_name(tmp.name.removesuffix(".tmp") + ".fp32.tmp")
        _TEMPORARY.add(str(fp32))
        try:
            done.append(onnx_export.export(net, fp32, state_dict=state, deploy=built))
            done.append(
                quantize.quantize(
                    net,
                    fp32,
                    tmp,
                    batches,
                    method=calibration.method or quantize.DEFAULT_METHOD,
                    activations=calibration.activations or quantize.DEFAULT_ACTIVATIONS,
                    keep_float=calibration.keep_float,
                )
            )
        except quantize.QuantizeError as err:
            raise click.ClickException(str(err)) from None
        finally:
            fp32.unlink(missing_ok=True)
            _TEMPORARY.discard(str(fp32))

    _write_atomic(target, write, output)
    exported, result = done
    passes = [p for p in built.passes if p != "drop_unused"]
    optimised = f" optimised by {'+'.join(passes)}" if passes else ""
    trained = ", trained weights" if state is not None else ""
    kept = f", float32: {', '.join(calibration.keep_float)}" if calibration.keep_float else ""
    shown_norm = f", normalised {normalize}" if normalize else ""
    what = (
        f"{net.name}, deploy graph{optimised}{trained}, int8 QDQ: per-channel int8 weights, "
        f"{result.activations} activations, {result.method} calibration on {result.images} "
        f"{calibration.source} images{shown_norm}{kept}; opset {exported.opset}, dynamic batch, "
        f"{result.bytes / 1e6:.1f} MB; export {exported.seconds:.1f} s, "
        f"quantization {result.seconds:.1f} s"
    )
    click.echo(f"wrote {_shown(target)} ({what}; {time.perf_counter() - start:.2f} s)")


def _trained_state(path: str, net: ir.Network) -> tuple[dict, dict]:
    """A training checkpoint's weights, checked against ``net`` (compile --checkpoint),
    and the training options it records."""
    from compiler.training import TrainingError, ship

    try:
        return ship.read_state(path, net)
    except TrainingError as err:
        raise click.ClickException(str(err)) from None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _output_path(spec: str, output: str | None, suffix: str) -> Path:
    """Where compile writes: ``output`` (a file, or an existing folder), else ./<spec stem>.

    Never anything but a regular file that may be written (not a FIFO, a device or a
    symlink: they would be replaced by a file), and never the spec or a file it imports."""
    span = _command_line_span(output) if output is not None else None
    name = Path(spec).stem + suffix
    try:
        if output is None:
            target = Path.cwd() / name
        else:
            target = Path(output)
            if target.is_dir():
                target = target / name
            elif output.endswith(("/", "\\")):
                raise SpecError(f"output folder {output} does not exist", span)
        folder = target.parent
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise SpecError(f"output folder {folder} {problem}", span, hint="create it first")
        if target.is_symlink():
            raise SpecError(
                f"cannot write {target}: it is a symbolic link",
                span,
                hint="give the path of the file it points to, or another name",
            )
        if target.is_dir():
            raise SpecError(f"cannot write {target}: it is a folder", span)
        if target.exists():
            if not target.is_file():
                raise SpecError(
                    f"cannot write {target}: it is not a regular file (a FIFO, a socket or a device)",
                    span,
                )
            if not target.stat().st_mode & 0o222 or not os.access(target, os.W_OK):
                raise SpecError(
                    f"cannot write {target}: it is read-only",
                    span,
                    hint="make it writable first, or choose another name",
                )
        from dsl import loader

        resolved = target.resolve()
        if resolved == Path(spec).resolve():
            raise SpecError(f"cannot write {target}: it is the spec itself", span)
        if resolved in loader.loaded:
            raise SpecError(f"cannot write {target}: the spec imports it", span)
        return target.absolute()
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise SpecError("cannot write the output: its file name is too long", span) from None
        where = (
            "the working folder was deleted" if isinstance(err, FileNotFoundError) else err.strerror
        )
        raise SpecError(f"cannot write the output: {where or err}", span) from None


# Temporary files being written; the signal handler removes them before the process ends.
_TEMPORARY: set[str] = set()


def _on_signal(signum, frame) -> None:
    for name in list(_TEMPORARY):
        with contextlib.suppress(OSError):
            os.unlink(name)
    _TEMPORARY.clear()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # end as the signal says (exit status, core policy)


@contextlib.contextmanager
def _cleanup_on_signals():
    signals = [
        signal.SIGINT,
        signal.SIGTERM,
        *[getattr(signal, n) for n in ("SIGHUP",) if hasattr(signal, n)],
    ]
    try:
        previous = {s: signal.signal(s, _on_signal) for s in signals}
    except ValueError:  # not the main thread: no handlers, the except clauses still clean up
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _create_temporary(name: str) -> None:
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _write_atomic(target: Path, write, output: str | None) -> None:
    """Write through a temporary file in the target's folder, then rename it over the
    target: a failure or a signal (SIGINT, SIGTERM, SIGHUP) at any point leaves no
    temporary file and an existing target as it was."""
    import secrets

    span = _command_line_span(output) if output is not None else None
    with _cleanup_on_signals():
        name = str(target.parent / f".{target.name[:200]}.{secrets.token_hex(4)}.tmp")
        _TEMPORARY.add(name)  # before it exists: a signal from here on removes it
        try:
            _create_temporary(name)
        except OSError as err:
            _TEMPORARY.discard(name)
            raise SpecError(
                f"cannot write to folder {target.parent}: {err.strerror}", span
            ) from None
        tmp = Path(name)
        try:
            write(tmp)
            if target.exists():
                mode = target.stat().st_mode & 0o777
            else:
                umask = os.umask(0o022)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise SpecError(f"cannot write {target}: {err.strerror or err}", span) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            _TEMPORARY.discard(name)


cli.add_command(builtins_command)
cli.add_command(fmt_command)
register_training(cli, spec_options)  # netc train, netc eval


def main(argv: list[str] | None = None) -> int:
    global _argv
    _argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode, click returns a click.exceptions.Exit's status.
        status = cli.main(args=_argv, prog_name="netc", standalone_mode=False)
    except SpecError as err:
        click.echo(err.render(), err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    return status if isinstance(status, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
