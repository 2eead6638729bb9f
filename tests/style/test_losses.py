"""The style losses: the Gram matrix and its one-matmul gradient; the symmetric Gram error has no pull towards a
black image."""

import pytest
import torch

from aigckit.style.losses import gram, relative_error, symmetric_error


def test_the_symmetric_error_is_least_at_the_target_and_black_is_not_cheap():
    target = torch.rand(3, 8, 8) + 0.1
    scales = torch.linspace(0, 4, 41)
    symmetric = torch.stack([symmetric_error(k * target, target) for k in scales])
    relative = torch.stack([relative_error(k * target, target) for k in scales])
    assert scales[symmetric.argmin()] == 1.0 and float(symmetric[0]) == 1.0 and float(symmetric.max()) <= 2.0
    # three times the target: the plain relative error prefers zero (black), the symmetric one does not
    assert relative[30] > relative[0] and symmetric[30] < symmetric[0]


def _autograd_gram(features):
    b, c, h, w = features.shape
    flat = features.double().reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_gram_matrix_and_its_gradient_match_autograds(layout):
    features = torch.randn(2, 5, 7, 6, dtype=torch.float64).to(memory_format=layout).requires_grad_(True)
    assert torch.autograd.gradcheck(gram, (features,))
    # bf16 activations, as under autocast: the Gram is exact in fp32, the gradient bf16 (rounded once more)
    features = torch.randn(2, 16, 9, 8).to(torch.bfloat16, memory_format=layout).requires_grad_(True)
    weights = torch.randn(2, 16, 16)
    (gram(features) * weights).sum().backward()
    exact = features.detach().double().requires_grad_(True)
    expected = _autograd_gram(exact)
    (expected * weights.double()).sum().backward()
    assert gram(features).dtype == torch.float32
    torch.testing.assert_close(gram(features).double(), expected, rtol=1e-6, atol=1e-7)
    assert features.grad.dtype == torch.bfloat16
    torch.testing.assert_close(features.grad.double(), exact.grad, rtol=2e-2, atol=2e-4)
