"""Command line: `python -m soartlab demo|train|suggest|evaluate|predict`.

Bad input ends with exit status 2 and one line on stderr; no traceback. So does a
transform under which nothing would be learnt (checked before training). A training
that did not run to its last epoch (stopped, NaN loss, not learning), or that memorised its
training parts (validation accuracy below raw-pixel kNN or the majority class), is saved as
such and exits with 1. Stopping early because validation accuracy stopped improving is a
run trained to the end: exit 0.

`train` also runs under torchrun (`torchrun --nproc_per_node=N -m soartlab train ...`):
every worker trains its share, rank 0 alone prints progress and writes the run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from soartlab.config import CLI_SETTINGS, TRAIN_SETTINGS, TRANSFORM_SETTINGS, Setting, TrainConfig
from soartlab.errors import CheckpointError, SoartLabError

# any outcome but finished: stopped, NaN loss, not learning, memorising, and a good-only
# run (usable, but not trained)
EXIT_NOT_FINISHED = 1
EXIT_BAD_INPUT = 2
# Not given, the run trains with tuning.default_transform for the data and the network
# (see workflow.training_setup): the default for a new data set is one that learns there.
AUTO_TRANSFORM = ("scale", "offset")
# The options of `suggest` besides the files: the ones the suggestion depends on.
SUGGEST_SETTINGS = tuple(
    s
    for s in (*TRAIN_SETTINGS, *TRANSFORM_SETTINGS)
    if s.name in ("seed", "margin", "p_v", "p_m", "floor")
)


def _shape(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.lower().replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"input shape must look like 36x39 or 1404; got {text!r}"
        ) from None
    if not parts or any(p <= 0 for p in parts):
        raise argparse.ArgumentTypeError(f"input shape must be positive integers; got {text!r}")
    return parts


def _add_setting_option(
    parser: argparse.ArgumentParser, setting: Setting, *, auto: str | None = None
) -> None:
    """The option for a declared training setting: its type, choices and default; its
    range is checked by `TrainConfig.from_namespace`, which names the option. ``auto``:
    the option defaults to None, and this text says what that means."""
    help_text = setting.help.replace("%", "%%")
    if setting.kind is not str:  # argparse lists choices itself
        help_text += f"; {setting.expected}"
    if auto is not None:
        help_text += f" (default: {auto})"
    elif setting.default is not None:
        help_text += " (default: %(default)s)"
    parser.add_argument(
        setting.flag,
        type=setting.kind,
        choices=setting.choices or None,
        default=None if auto is not None else setting.default,
        help=help_text,
    )


DATA_HELP = (
    "a CSV/TSV/Parquet/NPZ file or zip of class folders; or, read a batch at a time, a "
    "folder of class folders of images, a quoted glob of Parquet shards ('shards/*.parquet') "
    "or a folder saved with datasets' save_to_disk"
)


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """Where a large source's Arrow cache goes, and the caps on what is read (none by
    default: the browser's upload caps do not apply here)."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where a folder or glob given as --data is converted to (once); default: "
        "'.soartlab-cache' beside --out (beside --run for evaluate and suggest)",
    )
    parser.add_argument(
        "--max-rows", type=int, default=None, help="refuse data with more samples (default: no cap)"
    )
    parser.add_argument(
        "--max-file-mb",
        type=float,
        default=None,
        help="refuse a data file larger than this (default: no cap)",
    )


