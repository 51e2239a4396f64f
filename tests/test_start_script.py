"""start.sh as a new user meets it when something goes wrong after it started Neo4j: it says so and stops the
Neo4j it started, so that nothing is left running behind a failed first try."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_failed_demo_start_stops_the_neo4j_it_started_and_says_so(tmp_path):
    port = _free_port()
    empty = tmp_path / "no-recipes"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "BACKEND_", "DJANGO_", "CONSOLE_"))}
    env.update(NEO4J_HOME=str(tmp_path / "neo4j"), NEO4J_BOLT_PORT=str(port), DEMO_DATA_DIR=str(empty),
               CONSOLE_WORKDIR=str(tmp_path / "work"))
    done = subprocess.run(["./start.sh", "--demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode != 0
    assert f"No recipe files (*.csv.gz) in {empty}" in done.stderr  # load_demo_data's own message
    assert "start.sh: failed (exit 1); stopping the Neo4j this run started" in done.stderr
    assert "neo4j.sh: stopped" in done.stderr
    assert not _answers(port)
    assert not (tmp_path / "neo4j" / "run" / "neo4j.pid").exists()


def _small_demo_data(folder: Path) -> Path:
    """Two of the shipped recipe files cut to their first rows (load_demo_data reads any folder of them)."""
    import gzip

    folder.mkdir()
    for name, rows in (("ayam", 12), ("tempe", 8)):
        with gzip.open(ROOT / "data" / "indonesian-recipes" / f"{name}.csv.gz", "rt", encoding="utf-8") as fh:
            lines = fh.read().splitlines(keepends=True)
        with gzip.open(folder / f"{name}.csv.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(lines[:rows + 1])  # the header and the first rows (no line break inside these fields)
    return folder


def _until(condition, seconds: float, proc, log: Path):
    """Wait for ``condition()`` while start.sh runs (a bound against hangs, not a timing assertion)."""
    for _ in range(int(seconds * 2)):
        if condition():
            return
        assert proc.poll() is None, f"start.sh ended ({proc.returncode}):\n{log.read_text()}"
        time.sleep(0.5)
    raise AssertionError(f"start.sh did not get there in {seconds} s:\n{log.read_text()}")


def _search(url: str, **params) -> dict | None:
    try:
        response = requests.get(url + "/api/search/", params=params, timeout=60)
    except requests.ConnectionError:
        return None
    return response.json() if response.status_code == 200 else None


def _demo_run(env: dict, log: Path, backend: str) -> dict:
    """./start.sh --demo until its console is up and the backend answers; the hybrid answer for "ayam"; Ctrl-C."""
    with open(log, "w") as out:
        proc = subprocess.Popen(["./start.sh", "--demo"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _until(lambda: "start.sh: the console is on" in log.read_text(), 900, proc, log)
        _until(lambda: _search(backend, q="ayam", k=3) is not None, 120, proc, log)
        return {"hybrid": _search(backend, q="ayam", k=3), "semantic": _search(backend, q="ayam", mode="semantic")}
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in the terminal
        proc.wait(timeout=120)


def test_the_demo_answers_every_mode_and_a_second_start_reuses_its_vectors(tmp_path):
    """start.sh --demo embeds the demo export with the shipped small model (progress shown), imports it, and hybrid
    and semantic search answer with it; the second start finds the same export and reuses the vectors."""
    ports = {name: str(_free_port()) for name in ("NEO4J_BOLT_PORT", "BACKEND_PORT", "CONSOLE_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "BACKEND_", "DJANGO_", "CONSOLE_"))}
    env.update(ports, NEO4J_HOME=str(tmp_path / "neo4j"), DEMO_DATA_DIR=str(_small_demo_data(tmp_path / "demo")),
               CONSOLE_WORKDIR=str(tmp_path / "work"))
    backend = f"http://127.0.0.1:{ports['BACKEND_PORT']}"
    try:
        first = _demo_run(env, tmp_path / "first.log", backend)
        text = (tmp_path / "first.log").read_text()
        assert "start.sh: embedding the demo export with the shipped small model (minilm" in text
        assert "item/s" in text  # the generator's progress bar
        assert (first["hybrid"]["mode"], first["hybrid"]["model"], first["hybrid"]["note"]) == ("hybrid", "minilm",
                                                                                               None)
        assert first["semantic"]["model"] == "minilm" and first["semantic"]["results"]
        second = _demo_run(env, tmp_path / "second.log", backend)
        text = (tmp_path / "second.log").read_text()
        assert "start.sh: reusing the demo vectors in" in text and "item/s" not in text
        assert " 0 written, " in text  # imported again: every vector unchanged
        assert second["hybrid"]["results"] == first["hybrid"]["results"]
    finally:
        subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=env, check=False)
    assert not _answers(int(ports["NEO4J_BOLT_PORT"]))
