"""9. Data at scale: how the costs grow with the data set, from Parquet shards of uint8
images (36×39) at 3,000 / 30,000 / 200,000 samples.

Each measurement runs in its own process, and its peak RSS is that process's
``ru_maxrss`` as the kernel reports it when the process is reaped (``os.wait4``, the
per-child form of ``getrusage(RUSAGE_CHILDREN)``):

- conversion: `soartlab.sources.open_source` of the shards into a fresh Arrow cache;
- train: ``python -m soartlab train`` on the shards, 1 epoch of 20,000 pairs (the whole
  command: baselines, the epoch, the evaluation, writing the run);
- phases: in one process, one epoch of 20,000 pairs (`Trainer.train_epoch`) and one
  held-out evaluation (`Trainer._evaluate`: embed every row, kNN of the held-out rows
  among the training rows), timed apart;
- predict: ``python -m soartlab predict`` of the shards to Parquet.

"Before" runs the code of ``main`` (``git archive``) on the same samples in one Parquet
file, which is all it reads, under its upload caps.

    python bench/bench_scale.py [--sizes 3000,30000,200000] [--work DIR] [--no-before]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPE = (36, 39)
SHARD_ROWS = 10_000
PAIRS = 20_000
CLASSES = ("good", "scratch", "dent", "stain", "crack")
SECTION = "## 9. Data at scale"
# held-out parts whose nearest reference the cell index finds, checked against all pairs
INDEX_QUERIES = 500


# --- the generator --------------------------------------------------------------------------


def generate_shards(folder: Path, n: int, seed: int = 0, single_file: bool = False) -> None:
    """``n`` uint8 images (36×39) of len(CLASSES) classes into Parquet shards of
    `SHARD_ROWS` rows (``label`` + ``px_r_c`` uint8 columns), or one file. Each class is a
    fixed template (a lit plate, and for a defect a mark of its own) plus noise and a
    brightness drift per sample: learnable, not trivial, fast (vectorised NumPy)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1234)
    h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    plate = 120 + 60 * np.exp(-(((yy - h / 2) / 14) ** 2 + ((xx - w / 2) / 16) ** 2))
    templates = [plate]
    for _ in CLASSES[1:]:
        cy, cx, r = rng.uniform(8, h - 8), rng.uniform(8, w - 8), rng.uniform(2, 5)
        mark = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))
        templates.append(plate + rng.choice([-70, 70]) * mark)
    templates = np.stack(templates).reshape(len(CLASSES), -1).astype(np.float32)
    columns = [f"px_{r}_{c}" for r in range(h) for c in range(w)]
    names = np.array(CLASSES, dtype=object)
    folder.mkdir(parents=True, exist_ok=True)
    writer = None
    for k, start in enumerate(range(0, n, SHARD_ROWS)):
        rows = min(SHARD_ROWS, n - start)
        rng = np.random.default_rng([seed, k])
        y = rng.choice(len(CLASSES), size=rows, p=[0.6, 0.1, 0.1, 0.1, 0.1])
        x = templates[y] + rng.normal(0, 45, (rows, h * w)).astype(np.float32)
        x += rng.normal(0, 10, (rows, 1)).astype(np.float32)
        pixels = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        table = pa.table(
            {"label": pa.array(names[y].tolist(), pa.string())}
            | {c: pa.array(pixels[:, i]) for i, c in enumerate(columns)}
        )
        if single_file:
            writer = writer or pq.ParquetWriter(folder / "all.parquet", table.schema)
            writer.write_table(table)
        else:
            pq.write_table(table, folder / f"shard-{k:04d}.parquet")
    if writer is not None:
        writer.close()


# --- running and measuring a child ----------------------------------------------------------


def _with_path(env: dict) -> dict:
    """``env`` with its PYTHONPATH before the one this process has (packages added there)."""
    if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):
        env = {**env, "PYTHONPATH": env["PYTHONPATH"] + os.pathsep + os.environ["PYTHONPATH"]}
    return env


