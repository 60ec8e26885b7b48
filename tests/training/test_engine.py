import pytest
import torch
from torch import nn

from training.engine import compute_loss, evaluate, train_one_epoch
from training.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_a_few_steps_on_one_batch_lower_the_loss(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for _ in range(6):
        stats = train_one_epoch(model, [(x, y)], optimizer, criterion, torch.device("cpu"), progress=False)
        losses.append(stats.loss)
    assert losses[-1] < losses[0] * 0.8, losses


def test_auxiliary_losses_are_weighted() -> None:
    y = torch.tensor([0, 1])
    main, aux = torch.randn(2, 10), torch.randn(2, 10)
    criterion = nn.CrossEntropyLoss()
    loss, logits = compute_loss((main, aux, aux), y, criterion, aux_weight=0.3)
    expected = criterion(main, y) + 0.6 * criterion(aux, y)
    torch.testing.assert_close(loss, expected)
    assert logits is main


def test_evaluate_counts_a_perfect_classifier() -> None:
    class Oracle(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float() * 10

    x = torch.zeros(20, 3, 32, 32)
    x[:, 0, 0, 0] = torch.arange(20) % 10
    result = evaluate(Oracle(), [(x, torch.arange(20) % 10)], torch.device("cpu"))
    assert result.acc == 1.0 and result.per_class_acc == [1.0] * 10
    assert sum(map(sum, result.confusion)) == 20


def test_tta_levels_share_views_and_average_the_right_ones() -> None:
    from training.engine import evaluate_levels, tta_logits

    class Corner(nn.Module):
        """Logits that depend on the top-left pixel only, so every view gives a different answer."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1, 0, :1].flatten(1).expand(-1, 10) * torch.arange(10.0)

    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    out = tta_logits(Corner(), x, 2)
    m = Corner()
    torch.testing.assert_close(out[0], m(x))
    torch.testing.assert_close(out[1], (m(x) + m(x.flip(3))) / 2)
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :32, :32], padded[..., 2:, 2:]]
    views = sum(m(v) + m(v.flip(3)) for v in shifted) / 4
    torch.testing.assert_close(out[2], 0.5 * out[1] + 0.5 * views)
    y = torch.arange(4) % 10
    levels = evaluate_levels(m, [(x, y)], torch.device("cpu"), levels=(0, 1, 2))
    assert levels[0].acc == evaluate(m, [(x, y)], torch.device("cpu")).acc
    assert levels[1].acc == evaluate(m, [(x, y)], torch.device("cpu"), tta=True).acc
