import io
import json
import os
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn as nn

import soartlab.checkpoint as checkpoint
from bench.article_way import EmbeddingNet, SiameseNet
from soartlab.checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    save_checkpoint,
)
from soartlab.errors import CheckpointError
from soartlab.models import EmbeddingNet as LabEmbeddingNet
from soartlab.models import ModelConfig, build_model

# --- helpers -----------------------------------------------------------------------------

SMALL = ModelConfig(input_shape=(8, 5), hidden=(16, 12, 12), embedding_dim=6)
METADATA = {
    "label_names": ["good", "scratch", "dent"],
    "input_shape": [8, 5],
    "normalization": {"mean": 0.5, "std": 0.25},
    "transform": {"scale": 0.5, "offset": -0.25, "floor": 0.0},
    "distance": {"name": "soart3", "p_v": 4, "p_m": 1},
    "metrics": {"accuracy": 0.9, "escape_rate": 0.05, "overkill_rate": 0.02},
}


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model(SMALL).eval()


def torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class RunsCode:
    """Unpickling this creates `marker`: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- article compatibility and round trips -----------------------------------------------


def test_pth_loads_into_the_article_classes(tmp_path):
    torch.manual_seed(0)
    model = build_model().eval()
    paths = save_checkpoint(tmp_path, model, {"label_names": ["good", "bad"]})
    assert paths["pth"] == tmp_path / "model.pth"

    article_model = SiameseNet(EmbeddingNet())
    article_model.load_state_dict(torch.load(paths["pth"]))  # exactly as the article does
    article_model.eval()

    x = torch.rand(7, 36, 39)
    with torch.no_grad():
        assert torch.equal(article_model.get_embedding(x), model.get_embedding(x))


def test_article_state_dict_loads_without_metadata(tmp_path):
    torch.manual_seed(1)
    article_model = SiameseNet(EmbeddingNet()).eval()
    torch.save(article_model.state_dict(), tmp_path / "siamese_gaikan_model.pth")

    model, meta = load_checkpoint(tmp_path / "siamese_gaikan_model.pth")
    assert meta["model"] == {"input_shape": [1404], "hidden": [512, 256, 256], "embedding_dim": 128}
    x = torch.rand(3, 36, 39)
    with torch.no_grad():
        assert torch.equal(model.get_embedding(x), article_model.get_embedding(x))


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path):
    model = small_model()
    paths = save_checkpoint(tmp_path, model, METADATA)
    loaded, meta = load_checkpoint(paths["safetensors"])
    assert meta == {**METADATA, "model": SMALL.to_dict()}
    assert loaded.config == SMALL
    assert not loaded.training
    x = torch.rand(4, 8, 5)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), model.get_embedding(x))
    header = safetensors.safe_open(paths["safetensors"], "pt").metadata()
    assert json.loads(header["soartlab"])["label_names"] == METADATA["label_names"]


def test_pth_takes_metadata_from_run_json(tmp_path):
    model = small_model()
    paths = save_checkpoint(tmp_path, model, METADATA)
    atomic_write_json(tmp_path / "run.json", {**METADATA, "model": SMALL.to_dict()})
    loaded, meta = load_checkpoint(paths["pth"])
    assert loaded.config == SMALL
    assert meta["label_names"] == METADATA["label_names"]


def test_pth_takes_metadata_given_over_run_json(tmp_path):
    paths = save_checkpoint(tmp_path, small_model(), {})
    atomic_write_json(tmp_path / "run.json", {"model": {"embedding_dim": 0}})
    loaded, meta = load_checkpoint(paths["pth"], metadata={"model": SMALL.to_dict(), "x": 1})
    assert loaded.config == SMALL and meta["x"] == 1


def test_inferred_config_uses_input_shape_from_metadata(tmp_path):
    paths = save_checkpoint(tmp_path, small_model(), {})
    loaded, _ = load_checkpoint(paths["pth"], metadata={"input_shape": [8, 5]})
    assert loaded.config == SMALL


def test_bare_embedding_net_state_dict_is_accepted(tmp_path):
    torch.manual_seed(0)
    net = LabEmbeddingNet(SMALL).eval()
    torch.save({"state_dict": net.state_dict()}, tmp_path / "emb.pt")
    loaded, _ = load_checkpoint(tmp_path / "emb.pt")
    x = torch.rand(2, 40)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), net(x))


# --- BAD_INPUTS 1: pickles that run code -------------------------------------------------


@pytest.mark.parametrize("force_unsafe", [False, True])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, monkeypatch, force_unsafe):
    if force_unsafe:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    state = build_model(SMALL).state_dict()
    state["embedding_net.final.bias"] = RunsCode(marker)
    (tmp_path / "model.pth").write_bytes(torch_bytes(state))
    with pytest.raises(CheckpointError, match="refused without running them"):
        load_checkpoint(tmp_path / "model.pth")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_raw_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / "model.pth").write_bytes(pickle.dumps(RunsCode(marker), protocol=protocol))
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / "model.pth")
    assert not marker.exists()


# --- BAD_INPUTS 2: whole models, NumPy objects, other non-state_dicts ---------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: build_model(SMALL), id="whole-model"),
        pytest.param(lambda: SiameseNet(EmbeddingNet()), id="whole-article-model"),
        pytest.param(lambda: {"w": np.zeros(3)}, id="numpy-in-dict"),
        pytest.param(lambda: np.zeros((3, 3)), id="numpy-array"),
        pytest.param(lambda: {"embedding_net.linear1.weight": 3}, id="dict-of-ints"),
        pytest.param(lambda: [torch.zeros(2)], id="list"),
        pytest.param(lambda: torch.zeros(2), id="tensor"),
        pytest.param(lambda: {}, id="empty-dict"),
    ],
)
def test_objects_instead_of_a_state_dict_ask_for_the_state_dict(tmp_path, payload):
    (tmp_path / "model.pth").write_bytes(torch_bytes(payload()))
    with pytest.raises(CheckpointError, match="[Ee]xport the state_dict"):
        load_checkpoint(tmp_path / "model.pth")


# --- BAD_INPUTS 3: garbage, truncated, renamed -------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("model.pth", lambda good: PNG),
        ("model.pth", lambda good: b"hello, this is not a model\n"),
        ("model.pth", lambda good: good["pth"][: len(good["pth"]) // 2]),
        ("model.pth", lambda good: good["pth"][:200]),
        ("model.pth", lambda good: good["safetensors"]),
        ("model.pt", lambda good: b"\x80\x02" + bytes(64)),
        ("model.safetensors", lambda good: PNG),
        ("model.safetensors", lambda good: good["safetensors"][:-100]),
        ("model.safetensors", lambda good: good["safetensors"][:5]),
        ("model.safetensors", lambda good: good["pth"]),
        ("model.safetensors", lambda good: b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!!!!"),
        ("model.pth", lambda good: b""),
    ],
)
def test_garbage_truncated_and_renamed_files_are_not_valid(tmp_path, name, make):
    source = save_checkpoint(tmp_path / "good", small_model(), {})
    good = {kind: path.read_bytes() for kind, path in source.items()}
    (tmp_path / name).write_bytes(make(good))
    with pytest.raises(CheckpointError, match="not a valid checkpoint"):
        load_checkpoint(tmp_path / name)


def test_unknown_suffix_is_refused(tmp_path):
    (tmp_path / "model.png").write_bytes(PNG)
    with pytest.raises(CheckpointError, match=r"\.pth, \.pt, \.safetensors"):
        load_checkpoint(tmp_path / "model.png")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pth' does not exist"):
        load_checkpoint(tmp_path / "nothere.pth")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    paths = save_checkpoint(tmp_path, small_model(), {})
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", 1000)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("file was read"))
    with pytest.raises(CheckpointError, match="at most"):
        load_checkpoint(paths["pth"])


def test_bad_json_in_header_or_run_json(tmp_path):
    state = build_model(SMALL).state_dict()
    safetensors.torch.save_file(state, tmp_path / "m.safetensors", metadata={"soartlab": "{"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "m.safetensors")
    torch.save(state, tmp_path / "model.pth")
    (tmp_path / "run.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(CheckpointError, match="run.json' is not valid UTF-8 JSON"):
        load_checkpoint(tmp_path / "model.pth")


# --- BAD_INPUTS 4: wrong architecture or input size --------------------------------------


@pytest.fixture
def never_builds(monkeypatch):
    """Any model construction fails the test: checks must come first."""
    monkeypatch.setattr(checkpoint, "build_model", lambda config: pytest.fail("model built"))


def test_wrong_input_size_lists_the_mismatched_shapes(tmp_path, never_builds):
    paths = save_checkpoint(tmp_path, small_model(), {})
    with pytest.raises(
        CheckpointError, match=r"linear1\.weight is \(16, 40\) in the file, expected \(16, 1404\)"
    ):
        load_checkpoint(
            paths["pth"], metadata={"model": {**SMALL.to_dict(), "input_shape": [36, 39]}}
        )


def test_wrong_widths_list_every_mismatch(tmp_path, never_builds):
    paths = save_checkpoint(tmp_path, small_model(), {})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(paths["safetensors"], metadata={"model": ModelConfig((8, 5)).to_dict()})
    message = str(info.value)
    for name in ("linear1.weight", "linear2.bias", "final.weight"):
        assert name in message
    assert "hidden [512, 256, 256]" in message


def test_missing_and_unexpected_keys_are_listed(tmp_path, never_builds):
    state = build_model(SMALL).state_dict()
    del state["embedding_net.final.bias"]
    state["embedding_net.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(
        CheckpointError,
        match=r"missing keys embedding_net\.final\.bias; unexpected keys embedding_net\.extra\.weight",
    ):
        load_checkpoint(tmp_path / "model.pth", metadata={"model": SMALL.to_dict()})


def test_other_architecture_without_metadata(tmp_path, never_builds):
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match=r"architecture.*missing keys embedding_net\.linear1"):
        load_checkpoint(tmp_path / "model.pth")


def test_chained_layers_must_agree_when_inferred(tmp_path, never_builds):
    state = build_model(SMALL).state_dict()
    state["embedding_net.linear2.weight"] = torch.zeros(12, 99)
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match=r"linear2\.weight is \(12, 99\)"):
        load_checkpoint(tmp_path / "model.pth")


# --- BAD_INPUTS 5: absurd config, non-finite weights -------------------------------------


@pytest.mark.parametrize(
    ("model_meta", "match"),
    [
        ({"input_shape": [10**9], "hidden": [512, 256, 256], "embedding_dim": 128}, "input_shape"),
        ({"input_shape": [36, 39], "hidden": [10**7, 256, 256], "embedding_dim": 128}, "hidden"),
        (
            {"input_shape": [36, 39], "hidden": [512, 256, 256], "embedding_dim": -1},
            "embedding_dim",
        ),
        ({"input_shape": [36, 39], "hidden": [512, 256], "embedding_dim": 128}, "three"),
        (
            {"input_shape": [36, 39], "hidden": [512, 256, 256], "embedding_dim": "x"},
            "embedding_dim",
        ),
        ("big", "mapping"),
    ],
)
def test_absurd_config_is_refused_before_building(tmp_path, never_builds, model_meta, match):
    state = build_model(SMALL).state_dict()
    safetensors.torch.save_file(
        state, tmp_path / "m.safetensors", metadata={"soartlab": json.dumps({"model": model_meta})}
    )
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "m.safetensors")
    torch.save(state, tmp_path / "model.pth")
    atomic_write_json(tmp_path / "run.json", {"model": model_meta})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "model.pth")


def test_absurd_sizes_inferred_from_weights_are_refused(tmp_path, never_builds):
    state = build_model(SMALL).state_dict()
    state["embedding_net.final.weight"] = torch.zeros(0, 12)
    state["embedding_net.final.bias"] = torch.zeros(0)
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="embedding_dim"):
        load_checkpoint(tmp_path / "model.pth")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_non_finite_weights_are_refused(tmp_path, never_builds, bad, kind):
    model = build_model(SMALL)
    with torch.no_grad():
        model.embedding_net.linear3.weight[2, 3] = bad
    paths = save_checkpoint(tmp_path, model, {})
    with pytest.raises(
        CheckpointError, match=r"NaN or infinite weights in embedding_net\.linear3\.weight"
    ):
        load_checkpoint(paths[kind], metadata={"model": SMALL.to_dict()})


def test_integer_tensors_are_refused(tmp_path, never_builds):
    state = {k: v.to(torch.int32) for k, v in build_model(SMALL).state_dict().items()}
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="non-float tensors"):
        load_checkpoint(tmp_path / "model.pth")
    safetensors.torch.save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="non-float tensors"):
        load_checkpoint(tmp_path / "model.safetensors")


# --- atomic writes -----------------------------------------------------------------------


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    atomic_write_json(tmp_path / "x.json", {"label": "検査", "n": [1, 2]})
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == {
        "label": "検査",
        "n": [1, 2],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "x.json"]


def test_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    target.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_crash_while_saving_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    old = small_model(seed=0)
    paths = save_checkpoint(tmp_path, old, METADATA)
    before = {kind: p.read_bytes() for kind, p in paths.items()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, small_model(seed=1), METADATA)
    monkeypatch.undo()
    assert {kind: p.read_bytes() for kind, p in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "model.safetensors"]
    loaded, _ = load_checkpoint(paths["safetensors"])
    x = torch.rand(2, 40)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), old.get_embedding(x))


def test_save_sets_the_model_config_in_metadata(tmp_path):
    paths = save_checkpoint(tmp_path, small_model(), {"model": {"bogus": 1}})
    _, meta = load_checkpoint(paths["safetensors"])
    assert meta["model"] == SMALL.to_dict()
