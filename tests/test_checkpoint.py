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
from soartlab.checkpoint import checkpoint_bytes, load_checkpoint, save_checkpoint
from soartlab.data import Normalization
from soartlab.errors import CheckpointError
from soartlab.files import atomic_write_bytes, atomic_write_json
from soartlab.models import EmbeddingNet as LabEmbeddingNet
from soartlab.models import ModelConfig, build_model
from soartlab.runs import PTH_FILE, RUN_JSON, SAFETENSORS_FILE

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


def small_model(seed=0, normalization=None):
    torch.manual_seed(seed)
    return build_model(SMALL, normalization).eval()


def small_model_as_in(metadata, seed=0):
    """A small model carrying the normalisation ``metadata`` records, as a trained one does."""
    return small_model(seed, Normalization.from_dict(metadata["normalization"]))


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
    assert paths == {"pth": tmp_path / PTH_FILE, "safetensors": tmp_path / SAFETENSORS_FILE}

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
    assert meta["model"] == {
        "arch": "mlp",
        "input_shape": [1404],
        "hidden": [512, 256, 256],
        "embedding_dim": 128,
    }
    x = torch.rand(3, 36, 39)
    with torch.no_grad():
        assert torch.equal(model.get_embedding(x), article_model.get_embedding(x))


def test_checkpoint_bytes_are_what_save_checkpoint_writes(tmp_path):
    model = small_model_as_in(METADATA)
    paths = save_checkpoint(tmp_path, model, METADATA)
    blobs = checkpoint_bytes(model, METADATA)
    assert set(blobs) == {"pth", "safetensors"}
    assert blobs["safetensors"] == paths["safetensors"].read_bytes()
    # the .pth holds the plain state_dict only: no normalisation buffers, no metadata
    state = torch.load(io.BytesIO(blobs["pth"]), weights_only=True)
    assert sorted(state) == sorted(SiameseNet(EmbeddingNet()).state_dict())
    with pytest.raises(TypeError, match="SiameseNet"):
        checkpoint_bytes(model.embedding_net, METADATA)


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path):
    model = small_model_as_in(METADATA)
    paths = save_checkpoint(tmp_path, model, METADATA)
    loaded, meta = load_checkpoint(paths["safetensors"])
    assert meta == {**METADATA, "model": SMALL.to_dict()}
    assert loaded.config == SMALL
    assert loaded.normalization == model.normalization
    assert not loaded.training
    x = torch.rand(4, 8, 5)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), model.get_embedding(x))
    header = safetensors.safe_open(paths["safetensors"], "pt").metadata()
    assert json.loads(header["soartlab"])["label_names"] == METADATA["label_names"]


def test_pth_takes_metadata_from_run_json(tmp_path):
    model = small_model_as_in(METADATA)
    paths = save_checkpoint(tmp_path, model, METADATA)
    atomic_write_json(tmp_path / RUN_JSON, {**METADATA, "model": SMALL.to_dict()})
    loaded, meta = load_checkpoint(paths["pth"])
    assert loaded.config == SMALL
    assert meta["label_names"] == METADATA["label_names"]
    x = torch.rand(3, 8, 5)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), model.get_embedding(x))


def test_pth_takes_metadata_given_over_run_json(tmp_path):
    paths = save_checkpoint(tmp_path, small_model(), {})
    atomic_write_json(tmp_path / RUN_JSON, {"model": {"embedding_dim": 0}})
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


# --- the input normalisation travels in the metadata, not in the state_dict ---------------


@pytest.mark.parametrize("kind", ["safetensors", "pth"])
def test_loaded_model_embeds_raw_inputs_as_the_article_embeds_normalised_ones(tiny_run, kind):
    """The seed-compat story: the article normalised its images before the network; a
    SOART Lab model does it inside, from the normalisation in its record. The same .pth in
    the article's classes, fed pre-normalised images, gives the same embeddings."""
    run = tiny_run.run
    normalization = tiny_run.record.normalization
    # .safetensors: the record from its header; .pth: from the run.json beside it
    path = {"safetensors": run.weights_path, "pth": run.pth_path}[kind]
    assert path.suffix == f".{kind}"
    model, meta = load_checkpoint(path)
    assert model.normalization == normalization
    assert normalization != Normalization(mean=0.0, std=1.0)  # else this proves nothing
    assert Normalization.from_dict(meta["normalization"]) == normalization

    article_model = SiameseNet(EmbeddingNet())
    article_model.load_state_dict(torch.load(run.pth_path))  # exactly as the article does
    article_model.eval()

    raw = torch.from_numpy(tiny_run.data.x_test[:32]).reshape(-1, 36, 39)
    with torch.no_grad():
        ours = model.get_embedding(raw)
        theirs = article_model.get_embedding(normalization.apply(raw))
        assert torch.equal(ours, theirs)
        # and the normalisation matters: raw images in the article's model differ
        assert not torch.allclose(article_model.get_embedding(raw), ours)


