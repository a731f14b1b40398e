"""Training settings, each declared once: its default, type, allowed range and help text.

`TRAIN_SETTINGS` declares every field of `TrainConfig` but the transform, whose three
values (`TRANSFORM_SETTINGS`) take their defaults, the article's values, from
`GammaTransform`. `TrainConfig`'s defaults and `validate()`, the CLI's train options
(`soartlab.cli`) and the Train page's inputs (`soartlab.ui.settings_form`) all come
from these declarations, as scikit-learn declares its parameter constraints, so a
default or a range cannot differ between them.

No torch import at module level: the CLI builds its parser from this module.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from soartlab.errors import SoartLabError
from soartlab.transform import GammaTransform

LOSSES = ("soart3", "euclidean")
DEVICES = ("auto", "cpu", "cuda")
ARCHS = ("auto", "mlp", "cnn")  # "auto": soartlab.architecture.propose_architecture
_ENDS = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}


@dataclass(frozen=True)
class Setting:
    """One setting: its default, type, allowed values, help text and how it is asked for.

    Numbers must lie in the interval from `low` to `high`; `closed` says which ends are
    allowed, as in scikit-learn's `Interval`. Text settings may list their `choices`.
    """

    name: str  # the field of TrainConfig (or GammaTransform) it sets
    kind: type  # int, float or str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed too
    length: int | None = None  # a tuple (or list) of this many values, each checked
    cli: bool = False  # a CLI option of `train`, spelt `flag`
    label: str | None = None  # the Train page's label; None: not on the page
    step: float | None = None  # the page's +/- step

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def expected(self) -> str:
        """What an allowed value looks like, for messages: "an integer in [1, 10000]"."""
        if self.choices:
            text = f"one of {', '.join(self.choices)}"
        elif self.kind is str:
            text = "a non-empty text"
        else:
            opening, closing = _ENDS[self.closed]
            noun = "an integer" if self.kind is int else "a number"
            low, high = _number(self.low), _number(self.high)
            text = f"{noun} in {opening}{low}, {high}{closing}"
        if self.length is not None:
            text = f"{self.length} values, each {text}"
        return f"{text} or None" if self.optional else text

    def check(self, value: Any, called: str | None = None) -> None:
        """Raise SoartLabError naming the setting (or `called`, e.g. its flag) unless
        `value` is allowed."""
        if value is None and self.optional:
            return
        if self.length is None:
            allowed = self._allows(value)
        else:
            allowed = (
                isinstance(value, tuple | list)
                and len(value) == self.length
                and all(self._allows(v) for v in value)
            )
        if not allowed:
            raise SoartLabError(f"{called or self.name} must be {self.expected}; got {value!r}.")

    def _allows(self, value: Any) -> bool:
        if self.kind is str:
            if self.choices:
                return value in self.choices
            return isinstance(value, str) and value != ""
        # Plain int only: NumPy integers would not survive TrainConfig.to_dict's JSON.
        numeric = int if self.kind is int else int | float
        if isinstance(value, bool) or not isinstance(value, numeric):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False  # (an int may be too large for math.isfinite)
        above = value >= self.low if self.closed in ("both", "left") else value > self.low
        below = value <= self.high if self.closed in ("both", "right") else value < self.high
        return above and below


def _number(value: float | None) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


TRAIN_SETTINGS = (
    Setting(
        "loss",
        str,
        "soart3",
        "soart3: SOART3 gamma through the gamma transform; euclidean: the baseline",
        choices=LOSSES,
        cli=True,
        label="Loss",
    ),
    Setting(
        "margin",
        float,
        1.0,
        "contrastive margin: unmatched pairs closer than this are pushed apart",
        low=0.0,
        high=100.0,
        closed="right",
        cli=True,
        label="Margin",
        step=0.1,
    ),
    Setting(
        "epochs",
        int,
        10,
        "passes, each over freshly drawn pairs",
        low=1,
        high=10_000,
        cli=True,
        label="Epochs",
        step=1,
    ),
    Setting(
        "batch_size",
        int,
        128,
        "pairs per optimiser step (over all workers)",
        low=2,
        high=65_536,
        cli=True,
        label="Batch size",
        step=32,
    ),
    Setting(
        "lr",
        float,
        1e-3,
        "AdamW learning rate",
        low=0.0,
        high=1.0,
        closed="right",
        cli=True,
        label="Learning rate",
        step=1e-4,
    ),
    Setting(
        "pairs_per_epoch",
        int,
        20_000,
        "fresh pairs drawn every epoch (over all workers)",
        low=2,
        high=10_000_000,
        cli=True,
        label="Pairs per epoch",
        step=1000,
    ),
    Setting(
        "matched_fraction",
        float,
        0.5,
        "share of matched (same-label) pairs",
        low=0.0,
        high=1.0,
        closed="right",
    ),
    Setting(
        "seed",
        int,
        0,
        "random seed of the split, the pairs and the initial weights",
        low=0,
        high=2**32 - 1,  # NumPy's generators take seeds below 2**32
        cli=True,
        label="Seed",
        step=1,
    ),
    Setting(
        "device",
        str,
        "auto",
        "auto: a CUDA GPU when there is one, else the CPU",
        choices=DEVICES,
        cli=True,
        label="Device",
    ),
    Setting("p_v", float, 4.0, "SOART3 Minkowski order of v", low=0.0, high=64.0, closed="right"),
    Setting("p_m", float, 1.0, "SOART3 Minkowski order of m", low=0.0, high=64.0, closed="right"),
    Setting(
        "test_size",
        float,
        0.2,
        "held-out share, stratified",
        low=0.0,
        high=0.9,
        closed="right",
        cli=True,
    ),
    Setting(
        "good_class",
        str,
        None,
        "name of the good class; without it, a class named good, ok or pass, else the first",
        optional=True,
        cli=True,
    ),
    Setting("knn_k", int, 1, "neighbours for held-out classification", low=1, high=1000),
    Setting(
        "hidden",
        int,
        (512, 256, 256),
        "widths of linear1, linear2 and linear3",
        low=1,
        high=100_000,  # models.MAX_LAYER_WIDTH; a test keeps the two equal
        length=3,
    ),
    Setting("embedding_dim", int, 128, "width of `final`, the embedding size", low=1, high=100_000),
    Setting(
        "target_escape",
        float,
        0.005,  # soartlab.decision.DEFAULT_TARGET_ESCAPE (a test keeps the two equal)
        "most escapes (share of defects passed) the operating point allows on the "
        "calibration half of the held-out parts; also the most good parts it fails",
        low=0.0,
        high=0.5,
        cli=True,  # the pages move it on the operating point panel (ui.decision_view)
    ),
    Setting(
        "channels",
        int,
        (16, 32, 64, 128),
        "cnn: output channels of its four conv blocks",
        low=1,
        high=100_000,  # models.MAX_LAYER_WIDTH
        length=4,
    ),
    Setting(
        "arch",
        str,
        "auto",
        "embedding network: mlp (the article's, fully connected), cnn (convolutional: "
        "defects anywhere in the image; images only) or auto (proposed from the data)",
        choices=ARCHS,
        cli=True,
        label="Network",
    ),
    Setting(
        "augment",
        str,
        "auto",
        "training-batch augmentation of images: auto (all with cnn, none with mlp), none, "
        "or a comma list of flip, rot90, shift, jitter",
        cli=True,
        label="Augmentation",
    ),
    Setting(
        "val_size",
        float,
        0.1,
        "share of the training rows kept aside for validation: it chooses the epoch to "
        "keep and is what the curves show (0: none, keep the last epoch)",
        low=0.0,
        high=0.5,
        closed="left",
        cli=True,
        label="Validation share",
        step=0.05,
    ),
    Setting(
        "patience",
        int,
        3,
        "stop after this many epochs without a better validation accuracy (0: never stop early)",
        low=0,
        high=10_000,
        cli=True,
        label="Patience",
        step=1,
    ),
    Setting(
        "weight_decay",
        float,
        0.0,
        "AdamW weight decay (decoupled from the gradient)",
        low=0.0,
        high=1.0,
        cli=True,
        label="Weight decay",
        step=1e-4,
    ),
)

_ARTICLE = GammaTransform()  # the article's values are GammaTransform's defaults

TRANSFORM_SETTINGS = (
    Setting(
        "scale",
        float,
        _ARTICLE.scale,
        "gamma transform d = max(scale·gamma + offset, floor): slope applied to gamma",
        low=0.0,
        high=1e6,
        closed="right",
        cli=True,
    ),
    Setting(
        "offset",
        float,
        _ARTICLE.offset,
        "gamma transform: shift after scaling",
        low=-1e6,
        high=1e6,
        cli=True,
    ),
    Setting(
        "floor",
        float,
        _ARTICLE.floor,
        "gamma transform: smallest distance returned",
        low=-1e6,
        high=1e6,
        cli=True,
    ),
)


# The options of `python -m soartlab train` that set the config, in --help order.
CLI_SETTINGS = tuple(s for s in (*TRAIN_SETTINGS, *TRANSFORM_SETTINGS) if s.cli)


def train_setting(name: str) -> Setting:
    """The declaration of TrainConfig's field `name`."""
    for setting in TRAIN_SETTINGS:
        if setting.name == name:
            return setting
    names = ", ".join(s.name for s in TRAIN_SETTINGS)
    raise SoartLabError(f"Unknown training setting {name!r}; the settings are {names}.")


