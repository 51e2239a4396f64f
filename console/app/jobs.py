"""Background generation jobs for the web console.

A job is the generator CLI (``python -m console.cli generate ... --progress-file <run>/status.json``) started as a
detached subprocess (its own session, so closing the browser or reloading the page does not touch it). The run
folder keeps everything needed to reattach and resume:

- ``job.json``: the CLI arguments, and one entry per attempt (pid, start/end time, exit code, stop requested);
- ``status.json``: the CLI's progress file (state, per-file done/total, rate, ETA, batch size, GPU memory, message);
- ``generate.log``: the CLI's output.

Stop sends SIGTERM to the job's process group; resume starts the same arguments again (the CLI resumes from the
checkpoints in the output folder). Plain Python: no Streamlit import.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from console.options import ConsoleOptions, to_cli_args

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JOB_FILE = "job.json"
STATUS_FILE = "status.json"
LOG_FILE = "generate.log"

# Processes this server started, so that their exit codes are collected (and no zombie is left behind).
_CHILDREN: dict[int, subprocess.Popen] = {}

# Secrets the generator never needs: left out of its environment (a job runs a model's code, and its log is shown).
SECRET_ENV = tuple(f"{name}{suffix}" for name in ("NEO4J_PASSWORD", "EMBEDDINGS_IMPORT_TOKEN", "CONSOLE_PASSWORD",
                                                  "DJANGO_SECRET_KEY") for suffix in ("", "_FILE")) + (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MAX_JOBS_ENV = "CONSOLE_MAX_JOBS"


class JobLimitError(RuntimeError):
    """As many runs as CONSOLE_MAX_JOBS allows are running already; the message says what to do."""


def max_jobs(env=None) -> int:
    """CONSOLE_MAX_JOBS: generation runs at a time for this work folder (default 1: one run uses every core)."""
    value = (os.environ if env is None else env).get(MAX_JOBS_ENV, "1")
    try:
        return max(1, int(value))
    except ValueError:
        raise JobLimitError(f"{MAX_JOBS_ENV}={value!r} is not a number: set it to how many runs may run at once") from None


def job_env(env=None) -> dict:
    """The environment of a generation subprocess: this one's, without :data:`SECRET_ENV`."""
    env = dict(os.environ if env is None else env)
    for name in SECRET_ENV:
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


SEED_GUIDANCE = "Guidance: CPU 8-16, 8 GB GPU 32-64, 16 GB+ GPU 64-128."


class JobSpec(ConsoleOptions):
    """What to generate: the output folder, the inputs and the options the console sets (fields and defaults from
    `console.options`, whose table also builds the CLI this job runs)."""

    def cli_args(self) -> list[str]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return ["generate", *to_cli_args(values), "--progress-file", str(Path(self.output_dir) / STATUS_FILE)]


