"""start.sh as a new user meets it when something goes wrong after it started Neo4j: it says so and stops the
Neo4j it started, so that nothing is left running behind a failed first try."""
import os
import socket
import subprocess
from pathlib import Path

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
