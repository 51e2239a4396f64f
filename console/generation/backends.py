"""CPU inference backends: the model's transformer run by ONNX Runtime or OpenVINO, in float32 or int8, exported
once per model and cached; `--backend auto` picks from a table of measured speed and fidelity.

sentence-transformers' own `backend="onnx"|"openvino"` loads through Optimum, whose releases (optimum-onnx 0.1.0:
transformers < 4.58; optimum-intel 2.2.0: transformers < 5.6) do not install next to the pinned transformers 5.23.
So the console exports only the transformer (`SentenceTransformer[0].model`: token ids -> last hidden states) with
`torch.onnx.export`, quantises it with ONNX Runtime's `quantize_dynamic` (int8 weights, activations quantised per
batch) or converts it with OpenVINO (`openvino.convert_model`; int8: NNCF's data-free `compress_weights`), and swaps
it into the loaded SentenceTransformer. Tokenisation, prompts, pooling, Dense/Normalize modules stay the model's own.

Cache: `<cache>/<model>-<fingerprint>/{model.onnx, model-int8.onnx, openvino/model.xml, openvino/model-int8.xml}`,
`<cache>` = $EMBEDDING_CONSOLE_CACHE, else $XDG_CACHE_HOME/embedding-console/exported (~/.cache/...). The
fingerprint covers the weights (a sample of every tensor), the library versions and the export recipe, so a changed
model is exported again; each file is written under a temporary name and renamed, so concurrent runs never read a
half-written export.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

from console.errors import ModelLoadError, OptionError
from console.options import BACKENDS, QUANTIZATIONS

log = logging.getLogger(__name__)

EXPORT_RECIPE = 1  # bump when the export below changes what is written
PACKAGES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx", "nncf")}
AUTO_TABLE = Path(__file__).with_name("auto_backends.json")  # written by bench/generate.py --backends
# `auto` takes a path only at this fidelity to float32 torch (mean cosine, mean top-10 neighbour overlap)
AUTO_MIN_MEAN_COSINE = 0.99
AUTO_MIN_TOP10 = 0.9


class BackendChoice(NamedTuple):
    backend: str  # torch | onnx | openvino
    quantize: str  # none | int8
    message: str | None = None  # why `auto` chose it, for the user


def check_backend(backend: str, quantize: str, device: str, dtype: str) -> None:
    """OptionError for a combination that cannot run (device and dtype as resolved by the engine)."""
    if backend not in BACKENDS:
        raise OptionError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if quantize not in QUANTIZATIONS:
        raise OptionError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}")
    if backend == "torch" and quantize != "none":
        raise OptionError(f"--quantize {quantize} is not available with --backend torch: use --backend onnx or "
                          "openvino (or --backend auto, which picks a measured one)")
    if backend == "auto" and quantize != "none":
        raise OptionError("--backend auto chooses the quantisation itself: leave --quantize at none, or name the "
                          "backend (--backend onnx --quantize int8)")
    if backend in ("onnx", "openvino"):
        if not device.startswith("cpu"):
            raise OptionError(f"--backend {backend} runs on the CPU here (device {device} asked for): use "
                              "--device cpu, or --backend torch on a GPU")
        if dtype != "float32":
            raise OptionError(f"--backend {backend} runs the exported float32 model (int8 with --quantize int8); "
                              f"--dtype {dtype} is for --backend torch")


def missing_packages(backend: str) -> list[str]:
    import importlib.util

    return [p for p in PACKAGES.get(backend, ()) if importlib.util.find_spec(p) is None]


def weights_fingerprint(module) -> str:
    """A short hash of the weights (shape and first values of every tensor), library versions and recipe."""
    import torch

    h = hashlib.sha256(f"recipe {EXPORT_RECIPE} torch {torch.__version__}".encode())
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        flat = torch.cat([flat[:64], flat[-64:]]).cpu()  # a few values, wherever the model is
        h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        h.update(flat.to(torch.float32).numpy().tobytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    if os.environ.get("EMBEDDING_CONSOLE_CACHE"):
        return Path(os.environ["EMBEDDING_CONSOLE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "embedding-console" / "exported"


def model_cache_dir(model_name: str, fingerprint: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(model_name).rstrip("/")).name)[-60:] or "model"
    return cache_root() / f"{slug}-{fingerprint}"


def _atomic(path: Path, write) -> Path:
    """Run `write(tmp_path)` and rename the result (file or folder) to `path`, unless another process won."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp / path.name)
        try:
            os.replace(tmp / path.name, path)
        except OSError:  # a folder that another process renamed first
            if not path.exists():
                raise
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _input_names(st) -> list[str]:
    sample = st.preprocess(["a", "b c"])
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]


def export_onnx(st, target: Path) -> None:
    """The transformer of `st` as ONNX (float32, dynamic batch and sequence axes; weights in one side file)."""
    import torch

    names = _input_names(st)
    sample = st.preprocess(["a short text", "a somewhat longer text for the trace"])

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    target.mkdir()
    model = Hidden(st[0].model).eval().float()
    with torch.no_grad():
        torch.onnx.export(model, tuple(sample[n] for n in names), str(target / "model.onnx"), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False,
                          external_data=True)
    _merge_external(target / "model.onnx")


def _merge_external(path: Path) -> None:
    """Re-save with all weights in one `model.onnx.data` file (the exporter may write one file per tensor)."""
    import onnx

    proto = onnx.load(str(path))
    for stale in path.parent.iterdir():
        stale.unlink()
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)