def _read_data(args, *, near: Path, input_shape=None, require_labels: bool = True):
    """``--data`` as a dataset (a single file, read into memory) or as `ArrowRows` (a
    folder or glob, converted once into the cache and read on demand), under the
    command line's limits. near: the output the cache goes beside by default."""
    from soartlab.data import load_dataset
    from soartlab.io import command_line_limits
    from soartlab.sources import default_cache_dir, is_source, open_source

    for flag, value in (("--max-rows", args.max_rows), ("--max-file-mb", args.max_file_mb)):
        if value is not None and value <= 0:
            raise SoartLabError(f"{flag} must be positive; got {value}.")
    limits = command_line_limits(
        max_rows=args.max_rows,
        max_file_bytes=None if args.max_file_mb is None else int(args.max_file_mb * 2**20),
    )
    if is_source(args.data):
        quiet = getattr(args, "quiet", False)
        return open_source(
            args.data,
            cache_dir=args.cache_dir or default_cache_dir(near),
            image_size=_image_size(input_shape),
            input_shape=input_shape,
            require_labels=require_labels,
            limits=limits,
            progress=None if quiet else lambda line: print(line, file=sys.stderr),
        )
    return load_dataset(
        args.data,
        input_shape=input_shape,
        image_size=_image_size(input_shape),
        limits=limits,
        require_labels=require_labels,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m soartlab",
        description="SOART Lab: SOART3-distance Siamese networks for visual inspection.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write the built-in demo set (.csv or .parquet)")
    demo.add_argument("--out", required=True, type=Path, help="output file, .csv or .parquet")
    demo.add_argument("--samples", type=int, default=3000, help="number of samples (default 3000)")
    demo.add_argument("--seed", type=int, default=0)

    train = sub.add_parser("train", help="train a Siamese model and write a run folder")
    train.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    train.add_argument("--out", required=True, type=Path, help="run folder to write")
    _add_source_options(train)
    for setting in CLI_SETTINGS:
        auto = None
        if setting.name in AUTO_TRANSFORM:
            auto = f"Suggest's value for this data; the article's is {setting.default:g}"
        _add_setting_option(train, setting, auto=auto)
    train.add_argument("--input-shape", type=_shape, default=None, help="e.g. 36x39")
    train.add_argument("--label", default="", help="a name for the run (a label only)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument(
        "--resume",
        choices=["auto", "never"],
        default="never",
        help="auto: continue from the training state in OUT when it exists (it is saved "
        "after every epoch), e.g. after torchrun restarted a failed worker",
    )
    train.add_argument(
        "--backend",
        choices=["auto", "gloo", "nccl"],
        default=None,
        help="process-group backend under torchrun (default: $SOARTLAB_DIST_BACKEND, "
        "else auto: nccl on GPUs, gloo on CPUs)",
    )

    suggest = sub.add_parser(
        "suggest",
        help="print, as JSON, a gamma transform under which the SOART3 loss learns, "
        "computed on the distances the loss will see",
    )
    suggest.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    _add_source_options(suggest)
    suggest.add_argument(
        "--run",
        type=Path,
        default=None,
        help="a run folder: tune for continuing from its model (default: the new network)",
    )
    suggest.add_argument("--input-shape", type=_shape, default=None, help="e.g. 36x39")
    for setting in SUGGEST_SETTINGS:
        _add_setting_option(suggest, setting, auto=f"the run's, else {setting.default}")
    suggest.add_argument(
        "--pairs", type=int, default=2000, help="pairs sampled (default: %(default)s)"
    )

    evaluate = sub.add_parser(
        "evaluate", help="print a run's metrics on a labelled data file as JSON"
    )
    evaluate.add_argument("--run", required=True, type=Path)
    evaluate.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    _add_source_options(evaluate)

    predict = sub.add_parser(
        "predict", help="predict a new lot and write a CSV (UTF-8 with BOM) or an .xlsx"
    )
    predict.add_argument("--run", required=True, type=Path)
    predict.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    predict.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output .csv (UTF-8 with BOM) or .xlsx; .csv or .parquet for a folder or glob",
    )
    predict.add_argument(
        "--target-escape",
        type=float,
        default=None,
        help="fit the pass/review/fail thresholds again, from the run's calibration "
        "scores, for this most escapes (share of defects passed; default: the run's "
        "saved operating point)",
    )
    _add_source_options(predict)
    return parser


