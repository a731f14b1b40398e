import math

import numpy as np
import pytest
import torch

from soartlab.errors import SoartLabError
from soartlab.transform import ARTICLE_TRANSFORM, GammaTransform


def test_article_values_are_the_defaults_on_floats():
    t = GammaTransform()
    assert (t.scale, t.offset, t.floor) == (0.5, -0.25, 0.0)
    assert t == ARTICLE_TRANSFORM
    assert t(1.5) == pytest.approx(0.5)
    assert t(0.2) == 0.0  # below the floor
    assert isinstance(t(1), float)


def test_numpy_keeps_shape_and_dtype():
    t = GammaTransform(scale=2.0, offset=-1.0, floor=0.1)
    g = np.array([[0.0, 0.5], [1.0, 3.0]], dtype=np.float32)
    out = t(g)
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_allclose(out, [[0.1, 0.1], [1.0, 5.0]])
    assert t(np.array([1, 2])).dtype == np.float64


def test_torch_differentiable_with_clamp():
    t = GammaTransform(scale=3.0, offset=-1.0)
    g = torch.tensor([0.1, 1.0], requires_grad=True)
    out = t(g)
    torch.testing.assert_close(out, torch.tensor([0.0, 2.0]))
    out.sum().backward()
    torch.testing.assert_close(g.grad, torch.tensor([0.0, 3.0]))


def test_dict_round_trip_and_validation():
    t = GammaTransform(scale=1.25, offset=-0.5, floor=0.05)
    assert t.to_dict() == {"scale": 1.25, "offset": -0.5, "floor": 0.05}
    assert GammaTransform.from_dict(t.to_dict()) == t
    assert GammaTransform.from_dict({"scale": 2}) == GammaTransform(scale=2.0)
    with pytest.raises(SoartLabError, match="offset must be a finite number"):
        GammaTransform.from_dict({"offset": math.inf})
    with pytest.raises(SoartLabError, match="scale must be a finite number.*'big'"):
        GammaTransform.from_dict({"scale": "big"})
    with pytest.raises(SoartLabError, match="floor"):
        GammaTransform(floor=float("nan"))
    with pytest.raises(SoartLabError, match="unknown gamma transform field.*slope"):
        GammaTransform.from_dict({"slope": 1.0})
    with pytest.raises(SoartLabError, match="mapping"):
        GammaTransform.from_dict([0.5, -0.25, 0.0])


def test_frozen():
    with pytest.raises(AttributeError):
        GammaTransform().scale = 2.0
