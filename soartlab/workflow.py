"""What the CLI and the dashboard call: train and save a run, open a run or an uploaded
checkpoint, embed, evaluate and predict new lots, and find a run's held-out parts."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors_bytes
from safetensors.numpy import save as save_safetensors_bytes

from soartlab import data as D
from soartlab.checkpoint import checkpoint_bytes, load_checkpoint
from soartlab.errors import CheckpointError, DataError
from soartlab.evaluation import classification_metrics, classify, embed
from soartlab.files import MAX_JSON_BYTES, parse_json_object, read_regular_file
from soartlab.models import SiameseNet
from soartlab.prepare import PreparedData, dataset_fingerprint, prepare
from soartlab.record import DataInfo, RunRecord
from soartlab.runs import REFERENCES_FILE, RUN_JSON, SAFETENSORS_FILE, Run, RunStore, read_bundle
from soartlab.training import (
    Progress,
    TrainConfig,
    Trainer,
    TrainResult,
    evaluation_distance,
    initial_model,
)
from soartlab.tuning import (
    LossView,
    PairGammas,
    check_learnable,
    default_transform,
    training_pairs,
)

# A bundle upload is read into memory: refuse anything larger than this up front.
MAX_BUNDLE_BYTES = 2 * 2**30


@dataclass
class LoadedRun:
    """A trained model with everything needed to use it on new samples."""

    model: SiameseNet  # carries its input normalisation: feed raw samples
    record: RunRecord
    references: tuple[np.ndarray, np.ndarray] | None  # (N, e) embeddings, (N,) labels
    run: Run | None = None  # the folder it was opened from; None for an upload

    @property
    def run_dir(self) -> Path | None:
        return None if self.run is None else self.run.path

    @property
    def label_names(self) -> list[str]:
        return list(self.record.label_names)

    @property
    def good_index(self) -> int:
        return self.record.good_index

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.record.input_shape

    @property
    def distance(self):
        return self.record.evaluation_distance()

    @property
    def label(self) -> str:
        return self.record.label


def build_record(
    config: TrainConfig,
    data: PreparedData,
    result: TrainResult,
    *,
    label: str = "",
    owner: str = "",
    cpu_seconds: float | None = None,
    wall_seconds: float | None = None,
) -> RunRecord:
    """The record of a finished `Trainer.fit` on ``data``."""
    distance = evaluation_distance(config)
    return RunRecord(
        config=config,
        model=result.model.config,
        label_names=data.label_names,
        good_index=data.good_index,
        normalization=result.model.normalization,
        distance={"name": distance.name, **distance.params()},
        metrics=result.metrics,
        history=tuple(result.history),
        status=result.outcome,
        stop_reason=result.stop_reason,
        data=DataInfo(data.fingerprint, data.n_samples, tuple(data.test_indices.tolist())),
        baselines=result.baselines,
        label=label,
        owner=owner,
        world_size=result.world_size,
        backend=result.backend,
        cpu_seconds=cpu_seconds,
        wall_seconds=wall_seconds,
    )


def save_run(run: Run, record: RunRecord, result: TrainResult) -> RunRecord:
    """Write the trained model, its references and ``record`` into ``run``."""
    emb, labels = result.references
    references = save_safetensors_bytes(
        {"embeddings": np.ascontiguousarray(emb), "labels": labels.astype(np.int64)}
    )
    return run.write(
        record, lambda final: checkpoint_bytes(result.model, final.to_dict()), references
    )


# Pairs the pre-training check and the automatic transform look at: enough for shares
# to within a few points, cheap next to training.
SETUP_PAIRS = 2000


@dataclass(frozen=True)
class TrainingSetup:
    """What a run starts from, checked: the network learns something under ``config``."""

    data: PreparedData
    model: SiameseNet  # the network training starts from (new, or the earlier round's)
    config: TrainConfig  # with the transform training uses (Suggest's when automatic)
    pairs: PairGammas  # training-split pairs on ``model``'s embeddings: what the loss sees
    view: LossView  # the loss's view of ``pairs`` under ``config`` (it learns)
    suggested: bool  # the transform is Suggest's for this data and network (automatic)


def training_setup(
    dataset,
    config: TrainConfig,
    *,
    auto_transform: bool = False,
    resume_from: LoadedRun | str | Path | None = None,
    n_pairs: int = SETUP_PAIRS,
) -> TrainingSetup:
    """Prepare ``dataset``, build the network to train (a new one seeded by
    ``config.seed``, or the model of ``resume_from``: a new round of the article's tune →
    train cycle) and check that ``config`` can teach it something
    (`tuning.check_learnable`; `SoartLabError` naming the numbers and the fix otherwise).

    ``auto_transform``: the user set no transform, so the SOART3 loss trains with
    `tuning.default_transform` on this network's embeddings (the article's values when
    the loss learns from them, else Suggest's; the config's margin and floor) — the
    default for a new data set is one that learns there. The CLI and the Train page both
    come here.
    ``n_pairs``: training-split pairs looked at.
    """
    data = prepare(dataset, config.test_size, config.seed, config.good_class)
    warm = None
    if resume_from is not None:
        previous = resume_from if isinstance(resume_from, LoadedRun) else load_run(resume_from)
        warm = previous.model
    model = initial_model(config, data, warm)
    pairs = training_pairs(config, data.x_train, data.y_train, model, n_pairs)
    suggested = False
    if auto_transform and config.loss == "soart3":
        transform, suggested = default_transform(
            pairs.matched, pairs.unmatched, config.margin, config.transform.floor
        )
        config = replace(config, transform=transform)
    view = check_learnable(config, data, model, pairs=pairs)
    return TrainingSetup(data, model, config, pairs, view, suggested)


def learnability(
    dataset,
    config: TrainConfig,
    *,
    auto_transform: bool = False,
    resume_from: LoadedRun | str | Path | None = None,
) -> LossView:
    """What the Train page shows before Start: the loss's view of the network training
    would start from (see `training_setup`, which raises the same `SoartLabError` that
    `train_run` would)."""
    return training_setup(
        dataset, config, auto_transform=auto_transform, resume_from=resume_from
    ).view


def train_run(
    dataset,
    config: TrainConfig,
    *,
    store: RunStore | None = None,
    label: str = "",
    callback: Callable[[Progress], None] | None = None,
    stop_event: threading.Event | None = None,
    resume_from: LoadedRun | str | Path | None = None,
    auto_transform: bool = False,
    owner: str = "",
) -> tuple[Run, TrainResult]:
    """Train on ``dataset`` and save the run under ``store`` (default: SOARTLAB_HOME),
    recorded as ``owner``'s (the signed-in user; "" without sign-in).

    See `training_setup` for ``resume_from`` and ``auto_transform``; a setting under
    which nothing would be learnt is refused before training (`SoartLabError`).
    """
    setup = training_setup(dataset, config, auto_transform=auto_transform, resume_from=resume_from)
    trainer = Trainer(setup.config, callback=callback, stop_event=stop_event)
    result = trainer.fit(setup.model, setup.data)
    run = (store or RunStore()).new_run()
    save_run(run, build_record(setup.config, setup.data, result, label=label, owner=owner), result)
    return run, result


def _read_references(raw: bytes, source: str, record: RunRecord, model: SiameseNet):
    """The reference embeddings (N, e) float32 and labels (N,) int64 in ``raw``, checked
    against the record and the model: class ids, embedding width, and the number of
    training rows the record describes."""
    try:
        tensors = load_safetensors_bytes(raw)
        emb, labels = tensors["embeddings"], tensors["labels"]
    except (SafetensorError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{source} is not a valid reference file: {exc}") from exc
    if emb.ndim != 2 or labels.shape != (len(emb),) or not np.isfinite(emb).all():
        raise CheckpointError(f"{source} holds malformed reference embeddings.")
    if labels.dtype.kind not in "iu":
        raise CheckpointError(f"{source} holds {labels.dtype} labels; expected integers.")
    if emb.shape[1] != model.config.embedding_dim:
        raise CheckpointError(
            f"{source} holds {emb.shape[1]}-wide embeddings; the model makes "
            f"{model.config.embedding_dim}-wide ones. The files are from different runs."
        )
    if len(labels) and not (0 <= labels.min() and labels.max() < len(record.label_names)):
        raise CheckpointError(
            f"{source} has labels outside the run's {len(record.label_names)} classes."
        )
    info = record.data
    if info is not None and len(emb) != info.n_samples - len(info.test_indices):
        raise CheckpointError(
            f"{source} holds {len(emb)} references; the run record describes "
            f"{info.n_samples - len(info.test_indices)} training rows. The files are from "
            "different runs."
        )
    if record.config.knn_k > len(emb):
        raise CheckpointError(
            f"The run record asks for the {record.config.knn_k} nearest references (knn_k); "
            f"{source} holds {len(emb)}."
        )
    return emb.astype(np.float32), labels.astype(np.int64)


# What the weights file's header and the record must agree on to be one run's files (the
# header's "model" and "normalization" are the model's own, see checkpoint_bytes).
_SAME_RUN_FIELDS = (
    "run_id",
    "created",
    "label_names",
    "good_index",
    "data",
    "model",
    "normalization",
)


def _check_same_run(record: RunRecord, header: dict, weights: Path, source: str) -> None:
    """`CheckpointError` naming both when the record in the weights' header (as written
    with them) is not ``record``: a folder holding the files of two runs."""
    written = record.to_dict()
    differ = [k for k in _SAME_RUN_FIELDS if k in header and header[k] != written[k]]
    if differ:
        raise CheckpointError(
            f"{source} is the record of run {record.run_id or '?'} (created "
            f"{record.created or '?'}) but {weights.name} holds the weights of run "
            f"{header.get('run_id') or '?'} (created {header.get('created') or '?'}); they "
            f"differ in {', '.join(differ)}. The folder mixes two runs: train again, or "
            "restore the run from its bundle."
        )


def _open(weights: Path, record: RunRecord, references: bytes | None, source: str, run=None):
    """The model of ``weights`` with ``record``; a safetensors header (the record as
    written with the weights) must be the same run's. source: where the record came from."""
    model, header = load_checkpoint(weights) if weights.suffix == ".safetensors" else (None, {})
    if header:
        _check_same_run(record, header, weights, source)
    else:  # a plain state_dict: the record says what it is; the shapes are checked
        model, _ = load_checkpoint(weights, metadata=record.to_dict())
    refs_source = f"{REFERENCES_FILE} beside {source}"
    refs = None if references is None else _read_references(references, refs_source, record, model)
    return LoadedRun(model, record, refs, run)


