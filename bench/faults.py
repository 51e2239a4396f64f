"""Kill the generator with SIGKILL at random points, 20 times, resuming each time; the final output must equal an
uninterrupted run's (same ids in the same order, vectors equal within float rounding). The long version of
tests/test_faults.py's three kills.

    python bench/faults.py                      # 20 kills, 800 real recipe texts, MiniLM, batch 8 (~5-10 min)
    python bench/faults.py --kills 50 --items 2000 --seed 7

Each run is the real CLI (``external_embedding_generator.py``) in its own process. A kill comes at a random moment
after the run's first new checkpoint line (model loaded, batches flowing): between batches or in the middle of a
checkpoint write. Reported: kills done, torn checkpoint lines that the next run repaired, vectors in the checkpoint
and duplicates in the checkpoint (none expected), and the largest difference to the uninterrupted run.
Writes bench/results/faults.json and prints a one-line summary; exits 1 when the output differs.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import log, recipe_texts, summary, write_result  # noqa: E402

ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cmd(export: Path, out: Path, model: str, batch: int) -> list[str]:
    return [sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(export),
            "--output-dir", str(out), "--batch-size", str(batch), "--model", model, "--device", "cpu",
            "--format", "jsonl", "--quiet"]


def _lines(out: Path) -> int:
    folder = out / ".checkpoints"
    return sum(f.read_bytes().count(b"\n") for f in folder.glob("*.jsonl")) if folder.exists() else 0


def _read(path: Path) -> tuple[list[str], np.ndarray]:
    from console.files.embfiles import read_embeddings

    items = list(read_embeddings(path))
    return [i.id for i in items], np.vstack([i.embedding for i in items])


def main(argv=None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--items", type=int, default=800, help="real recipe texts to embed (800)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-delay", type=float, default=1.0, help="longest wait after the first new batch (s)")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    from console.generation.devmodels import minilm_path

    model = str(minilm_path())
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    env = {**os.environ, **ENV}
    started = time.perf_counter()
    try:
        export = work / "export"
        export.mkdir()
        with open(export / "recipes.jsonl", "w", encoding="utf-8") as fh:
            for i, text in enumerate(recipe_texts()[: args.items]):
                fh.write(json.dumps({"id": f"recipe-{i}", "type": "recipe", "text": text}, ensure_ascii=False) + "\n")

        t0 = time.perf_counter()
        ref = subprocess.run(_cmd(export, work / "ref", model, args.batch_size), env=env, capture_output=True,
                             text=True)
        if ref.returncode != 0:
            raise RuntimeError(ref.stderr)
        reference_s = time.perf_counter() - t0
        ref_ids, ref_vecs = _read(work / "ref" / "embeddings_recipes.jsonl")
        log(f"uninterrupted run: {len(ref_ids)} vectors in {reference_s:.1f} s")

        out = work / "out"
        kills, torn_repaired, finished_early = [], 0, False
        for attempt in range(args.kills):
            before = _lines(out)
            err_path = work / f"run-{attempt}.err"
            with open(err_path, "w") as err:
                proc = subprocess.Popen(_cmd(export, out, model, args.batch_size), env=env,
                                        stdout=subprocess.PIPE, stderr=err, text=True)
                while _lines(out) == before and proc.poll() is None:
                    time.sleep(0.005)
                delay = rng.uniform(0, args.max_delay)
                time.sleep(delay)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                stdout, _ = proc.communicate()
            stderr = err_path.read_text()
            torn_repaired += len(re.findall(r"dropped \d+ unreadable batch line", stderr))
            if proc.returncode == 0:  # it finished before the kill: nothing left to interrupt
                finished_early = True
                log(f"run {attempt + 1} finished before its kill; stopping the loop")
                break
            kills.append({"after_s_from_first_new_batch": round(delay, 3), "batches_before": before,
                          "batches_after": _lines(out), "exit": proc.returncode})
            log(f"kill {len(kills)}: {before} -> {_lines(out)} checkpoint lines")

        final = subprocess.run(_cmd(export, out, model, args.batch_size), env=env, capture_output=True, text=True)
        if final.returncode != 0:
            raise RuntimeError(final.stderr)
        torn_repaired += len(re.findall(r"dropped \d+ unreadable batch line", final.stderr))
        embedded, reused = map(int, re.search(r"(\d+) embedded, (\d+) reused", final.stdout).groups())
        ids, vecs = _read(out / "embeddings_recipes.jsonl")
        same_ids = ids == ref_ids
        max_diff = float(np.abs(vecs - ref_vecs).max()) if same_ids else None
        hashes = [h for f in (out / ".checkpoints").glob("*.jsonl") for line in f.read_text().splitlines()
                  for h in json.loads(line)["hashes"]]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ok = same_ids and max_diff is not None and max_diff < 1e-5
    write_result("faults", {
        "what": "generator SIGKILLed at random points and resumed; final output against an uninterrupted run",
        "items": args.items, "batch_size": args.batch_size, "seed": args.seed, "kills_asked": args.kills,
        "kills_done": len(kills), "finished_before_a_kill": finished_early, "kills": kills,
        "torn_checkpoint_lines_repaired": torn_repaired,
        "final_run": {"embedded": embedded, "reused": reused},
        "vectors_in_checkpoint": len(hashes), "duplicates_in_checkpoint": len(hashes) - len(set(hashes)),
        "same_ids_same_order": same_ids, "max_abs_vector_diff": max_diff, "identical_within_1e-5": ok,
        "uninterrupted_run_s": round(reference_s, 1), "total_s": round(time.perf_counter() - started, 1),
    })
    summary(f"faults: {len(kills)} SIGKILLs at random points, {torn_repaired} torn checkpoint lines repaired; final "
            f"output {'identical' if ok else 'DIFFERENT'} to the uninterrupted run (same ids: {same_ids}, max |diff| "
            f"{max_diff if max_diff is None else f'{max_diff:.1e}'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
