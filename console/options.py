"""The generate options, defined once: `GenerateOptions`, one field per option with its default and, in its
metadata, an `Option` (CLI flag, help, kind, choices, and whether and how the web console's form shows it).

Everything else is derived from this table:
- `add_arguments(parser, group)`: the argparse options of `embedding-console generate` (and the input options of
  `validate`); `from_args(args)`: parsed arguments -> GenerateOptions;
- `check_options(opts)`: impossible values refused with the flag's name (library callers; argparse refuses them
  first on the command line);
- `to_cli_args(values)`: options -> CLI arguments (the web console runs the CLI: `console.app.jobs.JobSpec.cli_args`);
- `ConsoleOptions`: the options the web console sets, with its own defaults (`console.app.jobs.JobSpec` extends it);
- `OPTIONS[name]`: one option's flag, help, label, choices and defaults (the form in pages/generate.py reads them).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from console.files.embfiles import FORMATS
from console.errors import OptionError

DEFAULT_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "float32", "float16", "bfloat16")
BACKENDS = ("torch", "onnx", "openvino", "auto")  # console.generation.backends: exported once, cached; auto: measured table
QUANTIZATIONS = ("none", "int8")
ON_INVALID = ("stop", "skip")
ENCODING_ERRORS = ("strict", "replace")
CHUNK_SIZE = 10_000  # records read, embedded and written at a time
ENGINES = ("local", "ray")
_SAME = object()  # Option.console_default: the same as the CLI's default

# kinds: text | path | count (whole number >= 1, or None) | number (>= 0, may have a fraction) | choice |
#        paths (repeatable flag) | list (comma-separated, from `choices`) | switch (on by default; `negative` turns it
#        off) | flag (store_true) | range (a whole number N >= 1 or MIN:MAX)


@dataclass(frozen=True)
class Option:
    """One generate option: how the CLI takes it and how the web console shows it."""
    flag: str
    help: str | None = None
    kind: str = "text"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    negative: str | None = None  # switch: the flag that turns it off
    group: str = "generate"  # "input": also an option of `embedding-console validate`
    strict: bool = True  # choice: check_options refuses other values (False: the engine judges, e.g. cuda:1)
    label: str | None = None  # the web console's form label; None: the console does not set it
    console_default: Any = _SAME  # the web console's default, when it differs from the CLI's
    name: str = ""  # filled from the field
    default: Any = None  # filled from the field

    @property
    def dest(self) -> str:
        """The argparse attribute (`--input` -> `input`, `--format` -> `format`)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def web_default(self) -> Any:
        return self.default if self.console_default is _SAME else self.console_default


def _opt(default: Any, flag: str, help: str | None = None, **kw) -> Any:
    return field(default=default, metadata={"option": Option(flag, help, **kw)})