def measured(command: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run ``command``; its wall seconds, peak RSS (MiB), exit status and output."""
    started = time.perf_counter()
    with open(os.devnull, "rb") as stdin:
        proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_with_path(env or {})},
            cwd=cwd,
        )
        output = proc.stdout.read().decode("utf-8", "replace")
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "seconds": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "rc": os.waitstatus_to_exitcode(status),
        "output": output,
    }


def _phases(glob: str, cache: str) -> None:
    """Child: one epoch and one evaluation, timed apart; prints JSON."""
    import torch

    from soartlab import search
    from soartlab.prepare import prepare
    from soartlab.rows import is_rows, on_device
    from soartlab.sources import open_source
    from soartlab.training import TrainConfig, Trainer, initial_model

    rows = open_source(glob, cache_dir=cache)
    config = TrainConfig(epochs=1, pairs_per_epoch=PAIRS, device="cpu")
    data = prepare(rows, config.test_size, config.seed)
    trainer = Trainer(config)
    model = initial_model(config, data)
    optimizer = trainer.optimizer(model)
    x = on_device(data.x_train, trainer.device)
    started, cpu = time.perf_counter(), time.process_time()
    trainer.train_epoch(model, optimizer, x, data.y_train, 1)
    epoch, epoch_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        references, metrics = trainer._evaluate(model, data)
    evaluation, eval_cpu = time.perf_counter() - started, time.process_time() - cpu
    measured = {
        "epoch_s": epoch,
        "epoch_cpu": epoch_cpu,
        "eval_s": evaluation,
        "eval_cpu": eval_cpu,
        "accuracy": metrics["accuracy"],
    }
    if len(references) >= search.INDEX_MIN_REFS:
        with torch.no_grad():
            sample = np.arange(min(INDEX_QUERIES, len(data.y_test)))
            x = data.x_test.subset(sample) if is_rows(data.x_test) else data.x_test[sample]
            queries = trainer._embed(model, x)
        measured["index"] = index_agreement(queries, references, data.y_train)
    print(json.dumps(measured))


def index_agreement(queries: np.ndarray, references: np.ndarray, labels: np.ndarray) -> dict:
    """The cell index's answers (`soartlab.search`) against every pair scored
    (``exact=True``) for ``queries``: the share for which it found as near a reference,
    the share whose nearest reference has the same class, and how much farther its
    nearest reference is on average (relative gamma)."""
    from soartlab import search

    found, gamma = search.soart3_knn(queries, references, k=1)
    index = search.cell_index(references, 4, 1, 1e-4)
    exact, exact_gamma = search.soart3_knn(queries, references, k=1, exact=True)
    return {
        "queries": len(queries),
        "probes": None if index is None else [index.probes, len(index.centres)],
        "as_near": float(np.mean(gamma[:, 0] <= exact_gamma[:, 0] + 1e-6)),
        "same_class": float(np.mean(labels[found[:, 0]] == labels[exact[:, 0]])),
        "farther": float(np.mean((gamma[:, 0] - exact_gamma[:, 0]) / exact_gamma[:, 0])),
    }


def _convert(glob: str, cache: str) -> None:
    from soartlab.sources import open_source

    rows = open_source(glob, cache_dir=cache)
    print(json.dumps({"rows": len(rows)}))


# --- the benchmark --------------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "soartlab", *args]


def run_size(
    n: int, work: Path, before: bool, main_code: Path | None = None, save=lambda: None
) -> dict:
    """Every measurement at ``n`` samples; ``save()`` after each (the result dict grows)."""
    here = work / f"n{n}"
    shutil.rmtree(here, ignore_errors=True)
    started = time.perf_counter()
    generate_shards(here / "shards", n)
    result: dict = {"n": n, "generate_s": time.perf_counter() - started}
    save(result)
    result["shards_mb"] = sum(p.stat().st_size for p in (here / "shards").iterdir()) / 1e6
    glob, cache = str(here / "shards" / "*.parquet"), str(here / "cache")
    env = {"PYTHONPATH": str(ROOT)}
    me = str(Path(__file__).resolve())
    conversion = measured([sys.executable, me, "--child", "convert", glob, cache], env)
    assert conversion["rc"] == 0, conversion["output"][-3000:]
    result["convert"] = conversion
    save(result)
    train = measured(
        _cli(
            "train",
            "--data",
            glob,
            "--out",
            str(here / "run"),
            "--cache-dir",
            cache,
            "--epochs",
            "1",
            "--pairs-per-epoch",
            str(PAIRS),
            "--device",
            "cpu",
            "--scale",
            "0.5",
            "--offset",
            "-0.25",
            "--quiet",
        ),
        env,
    )
    assert train["rc"] == 0, train["output"][-3000:]
    result["train"] = train
    save(result)
    phases = measured([sys.executable, me, "--child", "phases", glob, cache], env)
    assert phases["rc"] == 0, phases["output"][-3000:]
    result["phases"] = {**phases, **json.loads(phases["output"].strip().splitlines()[-1])}
    save(result)
    # a lot of one shard (10,000 parts, fewer for a smaller set), converted as it is read
    lot = str(here / "shards" / "shard-000[0].parquet")
    predict = measured(
        _cli(
            "predict",
            "--run",
            str(here / "run"),
            "--data",
            lot,
            "--out",
            str(here / "predictions.parquet"),
            "--cache-dir",
            cache,
        ),
        env,
    )
    assert predict["rc"] == 0, predict["output"][-3000:]
    result["predict"] = predict
    save(result)
    result["lot"] = min(n, SHARD_ROWS)
    run = json.loads((here / "run" / "run.json").read_text())
    result["accuracy"] = run["metrics"]["accuracy"]
    if before:
        result["before"] = run_before(n, here, main_code)
    shutil.rmtree(here / "cache", ignore_errors=True)
    shutil.rmtree(here / "shards", ignore_errors=True)
    return result


def main_code(work: Path) -> Path:
    """The code of the ``main`` branch, unpacked (git archive) into ``work/main-code``."""
    target = work / "main-code"
    if not (target / "soartlab").is_dir():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "main", "soartlab"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target


def run_before(n: int, here: Path, code: Path | None = None) -> dict:
    """main's CLI on the same samples as one Parquet file: train (1 epoch) and predict."""
    generate_shards(here / "single", n, single_file=True)
    data = here / "single" / "all.parquet"
    env = {"PYTHONPATH": str(code or main_code(here.parent))}
    train = measured(
        _cli(
            "train",
            "--data",
            str(data),
            "--out",
            str(here / "run-before"),
            "--epochs",
            "1",
            "--pairs-per-epoch",
            str(PAIRS),
            "--device",
            "cpu",
            "--scale",
            "0.5",
            "--offset",
            "-0.25",
            "--quiet",
        ),
        env,
        cwd=here,
    )
    out = {"file_mb": data.stat().st_size / 1e6, "train": train}
    if train["rc"] == 0:
        out["predict"] = measured(
            _cli(
                "predict",
                "--run",
                str(here / "run-before"),
                "--data",
                str(data),
                "--out",
                str(here / "predictions-before.csv"),
            ),
            env,
            cwd=here,
        )
    shutil.rmtree(here / "single", ignore_errors=True)
    return out


def _cell(measure: dict | None, key: str = "cpu", fmt: str = "{:.1f} s") -> str:
    if measure is None:
        return "—"
    if measure.get("rc", 0) != 0:
        line = measure["output"].strip().splitlines()[-1] if measure["output"].strip() else ""
        return f"refused: {line[:90]}" if line else f"failed (exit {measure['rc']})"
    if key == "cpu":
        return f"{measure['cpu']:.1f} s ({measure['seconds']:.0f} s)"
    return fmt.format(measure[key])


def _probes(index: dict) -> str:
    if index.get("probes") is None:
        return "not used: no number of cells agreed with every pair scored"
    probes, cells = index["probes"]
    return f"{probes} of {cells} cells searched a part"


def table(results: list[dict]) -> str:
    rows = [
        "Times are CPU seconds of the process (user + system; 2 torch threads), wall seconds "
        "in brackets: the machine is shared, and wall time follows its load. `predict` scores "
        "a lot of one shard (10,000 parts; 3,000 for the smallest set) against the run's "
        "references, converting the lot first; parts per CPU second. From 32,768 "
        "references the nearest-neighbour search first narrows each part to the cells of "
        "about 256 references nearest it in direction (`soartlab.search.CellIndex`, as "
        "many cells as its references need); below the table, how often it finds as near "
        "a reference as scoring every pair.",
        "",
        "| samples | shards | conversion | conversion peak RSS | `train` 1 epoch | "
        "`train` peak RSS | epoch (20,000 pairs) | evaluation | `predict`: parts/s | "
        "`predict` peak RSS | held-out accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = r["lot"] / r["predict"]["cpu"]
        ph = r["phases"]
        rows.append(
            f"| {r['n']:,} | {r['shards_mb']:.0f} MB | {_cell(r['convert'])} | "
            f"{_cell(r['convert'], 'rss_mib', '{:.0f} MiB')} | {_cell(r['train'])} | "
            f"{_cell(r['train'], 'rss_mib', '{:.0f} MiB')} | "
            f"{ph['epoch_cpu']:.1f} s ({ph['epoch_s']:.0f} s) | "
            f"{ph['eval_cpu']:.1f} s ({ph['eval_s']:.0f} s) | {rate:,.0f} | "
            f"{_cell(r['predict'], 'rss_mib', '{:.0f} MiB')} | {r['accuracy']:.3f} |"
        )
    for r in results:
        index = r["phases"].get("index")
        if index:
            rows += [
                "",
                f"The cell index at {r['n']:,} samples ({_probes(index)}), "
                f"{index['queries']} held-out parts checked against every pair: as near a "
                "reference for "
                f"{index['as_near']:.1%}, a nearest reference of the same class for "
                f"{index['same_class']:.1%}, and {index['farther']:.3%} farther on average.",
            ]
    before = [r for r in results if "before" in r]
    if before:
        rows += [
            "",
            "Before (the code of `main`, the same samples as one Parquet file, its upload caps):",
            "",
            "| samples | file | `train` 1 epoch | `train` peak RSS | `predict`: parts/s | "
            "`predict` peak RSS |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in before:
            b = r["before"]
            p = b.get("predict")
            rate = "—" if p is None or p["rc"] else f"{r['n'] / p['cpu']:,.0f}"
            rows.append(
                f"| {r['n']:,} | {b['file_mb']:.0f} MB | {_cell(b['train'])} | "
                f"{_cell(b['train'], 'rss_mib', '{:.0f} MiB')} | {rate} | "
                f"{_cell(p, 'rss_mib', '{:.0f} MiB')} |"
            )
    return "\n".join(rows)


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace this benchmark's section of BENCHMARKS.md (or append it); keep the rest."""
    content = path.read_text(encoding="utf-8")
    if SECTION in content:
        head, rest = content.split(SECTION, 1)
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        content = head + text.rstrip() + "\n" + tail
    else:
        content = content.rstrip() + "\n\n" + text.rstrip() + "\n"
    path.write_text(content, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="3000,30000,200000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/soartlab-bench-scale"))
    parser.add_argument(
        "--before-sizes", default=None, help="sizes to run main's code at (default: all)"
    )
    parser.add_argument("--main-code", type=Path, default=None, help="main's code, unpacked")
    parser.add_argument("--results", type=Path, default=None, help="results JSON to write")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md's section")
    parser.add_argument("--child", nargs=3, metavar=("PHASE", "GLOB", "CACHE"))
    args = parser.parse_args()
    if args.child:
        phase, glob, cache = args.child
        {"phases": _phases, "convert": _convert}[phase](glob, cache)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    before = sizes if args.before_sizes is None else [int(s) for s in args.before_sizes.split(",")]
    code = None if args.main_code is None else args.main_code.resolve()
    results_path = args.results or args.work / "results.json"
    results = []
    results_path.parent.mkdir(parents=True, exist_ok=True)

    def save(partial: dict) -> None:
        done = [r for r in results if r["n"] != partial["n"]]
        results_path.write_text(json.dumps([*done, partial], indent=1))
        print(json.dumps(partial)[-600:], file=sys.stderr, flush=True)

    for n in sizes:
        print(f"== {n:,} samples", file=sys.stderr, flush=True)
        results.append(run_size(n, args.work, n in before, code, save))
    results.sort(key=lambda r: r["n"])
    text = table(results)
    print(text)
    if args.write:
        write_section(f"{SECTION}\n\n{text}\n")


if __name__ == "__main__":
    main()
