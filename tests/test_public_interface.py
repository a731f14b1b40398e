"""The names DESIGN.md promises to code outside the project."""

import numpy as np
import pytest
import torch


def test_top_level_names_and_their_behaviour():
    from soartlab import GammaTransform, soart3, soart3_pairwise
    from soartlab.errors import CheckpointError, DataError, SoartLabError

    assert issubclass(SoartLabError, ValueError)
    assert issubclass(DataError, SoartLabError) and issubclass(CheckpointError, SoartLabError)
    beta, yita, gamma = soart3([1.0, 2.0, 3.0], [1.0, 2.0, 2.0])
    assert all(isinstance(v, float) for v in (beta, yita, gamma))
    rows = np.random.default_rng(0).normal(size=(4, 8))
    out = soart3(rows, rows[::-1])
    assert all(isinstance(v, np.ndarray) and v.shape == (4,) for v in out)
    t = torch.tensor(rows, requires_grad=True)
    _, _, g = soart3(t, torch.tensor(rows[::-1].copy()))
    g.sum().backward()
    assert torch.isfinite(t.grad).all()
    matrix = soart3_pairwise(rows, rows[:3])
    assert matrix.shape == (4, 3)
    assert matrix[1, 2] == pytest.approx(soart3(rows[1], rows[2])[2], abs=1e-9)
    transform = GammaTransform()
    assert (transform.scale, transform.offset, transform.floor) == (0.5, -0.25, 0.0)
    assert transform(np.array([0.0, 2.0])).tolist() == [0.0, 0.75]
    assert float(transform(torch.tensor(2.0))) == 0.75


def test_loaders_raise_the_documented_errors(tmp_path):
    from soartlab.checkpoint import load_checkpoint
    from soartlab.data import load_dataset
    from soartlab.errors import CheckpointError, DataError

    (tmp_path / "x.csv").write_text("label,a\n")
    with pytest.raises(DataError):
        load_dataset(tmp_path / "x.csv")
    (tmp_path / "m.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "m.pth")
