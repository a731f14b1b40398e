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
from soartlab import decision as rule
from soartlab import lotcheck
from soartlab.architecture import propose_architecture, resolve_architecture
from soartlab.augment import resolve_augmentation
from soartlab.checkpoint import checkpoint_bytes, load_checkpoint
from soartlab.errors import CheckpointError, DataError, SoartLabError
from soartlab.evaluation import classification_metrics, embed
from soartlab.files import MAX_JSON_BYTES, parse_json_object, read_regular_file
from soartlab.models import SiameseNet
from soartlab.prepare import PreparedData, dataset_fingerprint, prepare
from soartlab.record import DataInfo, RunRecord
from soartlab.rows import is_rows
from soartlab.runs import (
    CALIBRATION_FILE,
    REFERENCES_FILE,
    RUN_JSON,
    SAFETENSORS_FILE,
    Run,
    RunStore,
    read_bundle,
)
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
    calibration: Calibration | None = None  # decision scores, input statistics; None: older

    def operating_point(
        self, target_escape: float | None = None, escape_cost: float | None = None
    ) -> rule.OperatingPoint | None:
        """The run's saved operating point, or one fitted again on its calibration parts
        for ``target_escape`` (or ``escape_cost``); None for a run saved before decisions."""
        if target_escape is None and escape_cost is None:
            return self.record.operating_point()
        cal = self.calibration
        if cal is not None and cal.good_loo is not None:
            raise SoartLabError(
                "This run cannot take an escape target: it was made from good parts only. "
                + rule.NO_ESCAPE_RATE
            )
        if cal is None or cal.held_out is None:
            raise SoartLabError(
                "This run cannot take a new escape target: it was saved without calibration "
                "scores. Train it again."
            )
        return cal.held_out.fit(target_escape, escape_cost)

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
    calibration: Calibration | None = None,
) -> RunRecord:
    """The record of a finished `Trainer.fit` on ``data``: the config as it trained, with
    the network and the augmentation that ``auto`` resolved to; with ``calibration`` (see
    `calibrate`) its `decision` block at ``config.target_escape``."""
    distance = evaluation_distance(config)
    decision = None
    if calibration is not None and (
        calibration.held_out is not None or calibration.good_loo is not None
    ):
        decision = decision_block(
            calibration, data.label_names, data.good_index, config.target_escape
        )
    return RunRecord(
        config=replace(config, arch=result.arch, augment=result.augment),
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
        decision=decision,
        label=label,
        owner=owner,
        world_size=result.world_size,
        backend=result.backend,
        cpu_seconds=cpu_seconds,
        wall_seconds=wall_seconds,
    )


