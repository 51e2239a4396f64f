"""A generation run's result and counts (:class:`GenerateResult`, :class:`Tracker`): where each batch's numbers
go, the ``progress`` callback (:class:`~console.progress.Progress` events) and the status file."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from console.files.validate import ValidationReport
from console.generation.engine import gpu_memory_mb
from console.generation.scratch import TypeVectors
from console.generation.status import StatusFile
from console.progress import Progress


@dataclass
class GenerateResult:
    report: ValidationReport
    files: list[Path]
    outputs: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # items written per type
    embedded: int = 0  # vectors computed in this run
    reused: int = 0  # vectors taken from the checkpoint
    rejects_path: Path | None = None
    messages: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


class Tracker:
    """A run's counts and where they go: the `progress` callback (Progress events) and the status file."""

    def __init__(self, result: GenerateResult, status: StatusFile, progress: Callable[[Progress], None] | None,
                 counts: dict[str, int]):
        self.result, self.status, self.progress = result, status, progress
        self.total = sum(counts.values())
        self.done = 0
        self.t0 = time.monotonic()
        status.update(total=self.total, files={t: {"done": 0, "total": n} for t, n in counts.items()})

    def say(self, message: str) -> None:
        """A message for the user: kept in the result, sent as an event, shown in the status file."""
        self.result.messages.append(message)
        if self.progress:
            self.progress(Progress(done=self.status.state["done"], total=self.status.state["total"], message=message))
        self.status.update(message=message)

    def start(self, states: Iterable[TypeVectors], batch_size: int) -> None:
        """Embedding begins: vectors reused so far count as done (not towards the rate)."""
        states = list(states)
        self.done = self.result.reused
        self.t0 = time.monotonic()
        for st in states:
            self.status.state["files"][st.type_] = {"done": st.done, "total": st.count}
        self.event(states[0], batch_size)

    def batch(self, st: TypeVectors, embedded: int, covered: int, batch_size: int, messages=()) -> None:
        """A batch is stored: `embedded` texts, `covered` records (a text may serve several)."""
        for message in messages:
            self.event(st, batch_size, gpu_memory_mb(), message)
        self.result.embedded += embedded
        st.done += covered
        self.done += covered
        self.event(st, batch_size, gpu_memory_mb())

    def event(self, st: TypeVectors, batch_size: int, gpu_mem_mb: float | None = None,
              message: str | None = None) -> None:
        elapsed = time.monotonic() - self.t0
        embedded = self.result.embedded
        rate = embedded / elapsed if elapsed > 0 and embedded else None
        eta = (self.total - self.done) / rate if rate else None
        if message:
            self.result.messages.append(message)
        self.status.state["files"][st.type_] = {"done": st.done, "total": st.count}
        self.status.update(done=self.done, rate=rate, eta_s=eta, batch_size=batch_size, gpu_mem_mb=gpu_mem_mb,
                           **({"message": message} if message else {}))
        if self.progress:
            self.progress(Progress(done=self.done, total=self.total, label=st.type_, rate=rate, eta_s=eta,
                                   batch_size=batch_size, gpu_mem_mb=gpu_mem_mb, message=message))
