#!/usr/bin/env python3
"""Query embeddings where the GPU is: one search query's vector in-process and through `embedding-console serve`
over loopback HTTP, one client and many, on the machine this runs on.

    python bench/query_service.py                          # on a CUDA machine: the Qwen3-Embedding-0.6B shape
                                                           # (random weights), auto dtype (bf16 on a GPU)
    python bench/query_service.py --device cpu --qwen3-random tiny --queries 50 --clients 1,4   # smoke run

The backend embeds every search query (``BACKEND_QUERY_EMBEDDER=local``: in its own process, on the web server's
CPU; ``remote``: one ``POST /v1/embeddings`` to a service). This measures, on the same loaded model and the same
real queries (lower-cased demo recipe titles, each with the model's query prompt, as the backend sends them):
- ``in_process``: ``Embedder.encode_query([q])``, one query at a time (what the local path does per request);
- ``served_1_client``: one keep-alive client posting one query at a time to ``embedding-console serve``, started
  as its own process as an operator starts it (the remote path's embedding call, HTTP and JSON included);
- ``served_<C>_clients``: C concurrent clients, each with its own keep-alive connection; the service batches the
  requests that arrive while the model is busy (``--max-batch``), so throughput grows with C.
Writes bench/results/query-service-<device>.json and prints one line per measurement.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))

from bench.generate import machine_info  # noqa: E402
from bench.search import queries, remote_embed_times, stats  # noqa: E402
from recipes.testing import run_embedding_server  # noqa: E402


def synced(device: str):
    """A function that waits for the device's queued work (so a time covers the vector's making), or a no-op."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    return torch.cuda.synchronize


def in_process(embedder, texts: list[str]) -> list[float]:
    sync, times = synced(embedder.device), []
    for q in texts:
        t0 = time.perf_counter()
        embedder.encode_query([q], batch_size=1)
        sync()
        times.append(time.perf_counter() - t0)
    return times


def served(url: str, model: str, texts: list[str], clients: int) -> dict:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        chunks = [texts[i::clients] for i in range(clients)]
        parts = list(pool.map(lambda chunk: remote_embed_times(url, model, chunk), chunks))
    wall = time.perf_counter() - t0
    times = [t for part in parts for t in part]
    return {"clients": clients, "wall_s": round(wall, 3), "requests_per_s": round(len(times) / wall, 1),
            "latency": stats(times)}


def service_args(args) -> list[str]:
    """``embedding-console serve`` arguments for this run (device, dtype, --max-batch, --max-length)."""
    out = ["--device", args.device, "--dtype", args.dtype, "--max-batch", str(args.max_batch)]
    return out + (["--max-length", str(args.max_length)] if args.max_length else [])


def run(model: str, label: str, args) -> dict:
    from console.generation.engine import Embedder

    embedder = Embedder(model, device=args.device, dtype=args.dtype, max_length=args.max_length)
    prompt = embedder.query_prompt or ""
    texts = queries(args.queries + 20, skip=0)
    warm, texts = texts[:20], texts[20:]
    in_process(embedder, warm)
    result = {"model": label, "device": embedder.device, "dtype": embedder.dtype, "dimensions": embedder.dimensions,
              "queries": len(texts), "query_prompt_chars": len(prompt),
              "in_process": stats(in_process(embedder, texts))}
    print(f"in-process: p50 {result['in_process']['p50_ms']} ms, p95 {result['in_process']['p95_ms']} ms", flush=True)
    del embedder
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    with run_embedding_server(model, *service_args(args), log_path=args.server_log) as url:
        remote_embed_times(url, model, [prompt + q for q in warm])
        for clients in (int(c) for c in args.clients.split(",")):
            row = served(url, model, [prompt + q for q in texts], clients)
            result[f"served_{clients}_client{'s' if clients > 1 else ''}"] = row
            print(f"served, {clients} client(s): {row['requests_per_s']} req/s, p50 {row['latency']['p50_ms']} ms, "
                  f"p95 {row['latency']['p95_ms']} ms", flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model id or folder (default: random Qwen3, see --qwen3-random)")
    parser.add_argument("--qwen3-random", choices=("tiny", "full"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--max-batch", type=int, default=64, help="the service's --max-batch")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--server-log", type=Path, default=None, help="where the service's output goes")
    args = parser.parse_args(argv)

    from console.generation.devmodels import cached_random_qwen3

    model = args.model or str(cached_random_qwen3(args.qwen3_random))
    label = args.model or f"random Qwen3-Embedding architecture ({args.qwen3_random})"
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = run(model, label, args)
    device = "cuda" if result["device"].startswith("cuda") else "cpu"
    out = args.output or ROOT / "bench" / "results" / f"query-service-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "query_service", "created_at": started, "machine": machine_info(device),
                               **result}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