def save_run(
    run: Run, record: RunRecord, result: TrainResult, calibration: Calibration | None = None
) -> RunRecord:
    """Write the trained model, its references, the ``calibration`` and ``record`` into
    ``run``."""
    emb, labels = result.references
    references = save_safetensors_bytes(
        {"embeddings": np.ascontiguousarray(emb), "labels": labels.astype(np.int64)}
    )
    return run.write(
        record,
        lambda final: checkpoint_bytes(result.model, final.to_dict()),
        references,
        None if calibration is None else calibration.to_bytes(),
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
    arch_reason: str = ""  # why ``auto`` chose the network (empty when it was given)


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
    arch_reason = ""
    if resume_from is not None:
        previous = resume_from if isinstance(resume_from, LoadedRun) else load_run(resume_from)
        warm = previous.model
        if config.arch == "auto":  # a next round trains the network it continues from
            config = replace(config, arch=warm.config.arch)
    if config.arch == "auto":
        proposal = propose_architecture(data)
        config, arch_reason = replace(config, arch=proposal.arch), proposal.reason
    else:
        resolve_architecture(config.arch, data)  # refuses cnn for feature vectors
    augmentation = resolve_augmentation(config.augment, config.arch, data.input_shape)
    config = replace(config, augment=augmentation.to_spec())
    model = initial_model(config, data, warm)
    pairs = training_pairs(config, data.x_train, data.y_train, model, n_pairs)
    suggested = False
    if auto_transform and config.loss == "soart3":
        transform, suggested = default_transform(
            pairs.matched, pairs.unmatched, config.margin, config.transform.floor
        )
        config = replace(config, transform=transform)
    view = check_learnable(config, data, model, pairs=pairs)
    return TrainingSetup(data, model, config, pairs, view, suggested, arch_reason)


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
    calibration = calibrate(setup.config, setup.data, result)
    run = (store or RunStore()).new_run()
    record = build_record(
        setup.config, setup.data, result, label=label, owner=owner, calibration=calibration
    )
    save_run(run, record, result, calibration)
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


def _open(
    weights: Path,
    record: RunRecord,
    references: bytes | None,
    source: str,
    run=None,
    calibration: bytes | None = None,
):
    """The model of ``weights`` with ``record``; a safetensors header (the record as
    written with the weights) must be the same run's. source: where the record came from."""
    model, header = load_checkpoint(weights) if weights.suffix == ".safetensors" else (None, {})
    if header:
        _check_same_run(record, header, weights, source)
    else:  # a plain state_dict: the record says what it is; the shapes are checked
        model, _ = load_checkpoint(weights, metadata=record.to_dict())
    refs_source = f"{REFERENCES_FILE} beside {source}"
    refs = None if references is None else _read_references(references, refs_source, record, model)
    cal = None
    if calibration is not None:
        cal_source = f"{CALIBRATION_FILE} beside {source}"
        cal = Calibration.from_bytes(calibration, record, cal_source)
    return LoadedRun(model, record, refs, run, cal)


def load_run(run_dir: str | Path | Run) -> LoadedRun:
    """Open a run folder written by `train_run` or the CLI; `CheckpointError` when its
    files are not one run's (see `_check_same_run`, `_read_references`)."""
    run = run_dir if isinstance(run_dir, Run) else Run(run_dir)
    if not run.record_path.exists():
        raise CheckpointError(f"{run.path} is not a SOART Lab run (no {RUN_JSON}).")
    record = run.read_record()
    return _open(
        run.weights_path,
        record,
        run.read_references(),
        str(run.record_path),
        run,
        run.read_calibration(),
    )


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
        return _open(
            weights,
            record,
            contents.get(REFERENCES_FILE),
            source,
            calibration=contents.get(CALIBRATION_FILE),
        )


def load_lot(run: LoadedRun, path: str | Path, **options):
    """A lot to score with ``run``, read with `data.load_dataset` (labels optional): images
    (a zip of class folders, a flat zip of images, an image Parquet) resized to the run's
    image size, table rows shaped to its input. ``options``: more `load_dataset` options
    (``id_columns``, ``sheet``, ``label_column``)."""
    shape = tuple(run.input_shape)
    image_size = shape if len(shape) == 2 else None
    return D.load_dataset(
        path, input_shape=shape, image_size=image_size, require_labels=False, **options
    )


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
NOT_FINITE_INPUT = lotcheck.NOT_FINITE_INPUT
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


@dataclass(frozen=True)
class Scored:
    """`_score`'s answer for N parts."""

    scores: rule.PartScores  # NaN distances and class -1 where not scored
    nearest_index: np.ndarray  # (N,) int64 row of the nearest reference (-1: not scored)
    reason: np.ndarray  # (N,) object: why a part could not be scored ("" when it was)


def _finite_inputs(run: LoadedRun, X) -> np.ndarray:
    """(N,) bool: the part's input stays finite under the model's normalisation; rows
    read on demand are checked a batch at a time."""
    batches = X.batches() if is_rows(X) else [(0, X)]
    finite = np.zeros(len(X), dtype=bool)
    for start, batch in batches:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            normalised = run.model.normalization.apply(np.asarray(batch))
        finite[start : start + len(batch)] = np.isfinite(normalised).all(axis=1)
    return finite


def _score(
    run: LoadedRun,
    X: np.ndarray,
    emb: np.ndarray,
    reason: np.ndarray | None = None,
    scorable: np.ndarray | None = None,
) -> Scored:
    """Score the parts ``X`` (N, d) raw, ``emb`` (N, e) their embeddings, checking
    finiteness where the model sees the numbers: the normalised input, the embedding,
    the distances to the references. A part that cannot be scored honestly keeps NaN
    distances and class `NOT_SCORED`, and its reason says why. The one place where a
    non-finite number is kept from becoming a class. ``reason``: reasons found before
    (the lot check); such parts are scored all the same (their decision is review).
    ``scorable``: the lot check's finiteness of the normalised input, when it was made
    (`lotcheck.LotCheck.scorable`), so that the lot is not normalised twice."""
    ref_emb, ref_labels = _references(run)
    reason = np.full(len(X), "", dtype=object) if reason is None else reason.copy()
    not_scorable = ~(_finite_inputs(run, X) if scorable is None else scorable)
    reason[not_scorable & (reason == "")] = NOT_FINITE_INPUT
    bad_embedding = ~not_scorable & ~np.isfinite(emb).all(axis=1)
    reason[bad_embedding & (reason == "")] = NOT_FINITE_EMBEDDING
    not_scorable |= bad_embedding
    n = len(X)
    scores = rule.PartScores(
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, NOT_SCORED, dtype=np.int64),
        np.full(n, NOT_SCORED, dtype=np.int64),
    )
    nearest_index = np.full(n, NOT_SCORED, dtype=np.int64)
    scored = np.flatnonzero(~not_scorable)
    if len(scored):
        with np.errstate(over="ignore", invalid="ignore"):
            part, index = rule.part_scores(
                ref_emb,
                ref_labels,
                emb[scored],
                run.distance,
                run.good_index,
                k=run.record.config.knn_k,
                n_classes=len(run.label_names),
            )
        scores.good_distance[scored] = part.good_distance
        scores.nearest_distance[scored] = part.nearest_distance
        scores.knn_class[scored] = part.knn_class
        scores.defect_class[scored] = part.defect_class
        nearest_index[scored] = index
    has_good = bool((ref_labels == run.good_index).any())
    with np.errstate(invalid="ignore"):
        not_finite = ~not_scorable & (
            ~np.isfinite(scores.nearest_distance) | (has_good & ~np.isfinite(scores.good_distance))
        )
    reason[not_finite & (reason == "")] = NOT_FINITE_DISTANCE
    lost = not_scorable | not_finite
    scores.good_distance[lost] = np.nan
    scores.nearest_distance[lost] = np.nan
    scores.knn_class[lost] = NOT_SCORED
    scores.defect_class[lost] = NOT_SCORED
    nearest_index[lost] = NOT_SCORED
    return Scored(scores, nearest_index, reason)


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


