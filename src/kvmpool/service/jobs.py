"""Long operations (clone, upload, download, wipe, build) as jobs with progress and cancel.

A job runs its work in a thread of its own. The work gets a ``Progress`` callback (the
same type the CLI's progress meter is, ``kvmpool.copy.Progress``); cancelling a job makes
that callback raise ``Cancelled`` at the next chunk, so the manager's copy loops stop and
the backends undo what they started, exactly as on Ctrl-C in the CLI. Work without a
progress hook (build) cannot be interrupted: cancelling it is refused.

Finished jobs are kept (the last ``KEEP``) so a page or script can read their outcome.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from kvmpool.copy import Progress
from kvmpool.errors import InvalidState, KvmpoolError, NotFound

KEEP = 100


class Cancelled(Exception):
    """Raised by a cancelled job's progress callback, inside the manager's copy loop."""


class State(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


Work = Callable[[Progress], object]  # returns the job's result (JSON-able)


@dataclass
class Job:
    id: str
    op: str
    target: str
    total: int
    cancellable: bool
    state: State = State.RUNNING
    done: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: object = None
    error: dict[str, object] | None = None
    cancel_requested: bool = False
    ended: threading.Event = field(default_factory=threading.Event)

    def progress(self, n: int) -> None:
        if self.cancel_requested:
            raise Cancelled(f"job {self.id} was cancelled")
        self.done += n

    def view(self) -> dict[str, object]:
        return {"id": self.id, "op": self.op, "target": self.target, "state": self.state.value,
                "bytes": self.done, "total": self.total, "cancellable": self.cancellable,
                "started": self.started, "finished": self.finished,
                "result": self.result, "error": self.error}


# Called when a job's work ends: (op, seconds, failed). Metrics hook in here.
Observer = Callable[[str, float, bool], None]


class Jobs:
    def __init__(self, observe: Observer | None = None) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._observe = observe or (lambda _op, _s, _f: None)

    def _new(self, op: str, target: str, total: int, cancellable: bool) -> Job:
        with self._lock:
            job = Job(f"{next(self._ids)}-{secrets.token_hex(4)}", op, target, total,
                      cancellable)
            self._jobs[job.id] = job
            self._trim()
        return job

    def start(self, op: str, target: str, total: int, work: Work, *,
              cancellable: bool = True, before: Callable[[Job], None] | None = None) -> Job:
        """Run ``work`` in a thread; the caller answers 202 with the job's id.
        ``before`` sees the job before its work starts (to learn its id)."""
        job = self._new(op, target, total, cancellable)
        if before is not None:
            before(job)
        threading.Thread(target=self.run, args=(job, work), name=f"job-{job.id}",
                         daemon=True).start()
        return job

    def run(self, job: Job, work: Work) -> None:
        t0 = time.monotonic()
        try:
            job.result = work(job.progress)
            job.state = State.SUCCEEDED
        except Cancelled:
            job.state = State.CANCELLED
        except KvmpoolError as err:
            job.state = State.CANCELLED if job.cancel_requested else State.FAILED
            job.error = {"error": err.message, "hint": err.hint, "status": err.http_status}
        except Exception as err:
            job.state = State.CANCELLED if job.cancel_requested else State.FAILED
            job.error = {"error": f"internal error: {type(err).__name__}: {err}",
                         "hint": None, "status": 500}
        finally:
            job.finished = time.time()
            job.ended.set()
            self._observe(job.op, time.monotonic() - t0, job.state is not State.SUCCEEDED)

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job '{job_id}'", hint="list jobs with GET /api/jobs")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            self._trim()
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state is not State.RUNNING:
            return job  # already over: cancelling is a no-op
        if not job.cancellable:
            raise InvalidState(f"job {job_id} ({job.op}) cannot be interrupted",
                               hint="it ends by itself; wait for it")
        job.cancel_requested = True
        return job

    def cancel_all(self, wait: float) -> None:
        """On shutdown: interrupt every running job and give them ``wait`` seconds."""
        deadline = time.monotonic() + wait
        for job in self.all():
            if job.state is State.RUNNING and job.cancellable:
                self.cancel(job.id)
        for job in self.all():
            if job.state is State.RUNNING:
                job.ended.wait(max(0.0, deadline - time.monotonic()))

    def running(self) -> int:
        return sum(1 for j in self.all() if j.state is State.RUNNING)

    def _trim(self) -> None:
        over = [j for j in self._jobs.values() if j.state is not State.RUNNING]
        for job in over[: max(0, len(over) - KEEP)]:
            del self._jobs[job.id]
