"""A generation run's status file: the JSON the web console reads while a run goes on (format in docs/DESIGN.md),
rewritten atomically after each batch."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


class StatusFile:
    """The JSON status file for the web console, rewritten atomically (tmp + os.replace)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.state: dict = {"state": "running", "files": {}, "done": 0, "total": 0, "rate": None, "eta_s": None,
                            "batch_size": None, "gpu_mem_mb": None, "message": None, "outputs": [],
                            "pid": os.getpid(), "updated_at": None}

    def update(self, **values) -> None:
        self.state.update(values)
        if self.path is None:
            return
        self.state["updated_at"] = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.state, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, self.path)