# --- decisions: calibration, the run's operating point, lot checks ---------------------

_CALIBRATION_FORMAT = "soartlab-calibration/1"


@dataclass(frozen=True)
class Calibration:
    """What a run keeps for its decisions besides the model and references (the file
    `runs.CALIBRATION_FILE`): the training inputs' statistics (lot checks), the held-out
    parts' scores split into calibration and reported halves (a new target is fitted from
    them without embedding anything), or for a good-only run the good parts'
    leave-one-out nearest-good distances."""

    stats: lotcheck.InputStats
    held_out: rule.HeldOutScores | None  # None: too few held-out parts to halve
    good_loo: np.ndarray | None = None  # (N_train,) good-only runs (their held-out
    # parts all report: nothing of them is used for the threshold)

    def to_bytes(self) -> bytes:
        arrays = dict(self.stats.arrays())
        if self.held_out is not None:
            arrays.update({f"held_out_{k}": v for k, v in self.held_out.arrays().items()})
        if self.good_loo is not None:
            arrays["good_loo"] = self.good_loo.astype(np.float64)
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        return save_safetensors_bytes(arrays, metadata={"format": _CALIBRATION_FORMAT})

    @classmethod
    def from_bytes(cls, raw: bytes, record: RunRecord, source: str) -> Calibration:
        try:
            arrays = load_safetensors_bytes(raw)
        except (SafetensorError, ValueError) as exc:
            raise CheckpointError(f"{source} is not a valid calibration file: {exc}") from exc
        try:
            stats = lotcheck.InputStats.from_arrays(arrays, source)
            if stats.n_features != record.model.in_features:
                raise SoartLabError(
                    f"{source} describes {stats.n_features} input features; the model has "
                    f"{record.model.in_features}. The files are from different runs."
                )
            held_out = None
            if "held_out_labels" in arrays:
                prefix = len("held_out_")
                held_out = rule.HeldOutScores.from_arrays(
                    {k[prefix:]: v for k, v in arrays.items() if k.startswith("held_out_")},
                    record.good_index,
                    source,
                )
        except SoartLabError as exc:
            raise CheckpointError(str(exc)) from None
        loo = arrays.get("good_loo")
        return cls(stats, held_out, None if loo is None else loo.astype(np.float64))


