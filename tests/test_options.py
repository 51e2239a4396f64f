"""One definition of the generate options (console/options.py) drives the CLI parser, GenerateOptions, the web
console's JobSpec and its form: every option goes from the table to the command line and back unchanged."""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import pytest

from console.cli import build_parser
from console.errors import OptionError
from console.app.jobs import JobSpec
from console.options import (DEFAULT_MODEL, OPTIONS, GenerateOptions, check_options, from_args, to_cli_args)

ROOT = Path(__file__).resolve().parent.parent

NOT_DEFAULT = dict(input_dir=Path("in"), inputs=[Path("a.json"), Path("b.csv")], on_invalid="skip",
                   encoding_errors="replace", limit=7, output_dir=Path("out"), model="some/model", batch_size=3,
                   max_tokens=4096, device="cpu", dtype="bfloat16", backend="onnx", quantize="int8", dimensions=64, normalize=False, max_length=128, chunk_size=50,
                   formats=["jsonl", "npy"], dry_run=True, progress_file=Path("status.json"), reuse=[Path("r1"),
                                                                                                       Path("r2")],
                   engine="ray", ray_address="ray://head:10001", ray_gpus=0.5, ray_cpus=2.0, ray_workers="2:8",
                   ray_storage="s3://bucket/work")


def _parse(args):
    return from_args(build_parser().parse_args(["generate", *args]))


def test_the_table_is_every_field_of_generate_options():
    assert list(OPTIONS) == [f.name for f in fields(GenerateOptions)]
    assert set(NOT_DEFAULT) == set(OPTIONS)
    assert all(NOT_DEFAULT[name] != o.default for name, o in OPTIONS.items())


def test_every_option_goes_to_the_command_line_and_back():
    opts = GenerateOptions(**NOT_DEFAULT)
    args = to_cli_args(asdict(opts))
    assert {a for a in args if a.startswith("--")} == {o.negative or o.flag for o in OPTIONS.values()}
    assert _parse(args) == opts


def test_no_arguments_give_the_defaults_of_the_table():
    parsed = asdict(_parse([]))
    assert parsed == {name: list(o.default) if isinstance(o.default, tuple) else o.default
                      for name, o in OPTIONS.items()}
    assert parsed["model"] == DEFAULT_MODEL


def test_validate_takes_the_input_options_of_the_table():
    args = build_parser().parse_args(["validate", *to_cli_args({"inputs": ["x.json"], "limit": 2,
                                                                  "encoding_errors": "replace"})])
    opts = from_args(args)
    assert (opts.inputs, opts.limit, opts.encoding_errors) == ([Path("x.json")], 2, "replace")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["validate", "--model", "m"])  # not an input option


def test_a_job_spec_renders_every_option_the_console_sets():
    spec = JobSpec(output_dir="run", inputs=["a.json"], input_dir="in", on_invalid="stop", limit=5, model="m",
                   batch_size=4, max_tokens=2048, device="cpu", dtype="float16", backend="openvino", quantize="int8", dimensions=32, normalize=False, max_length=99,
                   formats=["npy"])
    opts = from_args(build_parser().parse_args(spec.cli_args()))
    for f in fields(spec):
        value = getattr(opts, f.name)
        expected = getattr(spec, f.name)
        if f.name in ("inputs",):
            value = [str(p) for p in value]
        elif f.name in ("output_dir", "input_dir"):
            value = str(value)
        assert value == expected, f.name
    assert opts.progress_file == Path("run") / "status.json"


def test_the_console_has_its_own_defaults_from_the_table():
    spec = JobSpec(output_dir="run")
    assert (spec.model, spec.formats, spec.on_invalid, spec.batch_size) == (DEFAULT_MODEL, ["json", "parquet"],
                                                                            "skip", 16)
    assert JobSpec(output_dir="x").formats is not spec.formats  # a fresh list each time


@pytest.mark.parametrize("change, message", [
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"limit": 0}, "--limit must be at least 1"),
    ({"dimensions": -1}, "--dimensions must be at least 1"),
    ({"max_length": 0}, "--max-length must be at least 1"),
    ({"max_tokens": 0}, "--max-tokens must be at least 1"),
    ({"max_tokens": -512}, "--max-tokens must be at least 1"),
    ({"chunk_size": 0}, "--chunk-size must be at least 1"),
    ({"on_invalid": "ignore"}, "--on-invalid must be stop or skip"),
    ({"encoding_errors": "ignore"}, "--encoding-errors must be strict or replace"),
    ({"formats": ["json", "xml"]}, "--format takes a comma-separated list of json, jsonl, parquet, npy, not xml"),
    ({"formats": []}, "--format takes a comma-separated list of json, jsonl, parquet, npy"),
    ({"engine": "spark"}, "--engine must be local or ray"),
    ({"backend": "tensorrt"}, "--backend must be one of torch, onnx, openvino, auto"),
    ({"quantize": "int4"}, "--quantize must be none or int8"),
    ({"ray_gpus": -1}, "--ray-gpus must be a number, 0 or more"),
    ({"ray_cpus": "one"}, "--ray-cpus must be a number, 0 or more"),
    ({"ray_workers": "0"}, "--ray-workers: expected a whole number N >= 1 or MIN:MAX with 1 <= MIN <= MAX, not '0'"),
    ({"ray_workers": "4:2"}, "--ray-workers: expected a whole number N >= 1 or MIN:MAX with 1 <= MIN <= MAX, "
                             "not '4:2'"),
])
def test_library_callers_get_the_flag_named_for_impossible_values(change, message):
    with pytest.raises(OptionError) as info:
        check_options(GenerateOptions(**change))
    assert str(info.value) == message


def test_the_token_budget_is_off_by_default_everywhere():
    """--max-tokens unset: today's count-based batches, for the CLI and the web console alike (its form shows 0 = off
    and sends nothing)."""
    assert OPTIONS["max_tokens"].default is None and JobSpec(output_dir="run").max_tokens is None
    assert "--max-tokens" not in JobSpec(output_dir="run").cli_args()
    assert _parse(["--max-tokens", "16384", "--batch-size", "512"]).max_tokens == 16384


def test_device_and_dtype_are_left_to_the_engine_which_also_takes_cuda_n():
    check_options(GenerateOptions(device="cuda:1"))  # the engine resolves (or refuses) it


def test_the_default_model_id_is_written_once_in_console_and_pages():
    places = [str(p.relative_to(ROOT)) for folder in ("console", "pages") for p in sorted((ROOT / folder).glob("*.py"))
              if DEFAULT_MODEL in p.read_text(encoding="utf-8")]
    assert places == ["console/options.py"]
