"""Resume after a hard kill: a real CLI subprocess is SIGKILLed mid-run, started again with the same arguments,
and its output matches an uninterrupted run: same ids in the same order, same vectors, no duplicates, no gaps."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.cli import main
from console.files.embfiles import read_embeddings

ROOT = Path(__file__).resolve().parent.parent
N = 200


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    rows = read_demo_recipes("sapi", limit=N)
    records = [{"id": f"recipe-{r['URL'].rstrip('/').split('/')[-1].split('-')[0]}-{i}", "type": "recipe",
                "title": r["Title"],
                "text": f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}"}
               for i, r in enumerate(rows)]
    folder = tmp_path_factory.mktemp("export")
    (folder / "recipes.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n",
                                          encoding="utf-8")
    return folder


def _command(export_dir, out, model, *extra):
    return [sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(export_dir),
            "--output-dir", str(out), "--batch-size", "8", "--model", str(model), "--device", "cpu",
            "--format", "jsonl", "--max-length", "128", *extra]


def _checkpoint_lines(out: Path) -> int:
    files = list((out / ".checkpoints").glob("recipe-*.jsonl")) if (out / ".checkpoints").exists() else []
    return sum(f.read_bytes().count(b"\n") for f in files)


def _start_and_wait_for_batches(cmd, out, batches, sig):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _checkpoint_lines(out) < batches:
        assert proc.poll() is None, f"finished before it could be killed:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint batches appeared"
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


def _vectors(path):
    items = list(read_embeddings(path))
    return [i.id for i in items], np.vstack([i.embedding for i in items])


def test_a_sigkilled_run_resumes_without_redoing_duplicating_or_losing_batches(tmp_path, export_dir, minilm_path):
    assert main(_command(export_dir, tmp_path / "ref", minilm_path, "--quiet")[2:]) == 0  # uninterrupted, in-process
    ref_ids, ref_vecs = _vectors(tmp_path / "ref" / "embeddings_recipes.jsonl")
    assert len(ref_ids) == len(set(ref_ids)) == N

    out = tmp_path / "out"
    code, _, _ = _start_and_wait_for_batches(_command(export_dir, out, minilm_path), out, 3, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (out / "embeddings_recipes.jsonl").exists()
    batches_at_kill = _checkpoint_lines(out)
    assert 3 <= batches_at_kill < N // 8

    again = subprocess.run(_command(export_dir, out, minilm_path), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    embedded, reused = map(int, re.search(r"(\d+) embedded, (\d+) reused from the checkpoint", again.stdout).groups())
    assert embedded + reused == N
    assert reused >= 8 * batches_at_kill - 8  # every complete batch was kept (a torn last line is redone)
    ids, vecs = _vectors(out / "embeddings_recipes.jsonl")
    assert ids == ref_ids  # same ids, same order, no duplicates, no gaps
    cos = (vecs * ref_vecs).sum(1) / np.linalg.norm(vecs, axis=1) / np.linalg.norm(ref_vecs, axis=1)
    assert cos.min() > 0.9999


def test_sigterm_stops_cleanly_and_says_how_to_go_on(tmp_path, export_dir, tiny_qwen3_path):
    out = tmp_path / "out"
    status = tmp_path / "status.json"
    cmd = _command(export_dir, out, tiny_qwen3_path, "--progress-file", str(status), "--quiet")
    code, _, stderr = _start_and_wait_for_batches(cmd, out, 2, signal.SIGTERM)
    assert code == 130
    assert stderr.strip().splitlines()[-1] == ("interrupted: finished batches are in the checkpoint; run the same "
                                               "command again to go on")
    state = json.loads(status.read_text())
    assert state["state"] == "stopped" and 0 < state["done"] < N and state["pid"] > 0
    assert os.path.exists(out / ".checkpoints")


@pytest.mark.slow  # ~35 s here (three model loads); tests/test_generate.py stops and resumes a budget run in-process
def test_a_sigkilled_token_budget_run_resumes_with_the_same_options_without_gaps_or_duplicates(
        tmp_path, export_dir, minilm_path, capsys):
    """--max-tokens cuts other batches than --batch-size; done is still decided per text (its digest in the
    checkpoint), so a resumed run with the same options redoes no finished batch and loses none."""
    n = 80
    budget = ("--limit", str(n), "--batch-size", "64", "--max-tokens", "400")  # 128 tokens: 3 a batch, short: more
    assert main([*_command(export_dir, tmp_path / "ref", minilm_path, "--limit", str(n), "--quiet")[2:]]) == 0
    ref_ids, ref_vecs = _vectors(tmp_path / "ref" / "embeddings_recipes.jsonl")

    out = tmp_path / "out"
    code, _, _ = _start_and_wait_for_batches(_command(export_dir, out, minilm_path, *budget), out, 3, signal.SIGKILL)
    assert code == -signal.SIGKILL and not (out / "embeddings_recipes.jsonl").exists()
    kept = sum(len(json.loads(line)["ids"]) for line in next((out / ".checkpoints").glob("recipe-*.jsonl"))
               .read_bytes().splitlines(keepends=True) if line.endswith(b"\n"))
    assert 0 < kept < n

    capsys.readouterr()
    assert main([*_command(export_dir, out, minilm_path, *budget, "--quiet")[2:]]) == 0  # the same command again
    embedded, reused = map(int, re.search(r"(\d+) embedded, (\d+) reused from the checkpoint",
                                          capsys.readouterr().out).groups())
    assert embedded + reused == n and reused >= kept - 64  # every complete batch kept (a torn last one is redone)
    hashes = [h for line in next((out / ".checkpoints").glob("recipe-*.jsonl")).read_text().splitlines()
              for h in json.loads(line)["hashes"]]
    assert len(hashes) == len(set(hashes)) == n  # no text embedded twice over both runs
    ids, vecs = _vectors(out / "embeddings_recipes.jsonl")
    assert ids == ref_ids  # same ids, same order, no duplicates, no gaps
    cos = (vecs * ref_vecs).sum(1) / np.linalg.norm(vecs, axis=1) / np.linalg.norm(ref_vecs, axis=1)
    assert cos.min() > 0.9999
