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