@dataclass
class JobStatus:
    """What the page shows: the derived state plus the CLI's latest progress file."""

    state: str  # starting | running | done | failed | stopped | interrupted
    done: int = 0
    total: int = 0
    rate: float | None = None
    eta_s: float | None = None
    batch_size: int | None = None
    gpu_mem_mb: float | None = None
    message: str | None = None
    files: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    error: str | None = None  # of a failed run: "model_load" (the model cannot load), else the exception's name

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def model_failed(self) -> bool:
        """Failed because the model cannot be loaded: the same arguments would fail the same way."""
        return self.state == "failed" and (self.error == "model_load" or (self.message or "").startswith(
            ("cannot load model", "error: cannot load model")))

    @property
    def resumable(self) -> bool:
        """Whether Resume can help: a stopped or interrupted run, or a failure other than a model that cannot load."""
        return self.state in ("failed", "stopped", "interrupted") and not self.model_failed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _pid_alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` still runs our job (``marker``: a string its command line contains, against pid reuse)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        if state == "Z":
            try:  # our own child that the server did not reap yet
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return False
        return marker in cmdline
    try:  # pragma: no cover - not Linux
        os.kill(pid, 0)
        return True
    except OSError:  # pragma: no cover
        return False


class Job:
    """A generation job living in a run folder; survives page reloads and server restarts."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)

    @property
    def id(self) -> str:
        return self.run_dir.name

    # -- files -----------------------------------------------------------------------------------------------
    def record(self) -> dict:
        try:
            return json.loads((self.run_dir / JOB_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @property
    def spec(self) -> JobSpec | None:
        data = self.record().get("spec")
        return JobSpec(**data) if data else None

    def _save(self, record: dict) -> None:
        _write_json(self.run_dir / JOB_FILE, record)

    def progress_file(self) -> dict | None:
        try:
            return json.loads((self.run_dir / STATUS_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.run_dir / LOG_FILE, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64_000))
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, spec: JobSpec) -> "Job":
        """Start a new job writing into ``spec.output_dir`` (a fresh run folder)."""
        job = cls(spec.output_dir)
        with _launch_lock(job.run_dir.parent):
            check_capacity(job.run_dir.parent, exclude=job.run_dir)
            job.run_dir.mkdir(parents=True, exist_ok=True)
            job._save({"run_id": job.id, "created_at": _now(), "spec": asdict(spec), "attempts": []})
            job._launch()
        return job

    def resume(self) -> None:
        """Start the same arguments again; the CLI skips the batches its checkpoints already hold."""
        if self.is_running():
            raise RuntimeError(f"run {self.id} is still running: stop it first")
        if self.spec is None:
            raise RuntimeError(f"{self.run_dir / JOB_FILE} is missing: this folder was not started by the console")
        with _launch_lock(self.run_dir.parent):
            check_capacity(self.run_dir.parent, exclude=self.run_dir)
            self._launch()

    def _launch(self) -> None:
        spec = self.spec
        assert spec is not None
        (self.run_dir / STATUS_FILE).unlink(missing_ok=True)  # a stale status must not show as this attempt's
        env = job_env()
        cmd = [sys.executable, "-m", "console.cli", *spec.cli_args()]
        with open(self.run_dir / LOG_FILE, "ab") as log:
            log.write(f"\n=== {_now()} {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        record = self.record()
        record.setdefault("attempts", []).append({"pid": proc.pid, "started_at": _now(), "stop_requested": False})
        self._save(record)

    def _last_attempt(self) -> dict | None:
        attempts = self.record().get("attempts") or []
        return attempts[-1] if attempts else None

    def is_running(self) -> bool:
        attempt = self._last_attempt()
        return bool(attempt) and _pid_alive(attempt["pid"], str(self.run_dir))

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM the job (its whole process group); True when it has ended within ``timeout`` seconds."""
        record = self.record()
        attempt = (record.get("attempts") or [None])[-1]
        if not attempt or not self.is_running():
            return True
        attempt["stop_requested"] = True
        self._save(record)
        try:
            os.killpg(attempt["pid"], signal.SIGTERM)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(0.1)
        return False

    def returncode(self) -> int | None:
        attempt = self._last_attempt()
        proc = _CHILDREN.get(attempt["pid"]) if attempt else None
        return proc.poll() if proc is not None else None

    def status(self) -> JobStatus:
        progress = self.progress_file() or {}
        fields = {k: progress.get(k) for k in ("rate", "eta_s", "batch_size", "gpu_mem_mb", "message")}
        base = dict(
            done=int(progress.get("done") or 0), total=int(progress.get("total") or 0),
            files=progress.get("files") or {}, outputs=progress.get("outputs") or [], error=progress.get("error"),
            **fields,
        )
        attempt = self._last_attempt()
        if attempt is None:
            return JobStatus(state="interrupted", message="This run was never started.", **base)
        if self.is_running():
            return JobStatus(state="running" if progress else "starting", **base)
        reported = progress.get("state")
        code = self.returncode()
        if reported == "done" and code in (None, 0):
            return JobStatus(state="done", **base)
        if attempt.get("stop_requested") or reported == "stopped":
            base["message"] = "Stopped. Resume to finish: batches already done are kept."
            return JobStatus(state="stopped", **base)
        if reported == "failed" or (code not in (None, 0)):
            if not base["message"] or reported != "failed":
                last = [line for line in self.log_tail(40).splitlines() if line.strip()]
                base["message"] = last[-1].strip() if last else f"The generator exited with code {code}."
            return JobStatus(state="failed", **base)
        if code == 0:
            return JobStatus(state="done", **base)
        base["message"] = "The generator is no longer running (server restarted?). Resume to finish."
        return JobStatus(state="interrupted", **base)


def check_capacity(runs_dir: str | os.PathLike, exclude: str | os.PathLike | None = None) -> None:
    """Raise :class:`JobLimitError` when CONSOLE_MAX_JOBS runs of ``runs_dir`` (other than ``exclude``) run."""
    limit = max_jobs()
    running = [j.id for j in list_jobs(runs_dir) if j.run_dir != Path(exclude or "") and j.is_running()]
    if len(running) >= limit:
        raise JobLimitError(f"{len(running)} run(s) already running ({', '.join(running)}) and {MAX_JOBS_ENV} allows "
                            f"{limit} at a time: wait for it to finish or stop it (or raise {MAX_JOBS_ENV})")


@contextlib.contextmanager
def _launch_lock(runs_dir: Path):
    """One launch at a time per runs/ folder, across sessions and server processes (the count, then the start)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / ".launch.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def list_jobs(runs_dir: str | os.PathLike) -> list[Job]:
    """Jobs in a workspace's runs/ folder, newest first."""
    runs = Path(runs_dir)
    if not runs.exists():
        return []
    return [Job(p) for p in sorted(runs.iterdir(), reverse=True) if (p / JOB_FILE).exists()]


@dataclass
class BatchAdvice:
    suggested: int
    text: str
    gpu_name: str | None = None
    free_mb: int | None = None
    total_mb: int | None = None


def suggest_batch_size(free_mb: int | None) -> int:
    """A batch size for the free GPU memory (None: CPU), following the seed's guidance."""
    if free_mb is None:
        return 16
    for limit_mb, size in ((2_000, 8), (4_000, 16), (8_000, 32), (16_000, 64)):
        if free_mb < limit_mb:
            return size
    return 128


def batch_size_advice(device: str = "auto") -> BatchAdvice:
    """The seed's guidance plus a suggestion from free GPU memory (``torch.cuda.mem_get_info``) when CUDA exists."""
    free_mb = total_mb = name = None
    if device != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                free, total = torch.cuda.mem_get_info()
                free_mb, total_mb = free // 2**20, total // 2**20
                name = torch.cuda.get_device_name()
        except Exception:  # noqa: BLE001 - a broken CUDA setup means CPU advice, not an error page
            free_mb = None
    suggested = suggest_batch_size(free_mb)
    if free_mb is None:
        text = f"No CUDA GPU here: runs on the CPU; suggested batch size {suggested}. {SEED_GUIDANCE}"
    else:
        text = (
            f"{name}: {free_mb / 1024:.1f} GB free of {total_mb / 1024:.1f} GB; suggested batch size {suggested}. "
            f"{SEED_GUIDANCE}"
        )
    return BatchAdvice(suggested, text, name, free_mb, total_mb)
