"""``netc train`` and ``netc eval``: the click commands (registered by compiler.cli).

Nothing here imports torch at import time: ``netc check`` must not pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from compiler.training import TrainingError


def _read_config(ctx: click.Context, _param, value: str | None) -> str | None:
    """``--config run.toml``: its keys (the long option names, ``-`` or ``_``) become
    the defaults, so flags on the command line win."""
    if value is None:
        return None
    import tomllib

    try:
        table = tomllib.loads(Path(value).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.BadParameter(f"{value}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise click.BadParameter(f"{value}: {err}") from None
    known = {p.name for p in ctx.command.params} - {"config", "spec"}
    defaults = {}
    for key, item in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise click.BadParameter(f"{value}: unknown key '{key}'")
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def data_options(command):
    for decorator in reversed(
        [
            click.option(
                "--data",
                required=True,
                metavar="SOURCE",
                help="digits, synthetic[:N], cifar10:PATH, cifar100:PATH or an image folder.",
            ),
            click.option(
                "--normalize",
                metavar="MEAN,STD",
                help="Normalise inputs: MEAN,STD or per-channel means then stds.",
            ),
            click.option("--test-batch-size", type=int, default=256, show_default=True),
            click.option(
                "--device",
                type=click.Choice(["auto", "cpu", "cuda"]),
                default="auto",
                show_default=True,
            ),
        ]
    ):
        command = decorator(command)
    return command


def train_options(command):
    choice = click.Choice
    for decorator in reversed(
        [
            click.option(
                "--config",
                callback=_read_config,
                is_eager=True,
                expose_value=False,
                metavar="TOML",
                help="Read option defaults from a TOML file (same keys).",
            ),
            click.option(
                "--out", required=True, metavar="DIR", help="Folder for checkpoints, metrics, plot."
            ),
            click.option("--epochs", type=int, default=1, show_default=True),
            click.option(
                "--batch-size",
                type=int,
                default=64,
                show_default=True,
                help="Global batch (divided among DDP processes).",
            ),
            click.option(
                "--optimizer",
                type=choice(["sgd", "adam", "adamw", "adadelta"]),
                default="sgd",
                show_default=True,
            ),
            click.option(
                "--lr", type=float, help="Learning rate [sgd 0.1, adam(w) 1e-3, adadelta 1.0]."
            ),
            click.option(
                "--momentum", type=float, default=0.9, show_default=True, help="SGD momentum."
            ),
            click.option("--nesterov", is_flag=True, help="SGD with Nesterov momentum."),
            click.option("--weight-decay", type=float, default=0.0, show_default=True),
            click.option(
                "--schedule",
                type=choice(["none", "step", "cosine", "onecycle"]),
                default="none",
                show_default=True,
            ),
            click.option(
                "--step-size",
                type=int,
                default=1,
                show_default=True,
                help="StepLR: epochs per step.",
            ),
            click.option(
                "--gamma", type=float, default=0.7, show_default=True, help="StepLR factor."
            ),
            click.option("--label-smoothing", type=float, default=0.0, show_default=True),
            click.option("--hflip", is_flag=True, help="Random horizontal flips."),
            click.option(
                "--crop-padding",
                type=int,
                default=0,
                show_default=True,
                help="Random crops after zero padding by N.",
            ),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--workers", type=int, default=0, show_default=True, help="DataLoader workers."
            ),
            click.option("--resume", metavar="CHECKPOINT", help="Continue from last.pt."),
            click.option("--channels-last", is_flag=True, help="channels_last memory format."),
            click.option("--no-plot", "no_plot", is_flag=True, help="Do not write curves.png."),
            click.option("--sync-bn", is_flag=True, help="DDP: synchronised batch norm (CUDA)."),
            click.option("--threads", type=click.IntRange(1), help="torch intra-op threads."),
            click.option(
                "--nproc",
                type=click.IntRange(1),
                default=1,
                show_default=True,
                help="DDP: processes on this node (runs torchrun's launcher).",
            ),
            click.option(
                "--nnodes",
                type=click.IntRange(1),
                default=1,
                show_default=True,
                help="DDP: nodes in the job.",
            ),
            click.option("--node-rank", type=click.IntRange(0), default=0, show_default=True),
            click.option("--master-addr", metavar="HOST", help="DDP: rank 0's node (multi-node)."),
            click.option("--master-port", type=int, help="DDP: its port (multi-node)."),
        ]
    ):
        command = decorator(command)
    return data_options(command)


def _load(spec, sets, input_text):
    from compiler.cli import load_network

    return load_network(spec, sets, input_text)


LAUNCHER = ("nproc", "nnodes", "node_rank", "master_addr", "master_port")


def _worker_args(ctx: click.Context) -> list[str]:
    """The options this command was given (the --config file's included), as the
    arguments of ``python -m compiler.training`` without the launcher's."""
    args = [ctx.params["spec"]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or param.name in LAUNCHER or value in (None, False):
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            args.append(flag)
        else:
            for item in value if param.multiple else (value,):
                args += [flag, str(item)]
    return args


def register(cli: click.Group, spec_options) -> None:
    @cli.command()
    @spec_options
    @train_options
    @click.pass_context
    def train(
        ctx,
        spec,
        sets,
        input_text,
        nproc,
        nnodes,
        node_rank,
        master_addr,
        master_port,
        no_plot,
        **options,
    ) -> None:
        """Train SPEC's runtime module: checkpoints, metrics.jsonl and curves.png in --out.

        The loss is the main cross-entropy plus each aux head's times its weight.
        With --nproc N (or under torchrun) DistributedDataParallel, gloo on CPU."""
        if nproc > 1 or nnodes > 1:
            if "WORLD_SIZE" in os.environ:
                raise click.UsageError("--nproc/--nnodes: this process already runs under torchrun")
            from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

            from compiler.training import distributed

            _load(spec, sets, input_text)  # errors in the spec show once, here
            import torch

            if options["sync_bn"] and not (
                torch.cuda.is_available() and options["device"] != "cpu"
            ):
                raise click.UsageError(
                    "--sync-bn needs CUDA: torch's SyncBatchNorm only works on GPU"
                )
            try:
                distributed.launch(
                    _worker_args(ctx), nproc, nnodes, node_rank, master_addr, master_port
                )
            except ChildFailedError as err:  # the workers printed why
                failed = ", ".join(f"rank {r}" for r in sorted(err.failures))
                raise click.ClickException(f"training failed ({failed})") from None
            return
        from compiler.training.loop import Config
        from compiler.training.loop import train as run_training

        net = _load(spec, sets, input_text)
        config = Config(plot=not no_plot, **options)
        try:
            text = Path(spec).read_text(encoding="utf-8")
            run_training(net, config, text)
        except TrainingError as err:
            raise click.ClickException(str(err)) from None

    @cli.command(name="eval")
    @spec_options
    @click.option(
        "--checkpoint", required=True, metavar="PATH", help="best.pt, last.pt or a state_dict."
    )
    @click.option(
        "--recalibrate-bn",
        is_flag=True,
        help="Re-estimate batch-norm statistics over the training split first.",
    )
    @click.option(
        "--split", type=click.Choice(["test", "train"]), default="test", show_default=True
    )
    @data_options
    def eval_(
        spec,
        sets,
        input_text,
        checkpoint,
        recalibrate_bn,
        split,
        data,
        normalize,
        test_batch_size,
        device,
    ) -> None:
        """Evaluate a trained SPEC: top-1, top-5 and the confusion matrix."""
        try:
            _evaluate(
                _load(spec, sets, input_text),
                checkpoint,
                recalibrate_bn,
                split,
                data,
                normalize,
                test_batch_size,
                device,
            )
        except TrainingError as err:
            raise click.ClickException(str(err)) from None


def _evaluate(net, path, recalibrate_bn, split, source, normalize, batch_size, device) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from compiler.backends.runtime import CheckpointError, build_module
    from compiler.training import checkpoint, data, evaluate
    from compiler.training.loop import tune_allocator

    tune_allocator()  # as netc train: freed activations stay in the heap (README, deploy speed)
    state = checkpoint.model_state(path, net.name)
    model = build_module(net)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise TrainingError(f"checkpoint {path} does not fit {net.name}: {first}") from None
    except CheckpointError as err:
        raise TrainingError(str(err)) from None
    where = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    model.to(where)
    outputs = net.out_shape[0]
    dataset = data.load(source, net.input_shape, outputs)
    norm = data.parse_normalize(normalize, net.input_shape[0])
    prepare = data.Pipeline(net.input_shape, dataset.scale, normalize=norm)
    console = Console(highlight=False)
    if recalibrate_bn:
        count = evaluate.recalibrate_bn(model, dataset.train_x, prepare, batch_size, where)
        console.print(
            f"recalibrated {count} batch norms over {len(dataset.train_y)} training images"
        )
    x, y = (
        (dataset.test_x, dataset.test_y) if split == "test" else (dataset.train_x, dataset.train_y)
    )
    result = evaluate.evaluate(model, x, y, prepare, outputs, batch_size, where)
    console.print(
        f"{net.name} on {dataset.name} ({split}, {result.count} images): top-1 {result.top1:.2%} "
        f"(error {1 - result.top1:.4f}), top-{result.top_k} {result.top5:.2%} "
        f"(error {1 - result.top5:.4f}), loss {result.loss:.4f}"
    )
    classes = len(dataset.classes)
    if classes <= 20:
        table = Table(title="confusion matrix (rows: true class, columns: predicted)")
        table.add_column("")
        for name in dataset.classes:
            table.add_column(name, justify="right")
        for i, name in enumerate(dataset.classes):
            row = result.confusion[i, :classes].tolist()
            table.add_row(
                name,
                *(f"[bold]{v}[/]" if j == i else (str(v) if v else ".") for j, v in enumerate(row)),
            )
        console.print(table)
    else:
        counts = result.confusion[:classes].sum(1)
        recall = result.confusion.diag()[:classes].float() / counts.clamp(min=1)
        recall[counts == 0] = float("inf")  # classes with no image in the split come last
        worst = [i for i in recall.argsort()[:10].tolist() if counts[i] > 0]
        table = Table(title=f"confusion: the 10 worst of {classes} classes")
        for column in ("class", "images", "correct", "recall", "most confused with"):
            table.add_column(column, justify="right")
        for i in worst:
            others = result.confusion[i].clone()
            others[i] = -1
            other = int(others.argmax())
            table.add_row(
                dataset.classes[i],
                str(int(result.confusion[i].sum())),
                str(int(result.confusion[i, i])),
                f"{recall[i]:.1%}",
                dataset.classes[other],
            )
        console.print(table)