def quantize_onnx(source: Path, target: Path) -> None:
    """int8 weights (per channel), activations quantised at run time (ONNX Runtime's dynamic quantisation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.mkdir()
    quantize_dynamic(str(source / "model.onnx"), str(target / "model.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, use_external_data_format=True)


def export_openvino(source: Path, target: Path, int8: bool) -> None:
    """OpenVINO IR from the ONNX export; int8: NNCF's data-free int8 weight compression."""
    import openvino as ov

    model = ov.convert_model(str(source / "model.onnx"))
    if int8:
        import nncf

        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    target.mkdir()
    ov.save_model(model, str(target / "model.xml"), compress_to_fp16=False)


def exported_model(st, model_name: str, backend: str, quantize: str) -> Path:
    """The folder of the exported model for (backend, quantize), made now if the cache does not have it."""
    root = model_cache_dir(model_name, weights_fingerprint(st[0].model))
    onnx_fp32 = _atomic(root / "onnx", lambda p: export_onnx(st, p))
    if backend == "onnx":
        if quantize == "none":
            return onnx_fp32
        return _atomic(root / "onnx-int8", lambda p: quantize_onnx(onnx_fp32, p))
    name = "openvino" if quantize == "none" else "openvino-int8"
    return _atomic(root / name, lambda p: export_openvino(onnx_fp32, p, quantize == "int8"))


def _runner_class():
    import torch

    class Runner(torch.nn.Module):
        """Stands in for the transformer inside the SentenceTransformer: features in, last hidden states out."""

        def __init__(self, config, run, input_names):
            super().__init__()
            self.config = config
            self._run = run
            self.input_names = list(input_names)
            self.register_buffer("_device_marker", torch.zeros(0), persistent=False)  # st.device -> cpu

        def forward(self, **features):
            feed = {n: features[n].detach().cpu().numpy().astype("int64") for n in self.input_names}
            return {"last_hidden_state": torch.from_numpy(self._run(feed))}

    return Runner


def onnx_runner(folder: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return (lambda feed: session.run(None, feed)[0]), [i.name for i in session.get_inputs()]


def openvino_runner(folder: Path):
    import openvino as ov

    compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU")
    output = compiled.outputs[0]
    names = [i.get_any_name() for i in compiled.inputs]
    requests = threading.local()  # one infer request per thread: calling `compiled` shares one, and a second thread
    # using it meanwhile (the backend's gthread workers embed concurrent queries) fails with "Infer Request is busy"

    def run(feed):
        request = getattr(requests, "request", None)
        if request is None:
            request = requests.request = compiled.create_infer_request()
        return request.infer(feed)[output]
    return run, names


def use_backend(st, model_name: str, backend: str, quantize: str) -> Path:
    """Swap the transformer of the loaded `st` for the exported (backend, quantize) model; the export's folder.
    ModelLoadError naming the packages to install when the backend's runtime is missing."""
    from sentence_transformers.base.modules.transformer import Transformer

    if not isinstance(st[0], Transformer):
        raise ModelLoadError(f"--backend {backend}: {model_name} does not start with a transformer module "
                             f"({type(st[0]).__name__}); use --backend torch")
    missing = missing_packages(backend)
    if missing:
        raise ModelLoadError(f"--backend {backend} needs {', '.join(missing)}: pip install the pinned versions in "
                             "requirements.txt (README, Dependencies), or use --backend torch")
    folder = exported_model(st, model_name, backend, quantize)
    run, names = (onnx_runner if backend == "onnx" else openvino_runner)(folder)
    transformer = st[0]
    transformer.model = _runner_class()(transformer.model.config, run, names)
    log.info("model %s runs on %s (%s) from %s", model_name, backend, quantize, folder)
    return folder


# -- auto ------------------------------------------------------------------------------------------------------
def auto_table() -> dict:
    """{fingerprint of the weights: {"model", "measured": [{backend, quantize, items_per_s, speedup, mean_cosine,
    top10_overlap}, ...], "machine", "created_at"}} as bench/generate.py --backends wrote it."""
    try:
        return json.loads(AUTO_TABLE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def pick_auto(fingerprint: str, device: str, dtype: str = "float32") -> BackendChoice:
    """The fastest measured (backend, quantize) for these weights that keeps mean cosine >= 0.99 and top-10
    overlap >= 0.9 to float32 torch; torch float32 on a GPU, for an unmeasured model, or when none qualifies."""
    if not device.startswith("cpu"):
        return BackendChoice("torch", "none", "backend auto: torch on the GPU")
    if dtype != "float32":
        return BackendChoice("torch", "none", f"backend auto: torch ({dtype} asked for)")
    entry = auto_table().get(fingerprint)
    if not entry:
        return BackendChoice("torch", "none", "backend auto: torch float32 (no measurement of this model in "
                                              f"{AUTO_TABLE.name}; bench/generate.py --backends measures one)")
    good = [m for m in entry["measured"] if m["mean_cosine"] >= AUTO_MIN_MEAN_COSINE
            and m["top10_overlap"] >= AUTO_MIN_TOP10 and not missing_packages(m["backend"])]
    best = max(good, key=lambda m: m["items_per_s"], default=None)
    if best is None or best["backend"] == "torch":
        return BackendChoice("torch", "none", "backend auto: torch float32 (no faster path measured at the "
                                              "required fidelity)")
    return BackendChoice(best["backend"], best["quantize"],
                         f"backend auto: {best['backend']} {best['quantize']} ({best['speedup']}x torch float32, "
                         f"mean cosine {best['mean_cosine']}, top-10 overlap {best['top10_overlap']} as measured "
                         f"on {entry.get('created_at', '?')[:10]})")