@dataclass
class GenerateOptions:
    """The options of one generation run (`console.generation.generate.generate`); the table described in the module doc."""
    input_dir: Path | None = _opt(
        None, "--input-dir", "folder with the exported files (*.json arrays, *.jsonl, *.csv); default embedding_data",
        kind="path", group="input")
    inputs: Sequence[Path] = _opt(
        (), "--input", "an input file (repeatable); used instead of --input-dir", kind="paths", metavar="FILE",
        group="input")
    on_invalid: str = _opt(
        "stop", "--on-invalid",
        "bad records: stop before embedding (default) or skip them and list them in rejects.jsonl",
        kind="choice", choices=ON_INVALID, group="input", label="Invalid records", console_default="skip")
    encoding_errors: str = _opt(
        "strict", "--encoding-errors",
        "invalid UTF-8: stop with the byte offset (default) or replace bad bytes with U+FFFD",
        kind="choice", choices=ENCODING_ERRORS, group="input")
    limit: int | None = _opt(None, "--limit", "use only the first N valid records", kind="count", group="input",
                             label="Limit")
    output_dir: Path = _opt(
        Path("embeddings_output"), "--output-dir",
        "where the embeddings_*.* files go (and .checkpoints/, rejects.jsonl); default embeddings_output", kind="path")
    model: str = _opt(DEFAULT_MODEL, "--model",
                      f"sentence-transformers model id or local folder, or minilm (the shipped all-MiniLM-L6-v2, "
                      f"loads offline) (default {DEFAULT_MODEL})", label="Model")
    batch_size: int = _opt(16, "--batch-size", "texts per batch (default 16; with --max-tokens: at most)",
                           kind="count", label="Batch size")
    max_tokens: int | None = _opt(
        None, "--max-tokens",
        "token-budget batches: texts sorted by token count, each batch cut at N padded tokens (texts x its longest "
        "text), --batch-size then only caps the count. For GPU runs over texts of very different lengths: short "
        "texts share big batches, long ones small (e.g. --max-tokens 16384 --batch-size 512). A text over N is "
        "embedded alone. Same vectors (within rounding); default: --batch-size texts per batch",
        kind="count", metavar="N", label="Max tokens per batch (0 = off)")
    device: str = _opt("auto", "--device", kind="choice", choices=DEVICES, strict=False, label="Device")
    dtype: str = _opt("auto", "--dtype", "auto: bfloat16 (or float16) on a GPU, float32 on the CPU", kind="choice",
                      choices=DTYPES, strict=False, label="Precision")
    backend: str = _opt(
        "torch", "--backend",
        "torch (default); onnx or openvino: ONNX Runtime / OpenVINO on the CPU, the model exported once and cached; "
        "auto: the fastest path measured at mean cosine >= 0.99 and top-10 overlap >= 0.9 (README), else torch",
        kind="choice", choices=BACKENDS, label="Backend")
    quantize: str = _opt("none", "--quantize", "none (default) or int8 (--backend onnx or openvino)", kind="choice",
                         choices=QUANTIZATIONS, label="Quantisation")
    dimensions: int | None = _opt(None, "--dimensions", "Matryoshka: keep the first N dimensions, then re-normalise",
                                  kind="count", label="Dimensions (0 = the model's own)")
    normalize: bool = _opt(True, "--normalize", "unit-length vectors (default)", kind="switch",
                           negative="--no-normalize", label="Normalise")
    max_length: int | None = _opt(None, "--max-length", "max tokens per text (longer: cut)", kind="count",
                                  label="Max length")
    chunk_size: int = _opt(
        CHUNK_SIZE, "--chunk-size",
        f"records embedded (sorted by length) and written at a time (default {CHUNK_SIZE:,}): larger sorts lengths "
        "better, smaller holds less in memory; a resumed run may change it", kind="count", metavar="N")
    formats: Sequence[str] = _opt(("json",), "--format", "output formats, comma-separated (default json)",
                                  kind="list", choices=FORMATS, metavar=",".join(FORMATS), label="Output formats",
                                  console_default=("json", "parquet"))
    dry_run: bool = _opt(False, "--dry-run", "validate only; load no model, write nothing", kind="flag")
    progress_file: Path | None = _opt(None, "--progress-file",
                                      "write a JSON status after each batch (read by the web console)", kind="path")
    reuse: Sequence[Path] = _opt(
        (), "--reuse", "output folder of an earlier run: its vectors for unchanged texts are reused (repeatable)",
        kind="paths", metavar="DIR")
    engine: str = _opt(
        "local", "--engine", "local: this machine (default); ray: Ray workers (pip install .[ray]; docs/SCALING.md)",
        kind="choice", choices=ENGINES, label="Engine")
    ray_address: str | None = _opt(
        None, "--ray-address", "--engine ray: the cluster (auto, ray://HOST:10001); default: a local Ray here",
        label="Ray address")
    ray_gpus: float = _opt(1.0, "--ray-gpus", "--engine ray: GPUs per worker (default 1; 0: CPU workers)",
                           kind="number", metavar="N")
    ray_cpus: float = _opt(1.0, "--ray-cpus", "--engine ray: CPUs reserved per worker (default 1; may be a fraction)",
                           kind="number", metavar="N")
    ray_workers: str = _opt("1", "--ray-workers", "--engine ray: workers, a number or MIN:MAX (autoscaled; default 1)",
                            kind="range", metavar="N|MIN:MAX")
    ray_storage: str | None = _opt(
        None, "--ray-storage",
        "--engine ray: folder or URI (s3://, gs://, a shared mount) every node reads, for the work files; "
        "default <output-dir>/.ray", metavar="URI")


OPTIONS: dict[str, Option] = {f.name: replace(f.metadata["option"], name=f.name, default=f.default)
                              for f in fields(GenerateOptions)}


# -- argparse --------------------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def parse_range(text: str) -> tuple[int, int]:
    """"N" -> (N, N); "MIN:MAX" -> (MIN, MAX); ValueError saying what is wrong otherwise."""
    parts = str(text).split(":")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, 0)
    except ValueError:
        low = high = 0
    if low < 1 or high < low:
        raise ValueError(f"expected a whole number N >= 1 or MIN:MAX with 1 <= MIN <= MAX, not {text!r}")
    return low, high


def _range(text: str) -> str:
    try:
        parse_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _comma_list(choices: Sequence[str]):
    def parse(text: str) -> list[str]:
        values = [v.strip().lower() for v in text.split(",") if v.strip()]
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated), not {text!r}")
        return values
    return parse


