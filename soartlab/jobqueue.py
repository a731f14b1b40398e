"""Fair sharing of the machine between training jobs: a queue with a concurrency limit.

One server process trains for every user of the app, in threads. Without a limit, four
trainings on two cores ran at 60 % of their fair share: each thread's torch ops opened as
many OpenMP threads as there are cores, and they fought. Here jobs wait in a queue per
device pool ("cpu", "cuda") until a slot is free, and each running CPU job uses
``cores // running`` intra-op threads, re-read at every training step (the trainer's
progress callback runs in the job's own thread, and torch's thread count is per calling
thread under OpenMP), so a job alone uses the whole machine and jobs together share it.

Limits: ``cpu`` as many jobs as cores (each keeps one thread at least); ``cuda`` one job
per GPU. ``$SOARTLAB_MAX_JOBS`` caps the CPU pool. This module knows nothing of training
or of Streamlit: a job is a callable started in a thread of its own.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_JOBS_ENV = "SOARTLAB_MAX_JOBS"


def machine_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_limits(cores: int | None = None, gpus: int | None = None) -> dict[str, int]:
    """Jobs at once per pool: ``{"cpu": cores (or $SOARTLAB_MAX_JOBS), "cuda": GPUs}``."""
    cores = machine_cores() if cores is None else cores
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cpu = cores
    configured = os.environ.get(MAX_JOBS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        cpu = int(configured)
    return {"cpu": max(1, cpu), "cuda": max(0, gpus)}


@dataclass(eq=False)
class Ticket:
    """One job's place: waiting (``position`` ≥ 1) or running (0), then done."""

    pool: str
    start: Callable[[], None]  # called once, when a slot is free (starts the job's thread)
    number: int = 0
    state: str = "waiting"  # waiting | running | done
    cancelled: bool = field(default=False)


class JobQueue:
    """Jobs per pool, at most ``limits[pool]`` running; first come, first served.

    Thread-safe. A job calls `done` when it ends (in a ``finally``), which starts the
    next waiting job of its pool.
    """

    def __init__(
        self,
        limits: dict[str, int] | None = None,
        cores: int | None = None,
        load: Callable[[], float] | None = None,
    ) -> None:
        self.cores = machine_cores() if cores is None else max(1, cores)
        # the 1-minute load average: what other programs on the machine keep busy
        self._load = load or (lambda: os.getloadavg()[0])
        self.limits = dict(limits) if limits is not None else default_limits(self.cores)
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Ticket]] = {}
        self._running: dict[str, list[Ticket]] = {}
        self._numbers = itertools.count(1)

    def submit(self, pool: str, start: Callable[[], None]) -> Ticket:
        """Queue a job for ``pool``; it starts now when a slot is free. `ValueError` for
        a pool without slots (a CUDA job on a machine without a GPU)."""
        if self.limits.get(pool, 0) < 1:
            raise ValueError(f"No slots for {pool!r} jobs on this machine (limits {self.limits}).")
        ticket = Ticket(pool, start, next(self._numbers))
        with self._lock:
            self._waiting.setdefault(pool, []).append(ticket)
            ready = self._take_ready(pool)
        for job in ready:
            job.start()
        return ticket

    def done(self, ticket: Ticket) -> None:
        """The job of ``ticket`` ended (or never started): free its slot, start the next."""
        with self._lock:
            for group in (self._running, self._waiting):
                if ticket in group.get(ticket.pool, []):
                    group[ticket.pool].remove(ticket)
            ticket.state = "done"
            ready = self._take_ready(ticket.pool)
        for job in ready:
            job.start()

    def cancel(self, ticket: Ticket) -> bool:
        """Take a waiting job out of the queue; False when it already started."""
        with self._lock:
            if ticket.state != "waiting":
                return False
            self._waiting[ticket.pool].remove(ticket)
            ticket.state = "done"
            ticket.cancelled = True
            return True

    def position(self, ticket: Ticket) -> int:
        """1 for the next job to start, 2 for the one after, …; 0 once it runs or ended."""
        with self._lock:
            waiting = self._waiting.get(ticket.pool, [])
            return waiting.index(ticket) + 1 if ticket in waiting else 0

    def running(self, pool: str = "cpu") -> int:
        with self._lock:
            return len(self._running.get(pool, []))

    def threads(self, pool: str = "cpu") -> int:
        """Intra-op threads a running job of ``pool`` should use now: its share of the
        cores, and no more than the cores other programs leave free (load average less
        these jobs' own threads). On a machine loaded by others, OpenMP threads that wait
        for each other ran a training 3-6x slower with 2 threads than with 1 (BENCHMARKS.md
        section 9); the count is re-read at every step, so it follows the load."""
        running = max(1, self.running(pool))
        share = max(1, self.cores // running)
        others = max(0.0, self._load() - running * share)
        return max(1, min(share, int(self.cores - others)))

    def _take_ready(self, pool: str) -> list[Ticket]:
        """Move waiting tickets into free slots (lock held); the caller starts them."""
        waiting = self._waiting.setdefault(pool, [])
        running = self._running.setdefault(pool, [])
        ready = []
        while waiting and len(running) < self.limits.get(pool, 0):
            ticket = waiting.pop(0)
            ticket.state = "running"
            running.append(ticket)
            ready.append(ticket)
        return ready


_shared: JobQueue | None = None
_shared_lock = threading.Lock()


def shared_queue() -> JobQueue:
    """The process's one queue (made on first use, sized to this machine)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = JobQueue()
        return _shared
