"""What the CLI and the dashboard call: train and save a run, open a run or an uploaded
checkpoint, embed, evaluate and predict new lots, and bundle a run for download."""

from __future__ import annotations

import io
import json
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors_bytes
from safetensors.numpy import save as save_safetensors_bytes

from soartlab import data as D
from soartlab.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from soartlab.distances import get_distance
from soartlab.errors import CheckpointError, DataError
from soartlab.evaluation import classification_metrics, classify, embed
from soartlab.models import SiameseNet
from soartlab.runs import RunStore, read_run_json, write_run_json
from soartlab.training import Progress, TrainConfig, Trainer, TrainResult
from soartlab.transform import GammaTransform

REFERENCES_FILE = "references.safetensors"
BUNDLE_FILES = ("model.safetensors", REFERENCES_FILE, "run.json")
# A bundle upload is read into memory: refuse anything larger than this up front.
MAX_BUNDLE_BYTES = 2 * 2**30


@dataclass
class LoadedRun:
    """A trained model with everything needed to use it on new samples."""

    model: SiameseNet
    metadata: dict
    references: tuple[np.ndarray, np.ndarray] | None  # (N, e) embeddings, (N,) labels
    run_dir: Path | None = None

    @property
    def label_names(self) -> list[str]:
        return list(self.metadata["label_names"])

    @property
    def good_index(self) -> int:
        return int(self.metadata.get("good_index", 0))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["input_shape"])

    @property
    def normalization(self) -> D.Normalization:
        return D.Normalization.from_dict(self.metadata["normalization"])

    @property
    def transform(self) -> GammaTransform:
        return GammaTransform.from_dict(self.metadata.get("transform", {}))

    @property
    def distance(self):
        spec = dict(self.metadata.get("distance") or {"name": "euclidean"})
        return get_distance(spec.pop("name"), **spec)

    @property
    def label(self) -> str:
        return str(self.metadata.get("label", ""))


def train_run(
    dataset,
    config: TrainConfig,
    *,
    store: RunStore | None = None,
    label: str = "",
    callback: Callable[[Progress], None] | None = None,
    stop_event: threading.Event | None = None,
    resume_from: LoadedRun | str | Path | None = None,
) -> tuple[Path, TrainResult]:
    """Train on `dataset` and save the run under `store` (default: SOARTLAB_HOME).

    resume_from: an earlier run (or its folder) to continue from — a new round of the
    article's tune → train cycle; its weights and normalisation are the starting point.
    """
    store = store or RunStore()
    init = None
    if resume_from is not None:
        previous = resume_from if isinstance(resume_from, LoadedRun) else load_run(resume_from)
        init = {"metadata": previous.metadata, "state_dict": previous.model.state_dict()}
    trainer = Trainer(config, callback=callback, stop_event=stop_event)
    result = trainer.fit(dataset, init_from=init)
    run_dir = store.new_run(label)
    save_result(run_dir, result, label=label)
    return run_dir, result


def save_result(run_dir: Path, result: TrainResult, label: str = "") -> None:
    """Write model.pth, model.safetensors, references.safetensors and run.json."""
    run_dir = Path(run_dir)
    existing = read_run_json(run_dir) if (run_dir / "run.json").exists() else {}
    metadata = dict(result.metadata)
    save_checkpoint(run_dir, result.model, metadata)
    emb, labels = result.references
    atomic_write_bytes(
        run_dir / REFERENCES_FILE,
        save_safetensors_bytes(
            {"embeddings": np.ascontiguousarray(emb), "labels": labels.astype(np.int64)}
        ),
    )
    record = (
        existing | metadata | {"label": label or existing.get("label", ""), "status": "finished"}
    )
    record["loss"] = metadata["config"]["loss"]
    write_run_json(run_dir, record)