def add_arguments(parser: argparse.ArgumentParser, group: str | None = None) -> None:
    """The options of the table (those of `group` only, when given) as argparse arguments, in table order."""
    for o in OPTIONS.values():
        if group is not None and o.group != group:
            continue
        kw: dict[str, Any] = {"help": o.help, "default": o.default}
        if o.metavar:
            kw["metavar"] = o.metavar
        if o.kind == "switch":
            parser.add_argument(o.flag, dest=o.dest, action="store_true", **kw)
            parser.add_argument(o.negative, dest=o.dest, action="store_false")
            continue
        if o.kind == "flag":
            kw["action"] = "store_true"
        elif o.kind in ("path", "paths"):
            kw["type"] = Path
        elif o.kind == "count":
            kw["type"] = positive_int
        elif o.kind == "number":
            kw["type"] = non_negative
        elif o.kind == "range":
            kw["type"] = _range
        elif o.kind == "choice":
            kw["choices"] = o.choices
        elif o.kind == "list":
            kw.update(type=_comma_list(o.choices), default=list(o.default))
        if o.kind == "paths":
            kw.update(action="append", default=list(o.default))
        parser.add_argument(o.flag, **kw)


def add_exclude_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `embedding-console exclude` (a run's exclusions, console.explore.curation)."""
    parser.add_argument("run", type=Path, metavar="RUN", help="the run's folder (e.g. work/runs/<run-id>)")
    parser.add_argument("--id", dest="ids", action="append", default=[], metavar="ID",
                        help="an item to exclude (repeatable); with --undo: to take back")
    parser.add_argument("--note", default="", help="why (kept with each excluded item)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--undo", action="store_true", help="take the --id items back (they are pushed again)")
    what.add_argument("--undo-all", action="store_true", help="take every exclusion of the run back")


def from_args(args: argparse.Namespace, **overrides) -> GenerateOptions:
    """GenerateOptions from parsed arguments (options the parser did not have keep their defaults)."""
    values = {name: getattr(args, o.dest) for name, o in OPTIONS.items() if hasattr(args, o.dest)}
    return GenerateOptions(**{**values, **overrides})


# -- checks and rendering --------------------------------------------------------------------------------------
def check_options(opts: GenerateOptions) -> None:
    """OptionError naming the flag for a value the CLI's parser would have refused."""
    for o in OPTIONS.values():
        value = getattr(opts, o.name)
        if o.kind == "count" and value is not None and value < 1:
            raise OptionError(f"{o.flag} must be at least 1")
        if o.kind == "number" and not (isinstance(value, (int, float)) and value >= 0):
            raise OptionError(f"{o.flag} must be a number, 0 or more")
        if o.kind == "range":
            try:
                parse_range(value)
            except ValueError as exc:
                raise OptionError(f"{o.flag}: {exc}") from None
        if o.kind == "choice" and o.strict and value not in o.choices:
            allowed = " or ".join(o.choices) if len(o.choices) == 2 else "one of " + ", ".join(o.choices)
            raise OptionError(f"{o.flag} must be {allowed}")
        if o.kind == "list":
            unknown = [v for v in value if v not in o.choices]
            if unknown or not value:
                raise OptionError(f"{o.flag} takes a comma-separated list of {', '.join(o.choices)}"
                                  + (f", not {', '.join(unknown)}" if unknown else ""))


def to_cli_args(values: Mapping[str, Any]) -> list[str]:
    """CLI arguments that give these option values (by field name; None and empty lists are left out)."""
    args: list[str] = []
    for name, o in OPTIONS.items():
        value = values.get(name)
        if value is None:
            continue
        if o.kind == "paths":
            for item in value:
                args += [o.flag, str(item)]
        elif o.kind == "list":
            args += [o.flag, ",".join(value)]
        elif o.kind == "switch":
            args += [] if value else [o.negative]
        elif o.kind == "flag":
            args += [o.flag] if value else []
        else:
            args += [o.flag, str(value)]
    return args


# -- the web console's options -----------------------------------------------------------------------------------
def _console_fields() -> list[tuple]:
    """output_dir (required), inputs, input_dir, then every option with a form label, with the console's defaults;
    paths as strings (they are saved in job.json)."""
    out: list[tuple] = [("output_dir", str)]
    for name in ("inputs", "input_dir", *(n for n, o in OPTIONS.items() if o.label)):
        default = OPTIONS[name].web_default
        if isinstance(default, (list, tuple)):
            out.append((name, list, field(default_factory=lambda d=default: list(d))))
        else:
            out.append((name, Any, field(default=default)))
    return out


ConsoleOptions = make_dataclass("ConsoleOptions", _console_fields())
ConsoleOptions.__module__ = __name__
ConsoleOptions.__doc__ = "The options the web console sets for a run (derived from GenerateOptions' table)."
