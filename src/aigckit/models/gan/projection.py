"""The output head of a (conditional) discriminator."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ProjectionHead", "maybe_spectral_norm"]


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a Linear/Conv layer in spectral normalisation when `enabled`."""
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


class ProjectionHead(nn.Module):
    """logit = w . phi(x) + b  [+ <embed(y), phi(x)>], https://arxiv.org/abs/1802.05637.

    With num_classes == 0 this is the plain linear output of an unconditional discriminator. With `classifier`,
    a second linear map of the same features gives class logits (AC-GAN's auxiliary classifier).
    """

    def __init__(self, features: int, num_classes: int, *, spectral_norm: bool, classifier: bool = False) -> None:
        super().__init__()
        self.linear = maybe_spectral_norm(nn.Linear(features, 1), spectral_norm)
        self.embed = maybe_spectral_norm(nn.Embedding(num_classes, features), spectral_norm) if num_classes else None
        self.classifier = nn.Linear(features, num_classes) if classifier else None

    def forward(self, phi: Tensor, labels: Tensor | None, *,
                with_classes: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """phi: features (B, F); labels: (B,) or None. Returns logits (B,), and with `with_classes` also the
        auxiliary classifier's class logits (B, num_classes)."""
        logits = self.linear(phi).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(labels) * phi).sum(dim=1)  # the projection term
        if not with_classes:
            return logits
        if self.classifier is None:
            raise ValueError("this discriminator has no auxiliary classifier (model.classifier_weight is 0)")
        return logits, self.classifier(phi)
