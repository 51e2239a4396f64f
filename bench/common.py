"""Shared helpers of the benchmarks: machine info, a stage run in its own process with its peak RSS, result files,
short and long texts from the demo recipes, and a private Neo4j server for a benchmark.

Every benchmark prints a one-line summary and writes ``bench/results/<name>.json`` with :func:`machine_info` in it.
Peak memory is measured per stage: the stage runs as a child process whose ``VmHWM`` (peak resident set of its own
address space, /proc/<pid>/status) is polled every 10 ms until it exits. Not ``ru_maxrss``: on Linux a child's
``ru_maxrss`` (from ``os.wait4`` or ``RUSAGE_CHILDREN``) also counts the address space it had before ``exec``,
i.e. the parent's RSS at fork time, which puts a floor of the parent's size under every small stage.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEMO_DATA = ROOT / "data" / "indonesian-recipes"
CATEGORIES = ("ayam", "ikan", "sapi", "tahu", "telur", "tempe")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from console.sinks.neo4j.settings import read_env_file  # noqa: E402


# -- machine and results ----------------------------------------------------------------------------------------
def machine_info() -> dict:
    """CPU count, memory, Python/torch/numpy/neo4j versions, GPU name if any: what a reader needs to compare."""
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "mem_total_gb": _mem_total_gb(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    for module in ("numpy", "torch", "sentence_transformers", "transformers", "neo4j", "umap", "sklearn",
                   "django", "pyarrow"):
        try:
            info[f"{module}_version"] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing package is just not reported
            info[f"{module}_version"] = None
    try:
        import torch

        info["cuda"] = torch.cuda.is_available()
        info["gpu"] = torch.cuda.get_device_name(0) if info["cuda"] else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # noqa: BLE001
        info["cuda"] = False
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def write_result(name: str, result: dict) -> Path:
    """Write ``bench/results/<name>.json`` (with the machine info and a UTC timestamp) atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"benchmark": name, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(), **result}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def summary(line: str) -> None:
    """The one-line summary every benchmark prints last (on stdout)."""
    print(line, flush=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- a stage in its own process ----------------------------------------------------------------------------------
@dataclass
class StageResult:
    seconds: float
    peak_rss_mb: float  # the child's VmHWM (see the module docstring)
    returncode: int
    stdout: str
    stderr: str
    ru_maxrss_mb: float = 0.0  # os.wait4's figure, for reference (includes the parent's size at fork)

    def check(self, what: str) -> "StageResult":
        if self.returncode != 0:
            raise RuntimeError(f"{what} failed ({self.returncode}):\n{self.stdout[-2000:]}\n{self.stderr[-4000:]}")
        return self

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "peak_rss_mb": round(self.peak_rss_mb, 1)}


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_stage(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
              timeout: float | None = None) -> StageResult:
    """Run ``cmd`` as a child process; its wall time and its peak RSS (VmHWM, polled every 10 ms). Output goes to
    temporary files (no pipe to fill up)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=out, stderr=err)
        deadline = None if timeout is None else started + timeout
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return StageResult(seconds, peak_kb / 1024, proc.returncode, out.read(), err.read(), usage.ru_maxrss / 1024)


def python_stage(code: str, *args: str, **kw) -> StageResult:
    """Run a snippet of Python (``sys.argv[1:]`` = args) from the project's root in a child process."""
    return run_stage([sys.executable, "-c", code, *args], cwd=ROOT, **kw)


# -- texts from the demo recipes -------------------------------------------------------------------------------
def demo_rows(name: str | None = None) -> Iterator[dict]:
    """Rows (Title, Ingredients, Steps, Loves, URL, category) of the demo recipe CSVs, file by file."""
    for category in [name] if name else CATEGORIES:
        with gzip.open(DEMO_DATA / f"{category}.csv.gz", "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                row["category"] = category
                yield row


def short_texts() -> list[str]:
    """One short text per demo recipe: its title and first ingredient line ("Ayam goreng. 1 ekor ayam")."""
    texts = []
    for row in demo_rows():
        first = next((p.strip() for p in (row["Ingredients"] or "").split("--") if p.strip()), "")
        title = " ".join((row["Title"] or "").split())
        texts.append(f"{title}. {first}" if first else title)
    return [t for t in texts if t.strip()]


def recipe_texts() -> list[str]:
    """Full recipe texts (title, ingredients, steps; ~750 characters on average)."""
    return [f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}. {r['Steps'].replace('--', ' ')}"
            for r in demo_rows()]


def write_short_records(path: Path, n: int, type_: str = "recipe") -> Path:
    """A JSON Lines export of ``n`` short records (the demo titles + first ingredient repeated with new ids),
    written streaming."""
    texts = short_texts()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            text = texts[i % len(texts)]
            if i >= len(texts):  # repeats get a round number so that texts stay distinct (no dedup shortcut)
                text = f"{text} #{i // len(texts)}"
            fh.write(json.dumps({"id": f"{type_}-{i}", "type": type_, "text": text}, ensure_ascii=False) + "\n")
    return path


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


# -- a private Neo4j for a benchmark ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def empty_graph(driver, database: str | None = None) -> None:
    """Delete every node of a bench server, its vector indexes first: deleting a million indexed vectors one HNSW
    removal at a time kept Neo4j busy for more than 10 minutes; dropping the index, then the nodes, takes seconds."""
    with driver.session(database=database) as session:
        for record in list(session.run("SHOW VECTOR INDEXES YIELD name RETURN name")):
            session.run(f"DROP INDEX `{record['name']}` IF EXISTS").consume()
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


@contextmanager
def private_neo4j(home: Path, port: int | None = None, *, heap: str = "1g", pagecache: str = "1g",
                  keep: bool = False) -> Iterator[dict]:
    """Start ``scripts/neo4j.sh`` with its own NEO4J_HOME and Bolt port (never the developer's 7687 or the tests'
    7688+); yield the NEO4J_* variables; stop it at the end unless ``keep``."""
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_BOLT_PORT": str(port), "NEO4J_HEAP": heap,
           "NEO4J_PAGECACHE": pagecache}
    env.pop("NEO4J_PASSWORD", None)
    script = str(ROOT / "scripts" / "neo4j.sh")
    subprocess.run([script, "start"], env=env, check=True, capture_output=True, text=True)
    try:
        yield read_env_file(home / "credentials.env")
    finally:
        if not keep:
            subprocess.run([script, "stop"], env=env, check=False, capture_output=True)


def neo4j_pid(home: Path) -> int | None:
    pidfile = home / "run" / "neo4j.pid"
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