def load_run(run_dir: str | Path | Run) -> LoadedRun:
    """Open a run folder written by `train_run` or the CLI; `CheckpointError` when its
    files are not one run's (see `_check_same_run`, `_read_references`)."""
    run = run_dir if isinstance(run_dir, Run) else Run(run_dir)
    if not run.record_path.exists():
        raise CheckpointError(f"{run.path} is not a SOART Lab run (no {RUN_JSON}).")
    record = run.read_record()
    return _open(run.weights_path, record, run.read_references(), str(run.record_path), run)


def load_uploaded(path: str | Path, run_json: str | Path | bytes | None = None) -> LoadedRun:
    """Open an uploaded checkpoint: a bundle ``.zip``, a ``.safetensors`` file (its header
    carries the record), or a ``.pth`` with its run record (a path, or the file's bytes)."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        return _load_bundle(path)
    if run_json is None:
        model, meta = load_checkpoint(path)
        if not meta:
            raise CheckpointError(
                f"{path.name} holds only weights; upload its {RUN_JSON} with it, "
                "or the bundle .zip."
            )
        return LoadedRun(model, RunRecord.from_dict(meta, source=path.name), None)
    if isinstance(run_json, str | Path):
        source = Path(run_json).name
        run_json = read_regular_file(run_json, MAX_JSON_BYTES)
    else:
        source = RUN_JSON
    record = RunRecord.from_dict(parse_json_object(run_json, source), source=source)
    return _open(path, record, None, source)


def _load_bundle(path: Path) -> LoadedRun:
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise CheckpointError(f"{path.name} is larger than {MAX_BUNDLE_BYTES // 2**20} MB.")
    contents = read_bundle(path, MAX_BUNDLE_BYTES)
    source = f"{RUN_JSON} in {path.name}"
    record = RunRecord.from_dict(parse_json_object(contents[RUN_JSON], source), source=source)
    with tempfile.TemporaryDirectory(prefix="soartlab-bundle-") as tmp:
        weights = Path(tmp) / SAFETENSORS_FILE
        weights.write_bytes(contents[SAFETENSORS_FILE])
        return _open(weights, record, contents.get(REFERENCES_FILE), source)


def _features(run: LoadedRun, dataset) -> np.ndarray:
    X, _ = D.to_arrays(dataset)
    expected = int(np.prod(run.input_shape))
    if X.shape[1] != expected:
        shape = "×".join(str(s) for s in run.input_shape)
        raise DataError(
            f"The samples have {X.shape[1]} features but the model expects {expected} ({shape})."
        )
    return X


def embed_dataset(run: LoadedRun, dataset) -> np.ndarray:
    """Embeddings (N, e) of a dataset's samples under the run's model (which normalises).
    A row is not finite when its sample overflows float32 in the model; `predict` marks
    such parts for review."""
    return embed(run.model, _features(run, dataset))


# Why a part cannot be scored honestly: the `reason` column; such a part is never "pass".
NOT_FINITE_INPUT = "not finite after normalisation"
NOT_FINITE_EMBEDDING = "embedding not finite"
NOT_FINITE_DISTANCE = "distance to the nearest reference not finite"
NOT_SCORED = -1  # the predicted class id of a part that could not be scored


def _references(run: LoadedRun) -> tuple[np.ndarray, np.ndarray]:
    if run.references is None:
        raise CheckpointError(
            "This checkpoint has no reference embeddings; upload the bundle .zip or pick a "
            "saved run."
        )
    return run.references


def _score(
    run: LoadedRun, X: np.ndarray, emb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify the parts ``X`` (N, d) raw, ``emb`` (N, e) their embeddings, checking
    finiteness where the model sees the numbers: the normalised input, the embedding,
    the distance to the nearest reference. Returns ``(pred (N,) int64, nearest (N,)
    float64, reason (N,) object)``: for a part that cannot be scored honestly ``pred`` is
    `NOT_SCORED`, ``nearest`` NaN and ``reason`` says why (else ``""``). The one place
    where a non-finite number is kept from becoming a class."""
    ref_emb, ref_labels = _references(run)
    reason = np.full(len(X), "", dtype=object)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        normalised = run.model.normalization.apply(X)
    reason[~np.isfinite(normalised).all(axis=1)] = NOT_FINITE_INPUT
    reason[(reason == "") & ~np.isfinite(emb).all(axis=1)] = NOT_FINITE_EMBEDDING
    pred = np.full(len(X), NOT_SCORED, dtype=np.int64)
    nearest = np.full(len(X), np.nan)
    scored = np.flatnonzero(reason == "")
    if len(scored):
        with np.errstate(over="ignore", invalid="ignore"):
            pred[scored], nearest[scored] = classify(
                ref_emb,
                ref_labels,
                emb[scored],
                run.distance,
                k=run.record.config.knn_k,
                n_classes=len(run.label_names),
            )
    not_finite = ~np.isfinite(nearest) & (reason == "")
    reason[not_finite] = NOT_FINITE_DISTANCE
    pred[not_finite], nearest[not_finite] = NOT_SCORED, np.nan
    return pred, nearest, reason