def calibrate(config: TrainConfig, data: PreparedData, result: TrainResult) -> Calibration:
    """The training inputs' statistics and the held-out parts' scores under the trained
    model, split into a calibration and a reported half (`decision.calibration_split`,
    seeded by ``config.seed``)."""
    stats = lotcheck.InputStats.fit(data.x_train, image=data.is_image)
    ref_emb, ref_labels = result.references
    emb = embed(result.model, data.x_test)
    run = LoadedRun(result.model, _bare_record(config, data, result), result.references)
    scored = _score(run, data.x_test, emb)
    try:
        calibration_rows, _ = rule.calibration_split(data.y_test, data.good_index, config.seed)
    except DataError:  # too few held-out parts to halve: no decision block, kNN decides
        return Calibration(stats, None)
    is_calibration = np.zeros(len(data.y_test), dtype=bool)
    is_calibration[calibration_rows] = True
    held_out = rule.HeldOutScores(
        scored.scores, data.y_test.astype(np.int64), is_calibration, data.good_index
    )
    return Calibration(stats, held_out)


def _bare_record(config: TrainConfig, data: PreparedData, result: TrainResult) -> RunRecord:
    return build_record(config, data, result)


def decision_block(
    calibration: Calibration,
    label_names,
    good_index: int,
    target_escape: float | None = rule.DEFAULT_TARGET_ESCAPE,
    point: rule.OperatingPoint | None = None,
) -> dict:
    """The run record's `decision`: the rule, its thresholds and target, and the held-out
    figures (`escape_rate`, `escape_upper_95`, `overkill_rate`, `overkill_upper_95`,
    `review_rate`, on the reported half only; escape null for a good-only run).
    ``point``: an operating point chosen already (else fitted for ``target_escape``)."""
    held_out = calibration.held_out
    if calibration.good_loo is not None:  # good parts only
        if point is None:
            point = rule.fit_good_only(calibration.good_loo)
        figures = None if held_out is None else held_out.reported(point, label_names)
        note = rule.NO_ESCAPE_RATE
        n_calibration = len(calibration.good_loo)
        n_reported = 0 if held_out is None else len(held_out.labels)
    else:
        if point is None:
            point = held_out.fit(target_escape)
        figures = held_out.reported(point, label_names)
        note = ""
        n_calibration = int(held_out.calibration.sum())
        n_reported = int((~held_out.calibration).sum())
    values = {} if figures is None else figures.to_dict()
    return {
        "rule": point.rule,
        "score": "distance to the nearest good reference (the run's evaluation distance)",
        "target": point.target_escape if point.rule != rule.RULE_COST else point.escape_cost,
        "thresholds": {
            "pass_below": point.pass_below,
            "fail_above": point.fail_above,
            "unknown_above": point.unknown_above,
        },
        "operating_point": point.to_dict(),
        "escape_rate": values.get("escape_rate"),
        "escape_upper_95": values.get("escape_upper_95"),
        "overkill_rate": values.get("overkill_rate"),
        "overkill_upper_95": values.get("overkill_upper_95"),
        "review_rate": values.get("review_rate"),
        "n_calibration": n_calibration,
        "n_reported": n_reported,
        "figures": values or None,
        "note": note,
    }