class _ProgressPrinter:
    """Progress lines on stderr: one per epoch, and a step line about every 2 seconds."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, p) -> None:
        now = time.monotonic()
        if p.kind == "step" and now - self.last > 2.0:
            self.last = now
            print(
                f"  epoch {p.epoch}/{p.epochs} step {p.step}/{p.steps_per_epoch} loss {p.loss:.4f}",
                file=sys.stderr,
            )
        elif p.kind == "epoch" and p.record:
            r = p.record
            scores = ""
            if r.get("val_accuracy") is not None:
                scores = (
                    f", validation accuracy {r['val_accuracy']:.3f}, escape "
                    f"{r['val_escape_rate']:.3f}, overkill {r['val_overkill_rate']:.3f}"
                )
            print(
                f"epoch {p.epoch}/{p.epochs}: loss {r['loss']:.4f}{scores} ({r['seconds']:.1f} s)",
                file=sys.stderr,
            )
        elif p.kind == "end" and p.outcome.value == "memorising":
            print(f"warning: {p.message}", file=sys.stderr)
        elif p.kind == "end" and p.outcome.value != "finished":
            print(f"training stopped: {p.message}", file=sys.stderr)
        elif p.kind == "end" and p.message != "finished":
            print(p.message, file=sys.stderr)  # stopped early: no validation gain
        elif p.kind == "resumed":
            print(p.message, file=sys.stderr)


def _cmd_demo(args) -> int:
    from soartlab.demo import MAX_SAMPLES, write_demo

    if args.out.suffix.lower() not in (".csv", ".parquet"):
        raise SoartLabError(f"--out must end in .csv or .parquet; got {args.out.name!r}.")
    if not 10 <= args.samples <= MAX_SAMPLES:
        raise SoartLabError(f"--samples must be from 10 to {MAX_SAMPLES}; got {args.samples}.")
    write_demo(args.out, n_samples=args.samples, seed=args.seed)
    print(f"wrote {args.samples} demo samples to {args.out}", file=sys.stderr)
    return 0


def _suggest_config(args, base: TrainConfig) -> TrainConfig:
    """``base`` with the `suggest` options that were given, each checked by its flag."""
    given = {s.name: getattr(args, s.name) for s in SUGGEST_SETTINGS}
    given = {name: value for name, value in given.items() if value is not None}
    for setting in SUGGEST_SETTINGS:
        if setting.name in given:
            setting.check(given[setting.name], setting.flag)
    floor = given.pop("floor", base.transform.floor)
    return replace(base, loss="soart3", transform=replace(base.transform, floor=floor), **given)


def _image_size(shape) -> tuple[int, int] | None:
    """The size images are resized to for an input of ``shape``: (H, W) itself; None
    (the images' own size) for vectors or no shape given."""
    return None if shape is None or len(shape) != 2 else (int(shape[0]), int(shape[1]))


def _cmd_suggest(args) -> int:
    from soartlab.separation import separation_report
    from soartlab.workflow import load_run, training_setup

    if not 2 <= args.pairs <= 1_000_000:
        raise SoartLabError(f"--pairs must be from 2 to 1000000; got {args.pairs}.")
    run = None if args.run is None else load_run(args.run)
    base = TrainConfig() if run is None else run.record.config
    config = _suggest_config(args, replace(base, device="cpu"))
    shape = args.input_shape or (run.input_shape if run is not None else None)
    dataset = _read_data(args, near=args.run or args.data, input_shape=shape)
    setup = training_setup(
        dataset, config, auto_transform=True, resume_from=run, n_pairs=args.pairs
    )
    report = separation_report(setup.pairs.matched, setup.pairs.unmatched)
    source = f"initial network (seed {config.seed})" if run is None else f"run {args.run}"
    print(
        json.dumps(
            {
                **setup.config.transform.to_dict(),
                "margin": config.margin,
                **setup.view.to_dict(),
                "source": source,
                "roc_auc": report.roc_auc,
                "overlap": report.overlap,
                "p_v": config.p_v,
                "p_m": config.p_m,
            },
            indent=2,
        )
    )
    return 0


def _cmd_train(args) -> int:
    from soartlab import distributed

    if not distributed.launched_by_torchrun():
        return _train(args, None)  # one process: --backend has nothing to choose
    with distributed.process_group(args.backend, args.device) as context:
        return _train(args, context)


def _train(args, context) -> int:
    """Train and, on rank 0 (or alone), write the run folder. context: the process group
    when started by torchrun, else None. Exit status 0 only for a run trained to the end."""
    from soartlab.runs import Run
    from soartlab.training import Outcome, Trainer, TrainingState
    from soartlab.workflow import build_record, calibrate, is_good_only, save_run, training_setup

    config = TrainConfig.from_namespace(args)
    if (args.scale is None) != (args.offset is None):
        raise SoartLabError(
            "--scale and --offset go together: give both (the article's are --scale 0.5 "
            "--offset -0.25), or neither for a transform that learns on this data."
        )
    run = Run(args.out)
    try:  # now, not after an epoch of training
        run.check_writable()
    except CheckpointError as exc:
        raise SoartLabError(f"--out: {exc}") from None
    dataset = _read_data(args, near=args.out, input_shape=args.input_shape)
    if is_good_only(dataset):
        if context is not None and not context.is_main:
            return EXIT_NOT_FINISHED  # not trained: rank 0 writes the run
        return _good_only(args, config, dataset, run)
    # Refuses (exit 2) a transform under which nothing would be learnt.
    setup = training_setup(dataset, config, auto_transform=args.scale is None)
    config, data = setup.config, setup.data
    main = context is None or context.is_main
    if main:
        args.out.mkdir(parents=True, exist_ok=True)  # before training: a bad folder fails now
        for warning in (*(context.warnings if context else ()), *data.warnings):
            print(f"warning: {warning}", file=sys.stderr)
        if context is not None:
            print(f"training on {context.world_size} workers ({context.backend})", file=sys.stderr)
        if not args.quiet:
            why = f" ({setup.arch_reason})" if setup.arch_reason else ""
            print(
                f"network: {config.arch}{why}; augmentation: {config.augment}",
                file=sys.stderr,
            )
        if args.scale is None and config.loss == "soart3" and not args.quiet:
            t, view = config.transform, setup.view
            which = "Suggest's for this data" if setup.suggested else "the article's values"
            print(
                f"transform: {which}: scale {t.scale:.4g}, offset {t.offset:.4g}, floor "
                f"{t.floor:g} ({view.pulled:.0%} of matched pairs pulled, {view.pushed:.0%} "
                "of unmatched pairs pushed)",
                file=sys.stderr,
            )
    state = TrainingState(run.state_path, config, data.fingerprint)
    started, wall = time.process_time(), time.perf_counter()
    trainer = Trainer(config, callback=None if args.quiet else _ProgressPrinter())
    result = trainer.fit(
        setup.model,
        data,
        resume=state.load() if args.resume == "auto" else None,
        on_epoch_end=state.save,
    )
    finished = result.outcome is Outcome.FINISHED
    if not main:
        return 0 if finished else EXIT_NOT_FINISHED  # rank 0 writes the run folder
    calibration = calibrate(config, data, result)
    record = build_record(
        config,
        data,
        result,
        label=args.label,
        cpu_seconds=time.process_time() - started,
        wall_seconds=time.perf_counter() - wall,
        calibration=calibration,
    )
    save_run(run, record, result, calibration)
    m = result.metrics
    print(
        f"wrote {run.path} ({result.outcome.value}, {result.arch}, epoch {m['kept_epoch']} "
        f"kept): held-out accuracy {m['accuracy']:.4f}, escape {m['escape_rate']:.4f}, "
        f"overkill {m['overkill_rate']:.4f} (nearest class)",
        file=sys.stderr,
    )
    if record.decision is not None:
        print(decision_line(record.decision), file=sys.stderr)
    if not finished:
        print(f"error: training did not finish: {result.stop_reason}", file=sys.stderr)
        return EXIT_NOT_FINISHED
    return 0


def _percent(rate: float | None, bound: float | None) -> str:
    if rate is None:
        return "not measured"
    return f"{rate:.2%} (95 % upper bound {bound:.2%}, {bound * 1e6:,.0f} ppm)"


def decision_line(block: dict) -> str:
    """The decision block of a run record in one line for stderr."""
    t = block["thresholds"]
    if block["rule"] == "good_only":
        return (
            f"decision (good parts only): pass <= {t['pass_below']:.4g} < review <= "
            f"{t['fail_above']:.4g} < fail (unknown); on {block['n_reported']} held-out good "
            f"parts: overkill {_percent(block['overkill_rate'], block['overkill_upper_95'])}, "
            f"review {block['review_rate']:.1%}. {block['note']}"
        )
    return (
        f"decision (target escape {block['target']:g}; pass <= {t['pass_below']:.4g} < review "
        f"<= {t['fail_above']:.4g} < fail; unknown beyond {t['unknown_above']:.4g}) on "
        f"{block['n_reported']} held-out parts not used to set it: escape "
        f"{_percent(block['escape_rate'], block['escape_upper_95'])}, overkill "
        f"{_percent(block['overkill_rate'], block['overkill_upper_95'])}, review "
        f"{block['review_rate']:.1%}"
    )


def _good_only(args, config: TrainConfig, dataset, run) -> int:
    """Good parts only: no training (see `workflow.good_only_run`); the run is written with
    the threshold from the good parts' own leave-one-out distances."""
    from soartlab.workflow import GOOD_ONLY_TRAINING, build_record, good_only_run, save_run

    data, result, calibration = good_only_run(dataset, config)
    args.out.mkdir(parents=True, exist_ok=True)
    record = build_record(config, data, result, label=args.label, calibration=calibration)
    save_run(run, record, result, calibration)
    print(GOOD_ONLY_TRAINING, file=sys.stderr)
    overkill = result.metrics["overkill_rate"]
    print(
        f"wrote {run.path}: {len(data.y_train)} good reference parts; overkill on "
        f"{len(data.y_test)} held-out good parts {overkill:.2%}.",
        file=sys.stderr,
    )
    print(decision_line(record.decision), file=sys.stderr)
    return EXIT_NOT_FINISHED


def _cmd_evaluate(args) -> int:
    from soartlab.lots import evaluate_rows
    from soartlab.rows import ArrowRows
    from soartlab.workflow import evaluate_run, load_run

    run = load_run(args.run)
    lot = _read_data(args, near=args.run, input_shape=run.input_shape)
    if isinstance(lot, ArrowRows):
        metrics = evaluate_rows(run, lot, progress=lambda line: print(line, file=sys.stderr))
    else:
        metrics = evaluate_run(run, lot)
    print(json.dumps(metrics, indent=2))
    return 0


def _check_output_file(flag: str, out: Path, *inputs: Path) -> None:
    """Refuse, before any work, an output file that is one of the ``inputs`` (it would be
    overwritten), a folder, or in a folder that is missing or cannot be written."""
    from soartlab.files import check_writable_folder

    for given in inputs:
        if out.resolve() == given.resolve() or (
            out.exists() and given.exists() and os.path.samefile(out, given)
        ):
            raise SoartLabError(
                f"{flag} {out} is the input {given}: writing it would overwrite the input. "
                "Choose another file name."
            )
    if out.is_dir():
        raise SoartLabError(f"{flag} {out} is a folder; give a file name.")
    if not out.parent.is_dir():
        raise SoartLabError(
            f"{flag} {out}: the folder '{out.parent}' does not exist; create it first."
        )
    try:
        check_writable_folder(out.parent)
    except CheckpointError as exc:
        raise SoartLabError(f"{flag}: {exc}") from None


def _cmd_predict(args) -> int:
    from soartlab.export import TABLE_SUFFIXES, write_table
    from soartlab.lots import predict_to_file
    from soartlab.rows import ArrowRows
    from soartlab.sources import is_source
    from soartlab.workflow import load_run, predict_lot

    large = is_source(args.data)
    allowed = (".csv", ".parquet") if large else TABLE_SUFFIXES
    if args.out.suffix.lower() not in allowed:
        raise SoartLabError(f"--out must end in {' or '.join(allowed)}; got {args.out.name!r}.")
    _check_output_file("--out", args.out, *(() if large else (args.data,)))
    run = load_run(args.run)
    lot = _read_data(args, near=args.out, input_shape=run.input_shape, require_labels=False)
    if isinstance(lot, ArrowRows):  # streamed in and out, a chunk at a time
        streamed = predict_to_file(
            run,
            lot,
            args.out,
            target_escape=args.target_escape,
            progress=lambda line: print(line, file=sys.stderr),
        )
        counts = streamed.counts
        print(streamed.check.summary(), file=sys.stderr)
        print(
            f"wrote {len(lot)} predictions to {args.out} ({counts.get('pass', 0)} pass, "
            f"{counts.get('review', 0)} review, {counts.get('fail', 0)} fail)",
            file=sys.stderr,
        )
        return 0
    # A lot plainly on another scale is refused here (DataError: exit 2).
    result = predict_lot(run, lot, target_escape=args.target_escape)
    table = result.table
    write_table(args.out, table)
    print(result.check.summary(), file=sys.stderr)
    counts = table["decision"].value_counts()
    print(
        f"wrote {len(table)} predictions to {args.out} ({counts.get('pass', 0)} pass, "
        f"{counts.get('review', 0)} review, {counts.get('fail', 0)} fail)",
        file=sys.stderr,
    )
    if args.target_escape is not None and result.point is not None:
        from soartlab.workflow import decision_block

        block = decision_block(run.calibration, run.label_names, run.good_index, point=result.point)
        print(decision_line(block), file=sys.stderr)
    if result.figures is not None:
        f = result.figures
        print(
            f"on this labelled lot: escape {_percent(f.escape_rate, f.escape_upper_95)}, "
            f"overkill {_percent(f.overkill_rate, f.overkill_upper_95)}, review "
            f"{f.review_rate:.1%}",
            file=sys.stderr,
        )
    return 0


COMMANDS = {
    "demo": _cmd_demo,
    "train": _cmd_train,
    "suggest": _cmd_suggest,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SoartLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