def _label_map(run: LoadedRun, dataset) -> np.ndarray:
    """The dataset's label ids as the run's label ids, matched by name."""
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


def held_out_split(runs: LoadedRun | list[LoadedRun], dataset):
    """The rows of ``dataset`` that every run in ``runs`` held out from training: what
    their held-out figures are honestly computed on. `DataError` when a run does not
    record its held-out rows (saved before they were recorded) or ``dataset`` is not the
    data it was trained on."""
    runs = [runs] if isinstance(runs, LoadedRun) else list(runs)
    loaded = None
    held_out: set[int] | None = None
    for run in runs:
        info = run.record.data
        name = run.label or (run.run_dir.name if run.run_dir else "this run")
        if info is None:
            raise DataError(
                f"Run {name!r} was saved before runs recorded their held-out parts, so its "
                "held-out figures cannot be recomputed. Retrain it, or score data with Predict."
            )
        loaded = loaded or (len(dataset), dataset_fingerprint(dataset))
        if loaded != (info.n_samples, info.fingerprint):
            raise DataError(
                f"The loaded data ({loaded[0]} samples) is not the data run {name!r} was "
                f"trained on ({info.n_samples} samples): its held-out figures cannot be "
                "computed on it. Load that data, or score this data as a new lot on Predict."
            )
        rows = set(info.test_indices)
        held_out = rows if held_out is None else held_out & rows
    if not held_out:
        raise DataError("These runs held out no parts in common; compare them on Predict.")
    return dataset.select(sorted(held_out))