def save_operating_point(run: LoadedRun, target_escape: float) -> RunRecord:
    """Fit the run's operating point again for ``target_escape`` and write it into the
    run's record (run.json, atomically); returns the new record."""
    if run.run is None:
        raise SoartLabError("An uploaded run has no folder to save an operating point into.")
    point = run.operating_point(rule.check_target(target_escape))
    block = decision_block(
        run.calibration, run.label_names, run.good_index, target_escape, point=point
    )
    record = replace(
        run.record,
        config=replace(run.record.config, target_escape=float(target_escape)),
        decision=block,
    )
    run.run.write_record(record)
    run.record = record
    return record


# --- good parts only ------------------------------------------------------------------

GOOD_ONLY_TRAINING = (
    "Good parts only: the contrastive loss needs parts of two classes to learn from, so "
    "this run was not trained: it scores parts with the untrained network (seeded, its "
    "input normalisation fitted on the good parts) under the run's distance."
)


def is_good_only(dataset) -> bool:
    """True when every labelled part belongs to one class (a good-only data set); also
    for the `rows.ArrowRows` of a large source."""
    if is_rows(dataset):
        return len(np.unique(dataset.labels)) == 1
    return int((D.class_counts(dataset) > 0).sum()) == 1


def good_only_run(
    dataset,
    config: TrainConfig,
    *,
    percentile: float = rule.DEFAULT_GOOD_PERCENTILE,
) -> tuple[PreparedData, TrainResult, Calibration]:
    """A run for a data set of good parts only (see `GOOD_ONLY_TRAINING`): the
    threshold is the ``percentile``-th of the training parts' leave-one-out nearest-good
    distances (`decision.fit_good_only`); the held-out good parts give the overkill rate.
    `DataError` when the one class is not the good class."""
    from soartlab.prepare import prepare
    from soartlab.training import Outcome

    if is_rows(dataset):
        raise DataError(
            "Good parts only: a run without defect samples is made from a single file "
            "(CSV, Parquet, a zip of images), not yet from a folder, shards or a saved "
            "dataset; add defect samples or pass one file."
        )
    data = prepare(dataset, config.test_size, config.seed, config.good_class, one_class=True)
    present = np.unique(data.y_train)
    if list(present) != [data.good_index]:
        raise DataError(
            f"The data holds only {data.label_names[present[0]]!r} parts, which is not the "
            f"good class ({data.label_names[data.good_index]!r}). A run needs good parts; "
            "set good_class if they are named otherwise."
        )
    model = initial_model(config, data).eval()
    references = embed(model, data.x_train)
    distance = evaluation_distance(config)
    loo = rule.leave_one_out_nearest(references, distance)
    point = rule.fit_good_only(loo, percentile)
    run = LoadedRun(
        model,
        build_record(config, data, _plain_result(model, references, data)),
        (references, data.y_train.astype(np.int64)),
    )
    scored = _score(run, data.x_test, embed(model, data.x_test))
    # every held-out good part reports (no calibration half: the threshold comes from
    # the training parts' leave-one-out distances)
    held_out = rule.HeldOutScores(
        scored.scores,
        data.y_test.astype(np.int64),
        np.zeros(len(data.y_test), dtype=bool),
        data.good_index,
    )
    figures = held_out.reported(point, data.label_names)
    metrics = {
        "n_train": int(len(data.y_train)),
        "n_samples": int(len(data.y_test)),
        "n_good": figures.n_good,
        "n_defective": 0,
        "overkill_rate": figures.overkill_rate,
        "good_only": GOOD_ONLY_TRAINING,
    }
    result = TrainResult(
        model=model,
        history=[],
        metrics=metrics,
        references=(references, data.y_train.astype(np.int64)),
        outcome=Outcome.GOOD_ONLY,
        stop_reason=GOOD_ONLY_TRAINING,
        baselines=None,
    )
    stats = lotcheck.InputStats.fit(data.x_train, data.is_image)
    calibration = Calibration(stats, held_out, loo)
    return data, result, calibration


