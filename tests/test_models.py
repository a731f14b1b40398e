import json

import numpy as np
import pytest
import torch

from soartlab.data import Normalization
from soartlab.errors import CheckpointError, DataError, SoartLabError
from soartlab.models import ConvEmbeddingNet, EmbeddingNet, ModelConfig, SiameseNet, build_model


def test_default_config_is_the_article():
    config = ModelConfig()
    assert config.input_shape == (36, 39)
    assert config.in_features == 36 * 39
    assert config.hidden == (512, 256, 256)
    assert config.embedding_dim == 128


def test_config_round_trips_through_plain_dict():
    config = ModelConfig(input_shape=(20,), hidden=(64, 32, 16), embedding_dim=8)
    data = config.to_dict()
    assert data == {"arch": "mlp", "input_shape": [20], "hidden": [64, 32, 16], "embedding_dim": 8}
    assert ModelConfig.from_dict(data) == config


def test_a_config_written_before_architectures_is_the_mlp():
    old = {"input_shape": [20], "hidden": [64, 32, 16], "embedding_dim": 8}
    assert ModelConfig.from_dict(old).arch == "mlp"
    assert isinstance(build_model(ModelConfig.from_dict(old)).embedding_net, EmbeddingNet)


def test_cnn_config_round_trips_and_builds_the_conv_net():
    config = ModelConfig(input_shape=(36, 39), arch="cnn", channels=(8, 16), embedding_dim=12)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["channels"] == [8, 16]
    net = build_model(config).embedding_net
    assert isinstance(net, ConvEmbeddingNet)
    assert config.num_parameters() == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("shape", [(8, 8), (36, 39), (256, 256), (3, 20, 17)])
def test_cnn_embeds_any_image_size(shape):
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_shape=shape, arch="cnn")).eval()
    images = torch.rand(3, *shape)
    out = model.get_embedding(images)
    assert out.shape == (3, 128) and torch.isfinite(out).all()
    # flattened rows are the same samples
    torch.testing.assert_close(model.get_embedding(images.reshape(3, -1)), out)
    # each sample's embedding does not depend on the others in the batch (GroupNorm)
    torch.testing.assert_close(model.get_embedding(images[:1]), out[:1], rtol=1e-4, atol=1e-5)


def test_cnn_normalises_its_inputs_inside_the_net():
    torch.manual_seed(0)
    config = ModelConfig(input_shape=(12, 12), arch="cnn", channels=(4, 8))
    model = build_model(config, Normalization(mean=100.0, std=10.0)).eval()
    raw = 100 + 10 * torch.rand(2, 12, 12)
    plain = build_model(config).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model.get_embedding(raw), plain.get_embedding((raw - 100) / 10))
    assert not any("input_" in name for name in model.state_dict())


@pytest.mark.parametrize(("shape", "match"), [((1404,), "needs images"), ((6, 40), "at least 8×8")])
def test_cnn_refuses_feature_vectors_and_tiny_images(shape, match):
    with pytest.raises(CheckpointError, match=match):
        ModelConfig(input_shape=shape, arch="cnn")


def test_unknown_architecture_is_refused_with_the_choices():
    with pytest.raises(CheckpointError, match="mlp, cnn"):
        ModelConfig.from_dict({"arch": "resnet"})


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"embedding_dim": -5}, "embedding_dim"),
        ({"embedding_dim": 2.5}, "embedding_dim"),
        ({"embedding_dim": True}, "embedding_dim"),
        ({"embedding_dim": "128"}, "embedding_dim"),
        ({"hidden": [512, 256]}, "exactly three"),
        ({"hidden": [512, 256, 10**9]}, "hidden"),
        ({"input_shape": [10**8]}, "input_shape"),
        ({"input_shape": [10_000, 10_000]}, "input features"),
        ({"input_shape": []}, "input_shape"),
        ({"input_shape": "36x39"}, "input_shape"),
        ({"input_shape": [5000], "hidden": [100_000, 100_000, 100_000]}, "parameters"),
        ({"layers": 4}, "unknown keys"),
    ],
)
def test_absurd_config_is_refused(data, match):
    with pytest.raises(CheckpointError, match=match):
        ModelConfig.from_dict(data)


def test_config_errors_are_soartlab_errors():
    with pytest.raises(SoartLabError):
        ModelConfig(embedding_dim=0)
    with pytest.raises(CheckpointError, match="mapping"):
        ModelConfig.from_dict([1, 2, 3])


def test_embedding_net_has_the_article_attribute_names_and_shapes():
    net = EmbeddingNet()
    assert (net.linear1.in_features, net.linear1.out_features) == (1404, 512)
    assert (net.linear2.in_features, net.linear2.out_features) == (512, 256)
    assert (net.linear3.in_features, net.linear3.out_features) == (256, 256)
    assert (net.final.in_features, net.final.out_features) == (256, 128)
    assert isinstance(net.relu, torch.nn.ReLU)


def test_forward_flattens_images_and_vectors_alike():
    torch.manual_seed(0)
    net = EmbeddingNet().eval()
    images = torch.randn(4, 36, 39)
    out_images = net(images)
    assert out_images.shape == (4, 128)
    torch.testing.assert_close(net(images.reshape(4, -1)), out_images)
    # A transposed (non-contiguous) batch must work too.
    transposed = images.transpose(1, 2).contiguous().transpose(1, 2)
    assert not transposed.is_contiguous()
    torch.testing.assert_close(net(transposed), out_images)
    assert net.get_embedding(images[0]).shape == (1, 128)


def test_forward_names_sizes_when_input_does_not_fit():
    net = EmbeddingNet()
    with pytest.raises(DataError, match="1404"):
        net(torch.randn(2, 100))


def test_siamese_net_shares_one_embedding_net():
    model = build_model(ModelConfig(input_shape=(10,), hidden=(8, 8, 8), embedding_dim=4))
    assert isinstance(model, SiameseNet)
    x1, x2 = torch.randn(3, 10), torch.randn(3, 10)
    e1, e2 = model(x1, x2)
    assert e1.shape == e2.shape == (3, 4)
    torch.testing.assert_close(model.get_embedding(x1), e1)
    torch.testing.assert_close(model.embedding_net(x2), e2)
    assert model.config.embedding_dim == 4


def test_state_dict_keys_match_the_article():
    assert list(build_model().state_dict()) == [
        f"embedding_net.{layer}.{kind}"
        for layer in ("linear1", "linear2", "linear3", "final")
        for kind in ("weight", "bias")
    ]


def test_numpy_integers_become_plain_ints():
    shape = np.array([36, 39])
    config = ModelConfig(input_shape=tuple(shape), embedding_dim=np.int64(16))
    assert json.loads(json.dumps(config.to_dict()))["input_shape"] == [36, 39]
    assert type(config.embedding_dim) is int
