"""Benchmark: `manage.py sync_embeddings` (issue 25) against plain sentence-transformers `encode` of the same texts,
in one run, on the demo graph, and the time from an edit to the edited item being found while `--every` runs.

    python bench/sync.py [--recipes 2000] [--changed 1000] [--every 2]

It starts its own Neo4j (scripts/neo4j.sh, its own home and port), loads --recipes demo recipes with the backend's
own commands, exports them, generates their vectors with the shipped model (`minilm`) and imports them, as a user
does. Then, for each path:

- plain: `Embedder.encode` of the --changed texts, in-process, nothing else (the floor: no Neo4j at all);
- sync, local: --changed recipes' titles edited, then `manage.py sync_embeddings --type recipe`
  (BACKEND_QUERY_EMBEDDER=local: the model in the command's process), wall time of the whole command;
- sync, remote: the same titles edited again, then the same command with BACKEND_QUERY_EMBEDDER=remote and
  `embedding-console serve --model minilm` on loopback;
- edit to found: `sync_embeddings --every N` running; one recipe's title set to a new phrase; the seconds until a
  semantic search for that phrase ranks it first.

Writes bench/results/sync.json (with the machine, and the load average before and after) and prints a summary.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))

from bench.common import free_port, log, machine_info, private_neo4j, summary, write_result  # noqa: E402

HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "embedding-console" / "neo4j-bench-sync"
MANAGE = [sys.executable, str(ROOT / "backend" / "manage.py")]


def run(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started


def prepare(env: dict, work: Path, recipes: int) -> None:
    """The demo graph, embedded with minilm as the README's workflow does it."""
    run([*MANAGE, "load_demo_data", "--limit", str(recipes), "--verbosity", "0"], env)
    run([*MANAGE, "export_data_for_embeddings", "--type", "recipe", "--output-dir", str(work / "export")], env)
    run([sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(work / "export"),
         "--output-dir", str(work / "out"), "--model", "minilm", "--device", "cpu"], env)
    run([*MANAGE, "import_embeddings", "--embedding-file", str(work / "out" / "embeddings_recipes.json"),
         "--verbosity", "0"], env)


def edit(store, changed: int, mark: str) -> list[str]:
    """Change the title of the first ``changed`` recipes (the text to embed changes); their ids."""
    spec = store.spec("recipe")
    rows = store.query(f"MATCH (n:`{spec.label}`) WITH n ORDER BY n.`{spec.id}` LIMIT $n "
                       f"SET n.`{spec.title}` = n.`{spec.title}` + $mark RETURN n.`{spec.id}` AS id",
                       n=changed, mark=mark)
    return [r["id"] for r in rows]


def plain_encode(store, ids: list[str]) -> float:
    from console.generation.engine import Embedder
    from embedding_search.export import iter_records

    texts = [r["text"] for r in iter_records(store, "recipe") if r["id"] in set(ids)]
    embedder = Embedder("minilm", device="cpu")
    started = time.perf_counter()
    embedder.encode(texts, batch_size=64)
    return time.perf_counter() - started


def edit_to_found(store, env: dict, every: float) -> float:
    """Seconds from an edit to the edited recipe ranking first for its new phrase, with --every running."""
    from console.generation.engine import Embedder
    from embedding_search.search import vector_search

    proc = subprocess.Popen([*MANAGE, "sync_embeddings", "--type", "recipe", "--every", str(every),
                             "--verbosity", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(every * 2 + 10)  # its first pass (model load) is done
        embedder = Embedder("minilm", device="cpu")
        phrase = "Bubur sumsum pandan gula aren hangat"
        query = embedder.encode_query([phrase])[0]
        spec = store.spec("recipe")
        item = store.query(f"MATCH (n:`{spec.label}`) WITH n ORDER BY n.`{spec.id}` DESC LIMIT 1 "
                           f"SET n.`{spec.title}` = $phrase, n.description = $phrase RETURN n.`{spec.id}` AS id",
                           phrase=phrase)[0]["id"]
        edited = time.perf_counter()
        while time.perf_counter() - edited < 300:
            hits = vector_search(store, "recipe", query, k=1)
            if hits and hits[0]["id"] == item:
                return time.perf_counter() - edited
            time.sleep(0.2)
        raise SystemExit("the edited recipe was not found within 300 s")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=1000)
    parser.add_argument("--every", type=float, default=2.0)
    args = parser.parse_args()
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore
    from recipes.testing import run_embedding_server

    load_before = os.getloadavg()
    work = HOME.parent / "bench-sync-work"
    with private_neo4j(HOME) as neo4j:
        env = {**os.environ, **neo4j, "HF_HUB_OFFLINE": "1", "DJANGO_SECRET_KEY": "bench"}
        log(f"loading and embedding {args.recipes} demo recipes")
        prepare(env, work, args.recipes)
        with Neo4jStore(Neo4jSettings.from_mapping({k[6:].lower(): v for k, v in neo4j.items()})) as store:
            ids = edit(store, args.changed, " (1)")
            plain_s = plain_encode(store, ids)
            log(f"plain encode: {plain_s:.1f} s; sync, local")
            local_s = run([*MANAGE, "sync_embeddings", "--type", "recipe", "--verbosity", "0"], env)
            edit(store, args.changed, " (2)")
            log("sync, remote (embedding-console serve)")
            with run_embedding_server("minilm") as url:
                remote_s = run([*MANAGE, "sync_embeddings", "--type", "recipe", "--verbosity", "0"],
                               {**env, "BACKEND_QUERY_EMBEDDER": "remote", "BACKEND_EMBEDDINGS_URL": url})
            log(f"edit to found with --every {args.every}")
            found_s = edit_to_found(store, env, args.every)
    result = {"name": "sync", "machine": machine_info(), "load_before": load_before, "load_after": os.getloadavg(),
              "recipes": args.recipes, "changed": args.changed, "model": "minilm (all-MiniLM-L6-v2, CPU)",
              "plain_encode_s": round(plain_s, 2), "plain_items_per_s": round(args.changed / plain_s, 1),
              "sync_local_s": round(local_s, 2), "sync_local_items_per_s": round(args.changed / local_s, 1),
              "sync_remote_s": round(remote_s, 2), "sync_remote_items_per_s": round(args.changed / remote_s, 1),
              "every_s": args.every, "edit_to_found_s": round(found_s, 2)}
    write_result("sync", result)
    summary(f"sync {args.changed} changed recipes: local {result['sync_local_items_per_s']}/s, remote "
            f"{result['sync_remote_items_per_s']}/s (whole command, model load included) vs plain encode "
            f"{result['plain_items_per_s']}/s; edit to found {found_s:.1f} s with --every {args.every}")


if __name__ == "__main__":
    main()
