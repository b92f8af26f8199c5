"""Data-parallel training on torch.distributed: one process per device, as `torchrun` (and SLURM / Kubernetes
launchers that set its variables) starts them.

`Ranks` is where this process stands: its rank, the world size, the device it trains on and whether it writes
(rank 0 alone logs, validates and saves). `Ranks.from_env()` reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK and
joins the process group (NCCL on CUDA, gloo on CPU, so two CPU processes test it here); without those variables
it is the single process of an ordinary run.

Gradients are averaged over the ranks after each rank's micro-batches (`average_gradients`: one all-reduce of
the flattened gradients per step, in fp32). This is the reduction DDP performs, without DDP's overlap of
communication with the backward pass: the trainer's stages compute their losses through several model entry
points (encoders, predictors, denoiser, refiners, a discriminator updated on alternate steps), which DDP's
reducer, prepared by one `forward` per iteration, does not follow. The averaged gradient is the gradient of the
mean of the ranks' losses, so W ranks with one micro-batch each equal one process accumulating W micro-batches.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: no process group (a single process)

    @property
    def writer(self) -> bool:
        """Whether this process logs, validates and writes state (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, requested: str) -> torch.device:
        """The device this rank trains on: `cuda` becomes this rank's local GPU."""
        if requested.startswith("cuda") and self.distributed:
            return torch.device("cuda", self.local_rank)
        return torch.device(requested)

    @classmethod
    def from_env(cls, device: str = "cpu", timeout_s: float = 1800.0) -> Ranks:
        """This process's place from torchrun's variables, joining the process group when WORLD_SIZE > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if not torch.distributed.is_initialized():
            if backend == "nccl":
                torch.cuda.set_device(local)
            timeout = dt.timedelta(seconds=timeout_s)
            torch.distributed.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
        return cls(rank=rank, world=world, local_rank=local, backend=backend)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def broadcast_state(module: torch.nn.Module, ranks: Ranks) -> None:
    """Every rank gets rank 0's parameters and buffers (the ranks start from one model even if their inits or
    loaded files differed)."""
    if not ranks.distributed:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(tensor.data, src=0)


def average_gradients(params: Sequence[Tensor], ranks: Ranks) -> None:
    """Replace each parameter's gradient by its mean over the ranks (a missing gradient counts as zero)."""
    if not ranks.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.detach().float().reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    flat /= ranks.world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def all_mean(values: dict[str, float], ranks: Ranks, device: torch.device | str = "cpu") -> dict[str, float]:
    """Metrics averaged over the ranks (what rank 0 logs); `device`: where the backend reduces (NCCL: the GPU)."""
    if not ranks.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return {k: float(v) / ranks.world for k, v in zip(keys, t.tolist(), strict=True)}
