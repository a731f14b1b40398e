"""Save and load trained models safely.

A checkpoint is the `SiameseNet` state_dict in two forms (`checkpoint_bytes`):

- ``.pth``: the plain state_dict through ``torch.save``, so the article's own
  ``model.load_state_dict(torch.load(path))`` works on it;
- ``.safetensors``: the same tensors, with the metadata (the run record: model config,
  label names, normalisation, transform, ...) as JSON under the header key ``"soartlab"``.

A loaded model carries its input normalisation (from the metadata), so it embeds raw
samples. Which files a run folder holds is `soartlab.runs`' business.

Loading never unpickles arbitrary objects (``weights_only=True``, passed explicitly so
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it off) and checks everything — file
size, format, config, tensor names, shapes, dtypes, finiteness — before a model is built.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open

from soartlab.data import Normalization
from soartlab.errors import CheckpointError, DataError
from soartlab.files import MAX_CHECKPOINT_BYTES, parse_json_object
from soartlab.models import ModelConfig, SiameseNet, build_model
from soartlab.runs import Run

METADATA_KEY = "soartlab"  # safetensors header key holding the metadata JSON
PTH_SUFFIXES = (".pth", ".pt")
SAFETENSORS_SUFFIXES = (".safetensors",)
LAYERS = ("linear1", "linear2", "linear3", "final")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_LIST_LIMIT = 8  # names shown per list in an error message

EXPORT_HINT = (
    "Export the state_dict instead: torch.save(model.state_dict(), 'model.pth'), "
    "or use the model.safetensors file SOART Lab writes."
)


# --- saving ------------------------------------------------------------------------------


def checkpoint_bytes(model: SiameseNet, metadata: Mapping[str, Any]) -> dict[str, bytes]:
    """The model's state_dict as ``{"pth": bytes, "safetensors": bytes}``.

    ``metadata`` must be JSON-serialisable; its ``"model"`` and ``"normalization"`` entries
    are set from the model itself, so the file always describes the function it holds.
    """
    if not isinstance(model, SiameseNet):
        raise TypeError(f"checkpoint_bytes expects a SiameseNet; got {type(model).__name__}.")
    metadata = dict(metadata)
    metadata["model"] = model.config.to_dict()
    metadata["normalization"] = model.normalization.to_dict()
    header = {METADATA_KEY: json.dumps(metadata, ensure_ascii=False)}
    # Plain CPU tensors only, so weights_only loading (and the article's torch.load) works.
    state = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return {
        "pth": buffer.getvalue(),
        "safetensors": safetensors.torch.save(state, metadata=header),
    }


def save_checkpoint(
    run_dir: str | os.PathLike[str], model: SiameseNet, metadata: Mapping[str, Any]
) -> dict[str, Path]:
    """Write the model's weights into the run folder ``run_dir`` (see `soartlab.runs.Run`);
    return their paths under the keys ``"pth"`` and ``"safetensors"``."""
    return Run(run_dir).write_weights(checkpoint_bytes(model, metadata))


# --- loading -----------------------------------------------------------------------------


def load_checkpoint(
    path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> tuple[SiameseNet, dict[str, Any]]:
    """Load a checkpoint into a new `SiameseNet` (eval mode, CPU) and return its metadata.

    ``.safetensors``: metadata from the file's header. ``.pth``/``.pt``: metadata from
    the record of the run folder it lies in, if any. A ``metadata`` argument replaces
    either. Its ``"normalization"`` entry, when present, is set on the model. Its
    ``"model"`` entry is the `ModelConfig`; without one the config is inferred from the
    weight shapes (input shape then ``(in_features,)``, or ``metadata["input_shape"]``).
    Anything unsafe or unusable raises `CheckpointError`; nothing is built before every
    check has passed.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        state, stored = _read_safetensors(path)
    elif suffix in PTH_SUFFIXES:
        state = _read_pth(path)
        folder = Run(path.parent)
        stored = folder.read_json() if metadata is None and folder.record_path.is_file() else {}
    else:
        raise CheckpointError(
            f"'{path.name}' is not a checkpoint file: expected a name ending in "
            f"{', '.join(PTH_SUFFIXES + SAFETENSORS_SUFFIXES)}; got '{path.suffix or 'no suffix'}'."
        )
    meta = dict(metadata) if metadata is not None else stored
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"Metadata for '{path.name}' must be a JSON object; got {type(meta).__name__}."
        )

    state = _unwrap_state_dict(state, path)
    config = _config_for(meta, state, path)
    _check_tensors(state, config, path)

    normalization = _normalization_for(meta, config, path)
    model = build_model(config, normalization)
    model.load_state_dict(state, strict=True)
    model.eval()
    meta = dict(meta)
    meta["model"] = config.to_dict()
    return model, meta


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"Checkpoint file '{path}' does not exist.")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint '{path}' is not a file.")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"Checkpoint '{path.name}' is {size / 1024**3:.1f} GiB; at most "
            f"{MAX_CHECKPOINT_BYTES / 1024**3:.0f} GiB is accepted."
        )
    if size == 0:
        raise CheckpointError(f"'{path.name}' is not a valid checkpoint: the file is empty.")