_DEFAULTS = {setting.name: setting.default for setting in TRAIN_SETTINGS}


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data; see `TRAIN_SETTINGS` for what
    each field means and allows."""

    loss: str = _DEFAULTS["loss"]
    margin: float = _DEFAULTS["margin"]
    epochs: int = _DEFAULTS["epochs"]
    batch_size: int = _DEFAULTS["batch_size"]
    lr: float = _DEFAULTS["lr"]
    pairs_per_epoch: int = _DEFAULTS["pairs_per_epoch"]
    matched_fraction: float = _DEFAULTS["matched_fraction"]
    seed: int = _DEFAULTS["seed"]
    device: str = _DEFAULTS["device"]
    transform: GammaTransform = field(default_factory=GammaTransform)
    p_v: float = _DEFAULTS["p_v"]
    p_m: float = _DEFAULTS["p_m"]
    test_size: float = _DEFAULTS["test_size"]
    good_class: str | None = _DEFAULTS["good_class"]
    knn_k: int = _DEFAULTS["knn_k"]
    hidden: tuple[int, int, int] = _DEFAULTS["hidden"]
    embedding_dim: int = _DEFAULTS["embedding_dim"]
    target_escape: float = _DEFAULTS["target_escape"]
    channels: tuple[int, int, int, int] = _DEFAULTS["channels"]
    arch: str = _DEFAULTS["arch"]
    augment: str = _DEFAULTS["augment"]
    val_size: float = _DEFAULTS["val_size"]
    patience: int = _DEFAULTS["patience"]
    weight_decay: float = _DEFAULTS["weight_decay"]

    def validate(self, *, check_device: bool = True) -> None:
        """Raise SoartLabError naming the first setting outside its declared range.
        ``check_device=False`` skips asking whether a CUDA GPU is here: a record of a run
        trained on a GPU must open on a machine without one."""
        for setting in TRAIN_SETTINGS:
            setting.check(getattr(self, setting.name))
        from soartlab.augment import parse_augment  # (imports torch: not at module level)

        parse_augment(self.augment)
        if not isinstance(self.transform, GammaTransform):
            raise SoartLabError(
                f"transform must be a GammaTransform; got {type(self.transform).__name__}."
            )
        for setting in TRANSFORM_SETTINGS:
            setting.check(getattr(self.transform, setting.name), f"transform.{setting.name}")
        if check_device and self.device == "cuda":
            import torch  # only here: the CLI's parser must not wait for torch

            if not torch.cuda.is_available():
                raise SoartLabError(
                    "device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'."
                )

    @classmethod
    def from_namespace(cls, args: Any) -> TrainConfig:
        """The validated config from the `train` command's parsed options (an
        `argparse.Namespace` with one attribute per CLI setting); an option outside its
        range raises SoartLabError naming its flag. A transform value that is None (not
        given) takes its default."""
        given = {s.name for s in TRANSFORM_SETTINGS if getattr(args, s.name) is not None}
        for setting in CLI_SETTINGS:
            if setting in TRAIN_SETTINGS or setting.name in given:
                setting.check(getattr(args, setting.name), setting.flag)
        transform = GammaTransform(**{name: getattr(args, name) for name in given})
        config = cls(
            **{s.name: getattr(args, s.name) for s in TRAIN_SETTINGS if s.cli},
            transform=transform,
        )
        config.validate()
        return config

    def to_dict(self) -> dict:
        out = asdict(self)
        out["transform"] = self.transform.to_dict()
        out["hidden"] = list(self.hidden)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SoartLabError(f"Unknown training settings: {', '.join(unknown)}.")
        if isinstance(values.get("transform"), dict):
            values["transform"] = GammaTransform.from_dict(values["transform"])
        for name in ("hidden", "channels"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)
