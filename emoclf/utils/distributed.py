"""torchrun support: process group from the environment, sharding, and gathering results."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress."""
        return self.rank == 0


def from_env() -> DistInfo:
    """Read torchrun's RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE (defaults: one process)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1))
    return DistInfo(rank=int(env.get("RANK", 0)), world=world, local_rank=int(env.get("LOCAL_RANK", 0)),
                    local_world=int(env.get("LOCAL_WORLD_SIZE", world)))


def init(info: DistInfo, device: torch.device) -> None:
    """Join the process group: NCCL on CUDA, gloo on CPU."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=info.rank, world_size=info.world, timeout=datetime.timedelta(minutes=30))


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when alone)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shard(order: np.ndarray, info: DistInfo) -> np.ndarray:
    """This rank's share of an epoch order, padded by wrapping so every rank takes the same number of steps."""
    if not info.enabled:
        return order
    total = -(-len(order) // info.world) * info.world
    padded = np.concatenate([order, order[: total - len(order)]]) if total > len(order) else order
    return padded[info.rank::info.world]


def contiguous_range(n: int, info: DistInfo) -> slice:
    """This rank's contiguous slice of ``n`` items (for evaluation; no padding, no overlap)."""
    per = -(-n // info.world)
    return slice(min(info.rank * per, n), min((info.rank + 1) * per, n))


def gather_rows(local: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's rows in rank order, on every rank."""
    if not info.enabled:
        return local
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    count = torch.tensor([local.shape[0]], device=dev)
    counts = [torch.zeros_like(count) for _ in range(info.world)]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=dev)
    padded[: local.shape[0]] = local.to(dev)
    parts = [torch.zeros_like(padded) for _ in range(info.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(c.item())] for p, c in zip(parts, counts)]).cpu()


def broadcast_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank.

    Each rank has updated its own since DDP last sent rank 0's at a forward pass; every rank must score the model
    that rank 0 saves.
    """
    if not info.enabled:
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


def all_sum(values: list, info: DistInfo) -> list:
    """Element-wise sum of a list of numbers over every rank."""
    if not info.enabled:
        return values
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_max(value: float, info: DistInfo) -> float:
    """Largest value over every rank (so all processes follow the same schedule)."""
    if not info.enabled:
        return value
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([value], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())