def _plain_result(model, references, data) -> TrainResult:
    from soartlab.training import Outcome

    return TrainResult(
        model=model,
        history=[],
        metrics={},
        references=(references, data.y_train.astype(np.int64)),
        outcome=Outcome.FINISHED,
        stop_reason="",
        baselines=None,
        arch=model.config.arch,
        augment="none",  # nothing was trained
    )


# --- evaluating and predicting lots -----------------------------------------------------


@dataclass(frozen=True)
class LotPrediction:
    """`predict_lot`'s answer."""

    table: pd.DataFrame  # one row per part, see `predict`
    check: lotcheck.LotCheck  # the lot check: per-part reasons, drift
    point: rule.OperatingPoint | None  # the rule applied (None: a run saved before it)
    figures: rule.DecisionFigures | None  # on a labelled lot


def _check_lot(run: LoadedRun, X: np.ndarray) -> lotcheck.LotCheck:
    stats = None if run.calibration is None else run.calibration.stats
    return lotcheck.check_lot(
        X, stats, run.model.normalization, input_shape=run.input_shape, source="The lot"
    )


def evaluate_run(run: LoadedRun, dataset) -> dict:
    """Metrics of the run's model on a labelled dataset, and under `decision` the
    pass/review/fail figures of the run's operating point (`decision.DecisionFigures`).
    A part that cannot be scored (see `predict`) counts as judged defective: an error for
    a good part (overkill), never an escape. A lot on another scale → `DataError`."""
    if not D.is_labelled(dataset):
        raise DataError("These samples have no labels; metrics need a 'label' column.")
    lot = predict_lot(run, dataset, labelled=True)
    y = _label_map(run, dataset)
    names = list(run.label_names)
    lookup = {name: i for i, name in enumerate(names)}
    predicted = np.array([lookup.get(p, NOT_SCORED) for p in lot.table["predicted"]])
    metrics = classification_metrics(y, predicted, names, run.good_index)
    if lot.figures is not None:
        metrics["decision"] = lot.figures.to_dict()
        metrics["decision"]["operating_point"] = lot.point.to_dict()
    return metrics


def predict_lot(
    run: LoadedRun,
    dataset,
    labelled: bool | None = None,
    embeddings: np.ndarray | None = None,
    *,
    target_escape: float | None = None,
) -> LotPrediction:
    """Check the lot (`lotcheck.check_lot`: `DataError` when it is plainly on another
    scale), score it and decide every part by the run's operating point (or one fitted
    again for ``target_escape``). See `predict` for the table."""
    X = _features(run, dataset)
    check = _check_lot(run, X)
    if embeddings is None:
        embeddings = embed(run.model, X)
    scored = _score(run, X, embeddings, check.reasons, check.scorable)
    point = run.operating_point(target_escape)
    names = np.array([*run.label_names, ""], dtype=object)  # NOT_SCORED (-1) → ""
    s = scored.scores
    if point is None:  # a run saved before decisions: the kNN class decides
        decision = np.where(s.knn_class == run.good_index, rule.PASS, rule.FAIL).astype(object)
        decision[scored.reason != ""] = rule.REVIEW
        defect_type = np.where(decision == rule.FAIL, names[s.knn_class], "").astype(object)
        reason = scored.reason
    else:
        decision, defect_type, reason = rule.decide(
            s, point, run.label_names, run.good_index, scored.reason
        )
    ref_labels = _references(run)[1]
    nearest_class = np.where(
        scored.nearest_index >= 0, names[ref_labels[np.maximum(scored.nearest_index, 0)]], ""
    )
    table = pd.DataFrame({"index": np.arange(len(X))})
    table["predicted"] = names[s.knn_class]
    table["decision"] = decision
    table["defect_type"] = defect_type
    table["pass_fail"] = np.where(decision == rule.PASS, "pass", "fail")
    table["distance"] = s.nearest_distance
    table["nearest_index"] = scored.nearest_index
    table["nearest_class"] = nearest_class
    table["good_distance"] = s.good_distance
    table["defect_distance"] = _defect_distance(run, embeddings, scored)
    table["reason"] = reason
    if labelled is None:
        labelled = D.is_labelled(dataset)
    figures = None
    if labelled:
        # a class the run has never seen (a new defect type) is kept under its own name,
        # counted as a defect and never correct
        y, lot_names = _lot_labels(run, dataset)
        table["label"] = np.array(lot_names, dtype=object)[y]
        table["correct"] = y == s.knn_class
        figures = rule.figures(decision, y, lot_names, run.good_index)
    _carry_ids(table, dataset)
    return LotPrediction(table, check, point, figures)


