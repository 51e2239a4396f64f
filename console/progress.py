"""Progress events: what the engine and the generator report while they work.

Below both (`console.generation.engine` and `console.generation.generate` import it; it imports nothing of the console), so that
neither has to import the other for it. The CLI renders the events with tqdm; the status file of the web console
(`console.generation.status.StatusFile`) holds the same fields.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Progress:
    """One progress event: counts, rate (items/s), ETA, current batch size, GPU memory, and an optional message."""
    done: int = 0
    total: int = 0
    label: str = ""
    rate: float | None = None
    eta_s: float | None = None
    batch_size: int | None = None
    gpu_mem_mb: float | None = None
    message: str | None = None


def progress_dict(p: Progress) -> dict:
    return asdict(p)
