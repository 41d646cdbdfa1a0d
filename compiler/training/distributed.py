"""DDP plumbing: the process group a torchrun worker joins, and torchrun's launcher.

A process started by torchrun (``torchrun --nproc_per_node=2 -m compiler.training
SPEC ...``, or ``netc train --nproc 2``, which runs the same launcher in-process
through ``torch.distributed.run.main``) finds ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in its environment. It joins the
group with gloo on CPU and NCCL on CUDA; rank 0 alone prints, writes metrics
and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = CPU

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Context:
    """This process's place in the job: alone, or a rank of torchrun's group."""
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=torch.device("cuda" if cuda else "cpu"))
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    where = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, where)


def teardown(context: Context) -> None:
    if context.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            # Every rank leaves together: a rank that tears gloo down while rank 0 is
            # still writing the last checkpoint died with SIGABRT at exit ("terminate
            # called without an active exception"), failing the whole job.
            dist.barrier()
            dist.destroy_process_group()


def launch(
    args: list[str],
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
) -> None:
    """Run ``python -m compiler.training ARGS`` under torchrun's launcher, ``nproc``
    processes on this node (of ``nnodes``); returns when they all have finished."""
    from torch.distributed import run

    # torchrun warns when it sets this itself; one thread per process is the point here.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    launcher = [f"--nproc_per_node={nproc}", f"--nnodes={nnodes}"]
    if nnodes == 1 and master_addr is None:
        launcher.append("--standalone")  # a free local port, no address to agree on
    else:
        launcher += [
            f"--node_rank={node_rank}",
            f"--master_addr={master_addr or '127.0.0.1'}",
            f"--master_port={master_port or 29500}",
        ]
    run.main([*launcher, "--module", "compiler.training", *args])
