"""Training on several processes: torchrun's environment, the process group, backend and
device of each worker.

torchrun starts one worker process per device and tells each who it is through
environment variables: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` and, for restarts, ``TORCHELASTIC_*``. `init` reads them
and joins the process group; `soartlab.training.Trainer` then finds the group through
``torch.distributed`` and trains with DistributedDataParallel.

Backends: ``gloo`` for CPU workers, ``nccl`` for one GPU per worker. ``"auto"`` picks
nccl when the workers train on CUDA and gloo otherwise; ``SOARTLAB_DIST_BACKEND``
overrides ``"auto"``.

Restarts (``torchrun --max-restarts``): torchrun shares its rendezvous TCPStore with the
workers unless it is started with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``. The store
keeps the keys of the failed attempt, and a restarted gloo group then connects to the
dead workers' addresses and fails (pytorch issue 135712; reproduced with torch 2.13).
The variable is read by the torchrun agent, not by the workers, so setting it here would
change nothing. Instead, on a single machine `init` keeps each attempt's keys apart
under a prefix named for ``TORCHELASTIC_RESTART_COUNT`` (one agent restarts all workers
together, so they agree on it); across machines the counts can differ (pytorch issue
108158), so there `init` returns a warning asking for the variable to be set for
torchrun on every machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from soartlab.errors import SoartLabError

BACKENDS = ("auto", "gloo", "nccl")
BACKEND_ENV = "SOARTLAB_DIST_BACKEND"
SHARE_STORE_ENV = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
DEFAULT_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class WorkerEnv:
    """What the launcher told this worker about itself."""

    rank: int  # global rank, 0 .. world_size-1
    world_size: int  # workers in the whole job
    local_rank: int  # rank on this machine; picks the GPU
    local_world_size: int  # workers on this machine
    restart_count: int = 0  # torchrun restarts of this worker group so far
    max_restarts: int = 0
    agent_store: bool = False  # torchrun shares its rendezvous TCPStore with the workers

    @property
    def single_node(self) -> bool:
        return self.local_world_size == self.world_size


@dataclass(frozen=True)
class DistContext:
    """The joined process group, as this worker sees it."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "gloo" | "nccl"
    device: torch.device  # where this worker trains
    warnings: list[str] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None or text == "":
        if default is None:
            raise SoartLabError(
                f"{name} is not set; start distributed training with torchrun, "
                f"e.g. torchrun --nproc_per_node=2 -m soartlab train ..."
            )
        return default
    try:
        return int(text)
    except ValueError:
        raise SoartLabError(f"{name} must be an integer; got {text!r}.") from None


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """True when a launcher started this process as one of several workers (WORLD_SIZE > 1)."""
    environ = os.environ if environ is None else environ
    return _env_int(environ, "WORLD_SIZE", 1) > 1


def worker_env(environ: Mapping[str, str] | None = None) -> WorkerEnv:
    """Read RANK, WORLD_SIZE, LOCAL_RANK, ... as torchrun sets them."""
    environ = os.environ if environ is None else environ
    world_size = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0 if world_size == 1 else None)
    local_rank = _env_int(environ, "LOCAL_RANK", rank)
    local_world_size = _env_int(environ, "LOCAL_WORLD_SIZE", world_size)
    if not 0 <= rank < world_size:
        raise SoartLabError(f"RANK must be from 0 to WORLD_SIZE-1 ({world_size - 1}); got {rank}.")
    return WorkerEnv(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        local_world_size=local_world_size,
        restart_count=_env_int(environ, "TORCHELASTIC_RESTART_COUNT", 0),
        max_restarts=_env_int(environ, "TORCHELASTIC_MAX_RESTARTS", 0),
        agent_store=environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
    )


def _wants_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    if device == "cuda" and not torch.cuda.is_available():
        raise SoartLabError("device 'cuda' was asked for but no CUDA GPU is available.")
    return torch.cuda.is_available()