def test_per_feature_normalisation_is_applied_per_feature(tmp_path):
    mean = [i / 8 for i in range(40)]  # exact in float32, the buffers' dtype
    std = [0.5 + i / 16 for i in range(40)]
    model = small_model()
    model.normalization = Normalization(mean=mean, std=std)
    # the checkpoint records the model's own normalisation, whatever the metadata says
    paths = save_checkpoint(tmp_path, model, {"normalization": {"mean": 0.0, "std": 1.0}})
    plain = small_model()  # identity normalisation: the article's way, inputs pre-normalised
    plain.load_state_dict(model.state_dict())
    loaded, _ = load_checkpoint(paths["safetensors"])
    assert loaded.normalization == Normalization(mean=mean, std=std)
    x = torch.rand(5, 40) * 4
    normalised = (x - torch.tensor(mean)) / torch.tensor(std)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), plain.get_embedding(normalised))


def test_normalisation_stays_out_of_the_state_dict(tmp_path):
    model = small_model_as_in(METADATA)
    paths = save_checkpoint(tmp_path, model, METADATA)
    state = torch.load(paths["pth"], weights_only=True)
    assert not any("input_" in name for name in state)
    assert sorted(state) == sorted(build_model(SMALL).state_dict())


# --- BAD_INPUTS 1: pickles that run code -------------------------------------------------


@pytest.mark.parametrize("force_unsafe", [False, True])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, monkeypatch, force_unsafe):
    if force_unsafe:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    state = build_model(SMALL).state_dict()
    state["embedding_net.final.bias"] = RunsCode(marker)
    (tmp_path / PTH_FILE).write_bytes(torch_bytes(state))
    with pytest.raises(CheckpointError, match="refused without running them"):
        load_checkpoint(tmp_path / PTH_FILE)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_raw_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / PTH_FILE).write_bytes(pickle.dumps(RunsCode(marker), protocol=protocol))
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / PTH_FILE)
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
    (tmp_path / PTH_FILE).write_bytes(torch_bytes(payload()))
    with pytest.raises(CheckpointError, match="[Ee]xport the state_dict"):
        load_checkpoint(tmp_path / PTH_FILE)


# --- BAD_INPUTS 3: garbage, truncated, renamed -------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("name", "make"),
    [
        (PTH_FILE, lambda good: PNG),
        (PTH_FILE, lambda good: b"hello, this is not a model\n"),
        (PTH_FILE, lambda good: good["pth"][: len(good["pth"]) // 2]),
        (PTH_FILE, lambda good: good["pth"][:200]),
        (PTH_FILE, lambda good: good["safetensors"]),
        ("model.pt", lambda good: b"\x80\x02" + bytes(64)),
        (SAFETENSORS_FILE, lambda good: PNG),
        (SAFETENSORS_FILE, lambda good: good["safetensors"][:-100]),
        (SAFETENSORS_FILE, lambda good: good["safetensors"][:5]),
        (SAFETENSORS_FILE, lambda good: good["pth"]),
        (SAFETENSORS_FILE, lambda good: b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!!!!"),
        (PTH_FILE, lambda good: b""),
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
    with pytest.raises(CheckpointError, match="metadata in m.safetensors' is not valid UTF-8 JSON"):
        load_checkpoint(tmp_path / "m.safetensors")
    torch.save(state, tmp_path / PTH_FILE)
    (tmp_path / RUN_JSON).write_text("[1, 2", encoding="utf-8")
    with pytest.raises(CheckpointError, match=f"{RUN_JSON}' is not valid UTF-8 JSON"):
        load_checkpoint(tmp_path / PTH_FILE)


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
    torch.save(state, tmp_path / PTH_FILE)
    with pytest.raises(
        CheckpointError,
        match=r"missing keys embedding_net\.final\.bias; unexpected keys embedding_net\.extra\.weight",
    ):
        load_checkpoint(tmp_path / PTH_FILE, metadata={"model": SMALL.to_dict()})


def test_other_architecture_without_metadata(tmp_path, never_builds):
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), tmp_path / PTH_FILE)
    with pytest.raises(CheckpointError, match=r"architecture.*missing keys embedding_net\.linear1"):
        load_checkpoint(tmp_path / PTH_FILE)


def test_chained_layers_must_agree_when_inferred(tmp_path, never_builds):
    state = build_model(SMALL).state_dict()
    state["embedding_net.linear2.weight"] = torch.zeros(12, 99)
    torch.save(state, tmp_path / PTH_FILE)
    with pytest.raises(CheckpointError, match=r"linear2\.weight is \(12, 99\)"):
        load_checkpoint(tmp_path / PTH_FILE)


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
    torch.save(state, tmp_path / PTH_FILE)
    atomic_write_json(tmp_path / RUN_JSON, {"model": model_meta})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / PTH_FILE)


@pytest.mark.parametrize("n_features", [1, 39, 41, 1404])
def test_per_feature_normalisation_of_the_wrong_length_is_refused(
    tmp_path, never_builds, n_features
):
    bad = {"mean": [0.0] * n_features, "std": [1.0] * n_features}
    paths = save_checkpoint(tmp_path / "given", small_model(), {})
    message = f"holds {n_features} means and stds; the model has 40 inputs"
    for path in paths.values():
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path, metadata={"model": SMALL.to_dict(), "normalization": bad})
    # the same in the file's own metadata (written by another program: SOART Lab always
    # records the model's own normalisation)
    state = small_model().state_dict()
    header = {"soartlab": json.dumps({"model": SMALL.to_dict(), "normalization": bad})}
    stored = tmp_path / "stored.safetensors"
    stored.write_bytes(safetensors.torch.save(state, metadata=header))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(stored)


