"""The training loop behind ``netc train``: one process, or one rank of a DDP job.

``train(net, config)`` builds the runtime module (``build_module``), reads the
data (``data.load``), and for each epoch: one pass over the training split in a
seeded order (``DistributedSampler``, also with one process, so a run of N
processes sees, step by step, the same images as one process at the same
global batch), the loss being the main cross-entropy plus each active aux
head's times its weight (``loss``); evaluation on the held-out split; then, on
rank 0, ``last.pt`` (and ``best.pt`` when top-1 improved), ``metrics.jsonl``
and at the end ``curves.png``.

Every training step runs every aux head and puts it in the loss (a weight of 0
included: its gradients are zero, not missing), so DDP never waits for a
parameter that took no part ("Expected to have finished reduction").

Exact resume: the order of the images and the augmentations are drawn from
generators seeded by (seed, epoch, step, rank), and the global generators
(dropout) are restored from the checkpoint, so epoch k+1 after a resume from
epoch k is the epoch an uninterrupted run would have had.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from compiler import ir
from compiler.training import TrainingError, checkpoint, data, distributed, evaluate

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3, "adadelta": 1.0}
SCHEDULES = ("none", "step", "cosine", "onecycle")


@dataclass
class Config:
    """The options of ``netc train`` (and the keys of its ``--config`` TOML file)."""

    data: str
    out: str
    epochs: int = 1
    batch_size: int = 64  # global: divided among the processes of a DDP job
    test_batch_size: int = 256
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR for the optimizer
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    step_size: int = 1
    gamma: float = 0.7
    label_smoothing: float = 0.0
    hflip: bool = False
    crop_padding: int = 0
    normalize: str | None = None
    seed: int = 0
    workers: int = 0
    resume: str | None = None
    sync_bn: bool = False
    channels_last: bool = False
    device: str = "auto"
    threads: int | None = None  # torch intra-op threads; None: torch's default
    plot: bool = True

    def record(self) -> dict[str, Any]:
        """The options as plain values, for the checkpoint."""
        return asdict(self)


def loss(
    outputs, target: torch.Tensor, weights: dict[str, float], label_smoothing: float = 0.0
) -> torch.Tensor:
    """Main cross-entropy plus sum(weight x aux cross-entropy) over the aux heads."""
    if isinstance(outputs, torch.Tensor):
        return F.cross_entropy(outputs, target, label_smoothing=label_smoothing)
    total = F.cross_entropy(outputs.main, target, label_smoothing=label_smoothing)
    for name, weight in weights.items():
        aux = getattr(outputs, name)
        total = total + weight * F.cross_entropy(aux, target, label_smoothing=label_smoothing)
    return total


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    wd = config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)


def make_schedule(config: Config, optimizer, steps_per_epoch: int):
    """The learning-rate schedule and whether it steps per batch (else per epoch)."""
    s = torch.optim.lr_scheduler
    if config.schedule == "step":
        return s.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma), False
    if config.schedule == "cosine":
        return s.CosineAnnealingLR(optimizer, T_max=config.epochs), False
    if config.schedule == "onecycle":
        lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
        total = config.epochs * steps_per_epoch
        return s.OneCycleLR(optimizer, max_lr=lr, total_steps=total), True
    return None, False


def check(config: Config) -> None:
    """Option values no flag type catches (a TOML file sets them too)."""
    if config.optimizer not in OPTIMIZERS:
        raise TrainingError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{config.optimizer}'"
        )
    if config.schedule not in SCHEDULES:
        raise TrainingError(
            f"schedule must be one of {', '.join(SCHEDULES)}, got '{config.schedule}'"
        )
    for name in ("epochs", "batch_size", "test_batch_size", "step_size"):
        if not isinstance(getattr(config, name), int) or getattr(config, name) < 1:
            raise TrainingError(f"{name.replace('_', '-')} must be a positive integer")
    if config.crop_padding < 0 or config.workers < 0:
        raise TrainingError("crop-padding and workers must not be negative")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise TrainingError("label-smoothing must be in [0, 1)")
    if config.lr is not None and not config.lr > 0:
        raise TrainingError("lr must be positive")


class _Batches(torch.utils.data.Dataset):
    """Batch i of the current epoch, prepared and augmented (a DataLoader item)."""

    def __init__(self, x, y, pipeline: data.Pipeline, seed: int, rank: int):
        self.x, self.y, self.pipeline, self.seed, self.rank = x, y, pipeline, seed, rank
        self.epoch, self.batches = 0, list[list[int]]()

    def start(self, epoch: int, batches: list[list[int]]) -> None:
        self.epoch, self.batches = epoch, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        index = torch.tensor(self.batches[i])
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.epoch * 10_007 + i * 101 + self.rank) % (2**63)
        )
        return self.pipeline(self.x[index], g), self.y[index]


class Reporter:
    """Rank 0's output: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, enabled: bool):
        from rich.console import Console

        self.enabled = enabled
        self.console = Console(highlight=False)
        self.progress: Any = None  # a rich Progress while an epoch runs on a terminal

    def line(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False, soft_wrap=True)

    def start(self, epoch: int, epochs: int, steps: int) -> None:
        if not (self.enabled and self.console.is_terminal):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.1%}  "
                "{task.fields[speed]:.0f} img/s"
            ),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, loss=0.0, acc=0.0, speed=0.0)

    def step(self, done: int, loss: float, acc: float, speed: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, loss=loss, acc=acc, speed=speed)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def tune_allocator() -> bool:
    """Keep freed large blocks in glibc's heap: by default every free of a block over
    the mmap threshold goes back to the OS, and the next step faults it in again
    (bench/train_speed.py measures the page faults). Returns whether it applied."""
    if not sys.platform.startswith("linux") or os.environ.get("NETC_NO_MALLOPT"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    big = 1 << 30  # 1 GiB: blocks up to this come from the heap, kept after free
    return bool(libc.mallopt(m_mmap_threshold, big)) and bool(libc.mallopt(m_trim_threshold, big))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plot(metrics: list[dict[str, Any]], path: Path) -> None:
    """Loss and top-1 accuracy per epoch, training and test, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train")
    left.plot(epochs, [m["test_loss"] for m in metrics], "o-", label="test")
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    right.plot(epochs, [m["train_acc"] for m in metrics], "o-", label="train")
    right.plot(epochs, [m["test_acc"] for m in metrics], "o-", label="test (top-1)")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _read_metrics(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [m for m in lines if m["epoch"] <= upto]


def train(net: ir.Network, config: Config, spec_text: str = "") -> list[dict[str, Any]]:
    """Train ``net``'s runtime module as ``config`` says; the metrics, one dict per epoch."""
    from compiler.backends.runtime import build_module, count_parameters

    check(config)
    tune_allocator()
    ctx = distributed.setup(config.device)
    try:
        return _train(net, config, spec_text, ctx, build_module, count_parameters)
    finally:
        distributed.teardown(ctx)


def _train(
    net: ir.Network,
    config: Config,
    spec_text: str,
    ctx: distributed.Context,
    build_module: Any,
    count_parameters: Any,
) -> list[dict[str, Any]]:
    report = Reporter(ctx.main)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.sync_bn and ctx.world > 1 and ctx.device.type != "cuda":
        raise TrainingError("--sync-bn needs CUDA: torch's SyncBatchNorm only works on GPU modules")
    out = Path(config.out)
    if ctx.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrainingError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    if config.batch_size % ctx.world:
        raise TrainingError(
            f"batch-size {config.batch_size} is the global batch: it must divide among "
            f"{ctx.world} processes"
        )
    resumed = checkpoint.load(config.resume) if config.resume else None
    if resumed is not None and resumed["network"] != net.name:
        raise TrainingError(
            f"checkpoint {config.resume} is of network {resumed['network']}, not {net.name}"
        )

    outputs = net.out_shape[0] if len(net.out_shape) == 1 else 0
    if not outputs:
        raise TrainingError(f"{net.name} outputs {net.out_shape}: training needs class scores")
    dataset = data.load(config.data, net.input_shape, outputs)
    norm = data.parse_normalize(config.normalize, net.input_shape[0])
    pipeline = data.Pipeline(
        net.input_shape, dataset.scale, config.hflip, config.crop_padding, norm
    )
    plain = data.Pipeline(net.input_shape, dataset.scale, normalize=norm)

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = build_module(net).to(ctx.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights = dict(model.aux_weights)
    optimizer = make_optimizer(config, model.parameters())
    per_rank = config.batch_size // ctx.world
    sampler: torch.utils.data.DistributedSampler[int] = torch.utils.data.DistributedSampler(
        cast(Any, range(len(dataset.train_y))),  # only its length is used
        num_replicas=ctx.world,
        rank=ctx.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    steps = len(sampler) // per_rank
    if steps == 0:
        raise TrainingError(
            f"batch-size {config.batch_size} is larger than the {len(dataset.train_y)} training images"
        )
    schedule, per_step = make_schedule(config, optimizer, steps)
    start, best_acc, best_epoch = 1, -1.0, 0
    metrics_path = out / "metrics.jsonl"
    metrics: list[dict[str, Any]] = []
    if resumed is not None:
        try:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            if schedule is not None and resumed.get("scheduler") is not None:
                schedule.load_state_dict(resumed["scheduler"])
        except (RuntimeError, KeyError, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise TrainingError(
                f"checkpoint {config.resume} does not fit this run: {first}"
            ) from None
        ranks = resumed.get("rng_ranks")
        checkpoint.set_rng_state(
            ranks[ctx.rank] if ranks and len(ranks) == ctx.world else resumed["rng"]
        )
        start = resumed["epoch"] + 1
        best_acc, best_epoch = resumed.get("best_acc", -1.0), resumed.get("best_epoch", 0)
        if ctx.main:
            metrics = _read_metrics(metrics_path, resumed["epoch"])
    else:
        import random

        import numpy as np

        torch.manual_seed(config.seed + ctx.rank)
        np.random.seed((config.seed + ctx.rank) % 2**32)
        random.seed(config.seed + ctx.rank)

    train_model: nn.Module = model
    if ctx.world > 1:
        if config.sync_bn:
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=ids)
    batches = _Batches(dataset.train_x, dataset.train_y, pipeline, config.seed, ctx.rank)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=config.workers)

    heads = ", ".join(f"{n} x{w:g}" for n, w in weights.items())
    report.line(
        f"training {net.name} ({ir.total_params(net.body):,} parameters"
        f"{f', {count_parameters(model):,} with aux ' + heads if heads else ''}) on {dataset.name}: {len(dataset.train_y)} train / "
        f"{len(dataset.test_y)} test images as {'x'.join(map(str, net.input_shape))}, "
        f"batch {config.batch_size}, {ctx.world} process{'es' if ctx.world > 1 else ''} on {ctx.device.type}"
    )
    if start > 1:
        report.line(f"resumed from {config.resume} after epoch {start - 1}")
    for epoch in range(start, config.epochs + 1):
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches.start(epoch, [order[i * per_rank : (i + 1) * per_rank] for i in range(steps)])
        train_model.train()
        report.start(epoch, config.epochs, steps)
        sums = torch.zeros(3, dtype=torch.float64)  # loss x images, correct, images
        began = time.perf_counter()
        try:
            for i, (x, y) in enumerate(loader):
                x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
                if config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                result = train_model(x)
                value = loss(result, y, weights, config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                if per_step:
                    schedule.step()
                main = result if isinstance(result, torch.Tensor) else result.main
                correct = (main.detach().argmax(1) == y).sum()
                sums += torch.tensor(
                    [value.item() * len(y), correct.item(), len(y)], dtype=torch.float64
                )
                seen = sums[2].item() * ctx.world
                report.step(
                    i + 1,
                    sums[0].item() / sums[2].item(),
                    sums[1].item() / sums[2].item(),
                    seen / (time.perf_counter() - began),
                )
        finally:
            report.stop()
        seconds = time.perf_counter() - began
        if ctx.world > 1:
            import torch.distributed as dist

            dist.all_reduce(sums)
        if not math.isfinite(sums[0].item()):
            raise TrainingError(f"epoch {epoch}: the loss is not finite (lower --lr?)")
        lr = optimizer.param_groups[0]["lr"]
        if schedule is not None and not per_step:
            schedule.step()
        if ctx.world > 1:  # each rank's batch-norm statistics saw its own last batch
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
        test = evaluate.evaluate(
            model,
            dataset.test_x,
            dataset.test_y,
            plain,
            outputs,
            config.test_batch_size,
            ctx.device,
            ctx.rank,
            ctx.world,
        )
        row = {
            "epoch": epoch,
            "train_loss": sums[0].item() / sums[2].item(),
            "train_acc": sums[1].item() / sums[2].item(),
            "test_loss": test.loss,
            "test_acc": test.top1,
            "test_top5": test.top5,
            "lr": lr,
            "images_per_s": sums[2].item() / seconds,
            "seconds": seconds,
        }
        improved = test.top1 > best_acc
        if improved:
            best_acc, best_epoch = test.top1, epoch
        rng = checkpoint.rng_state()
        rng_ranks = [rng]
        if ctx.world > 1:
            import torch.distributed as dist

            rng_ranks = [None] * ctx.world  # type: ignore[list-item]  # filled by all_gather
            dist.all_gather_object(rng_ranks, rng)
        if ctx.main:
            metrics.append(row)
            state = {
                "format": checkpoint.FORMAT,
                "netc": checkpoint.netc_version(),
                "network": net.name,
                "spec": {"path": net.source, "text": spec_text},
                "params": dict(net.values),
                "input_shape": list(net.input_shape),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": schedule.state_dict() if schedule is not None else None,
                "epoch": epoch,
                "best_acc": best_acc,
                "best_epoch": best_epoch,
                "rng": rng,
                "rng_ranks": rng_ranks,
                "world": ctx.world,
                "config": config.record(),
                "classes": list(dataset.classes),
            }
            checkpoint.save(state, out / "last.pt")
            if improved:
                checkpoint.save(state, out / "best.pt")
            _atomic_text(metrics_path, "".join(json.dumps(m) + "\n" for m in metrics))
            k = test.top_k
            report.line(
                f"epoch {epoch}/{config.epochs}: train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.2%} | test loss {test.loss:.4f} top-1 {test.top1:.2%} "
                f"top-{k} {test.top5:.2%} | {row['images_per_s']:.0f} img/s, {seconds:.1f} s"
                f"{' (best)' if improved else ''}"
            )
    if ctx.main and metrics:
        if config.plot:
            plot(metrics, out / "curves.png")
        report.line(
            f"best test top-1 {best_acc:.2%} at epoch {best_epoch}; wrote {out}/last.pt, best.pt, "
            f"metrics.jsonl{', curves.png' if config.plot else ''}"
        )
    return metrics