def _not_valid(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"'{path.name}' is not a valid checkpoint ({why}); expected a model.pth or "
        f"model.safetensors file saved by SOART Lab or with torch.save(model.state_dict())."
    )


_GLOBAL_RE = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]+)", re.IGNORECASE)


def _read_pth(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            # weights_only passed explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD only
            # overrides a call that leaves it unset.
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL_RE.search(str(exc))
        if found:
            raise CheckpointError(
                f"'{path.name}' holds pickled Python objects ({found.group(1)}), not just "
                f"tensors, and was refused without running them. {EXPORT_HINT}"
            ) from None
        raise _not_valid(path, "not a PyTorch state_dict file") from None
    except (RuntimeError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        # What torch.load raises for truncated zips and stray bytes.
        raise _not_valid(path, f"unreadable: {type(exc).__name__}") from None
    except OSError as exc:
        raise CheckpointError(f"Checkpoint '{path}' could not be read: {exc.strerror}.") from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            names = list(handle.keys())
            dtypes = {name: handle.get_slice(name).get_dtype() for name in names}
            bad = sorted(n for n, dt in dtypes.items() if dt not in ("F16", "BF16", "F32", "F64"))
            if bad:
                raise CheckpointError(
                    f"Checkpoint '{path.name}' holds non-float tensors "
                    f"({_short([f'{n}: {dtypes[n]}' for n in bad])}); weights must be floats."
                )
            state = {name: handle.get_tensor(name) for name in names}
    except SafetensorError as exc:
        raise _not_valid(path, f"bad safetensors data: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"Checkpoint '{path}' could not be read: {exc.strerror}.") from None

    meta: dict[str, Any] = {}
    if METADATA_KEY in header:
        meta = parse_json_object(
            header[METADATA_KEY], f"the '{METADATA_KEY}' metadata in {path.name}"
        )
    return state, meta


def _normalization_for(
    meta: Mapping[str, Any], config: ModelConfig, path: Path
) -> Normalization | None:
    if "normalization" not in meta:
        return None
    try:
        normalization = Normalization.from_dict(meta["normalization"])
        normalization.check_width(config.in_features)
    except DataError as exc:
        raise CheckpointError(f"Checkpoint '{path.name}': {exc}") from None
    return normalization


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The SiameseNet state_dict in ``obj``, accepting the common variants: wrapped as
    ``{"state_dict": ...}``/``{"model_state_dict": ...}`` or the bare EmbeddingNet's."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if key in obj and len(obj) <= 8 and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"'{path.name}' holds {_describe(obj)}, not a state_dict (a dict of tensor "
            f"names to tensors). {EXPORT_HINT}"
        )
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(
            f"'{path.name}' holds a dict whose entries are not all tensors "
            f"({_short(not_tensors) or 'non-text keys'}), not a state_dict. {EXPORT_HINT}"
        )
    state = dict(obj)
    if not any(k.startswith("embedding_net.") for k in state) and any(
        k.startswith(("linear1.", "blocks.")) for k in state
    ):
        # A bare embedding network's state_dict (mlp or cnn): same weights, the
        # SiameseNet prefix missing.
        state = {f"embedding_net.{k}": v for k, v in state.items()}
    return state


def _config_for(
    meta: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path
) -> ModelConfig:
    if "model" in meta:
        try:
            return ModelConfig.from_dict(meta["model"])
        except (CheckpointError, TypeError) as exc:
            raise CheckpointError(f"Checkpoint '{path.name}': {exc}") from None
    return _infer_config(meta, state, path)


def _infer_config(
    meta: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path
) -> ModelConfig:
    """Layer sizes from the weight shapes, for a ``.pth`` that came without metadata."""
    keys = [f"embedding_net.{layer}.weight" for layer in LAYERS]
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"Checkpoint '{path.name}' does not have the SOART Lab / article architecture "
            f"(linear1, linear2, linear3, final): missing keys {_short(missing)}; "
            f"found {_short(sorted(state))}."
        )
    shapes = [tuple(state[k].shape) for k in keys]
    if any(len(shape) != 2 for shape in shapes):
        raise CheckpointError(
            f"Checkpoint '{path.name}': layer weights must be 2-D matrices; got shapes "
            f"{dict(zip(keys, shapes, strict=True))}."
        )
    in_features = shapes[0][1]
    input_shape: Any = [in_features]
    given = meta.get("input_shape")
    if isinstance(given, list | tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in given
    ):
        if math.prod(given) == in_features:
            input_shape = list(given)
    try:
        return ModelConfig.from_dict(
            {
                "input_shape": input_shape,
                "hidden": [shapes[0][0], shapes[1][0], shapes[2][0]],
                "embedding_dim": shapes[3][0],
            }
        )
    except CheckpointError as exc:
        raise CheckpointError(f"Checkpoint '{path.name}': {exc}") from None


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of the `SiameseNet` state_dict for ``config``."""
    shapes: dict[str, tuple[int, ...]] = {}
    if config.arch == "cnn":  # see models.ConvEmbeddingNet
        widths = [config.in_channels, *config.channels]
        for block, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            shapes[f"embedding_net.blocks.{block}.0.weight"] = (c_out, c_in, 3, 3)
            shapes[f"embedding_net.blocks.{block}.1.weight"] = (c_out,)
            shapes[f"embedding_net.blocks.{block}.1.bias"] = (c_out,)
        shapes["embedding_net.final.weight"] = (config.embedding_dim, widths[-1])
        shapes["embedding_net.final.bias"] = (config.embedding_dim,)
        return shapes
    for layer, (n_in, n_out) in zip(LAYERS, config.layer_sizes(), strict=True):
        shapes[f"embedding_net.{layer}.weight"] = (n_out, n_in)
        shapes[f"embedding_net.{layer}.bias"] = (n_out,)
    return shapes


def _check_tensors(state: Mapping[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
    """Names, shapes, dtypes and finiteness, all before the model is built."""
    expected = expected_shapes(config)
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = [
        f"{k} is {tuple(state[k].shape)} in the file, expected {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys {_short(missing)}")
        if unexpected:
            problems.append(f"unexpected keys {_short(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatch: {_short(mismatched)}")
        sizes = (
            f"cnn, channels {list(config.channels)}"
            if config.arch == "cnn"
            else f"hidden {list(config.hidden)}"
        )
        raise CheckpointError(
            f"Checkpoint '{path.name}' does not fit the model it describes (input "
            f"{'×'.join(map(str, config.input_shape))} = {config.in_features} features, "
            f"{sizes}, embedding {config.embedding_dim}): " + "; ".join(problems) + "."
        )
    not_float = [f"{k}: {t.dtype}" for k, t in state.items() if t.dtype not in FLOAT_DTYPES]
    if not_float:
        raise CheckpointError(
            f"Checkpoint '{path.name}' holds non-float tensors ({_short(not_float)}); "
            f"weights must be floats."
        )
    non_finite = [k for k, t in state.items() if not bool(torch.isfinite(t).all())]
    if non_finite:
        raise CheckpointError(
            f"Checkpoint '{path.name}' has NaN or infinite weights in {_short(non_finite)}; "
            f"the model diverged or the file is damaged. Use the last good checkpoint."
        )


def _short(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = len(items) - _LIST_LIMIT
    return shown + (f" and {more} more" if more > 0 else "")


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return "an empty dict"
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    return f"a {type(obj).__name__}"
