"""Background generation jobs of the web console: the real generator CLI as a detached subprocess, reattached
from its run folder, stopped with SIGTERM and resumed from its checkpoints. Real MiniLM, real recipes."""
from __future__ import annotations

import json
import time

import pytest

from conftest import read_demo_recipes
from console.app import jobs
from console.cli import build_parser
from console.files.embfiles import read_embeddings
from console.app.jobs import Job, JobSpec, batch_size_advice, list_jobs, suggest_batch_size
from console.app.workspace import Workspace


def _export(ws: Workspace, n: int, name: str = "recipes.jsonl"):
    rows = read_demo_recipes("tempe", n)
    records = [{"id": f"recipe-{r['URL'].rstrip('/').split('/')[-1].split('-')[0]}", "type": "recipe",
                "title": r["Title"], "text": f"{r['Title']}. Ingredients: {r['Ingredients'][:200].replace('--', ', ')}"}
               for r in rows]
    return ws.save_upload(name, "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode())


def _wait(job: Job, until, timeout: float = 300):  # a limit for a loaded machine, not a speed claim
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.status()
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status {job.status()}\n{job.log_tail()}")


def _finished(status):
    return status.state not in ("starting", "running")


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "work")


def test_the_job_command_is_the_generator_cli_with_the_chosen_options(tmp_path):
    spec = JobSpec(output_dir=str(tmp_path), inputs=["a.json", "b.csv"], model="m", batch_size=32, device="cpu",
                   dtype="float32", dimensions=256, formats=["json", "parquet"], on_invalid="stop")
    args = build_parser().parse_args(spec.cli_args())
    assert (args.command, [p.name for p in args.input], args.model, args.batch_size) == ("generate", ["a.json", "b.csv"], "m", 32)
    assert (args.device, args.dtype, args.dimensions, args.format, args.on_invalid) == ("cpu", "float32", 256, ["json", "parquet"], "stop")
    assert args.progress_file == tmp_path / "status.json"


def test_a_job_runs_in_the_background_and_reports_progress_until_done(ws, minilm_path):
    upload = _export(ws, 40)
    spec = JobSpec(output_dir=str(ws.new_run_dir("minilm")), inputs=[str(upload)], model=str(minilm_path),
                   batch_size=8, formats=["json", "parquet"])
    job = Job.start(spec)
    assert job.status().state in ("starting", "running")
    status = _wait(job, _finished)
    assert (status.state, status.done, status.total) == ("done", 40, 40)
    assert status.files == {"recipe": {"done": 40, "total": 40}}
    assert status.rate and status.rate > 0
    assert len(list(read_embeddings(job.run_dir / "embeddings_recipes.parquet"))) == 40
    record = json.loads((job.run_dir / "job.json").read_text())
    assert record["spec"]["model"] == str(minilm_path) and record["attempts"][0]["pid"] > 0


def test_a_reloaded_page_reattaches_to_a_running_job_the_server_forgot(ws, minilm_path):
    upload = _export(ws, 40)
    job = Job.start(JobSpec(output_dir=str(ws.new_run_dir("m")), inputs=[str(upload)], model=str(minilm_path),
                            batch_size=4, formats=["jsonl"]))
    jobs._CHILDREN.clear()  # as after a server restart: only the run folder is left
    [again] = list_jobs(ws.runs)
    assert again.id == job.id and again.is_running()
    assert _wait(again, _finished).state == "done"


def test_a_stopped_job_resumes_from_its_checkpoint_without_redoing_batches(ws, minilm_path):
    upload = _export(ws, 60)
    job = Job.start(JobSpec(output_dir=str(ws.new_run_dir("m")), inputs=[str(upload)], model=str(minilm_path),
                            batch_size=2, formats=["jsonl"]))
    _wait(job, lambda s: s.done >= 4 or _finished(s))
    assert job.stop() is True
    stopped = job.status()
    assert stopped.state == "stopped" and 0 < stopped.done < 60
    assert stopped.message == "Stopped. Resume to finish: batches already done are kept."
    job.resume()
    assert _wait(job, _finished).state == "done"
    ids = [item.id for item in read_embeddings(job.run_dir / "embeddings_recipes.jsonl")]
    assert len(ids) == len(set(ids)) == 60
    reused = [line for line in job.log_tail(200).splitlines() if "reused from the checkpoint" in line][-1]
    assert " 0 reused" not in reused, reused


def test_a_model_that_cannot_be_loaded_offline_fails_with_a_clear_message(ws):
    upload = _export(ws, 5)
    job = Job.start(JobSpec(output_dir=str(ws.new_run_dir("x")), inputs=[str(upload)], model="no-such/model"))
    status = _wait(job, _finished)
    # a model that cannot load is not resumable any more (Resume failed the same way, after ~90 s): the issue
    assert status.state == "failed" and status.model_failed and not status.resumable and status.error == "model_load"
    assert status.message.startswith("cannot load model 'no-such/model': it is not a local folder and the model "
                                     "hub cannot be reached")


def test_resuming_a_running_job_is_refused(ws, minilm_path):
    upload = _export(ws, 100)
    job = Job.start(JobSpec(output_dir=str(ws.new_run_dir("m")), inputs=[str(upload)], model=str(minilm_path),
                            batch_size=2, formats=["jsonl"]))
    with pytest.raises(RuntimeError, match=f"run {job.id} is still running: stop it first"):
        job.resume()
    job.stop()


def test_batch_size_suggestion_follows_the_seed_guidance():
    assert [suggest_batch_size(mb) for mb in (None, 1_500, 3_000, 7_000, 12_000, 40_000)] == [16, 8, 16, 32, 64, 128]


def test_cpu_advice_names_the_guidance():
    assert batch_size_advice("cpu").text == (
        "No CUDA GPU here: runs on the CPU; suggested batch size 16. "
        "Guidance: CPU 8-16, 8 GB GPU 32-64, 16 GB+ GPU 64-128."
    )


@pytest.mark.gpu
def test_gpu_advice_names_the_card_and_suggests_from_its_free_memory():
    import torch

    advice = batch_size_advice("auto")
    assert advice.gpu_name == torch.cuda.get_device_name()
    assert advice.suggested == suggest_batch_size(advice.free_mb)
    assert advice.text.startswith(f"{advice.gpu_name}: ") and "GB free of" in advice.text
