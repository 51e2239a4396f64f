"""Scale benchmark: time and peak memory of each stage for 10k / 100k (/ 1M) short texts; memory must stay flat.

    python bench/scale.py                                   # 10k and 100k (about 10-15 min on 2 cores)
    python bench/scale.py --sizes 10000,100000,1000000      # opt into 1M (an hour or more on 2 cores)
    python bench/scale.py --generate-sizes 10000,100000     # also embed 100k texts with the model
    python bench/scale.py --sizes 1000000 --generate-sizes 1000000 --model tiny-qwen3 --stages validate,generate,import
                                                            # 1M through a (tiny, random) Qwen3 and into Neo4j

Input: JSON Lines of short texts (the demo recipes' title + first ingredient line, repeated with new ids).
Each stage runs in its own process; its peak RSS is that process's own ``VmHWM``, polled (bench.common.run_stage):
- ``validate``: read + validate the input (``console.generation.generate.load_and_validate``), no model;
- ``generate``: the CLI (``embedding-console generate``) with the shipped MiniLM, ``--max-length 16``, batch 256,
  npy output, against ``plain_encode``: a bare ``SentenceTransformer.encode`` over the same texts (the baseline);
  only for ``--generate-sizes`` (default 10k: the model is the slow part on 2 shared cores);
- ``generate_resume``: the same CLI command when every vector is already in the checkpoint (the checkpoint is
  written beforehand with the real Checkpoint class and the real settings key, random unit vectors): the memory of
  the orchestration itself (records, hashes, checkpoint, output) at every size, without model time;
- ``write``: ``console.files.embfiles.write_embeddings`` of N items (random unit vectors, streamed) to json, jsonl,
  parquet and npy at once;
- ``read_<fmt>``: iterate ``console.files.embfiles.read_embeddings`` over each format;
- ``import``: ``manage.py import_embeddings`` of the jsonl file into a private Neo4j (own NEO4J_HOME and port,
  nodes created first with a parameterised UNWIND), vectors/s until searchable (the writer creates the vector
  index before its first batch).
``--stages`` picks some of validate, generate (with plain_encode), generate_resume, write, read, import (write runs
whenever read or import is asked for, with only the jsonl file when no read is). ``--model``: minilm (default, the
shipped all-MiniLM-L6-v2) or tiny-qwen3 (a random 2-layer Qwen3 with MiniLM's tokenizer, 64-d: the pipeline's own
cost with a real Qwen3 forward pass at sizes where MiniLM on 2 cores would take hours).
Writes bench/results/scale.json (per stage: seconds, peak RSS per size, and the RSS ratio largest/smallest size)
and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    empty_graph,
    log,
    private_neo4j,
    run_stage,
    summary,
    write_result,
    write_short_records,
)

DIMS = 384
MAX_LENGTH = 16
BATCH = 256
FORMATS = ("json", "jsonl", "parquet", "npy")
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


STAGE_NAMES = ("validate", "generate", "generate_resume", "write", "read", "import")


def _model() -> str:
    """The model folder: BENCH_SCALE_MODEL (set by main for --model), else the shipped MiniLM."""
    from console.generation.devmodels import minilm_path

    return os.environ.get("BENCH_SCALE_MODEL") or str(minilm_path())


def _stage(name: str, *args: str, timeout: float | None = None):
    return run_stage([sys.executable, str(Path(__file__).resolve()), "--stage", name, *args], env=ENV, cwd=ROOT,
                     timeout=timeout)


def _generate_cmd(inp: str, out: str) -> list[str]:
    return ["generate", "--input", inp, "--output-dir", out, "--model", _model(), "--max-length", str(MAX_LENGTH),
            "--batch-size", str(BATCH), "--format", "npy", "--device", "cpu", "--quiet"]


# -- stages (run in a child process) ----------------------------------------------------------------------------
def stage_validate(inp: str) -> None:
    from console.generation.generate import GenerateOptions, load_and_validate

    _, report = load_and_validate(GenerateOptions(inputs=[Path(inp)]))
    print(json.dumps({"good": len(report.good), "rejects": len(report.rejects)}))


def stage_generate(inp: str, out: str) -> None:
    from console.cli import main

    code = main(_generate_cmd(inp, out))
    sys.exit(code)


def stage_plain_encode(inp: str) -> None:
    from sentence_transformers import SentenceTransformer

    with open(inp, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    model = SentenceTransformer(_model(), device="cpu")
    model.max_seq_length = MAX_LENGTH
    vectors = model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
    print(json.dumps({"vectors": int(vectors.shape[0])}))


def stage_seed_checkpoint(inp: str, out: str) -> None:
    """Write the checkpoint a finished run would leave (real key and hashes, random unit vectors)."""
    from console.generation.checkpoint import Checkpoint, content_hash, settings_key
    from console.generation.engine import Embedder

    embedder = Embedder(_model(), device="cpu", max_length=MAX_LENGTH)
    info = embedder.describe()
    key = settings_key(model=info["model"], dimensions=info["dimensions"], normalize=info["normalized"],
                       max_length=info["max_length"], prompt=embedder.document_prompt)
    rng = np.random.default_rng(0)
    dims = info["dimensions"]
    with open(inp, encoding="utf-8") as fh, Checkpoint(out, "recipe", key) as cp:
        ids, hashes = [], []
        for line in fh:
            rec = json.loads(line)
            ids.append(rec["id"])
            hashes.append(content_hash(key, rec["text"]))
            if len(ids) == 1000:
                v = rng.standard_normal((len(ids), dims)).astype(np.float32)
                cp.append(ids, hashes, v / np.linalg.norm(v, axis=1, keepdims=True))
                ids, hashes = [], []
        if ids:
            v = rng.standard_normal((len(ids), dims)).astype(np.float32)
            cp.append(ids, hashes, v / np.linalg.norm(v, axis=1, keepdims=True))


def _random_items(n: int):
    from console.files.embfiles import EmbeddedItem

    rng = np.random.default_rng(1)
    for start in range(0, n, 1000):
        block = rng.standard_normal((min(1000, n - start), DIMS)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for j, vec in enumerate(block):
            i = start + j
            yield EmbeddedItem(f"recipe-{i}", "recipe", f"Recipe number {i}", vec, f"Recipe {i}")


def stage_write(out: str, n: str, formats: str = ",".join(FORMATS)) -> None:
    from console.files.embfiles import make_meta, write_embeddings

    meta = make_meta(model=_model(), dimensions=DIMS, normalized=True, dtype="float32", count=int(n), type_="recipe")
    paths = write_embeddings(out, "recipe", _random_items(int(n)), formats=formats.split(","), meta=meta)
    print(json.dumps({p.name: p.stat().st_size for p in paths}))


def stage_read(path: str) -> None:
    from console.files.embfiles import read_embeddings

    count = 0
    for item in read_embeddings(path):
        count += 1
    print(json.dumps({"items": count}))


STAGES = {"validate": stage_validate, "generate": stage_generate, "plain_encode": stage_plain_encode,
          "seed_checkpoint": stage_seed_checkpoint, "write": stage_write, "read": stage_read}


# -- the benchmark ----------------------------------------------------------------------------------------------
def _create_nodes(driver, n: int) -> float:
    t0 = time.perf_counter()
    driver.execute_query("CREATE CONSTRAINT recipe_id_unique IF NOT EXISTS FOR (n:Recipe) REQUIRE n.id IS UNIQUE")
    for start in range(0, n, 10000):
        rows = [{"id": f"recipe-{i}", "title": f"Recipe {i}"} for i in range(start, min(n, start + 10000))]
        driver.execute_query("UNWIND $rows AS r CREATE (:Recipe {id: r.id, title: r.title})", rows=rows)
    return time.perf_counter() - t0


def run(sizes: list[int], generate_sizes: list[int], work: Path, neo4j_home: Path,
        stages_wanted: tuple[str, ...] = STAGE_NAMES) -> dict:
    import neo4j

    stages: dict[str, dict[str, dict]] = {}

    def record(stage: str, n: int, result, **extra) -> None:
        stages.setdefault(stage, {})[str(n)] = {**result.to_dict(), **extra}
        log(f"{n}: {stage} {result.seconds:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB "
            + " ".join(f"{k}={v}" for k, v in extra.items()))

    with private_neo4j(neo4j_home, heap="2g" if max(sizes) > 200_000 else "1g") as env:
        driver = neo4j.GraphDatabase.driver(env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"]))
        try:
            for n in sizes:
                case = work / str(n)
                shutil.rmtree(case, ignore_errors=True)
                inp = write_short_records(case / "input" / "recipes.jsonl", n)
                if "validate" in stages_wanted:
                    record("validate", n, _stage("validate", str(inp)).check("validate"))

                if n in generate_sizes and "generate" in stages_wanted:
                    gen = _stage("generate", str(inp), str(case / "gen")).check("generate")
                    record("generate", n, gen, items_per_s=round(n / gen.seconds, 1))
                    plain = _stage("plain_encode", str(inp)).check("plain_encode")
                    record("plain_encode", n, plain, items_per_s=round(n / plain.seconds, 1),
                           generate_vs_plain_time=round(gen.seconds / plain.seconds, 2))

                if "generate_resume" in stages_wanted:
                    _stage("seed_checkpoint", str(inp), str(case / "resume")).check("seed_checkpoint")
                    res = _stage("generate", str(inp), str(case / "resume")).check("generate_resume")
                    assert f"0 embedded, {n} reused" in res.stdout, res.stdout
                    record("generate_resume", n, res)

                if not {"write", "read", "import"} & set(stages_wanted):
                    shutil.rmtree(case, ignore_errors=True)
                    continue
                out = case / "files"
                formats = FORMATS if {"write", "read"} & set(stages_wanted) else ("jsonl",)
                wr = _stage("write", str(out), str(n), ",".join(formats)).check("write")
                sizes_mb = {k: round(v / 2**20, 1) for k, v in json.loads(wr.stdout.strip().splitlines()[-1]).items()}
                if formats == FORMATS:
                    record("write", n, wr, file_mb=sizes_mb)
                for fmt in FORMATS if "read" in stages_wanted else ():
                    rd = _stage("read", str(out / f"embeddings_recipes.{fmt}")).check(f"read {fmt}")
                    assert json.loads(rd.stdout.strip().splitlines()[-1])["items"] == n
                    record(f"read_{fmt}", n, rd, items_per_s=round(n / rd.seconds, 1))

                if "import" not in stages_wanted:
                    shutil.rmtree(case, ignore_errors=True)
                    continue
                empty_graph(driver)
                create_s = _create_nodes(driver, n)
                imp = run_stage([sys.executable, str(ROOT / "backend" / "manage.py"), "import_embeddings",
                                 "--embedding-file", str(out / "embeddings_recipes.jsonl"), "--verbosity", "0"],
                                env={**ENV, **env}, cwd=ROOT).check("import")
                embedded = driver.execute_query(
                    "MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN count(n) AS c").records[0]["c"]
                assert embedded == n, (embedded, imp.stdout, imp.stderr)
                record("import", n, imp, vectors_per_s=round(n / imp.seconds, 1),
                       create_nodes_s=round(create_s, 1), report=imp.stdout.strip().splitlines()[0])
                empty_graph(driver)
                shutil.rmtree(case, ignore_errors=True)
        finally:
            driver.close()

    return {"stages": stages, "memory": memory_verdict(stages)}


def memory_verdict(stages: dict) -> dict:
    """Per stage: peak RSS growth per item between the smallest and largest size, what that means at 1M items, and
    whether memory is flat (< 0.1 KB per item, i.e. < 100 MB more for a million items). A ratio alone misleads when
    a large fixed part (torch and the model: ~1.1 GB) hides a growing one."""
    verdict = {}
    for stage, per_size in stages.items():
        ns = sorted(per_size, key=int)
        if len(ns) < 2:
            continue
        small, large = per_size[ns[0]]["peak_rss_mb"], per_size[ns[-1]]["peak_rss_mb"]
        per_item_kb = (large - small) * 1024 / (int(ns[-1]) - int(ns[0]))
        verdict[stage] = {"rss_ratio_largest_vs_smallest": round(large / small, 2),
                          "input_ratio": int(ns[-1]) // int(ns[0]),
                          "growth_kb_per_item": round(per_item_kb, 3),
                          "projected_extra_mb_at_1m": round(per_item_kb * (1_000_000 - int(ns[0])) / 1024),
                          "flat": per_item_kb < 0.1}
    return verdict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated item counts (10000,100000)")
    parser.add_argument("--generate-sizes", default="10000",
                        help="sizes at which the model really embeds (default 10000; the rest use generate_resume)")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--stages", default=",".join(STAGE_NAMES), help=f"some of {','.join(STAGE_NAMES)} (all)")
    parser.add_argument("--model", choices=("minilm", "tiny-qwen3"), default="minilm",
                        help="model of the generate stages (minilm)")
    parser.add_argument("--output-name", default="scale", help="bench/results/<name>.json (scale)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.stage:
        STAGES[args.stage](*rest)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    generate_sizes = [int(s) for s in args.generate_sizes.split(",") if s]
    stages_wanted = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = sorted(set(stages_wanted) - set(STAGE_NAMES))
    if unknown:
        parser.error(f"--stages: unknown {', '.join(unknown)} (choose from {', '.join(STAGE_NAMES)})")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    model_name = "all-MiniLM-L6-v2 (shipped)"
    if args.model == "tiny-qwen3":
        from console.generation.devmodels import build_random_qwen3

        os.environ["BENCH_SCALE_MODEL"] = str(build_random_qwen3(work / "tiny-qwen3", size="tiny"))
        model_name = "random tiny Qwen3 (2 layers, 64-d, MiniLM tokenizer)"
    started = time.perf_counter()
    try:
        result = run(sizes, generate_sizes, work / "cases", work / "neo4j", stages_wanted)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result.update({
        "sizes": sizes, "generate_sizes": generate_sizes, "stages_run": list(stages_wanted), "dims_written": DIMS,
        "model": model_name,
        "max_length": MAX_LENGTH, "batch_size": BATCH, "total_seconds": round(time.perf_counter() - started, 1),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    })
    write_result(args.output_name, result)
    st = result["stages"]
    big = str(max(sizes))
    grow = [s for s, m in result["memory"].items() if not m["flat"]]
    rates = ", ".join(f"{s} {st[s][big][k]:.0f}/s" for s, k in (("generate", "items_per_s"),
                                                                 ("import", "vectors_per_s")) if big in st.get(s, {}))
    summary(f"scale {'/'.join(f'{n // 1000}k' for n in sizes)} ({args.model}): at {int(big) // 1000}k {rates or '-'}; "
            "peak RSS: " + ", ".join(f"{s} {per[big]['peak_rss_mb']:.0f} MB" for s, per in st.items() if big in per)
            + (f"; memory grows with input in: {', '.join(grow) or 'nothing'}" if result["memory"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