def _lot_labels(run: LoadedRun, dataset) -> tuple[np.ndarray, list[str]]:
    """The lot's label ids in the run's classes followed by the lot's classes the run
    does not know: (ids (N,), those class names)."""
    names = D.label_names(dataset)
    _, y = D.to_arrays(dataset)
    all_names = lot_class_names(run, [names[i] for i in np.unique(y)])
    lookup = np.array([all_names.index(n) if n in all_names else -1 for n in names])
    return lookup[y], all_names


def flagged(table: pd.DataFrame, most: int | None = None) -> np.ndarray:
    """Positions in a `predict` table of the parts judged fail or review
    (`decision.FLAGGED`), in the lot's order, the first ``most``."""
    return np.flatnonzero(table["decision"].isin(rule.FLAGGED).to_numpy())[:most]


def lot_class_names(run: LoadedRun, lot_names) -> list[str]:
    """The classes a labelled lot is counted in: the run's, then the lot's classes the
    run does not know (new defect types: counted as defects, never classified
    correctly), sorted."""
    known = list(run.label_names)
    return known + sorted(set(lot_names) - set(known))


def _defect_distance(run: LoadedRun, emb: np.ndarray, scored: Scored) -> np.ndarray:
    """Each scored part's distance to the nearest defective reference (NaN: none)."""
    ref_emb, ref_labels = _references(run)
    out = np.full(len(emb), np.nan)
    defect = ref_labels != run.good_index
    rows = np.flatnonzero(scored.nearest_index >= 0)
    if defect.any() and len(rows):
        with np.errstate(over="ignore", invalid="ignore"):
            _, d = run.distance.knn(emb[rows], ref_emb[defect], 1)
        out[rows] = d[:, 0]
    return out


def predict(
    run: LoadedRun,
    dataset,
    labelled: bool | None = None,
    embeddings: np.ndarray | None = None,
    *,
    target_escape: float | None = None,
) -> pd.DataFrame:
    """One row per part: the lot's ID columns first, as written (part number, lot, image
    file name: `data.id_columns`), `index`, `predicted` (the kNN class; empty when not scored), `decision`
    (`pass`, `review` or `fail` by the run's operating point, see `soartlab.decision`;
    a part the lot check flags or that cannot be scored is `review`), `defect_type` (of a
    fail: a class, or `unknown`), `pass_fail` (`pass` only for a `pass` decision; kept for
    older readers), `distance` to the nearest reference, `nearest_index` (its training
    row among the references) and `nearest_class`, `good_distance` (the score) and
    `defect_distance` (to the nearest good and defective reference; NaN when not scored),
    `reason` (why a part is not a plain pass or fail, else empty); `label` and `correct`
    when the lot is labelled (`labelled=None`: when it has labels at all). `embeddings`:
    the lot's `embed_dataset` result (N, e) when the caller has it. A lot plainly on
    another scale → `DataError`. ``target_escape``: fit the threshold again for it from
    the run's calibration scores."""
    return predict_lot(run, dataset, labelled, embeddings, target_escape=target_escape).table


def _carry_ids(table: pd.DataFrame, dataset) -> None:
    """Put the dataset's ID columns first in ``table`` (in place); a name the table
    already uses gets " (ID)"."""
    for position, (column, values) in enumerate(D.id_table(dataset).items()):
        while column in table.columns:
            column = f"{column} (ID)"
        table.insert(position, column, values)
