"""``/metrics`` in Prometheus's text format (version 0.0.4), written by hand.

Two kinds of numbers: per-pool gauges read from the manager at scrape time (capacity,
allocation, available, volume count, thin provisioned/data/metadata fill), and
per-operation counters kept by the service (calls, failures, a duration histogram).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from kvmpool.errors import KvmpoolError
from kvmpool.manager import Manager

BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Operations:
    """Counts, failures and durations per operation (``pool.start``, ``volume.clone``...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.sums: dict[str, float] = {}
        self.buckets: dict[str, list[int]] = {}

    def observe(self, op: str, seconds: float, failed: bool) -> None:
        with self._lock:
            self.calls[op] = self.calls.get(op, 0) + 1
            self.failures[op] = self.failures.get(op, 0) + (1 if failed else 0)
            self.sums[op] = self.sums.get(op, 0.0) + seconds
            counts = self.buckets.setdefault(op, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1

    def lines(self) -> Iterable[str]:
        with self._lock:
            ops = sorted(self.calls)
            yield "# HELP kvmpool_operations_total Operations asked of kvmpool, by operation."
            yield "# TYPE kvmpool_operations_total counter"
            for op in ops:
                yield f'kvmpool_operations_total{{op="{_label(op)}"}} {self.calls[op]}'
            yield "# HELP kvmpool_operation_failures_total Operations that failed."
            yield "# TYPE kvmpool_operation_failures_total counter"
            for op in ops:
                yield f'kvmpool_operation_failures_total{{op="{_label(op)}"}} {self.failures[op]}'
            yield "# HELP kvmpool_operation_duration_seconds How long operations took."
            yield "# TYPE kvmpool_operation_duration_seconds histogram"
            for op in ops:
                lab = _label(op)
                for bound, count in zip(BUCKETS, self.buckets[op], strict=True):
                    yield (f'kvmpool_operation_duration_seconds_bucket{{op="{lab}",'
                           f'le="{bound}"}} {count}')
                yield (f'kvmpool_operation_duration_seconds_bucket{{op="{lab}",le="+Inf"}} '
                       f"{self.calls[op]}")
                yield f'kvmpool_operation_duration_seconds_sum{{op="{lab}"}} {self.sums[op]:.6f}'
                yield f'kvmpool_operation_duration_seconds_count{{op="{lab}"}} {self.calls[op]}'


_POOL_GAUGES = (
    ("kvmpool_pool_active", "1 when the pool is active."),
    ("kvmpool_pool_capacity_bytes", "Pool capacity."),
    ("kvmpool_pool_allocation_bytes", "Bytes allocated in the pool."),
    ("kvmpool_pool_available_bytes", "Bytes still available in the pool."),
    ("kvmpool_pool_volumes", "Volumes in the pool."),
    ("kvmpool_pool_thin_provisioned_bytes", "Thin pools: bytes promised to thin volumes."),
    ("kvmpool_pool_thin_data_used_bytes", "Thin pools: bytes of the thin pool's data in use."),
    ("kvmpool_pool_thin_data_percent", "Thin pools: data fill, percent."),
    ("kvmpool_pool_thin_metadata_percent", "Thin pools: metadata fill, percent."),
)


def pool_lines(manager: Manager) -> Iterable[str]:
    """Per-pool gauges, read now (inactive pools report only ``kvmpool_pool_active 0``)."""
    values: dict[str, list[tuple[str, float]]] = {name: [] for name, _ in _POOL_GAUGES}
    failed = 0
    for rec in manager.records():
        labels = f'pool="{_label(rec.name)}",type="{_label(rec.current.type.value)}"'
        values["kvmpool_pool_active"].append((labels, 1 if rec.active else 0))
        if not rec.active:
            continue
        try:
            live = manager.live_def(rec)
            _, vols = manager.volumes(rec.name)
        except KvmpoolError:
            failed += 1
            continue
        values["kvmpool_pool_capacity_bytes"].append((labels, live.capacity))
        values["kvmpool_pool_allocation_bytes"].append((labels, live.allocation))
        values["kvmpool_pool_available_bytes"].append((labels, live.available))
        values["kvmpool_pool_volumes"].append((labels, len(vols)))
        if live.thin is not None:
            values["kvmpool_pool_thin_provisioned_bytes"].append(
                (labels, live.thin.provisioned))
            values["kvmpool_pool_thin_data_used_bytes"].append((labels, live.thin.data_used))
            values["kvmpool_pool_thin_data_percent"].append((labels, live.thin.data_percent))
            values["kvmpool_pool_thin_metadata_percent"].append(
                (labels, live.thin.metadata_percent))
    for name, help_text in _POOL_GAUGES:
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} gauge"
        for labels, value in values[name]:
            yield f"{name}{{{labels}}} {_number(value)}"
    yield "# HELP kvmpool_pool_scrape_errors Active pools whose sizes could not be read."
    yield "# TYPE kvmpool_pool_scrape_errors gauge"
    yield f"kvmpool_pool_scrape_errors {failed}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


def render(manager: Manager, ops: Operations, running_jobs: int) -> str:
    lines = list(pool_lines(manager))
    lines += list(ops.lines())
    lines += ["# HELP kvmpool_jobs_running Long operations running now.",
              "# TYPE kvmpool_jobs_running gauge", f"kvmpool_jobs_running {running_jobs}"]
    return "\n".join(lines) + "\n"