def evaluate_run(run: LoadedRun, dataset) -> dict:
    """Metrics of the run's model on a labelled dataset. A part that cannot be scored
    (see `predict`) counts as judged defective: an error for a good part (overkill), never
    an escape."""
    if not D.is_labelled(dataset):
        raise DataError("These samples have no labels; metrics need a 'label' column.")
    X = _features(run, dataset)
    pred, _, _ = _score(run, X, embed(run.model, X))
    y = _label_map(run, dataset)
    return classification_metrics(y, pred, run.label_names, run.good_index)


def predict(
    run: LoadedRun, dataset, labelled: bool | None = None, embeddings: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per sample: `index`, `predicted` (class name; empty when not scored),
    `decision` (`pass`: predicted good; `fail`: predicted a defect; `review`: cannot be
    scored honestly), `pass_fail` (`pass` only for a `pass` decision, else `fail`; kept
    for older readers), `distance` to the nearest reference (NaN when not scored),
    `reason` (why a part is `review`, else empty); `label` and `correct` when the dataset is labelled
    (`labelled=None`: when it has labels at all, see `data.is_labelled`). `embeddings`:
    the dataset's `embed_dataset` result when the caller already has it (N, e), so it is
    not computed again."""
    X = _features(run, dataset)
    if embeddings is None:
        embeddings = embed(run.model, X)
    pred, nearest, reason = _score(run, X, embeddings)
    names = np.array([*run.label_names, ""], dtype=object)  # NOT_SCORED (-1) → ""
    decision = np.where(pred == run.good_index, "pass", "fail").astype(object)
    decision[pred == NOT_SCORED] = "review"
    table = pd.DataFrame(
        {
            "index": np.arange(len(pred)),
            "predicted": names[pred],
            "decision": decision,
            "pass_fail": np.where(decision == "pass", "pass", "fail"),
            "distance": nearest,
            "reason": reason,
        }
    )
    if labelled is None:
        labelled = D.is_labelled(dataset)
    if labelled:
        y = _label_map(run, dataset)
        table["label"] = names[y]
        table["correct"] = y == pred
    return table