@pytest.mark.parametrize(
    "normalization",
    [
        pytest.param({"mean": 0.5, "std": 0.0}, id="std-0"),
        pytest.param({"mean": 0.5, "std": -1.0}, id="std-negative"),
        pytest.param({"mean": float("nan"), "std": 1.0}, id="mean-nan"),
        pytest.param({"mean": [0.0] * 40, "std": 1.0}, id="shapes-differ"),
        pytest.param({"mean": 0.5}, id="std-missing"),
        pytest.param([0.5, 0.25], id="a-list"),
        pytest.param({"mean": "x", "std": 1.0}, id="mean-text"),
        pytest.param({"mean": 0.5, "std": {}}, id="std-object"),
    ],
)
def test_unusable_normalisation_is_refused_before_building(tmp_path, never_builds, normalization):
    paths = save_checkpoint(tmp_path, small_model(), {})
    with pytest.raises(CheckpointError, match="normalisation"):
        load_checkpoint(
            paths["safetensors"],
            metadata={"model": SMALL.to_dict(), "normalization": normalization},
        )


def test_absurd_sizes_inferred_from_weights_are_refused(tmp_path, never_builds):
    state = build_model(SMALL).state_dict()
    state["embedding_net.final.weight"] = torch.zeros(0, 12)
    state["embedding_net.final.bias"] = torch.zeros(0)
    torch.save(state, tmp_path / PTH_FILE)
    with pytest.raises(CheckpointError, match="embedding_dim"):
        load_checkpoint(tmp_path / PTH_FILE)


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
    torch.save(state, tmp_path / PTH_FILE)
    with pytest.raises(CheckpointError, match="non-float tensors"):
        load_checkpoint(tmp_path / PTH_FILE)
    safetensors.torch.save_file(state, tmp_path / SAFETENSORS_FILE)
    with pytest.raises(CheckpointError, match="non-float tensors"):
        load_checkpoint(tmp_path / SAFETENSORS_FILE)


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
    target = tmp_path / RUN_JSON
    target.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [RUN_JSON]


def test_crash_while_saving_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    old = small_model_as_in(METADATA, seed=0)
    paths = save_checkpoint(tmp_path, old, METADATA)
    before = {kind: p.read_bytes() for kind, p in paths.items()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, small_model(seed=1), METADATA)
    monkeypatch.undo()
    assert {kind: p.read_bytes() for kind, p in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([PTH_FILE, SAFETENSORS_FILE])
    loaded, _ = load_checkpoint(paths["safetensors"])
    x = torch.rand(2, 40)
    with torch.no_grad():
        assert torch.equal(loaded.get_embedding(x), old.get_embedding(x))


def test_save_sets_the_model_config_in_metadata(tmp_path):
    paths = save_checkpoint(tmp_path, small_model(), {"model": {"bogus": 1}})
    _, meta = load_checkpoint(paths["safetensors"])
    assert meta["model"] == SMALL.to_dict()