def _read_references(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        tensors = load_safetensors_bytes(raw)
        emb, labels = tensors["embeddings"], tensors["labels"]
    except (SafetensorError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{source} is not a valid reference file: {exc}") from exc
    if emb.ndim != 2 or labels.shape != (len(emb),) or not np.isfinite(emb).all():
        raise CheckpointError(f"{source} holds malformed reference embeddings.")
    return emb.astype(np.float32), labels.astype(np.int64)


def _check_metadata(metadata: dict, source: str) -> dict:
    missing = [k for k in ("label_names", "input_shape", "normalization") if k not in metadata]
    if missing:
        raise CheckpointError(
            f"{source} has no {', '.join(missing)} in its metadata; "
            "upload the run's run.json with the .pth, or the bundle .zip."
        )
    return metadata


def load_run(run_dir: str | Path) -> LoadedRun:
    """Open a run folder written by `train_run`."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise CheckpointError(f"{run_dir} is not a SOART Lab run (no run.json).")
    metadata = read_run_json(run_dir)
    weights = run_dir / "model.safetensors"
    if not weights.exists():
        weights = run_dir / "model.pth"
    model, _ = load_checkpoint(weights, metadata=metadata)
    references = None
    if (run_dir / REFERENCES_FILE).exists():
        references = _read_references(
            (run_dir / REFERENCES_FILE).read_bytes(), str(run_dir / REFERENCES_FILE)
        )
    return LoadedRun(model, _check_metadata(metadata, str(run_dir)), references, run_dir)


def load_uploaded(path: str | Path, run_json: str | Path | None = None) -> LoadedRun:
    """Open an uploaded checkpoint: a bundle `.zip`, a `.safetensors` file, or a `.pth`
    with its `run.json` (given, or beside it)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _load_bundle(path)
    metadata = None
    if run_json is not None:
        try:
            metadata = json.loads(Path(run_json).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{Path(run_json).name} is not a valid run.json: {exc}") from exc
        if not isinstance(metadata, dict):
            raise CheckpointError(f"{Path(run_json).name} is not a valid run.json (not an object).")
    model, meta = load_checkpoint(path, metadata=metadata)
    return LoadedRun(model, _check_metadata(meta, path.name), None, None)


def _load_bundle(path: Path) -> LoadedRun:
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise CheckpointError(f"{path.name} is larger than {MAX_BUNDLE_BYTES // 2**20} MB.")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            missing = [name for name in ("model.safetensors", "run.json") if name not in infos]
            if missing:
                raise CheckpointError(
                    f"{path.name} is not a SOART Lab bundle: {', '.join(missing)} missing "
                    f"(expected {', '.join(BUNDLE_FILES)})."
                )
            total = sum(infos[n].file_size for n in BUNDLE_FILES if n in infos)
            if total > MAX_BUNDLE_BYTES:
                raise CheckpointError(f"{path.name} declares {total} bytes uncompressed; refused.")
            contents = {n: archive.read(n) for n in BUNDLE_FILES if n in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path.name} is not a valid zip: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="soartlab-bundle-") as tmp:
        weights = Path(tmp) / "model.safetensors"
        weights.write_bytes(contents["model.safetensors"])
        try:
            metadata = json.loads(contents["run.json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"run.json in {path.name} is not valid JSON: {exc}") from exc
        model, _ = load_checkpoint(weights, metadata=metadata)
    references = None
    if REFERENCES_FILE in contents:
        references = _read_references(
            contents[REFERENCES_FILE], f"{REFERENCES_FILE} in {path.name}"
        )
    return LoadedRun(model, _check_metadata(metadata, path.name), references, None)


def make_bundle(run_dir: str | Path) -> bytes:
    """A zip of the run's safetensors weights, references and run.json."""
    run_dir = Path(run_dir)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in BUNDLE_FILES:
            if (run_dir / name).exists():
                archive.write(run_dir / name, arcname=name)
    return buffer.getvalue()


def _features(run: LoadedRun, dataset) -> np.ndarray:
    X, _ = D.to_arrays(dataset)
    expected = int(np.prod(run.input_shape))
    if X.shape[1] != expected:
        shape = "×".join(str(s) for s in run.input_shape)
        raise DataError(
            f"The samples have {X.shape[1]} features but the model expects {expected} ({shape})."
        )
    return run.normalization.apply(X).astype(np.float32, copy=False)


def embed_dataset(run: LoadedRun, dataset) -> np.ndarray:
    """Embeddings (N, e) of a dataset's samples under the run's model and normalisation."""
    return embed(run.model, _features(run, dataset))


def _classify(run: LoadedRun, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = int(run.metadata.get("config", {}).get("knn_k", 1))
    n_classes = len(run.label_names)
    if run.references is not None:
        ref_emb, ref_labels = run.references
        return classify(ref_emb, ref_labels, emb, run.distance, k=k, n_classes=n_classes)
    protos = run.metadata.get("prototypes")
    if protos is None:
        raise CheckpointError(
            "This checkpoint has no reference embeddings; upload the bundle .zip or pick a saved run."
        )
    return classify(
        np.asarray(protos, np.float32), np.arange(n_classes), emb, run.distance, n_classes=n_classes
    )


def _label_map(run: LoadedRun, dataset) -> np.ndarray | None:
    """Map the dataset's label ids onto the run's label ids by name; None if unlabelled."""
    names = D.label_names(dataset)
    _, y = D.to_arrays(dataset)
    unknown = sorted(set(names[i] for i in np.unique(y)) - set(run.label_names))
    if unknown:
        raise DataError(
            f"Labels {', '.join(unknown)} are not classes of this model "
            f"({', '.join(run.label_names)})."
        )
    lookup = np.array([run.label_names.index(n) if n in run.label_names else -1 for n in names])
    return lookup[y]


def evaluate_run(run: LoadedRun, dataset) -> dict:
    """Metrics of the run's model on a labelled dataset."""
    if not D.is_labelled(dataset):
        raise DataError("These samples have no labels; metrics need a 'label' column.")
    pred, _ = _classify(run, embed_dataset(run, dataset))
    y = _label_map(run, dataset)
    return classification_metrics(y, pred, run.label_names, run.good_index)


def predict(
    run: LoadedRun, dataset, labelled: bool | None = None, embeddings: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per sample: predicted class, pass/fail, distance to the nearest reference;
    `label` and `correct` when the dataset is labelled (`labelled=None`: when it has
    labels at all, see `data.is_labelled`). `embeddings`: the dataset's `embed_dataset`
    result when the caller already has it (N, e), so it is not computed again."""
    if embeddings is None:
        embeddings = embed_dataset(run, dataset)
    pred, nearest = _classify(run, embeddings)
    names = np.array(run.label_names, dtype=object)
    table = pd.DataFrame(
        {
            "index": np.arange(len(pred)),
            "predicted": names[pred],
            "pass_fail": np.where(pred == run.good_index, "pass", "fail"),
            "distance": nearest.astype(float),
        }
    )
    if labelled is None:
        labelled = D.is_labelled(dataset)
    if labelled:
        y = _label_map(run, dataset)
        table["label"] = names[y]
        table["correct"] = y == pred
    return table
