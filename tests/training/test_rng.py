"""The random state a run saves, restores, and sets aside for the time-budget probe."""

import random

import numpy as np
import torch

from training.rng import rng_state, seed_everything, set_rng_state


def test_set_rng_state_undoes_every_draw_since_it_was_taken() -> None:
    seed_everything(3)
    state = rng_state()
    first = torch.rand(4), random.random()
    torch.rand(100)  # draws to undo
    set_rng_state(state)
    again = torch.rand(4), random.random()
    assert torch.equal(first[0], again[0]) and first[1] == again[1]


def test_one_seed_fixes_torch_numpy_and_python() -> None:
    seed_everything(7)
    a = torch.rand(2), np.random.rand(2), random.random()
    seed_everything(7)
    b = torch.rand(2), np.random.rand(2), random.random()
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
