import pytest
import torch

from soartlab.errors import SoartLabError
from soartlab.losses import ContrastiveLoss
from soartlab.transform import GammaTransform


class Euclidean:
    """A stand-in distance: the loss must work with any object that has `pairwise`."""

    def pairwise(self, a, b):
        return torch.sqrt(((a - b) ** 2).sum(dim=1) + 1e-12)


class Fixed:
    def __init__(self, values):
        self.values = torch.tensor(values)

    def pairwise(self, a, b):
        return self.values


def test_matches_the_formula():
    d = [0.2, 0.5, 1.5, 0.3]
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = ContrastiveLoss(Fixed(d), margin=1.0)(None, None, target)
    expected = (0.2**2 + (1 - 0.5) ** 2 + 0.0 + 0.3**2) / 4
    assert loss.item() == pytest.approx(expected)


def test_transform_applies_to_the_distance_before_the_formula():
    d = [0.2, 0.5, 1.5, 0.3]
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    t = GammaTransform(scale=2.0, offset=-0.3, floor=0.05)
    loss = ContrastiveLoss(Fixed(d), margin=1.0, transform=t)(None, None, target)
    td = [max(2.0 * v - 0.3, 0.05) for v in d]  # 0.1, 0.7, 2.7, 0.3
    expected = (td[0] ** 2 + (1 - td[1]) ** 2 + 0.0 + td[3] ** 2) / 4
    assert loss.item() == pytest.approx(expected)
    assert loss.item() != pytest.approx(ContrastiveLoss(Fixed(d))(None, None, target).item())


def test_no_transform_is_the_plain_contrastive_loss():
    d = [0.2, 0.5, 1.5, 0.3]
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    plain = ContrastiveLoss(Fixed(d), margin=1.0, transform=None)(None, None, target)
    assert plain.item() == pytest.approx((0.2**2 + 0.5**2 + 0.0 + 0.3**2) / 4)


@pytest.mark.parametrize("transform", [{"scale": 1.0}, (0.5, -0.25, 0.0), "article"])
def test_transform_must_be_a_gamma_transform(transform):
    with pytest.raises(SoartLabError, match="transform must be a GammaTransform or None; got"):
        ContrastiveLoss(Euclidean(), transform=transform)


def test_margin_is_used():
    loss = ContrastiveLoss(Fixed([1.5]), margin=2.0)(None, None, torch.tensor([0.0]))
    assert loss.item() == pytest.approx(0.25)


def test_column_target_does_not_broadcast():
    loss = ContrastiveLoss(Fixed([0.2, 0.5]))(None, None, torch.tensor([[1.0], [0.0]]))
    assert loss.item() == pytest.approx((0.04 + 0.25) / 2)


def test_gradients_flow_to_embeddings():
    torch.manual_seed(0)
    e1 = torch.randn(6, 4, requires_grad=True)
    e2 = torch.randn(6, 4, requires_grad=True)
    target = torch.tensor([1, 0, 1, 0, 1, 0])
    loss = ContrastiveLoss(Euclidean(), margin=5.0)(e1, e2, target)
    assert loss.ndim == 0
    loss.backward()
    assert torch.isfinite(e1.grad).all() and e1.grad.abs().sum() > 0


def test_matched_identical_pairs_cost_nothing():
    e = torch.randn(5, 3)
    loss = ContrastiveLoss(Euclidean())(e, e.clone(), torch.ones(5))
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("margin", [0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_margin_is_refused(margin):
    with pytest.raises(SoartLabError, match="margin"):
        ContrastiveLoss(Euclidean(), margin=margin)


def test_distance_without_pairwise_is_refused():
    with pytest.raises(SoartLabError, match="pairwise"):
        ContrastiveLoss("euclidean")


def test_target_count_must_match_pairs():
    with pytest.raises(SoartLabError, match="3 values for 2 pairs"):
        ContrastiveLoss(Fixed([0.1, 0.2]))(None, None, torch.ones(3))


def test_works_with_the_soart3_distance():
    distances = pytest.importorskip("soartlab.distances")
    torch.manual_seed(0)
    e1 = torch.randn(8, 16, requires_grad=True)
    e2 = torch.randn(8, 16)
    target = torch.tensor([1.0, 0.0] * 4)
    loss = ContrastiveLoss(distances.get_distance("soart3"), transform=GammaTransform())(
        e1, e2, target
    )
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(e1.grad).all()
