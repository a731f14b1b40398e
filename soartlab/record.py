"""The run record: what a training run was, typed and versioned, validated once when read.

A record is written as ``run.json`` in the run folder and as metadata in the
``model.safetensors`` header. `RunRecord.from_dict` checks every field once — type and
range — and raises `CheckpointError` naming the first bad field; nothing downstream reads
the JSON form. Records written before ``schema_version`` existed (``"format":
"soartlab-run/1"``) are read too: the training-data block is then missing (`data` is None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Any

from soartlab.config import TrainConfig
from soartlab.data import Normalization
from soartlab.decision import OperatingPoint
from soartlab.distances import get_distance
from soartlab.errors import CheckpointError, SoartLabError
from soartlab.models import ModelConfig
from soartlab.training import Baselines, Outcome

SCHEMA_VERSION = 2
MAX_CLASSES = 10_000
RATE_FIELDS = ("accuracy", "escape_rate", "overkill_rate")
# The held-out figures of the decision block (null where nothing could be measured).
DECISION_RATES = (
    "escape_rate",
    "escape_upper_95",
    "overkill_rate",
    "overkill_upper_95",
    "review_rate",
)
# What a history row's known figures may hold (figures and the curves plot them); other
# keys of a row are kept as written.
# Settings a record written before they existed trained with.
_BEFORE_VALIDATION = {"arch": "mlp", "augment": "none", "val_size": 0.0, "patience": 0}
HISTORY_RANGES = {
    "loss": (-math.inf, math.inf),
    "test_accuracy": (0, 1),  # held-out accuracy per epoch, in records before validation
    "val_accuracy": (0, 1),
    "val_escape_rate": (0, 1),
    "val_overkill_rate": (0, 1),
    "escape_rate": (0, 1),
    "overkill_rate": (0, 1),
    "seconds": (0, math.inf),
}


@dataclass(frozen=True)
class DataInfo:
    """Which data a run was trained on, so figures shown later are about the same parts."""

    fingerprint: str  # `soartlab.prepare.fingerprint` of the whole data set
    n_samples: int  # rows in that data set
    test_indices: tuple[int, ...]  # its held-out rows (sorted), never trained on

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "n_samples": self.n_samples,
            "test_indices": list(self.test_indices),
        }


@dataclass(frozen=True)
class RunRecord:
    """One training run; ``to_dict``/``from_dict`` are its JSON form (run.json)."""

    config: TrainConfig  # the settings it was trained with (loss, transform, seed, ...)
    model: ModelConfig  # the network's sizes
    label_names: tuple[str, ...]  # class names in label-index order
    good_index: int  # index of the good (合格) class in label_names
    normalization: Normalization  # fitted on the training split; travels with the model
    distance: dict[str, Any]  # evaluation distance: get_distance(**distance) rebuilds it
    metrics: dict[str, Any]  # held-out accuracy, escape_rate, overkill_rate, confusion, ...
    history: tuple[dict[str, Any], ...]  # one row per epoch (loss, val_accuracy, ...)
    status: Outcome  # how training ended
    stop_reason: str = ""  # the outcome in words when it is not "finished"
    data: DataInfo | None = None  # None for records written before schema version 2
    baselines: Baselines | None = None  # held-out accuracy without training; None: older runs
    # the pass/review/fail rule and its held-out figures (see `decision_block`); None: older
    decision: dict[str, Any] | None = None
    label: str = ""  # the user's name for the run (display only)
    owner: str = ""  # who trained it when sign-in is on (`soartlab.access`); "" = nobody's
    run_id: str = ""  # the run folder's name, filled in when the run is written
    created: str = ""  # ISO 8601 local time with offset
    world_size: int = 1  # training processes (torchrun)
    backend: str | None = None  # process-group backend when world_size > 1
    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept as written

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.model.input_shape

    def with_label(self, label: str) -> RunRecord:
        return replace(self, label=label)

    def operating_point(self) -> OperatingPoint | None:
        """The saved pass/review/fail thresholds; None for runs saved before them."""
        if self.decision is None:
            return None
        return OperatingPoint.from_dict(self.decision["operating_point"])

    def evaluation_distance(self) -> Any:
        spec = dict(self.distance)
        return get_distance(spec.pop("name"), **spec)

    def to_dict(self) -> dict[str, Any]:
        config = self.config.to_dict()
        transform = config.pop("transform")
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": self.run_id,
                "label": self.label,
                "owner": self.owner,
                "created": self.created,
                "status": self.status.value,
                "stop_reason": self.stop_reason,
                "config": config,
                "transform": transform,
                "model": self.model.to_dict(),
                "label_names": list(self.label_names),
                "good_index": self.good_index,
                "input_shape": list(self.input_shape),
                "normalization": self.normalization.to_dict(),
                "distance": dict(self.distance),
                "metrics": self.metrics,
                "history": list(self.history),
                "data": None if self.data is None else self.data.to_dict(),
                "baselines": None if self.baselines is None else self.baselines.to_dict(),
                "decision": self.decision,
                "world_size": self.world_size,
                "backend": self.backend,
                "cpu_seconds": self.cpu_seconds,
                "wall_seconds": self.wall_seconds,
            }
        )
        return out

    @classmethod
    def from_dict(cls, raw: Any, source: str = "the run record") -> RunRecord:
        """Validate ``raw`` (parsed JSON) field by field; `CheckpointError` names the
        first field that is missing, of the wrong type or out of range."""
        return _Reader(raw, source).record()


class _Reader:
    """Field-by-field validation of one record's JSON form."""

    def __init__(self, raw: Any, source: str) -> None:
        if not isinstance(raw, dict):
            raise CheckpointError(f"{source} must hold a JSON object; got {type(raw).__name__}.")
        self.raw = raw
        self.source = source

    def fail(self, name: str, expected: str) -> CheckpointError:
        value = repr(self.raw.get(name, "<missing>"))
        if len(value) > 80:
            value = value[:77] + "..."
        return CheckpointError(
            f"{self.source}: field '{name}' must be {expected}; got {value}. "
            "The run record is damaged or from another program."
        )

    def get(self, name: str, kind: type | tuple[type, ...], expected: str, default: Any = ...):
        if name not in self.raw or (self.raw[name] is None and default is not ...):
            if default is ...:
                raise self.fail(name, expected)
            return default
        value = self.raw[name]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise self.fail(name, expected)
        return value

    def integer(self, name: str, low: int, high: int, default: Any = ...) -> int:
        value = self.get(name, Integral, f"an integer from {low} to {high}", default)
        if not low <= value <= high:
            raise self.fail(name, f"an integer from {low} to {high}")
        return int(value)

    def seconds(self, name: str) -> float | None:
        value = self.get(name, Real, "a number of seconds or null", None)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise self.fail(name, "a number of seconds or null")
        return None if value is None else float(value)

    def text(self, name: str, default: str = "") -> str:
        return str(self.get(name, str, "text", default))

    def record(self) -> RunRecord:
        version = self.integer("schema_version", 1, SCHEMA_VERSION, default=1)
        names = self.label_names()
        model = self.model()
        # None: written before schema 2, or a schema-1 run rewritten (renamed) since
        data = self.data() if version >= 2 and self.raw.get("data") is not None else None
        config = self.config(version, data)
        if config.arch != model.arch:
            raise self.fail("config", f"settings whose arch is the model's ({model.arch!r})")
        return RunRecord(
            config=config,
            model=model,
            label_names=names,
            good_index=self.integer("good_index", 0, len(names) - 1),
            normalization=self.normalization(model),
            distance=self.distance(),
            metrics=self.metrics(len(names)),
            history=self.history(),
            status=self.status(version),
            stop_reason=self.text("stop_reason"),
            data=data,
            baselines=self.baselines(),
            decision=self.decision(),
            label=self.text("label"),
            owner=self.text("owner"),
            run_id=self.text("run_id"),
            created=self.text("created"),
            world_size=self.integer("world_size", 1, 1_000_000, default=1),
            backend=self.get("backend", str, "text or null", None),
            cpu_seconds=self.seconds("cpu_seconds"),
            wall_seconds=self.seconds("wall_seconds"),
            extra={k: v for k, v in self.raw.items() if k not in _KNOWN},
        )

    def label_names(self) -> tuple[str, ...]:
        names = self.get("label_names", list, "a list of class names")
        if not 1 <= len(names) <= MAX_CLASSES or not all(isinstance(n, str) for n in names):
            raise self.fail("label_names", f"a list of 1 to {MAX_CLASSES} class names (text)")
        if len(set(names)) != len(names):
            raise self.fail("label_names", "a list of distinct class names")
        return tuple(names)

    def config(self, version: int, data: DataInfo | None) -> TrainConfig:
        values = dict(self.get("config", dict, "an object of training settings"))
        # Written before these settings existed: the article's network, no augmentation,
        # no validation part (they trained that way).
        for name, then in _BEFORE_VALIDATION.items():
            values.setdefault(name, then)
        if version >= 2 or "transform" not in values:
            # schema 2 keeps the transform once, beside the config
            values["transform"] = self.get("transform", dict, "an object (scale, offset, floor)")
        try:
            config = TrainConfig.from_dict(values)
            config.validate(check_device=False)
        except (SoartLabError, TypeError) as exc:
            raise CheckpointError(f"{self.source}: field 'config' is not valid: {exc}") from None
        n_train = None if data is None else data.n_samples - len(data.test_indices)
        if n_train is not None and config.knn_k > n_train:
            raise CheckpointError(
                f"{self.source}: field 'config.knn_k' must be at most the {n_train} training "
                f"rows (the references); got {config.knn_k}."
            )
        return config

    def model(self) -> ModelConfig:
        try:
            model = ModelConfig.from_dict(self.get("model", dict, "an object (model sizes)"))
        except (CheckpointError, TypeError) as exc:
            raise CheckpointError(f"{self.source}: field 'model' is not valid: {exc}") from None
        shape = self.raw.get("input_shape")
        if shape is not None and list(model.input_shape) != shape:
            raise self.fail("input_shape", f"the model's input shape {list(model.input_shape)}")
        return model

    def normalization(self, model: ModelConfig) -> Normalization:
        try:
            normalization = Normalization.from_dict(
                self.get("normalization", dict, "an object (mean, std)")
            )
            normalization.check_width(model.in_features)
        except SoartLabError as exc:
            raise CheckpointError(
                f"{self.source}: field 'normalization' (input shape "
                f"{list(model.input_shape)}): {exc}"
            ) from None
        return normalization

    def distance(self) -> dict[str, Any]:
        spec = dict(self.get("distance", dict, "an object with a distance 'name'"))
        if not isinstance(spec.get("name"), str):
            raise self.fail("distance", "an object with a distance 'name'")
        try:
            params = dict(spec)
            get_distance(params.pop("name"), **params)
        except (SoartLabError, TypeError) as exc:
            raise CheckpointError(f"{self.source}: field 'distance' is not valid: {exc}") from None
        return spec

    def metrics(self, n_classes: int) -> dict[str, Any]:
        metrics = self.get("metrics", dict, "an object of held-out figures", {})
        for name in RATE_FIELDS:
            value = metrics.get(name)
            if name in metrics and not (
                isinstance(value, Real) and not isinstance(value, bool) and 0 <= value <= 1
            ):
                raise CheckpointError(
                    f"{self.source}: field 'metrics.{name}' must be a number from 0 to 1; "
                    f"got {value!r:.80}."
                )
        confusion = metrics.get("confusion")
        if confusion is not None and not (
            isinstance(confusion, list)
            and len(confusion) == n_classes
            and all(
                isinstance(row, list)
                and len(row) == n_classes
                and all(isinstance(c, Integral) and not isinstance(c, bool) and c >= 0 for c in row)
                for row in confusion
            )
        ):
            raise CheckpointError(
                f"{self.source}: field 'metrics.confusion' must be a {n_classes}×{n_classes} "
                "table of counts."
            )
        return metrics

    def history(self) -> tuple[dict[str, Any], ...]:
        rows = self.get("history", list, "a list of per-epoch rows", [])
        epochs = [r.get("epoch") if isinstance(r, dict) else None for r in rows]
        if not all(_is_int(e) and e >= 1 for e in epochs) or epochs != sorted(set(epochs)):
            raise self.fail("history", "a list of per-epoch rows with increasing 'epoch' from 1")
        for number, row in enumerate(rows):
            for name, (low, high) in HISTORY_RANGES.items():
                value = row.get(name)
                if value is not None and not (_is_number(value) and low <= value <= high):
                    raise CheckpointError(
                        f"{self.source}: field 'history[{number}].{name}' must be a number "
                        f"from {low} to {high} or null; got {value!r:.80}."
                    )
        return tuple(rows)

    def status(self, version: int) -> Outcome:
        if version == 1:
            # schema 1 wrote "finished" for every saved run (or no status, in a weights
            # file's header) and marked early ends with "stopped": true
            if self.raw.get("stopped") is True:
                reason = str(self.raw.get("stop_reason", ""))
                return Outcome.NAN_LOSS if "NaN" in reason else Outcome.STOPPED
            if "status" not in self.raw:
                return Outcome.FINISHED
        value = self.get("status", str, "one of " + ", ".join(o.value for o in Outcome))
        try:
            return Outcome(value)
        except ValueError:
            raise self.fail("status", "one of " + ", ".join(o.value for o in Outcome)) from None

    def baselines(self) -> Baselines | None:
        block = self.get("baselines", dict, "an object (raw_knn, untrained) or null", None)
        if block is None:  # runs saved before baselines were recorded
            return None
        names = ("raw_knn", "untrained")
        unknown = sorted(set(block) - set(names))
        if unknown:
            raise self.fail("baselines", "an object with only raw_knn and untrained")
        values = {}
        for name in names:
            value = block.get(name)
            if not (isinstance(value, Real) and not isinstance(value, bool) and 0 <= value <= 1):
                raise CheckpointError(
                    f"{self.source}: field 'baselines.{name}' must be a held-out accuracy from "
                    f"0 to 1; got {value!r:.80}. The run record is damaged or from another program."
                )
            values[name] = float(value)
        return Baselines(**values)

    def decision(self) -> dict[str, Any] | None:
        block = self.get("decision", dict, "an object (the decision rule) or null", None)
        if block is None:  # runs saved before decisions were recorded
            return None
        try:
            OperatingPoint.from_dict(block.get("operating_point"), "operating_point")
        except SoartLabError as exc:
            raise CheckpointError(f"{self.source}: field 'decision': {exc}") from None
        for name in DECISION_RATES:
            value = block.get(name)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise CheckpointError(
                    f"{self.source}: field 'decision.{name}' must be a number from 0 to 1 or "
                    f"null; got {value!r:.80}."
                )
        return block

    def data(self) -> DataInfo:
        block = self.get("data", dict, "an object (fingerprint, n_samples, test_indices)")
        inner = _Reader(block, f"{self.source}: field 'data'")
        n = inner.integer("n_samples", 2, 10**12)
        indices = inner.get("test_indices", list, "a list of row numbers")
        if not indices or not all(
            isinstance(i, Integral) and not isinstance(i, bool) and 0 <= i < n for i in indices
        ):
            raise inner.fail("test_indices", f"a non-empty list of row numbers below {n}")
        fingerprint = inner.text("fingerprint")
        if not fingerprint:
            raise inner.fail("fingerprint", "the data set's fingerprint (text)")
        return DataInfo(fingerprint, n, tuple(int(i) for i in indices))


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


_KNOWN = {
    "schema_version",
    "format",  # schema 1's version marker
    "loss",  # schema 1 stored the loss a second time; config.loss is the one
    "stopped",  # schema 1's early-end flag, read into status
    *(f for f in RunRecord.__dataclass_fields__ if f != "extra"),
    "transform",
    "input_shape",
}