def choose_backend(requested: str | None = None, device: str = "auto") -> str:
    """The process-group backend: `requested`, else $SOARTLAB_DIST_BACKEND, else "auto"
    (nccl when the workers train on CUDA, gloo otherwise)."""
    name = (requested or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if name not in BACKENDS:
        raise SoartLabError(
            f"backend must be one of {', '.join(BACKENDS)}; got {name!r} "
            f"(from {'--backend' if requested else BACKEND_ENV})."
        )
    cuda = _wants_cuda(device)
    if name == "auto":
        return "nccl" if cuda and dist.is_nccl_available() else "gloo"
    if name == "nccl":
        if not cuda:
            raise SoartLabError(
                "backend 'nccl' needs the workers on CUDA GPUs; use --backend gloo "
                "for CPU training."
            )
        if not dist.is_nccl_available():
            raise SoartLabError("backend 'nccl' is not available in this PyTorch build.")
    return name


def local_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """This worker's device: GPU number LOCAL_RANK when training on CUDA, else the CPU."""
    if not _wants_cuda(device):
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise SoartLabError(
            f"LOCAL_RANK is {local_rank} but only {count} GPU(s) are visible; start at most "
            f"{count} workers per machine (torchrun --nproc_per_node={count})."
        )
    return torch.device("cuda", local_rank)


def _attempt_store(env: WorkerEnv, timeout: timedelta) -> dist.Store:
    """A client of torchrun's shared store, with this restart attempt's keys apart."""
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        env.world_size,
        is_master=False,
        timeout=timeout,
    )
    return dist.PrefixStore(f"soartlab/attempt-{env.restart_count}", store)


def init(
    backend: str | None = "auto",
    device: str = "auto",
    *,
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> DistContext:
    """Join the process group as torchrun's environment describes (or as given).

    init_method, rank, world_size: for launchers other than torchrun (e.g. a test with
    ``file://`` and torch.multiprocessing); by default everything comes from the
    environment (``env://``).
    """
    env = worker_env()
    if rank is not None or world_size is not None:
        world = world_size if world_size is not None else env.world_size
        own = rank if rank is not None else env.rank
        env = WorkerEnv(rank=own, world_size=world, local_rank=own, local_world_size=world)
    chosen = choose_backend(backend, device)
    here = local_device(device, env.local_rank)
    if here.type == "cuda":
        torch.cuda.set_device(here)
    warnings: list[str] = []
    kwargs: dict = {"backend": chosen, "rank": env.rank, "world_size": env.world_size}
    if init_method is not None:
        kwargs["init_method"] = init_method
    elif env.agent_store and env.single_node:
        kwargs["store"] = _attempt_store(env, timeout)
    elif env.agent_store and env.max_restarts > 0:
        warnings.append(
            f"torchrun shares its rendezvous store with the workers, so a restarted group "
            f"may fail to reconnect (pytorch issue 135712); start torchrun with "
            f"{SHARE_STORE_ENV}=1 on every machine."
        )
    dist.init_process_group(**kwargs, timeout=timeout)
    return DistContext(env.rank, env.world_size, env.local_rank, chosen, here, warnings)


def teardown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(
    backend: str | None = "auto", device: str = "auto", **kwargs
) -> Iterator[DistContext]:
    """`init` on entry, `teardown` on exit, also on error."""
    context = init(backend, device, **kwargs)
    try:
        yield context
    finally:
        teardown()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the joined group; (0, 1) in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0, and in a single process: the worker that prints and writes files."""
    return rank_world()[0] == 0


def barrier() -> None:
    """Wait for every worker (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_bytes(data: bytes | None, src: int = 0, device: torch.device | None = None) -> bytes:
    """Send `data` from rank `src` to every rank; returns it everywhere.

    device: where the collective runs (the worker's GPU under nccl, the CPU under gloo).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return data or b""
    device = device or torch.device("cpu")
    payload = data or b""
    size = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(size, src)
    if dist.get_rank() == src and payload:
        buffer = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    else:
        buffer = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    if buffer.numel():
        dist.broadcast(buffer, src)
    return buffer.cpu().numpy().tobytes()


def all_gather_rows(rows, device: torch.device | None = None):
    """Every rank's NumPy ``rows`` (k_r, ...) concatenated in rank order, on every rank;
    the row counts may differ, the other dimensions and the dtype may not. ``rows`` itself
    in a single process. device: where the collective runs (as in `broadcast_bytes`)."""
    import numpy as np

    if not (dist.is_available() and dist.is_initialized()):
        return rows
    device = device or torch.device("cpu")
    world = dist.get_world_size()
    mine = torch.from_numpy(np.ascontiguousarray(rows)).to(device)
    count = torch.tensor([mine.shape[0]], dtype=torch.int64, device=device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = mine.new_zeros((max(sizes), *mine.shape[1:]))
    padded[: mine.shape[0]] = mine
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)]).cpu().numpy()
