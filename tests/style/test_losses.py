"""The style losses: the symmetric Gram error has no pull towards a black image."""

import torch

from aigckit.style.losses import relative_error, symmetric_error


def test_the_symmetric_error_is_least_at_the_target_and_black_is_not_cheap():
    target = torch.rand(3, 8, 8) + 0.1
    scales = torch.linspace(0, 4, 41)
    symmetric = torch.stack([symmetric_error(k * target, target) for k in scales])
    relative = torch.stack([relative_error(k * target, target) for k in scales])
    assert scales[symmetric.argmin()] == 1.0 and float(symmetric[0]) == 1.0 and float(symmetric.max()) <= 2.0
    # three times the target: the plain relative error prefers zero (black), the symmetric one does not
    assert relative[30] > relative[0] and symmetric[30] < symmetric[0]
