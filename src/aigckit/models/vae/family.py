"""The VAE family, https://arxiv.org/abs/1312.6114: maximise the ELBO E_q[log p(x|z)] - KL(q(z|x) || p(z))."""

from __future__ import annotations

import math
from collections.abc import Iterator

from typing import Any

import torch
from torch import Tensor, nn

from ...family import FAMILIES, Batch, FamilyBase, StepOutput
from ...layers import ExampleNoise, randn
from .config import PRESETS, VAEConfig
from .likelihoods import PIXEL_MODELS, bernoulli_log_prob, discretised_gaussian_log_prob
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

__all__ = ["VAE", "VAEFamily"]

_NETWORKS = {"mlp-vae": (MLPEncoder, MLPDecoder), "conv-vae": (ConvEncoder, ConvDecoder)}


class VAE(nn.Module):
    """Encoder, decoder and the likelihood p(x|z) over pixels mapped from [-1, 1] to [0, 1]."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        encoder_class, decoder_class = _NETWORKS[config.name]
        self.encoder = encoder_class(config)
        self.decoder = decoder_class(config)
        # Gaussian likelihood: one learned noise scale, near the RMS reconstruction error at its optimum
        # (the "sigma-VAE", https://arxiv.org/abs/2006.13202); a fixed scale would silently set beta. The
        # Gaussian is discretised over the 256 pixel levels (likelihoods.py), so its ELBO bounds log P(8-bit x).
        self.log_sigma = nn.Parameter(torch.zeros(())) if config.likelihood == "gaussian" else None

    def forward(self, x: Tensor, labels: Tensor | None, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The training pass: mu and log sigma^2 of q(z|x), and the decoder's output at z = mu + sigma * eps."""
        mu, logvar = self.encode(x, labels)
        z = mu + (0.5 * logvar).exp() * eps.to(mu.dtype)  # the reparameterisation trick
        return mu, logvar, self.decode(z, labels)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W) in [-1, 1] -> mu, log sigma^2 of q(z|x), each (B, latent_dim)."""
        return self.encoder(x, labels)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z: (B, latent_dim) -> the decoder's output: Bernoulli logits or Gaussian means, (B, C, H, W)."""
        return self.decoder(z, labels)

    def log_px_given_z(self, x: Tensor, decoded: Tensor, reduce: bool = True) -> Tensor:
        """log p(x|z) in nats, summed over pixels: (B,); per pixel (B, C, H, W) with reduce=False.

        gaussian: log P of the 8-bit image under the discretised Gaussian; bernoulli: -BCE on grey levels.
        """
        if self.config.likelihood == "bernoulli":
            per_pixel = bernoulli_log_prob(x, decoded)
        else:
            per_pixel = discretised_gaussian_log_prob(x, decoded, self.log_sigma)
        return per_pixel.flatten(1).sum(1) if reduce else per_pixel

    def to_image(self, decoded: Tensor) -> Tensor:
        """The mean of p(x|z) as an image in [-1, 1]."""
        mean = torch.sigmoid(decoded) if self.config.likelihood == "bernoulli" else decoded.clamp(0, 1)
        return mean.float() * 2 - 1


def _kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) = 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2), per example: (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


class VAEFamily(FamilyBase):
    """Variational autoencoders: the worked-example MLP and a convolutional VAE, optionally class-conditional."""

    name = "vae"
    config_class = VAEConfig
    presets = PRESETS
    models = {
        "mlp-vae": "MLP VAE of the worked example (784 -> 128 -> 2-D latent -> 128 -> 784)",
        "conv-vae": "convolutional VAE: two stride-2 convolutions each way",
    }
    capabilities = frozenset({"inpaint", "log_likelihood", "encode"})
    inpaint_method = "latent"  # the name `aigckit inpaint --method` knows this family's inpainting by
    inpaint_options = frozenset({"iterations", "lr"})  # keywords of inpaint()

    def build(self, config: VAEConfig) -> VAE:
        """Encoder and decoder with PyTorch's default initialisation."""
        return VAE(config)

    def optimizers(self, model: VAE, config: VAEConfig) -> dict[str, torch.optim.Optimizer]:
        """One Adam over encoder and decoder."""
        return {"model": torch.optim.Adam(model.parameters(), lr=config.lr)}

    def training_step(self, model: VAE, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """One reparameterised sample per image; loss = -(log p(x|z) - beta * KL), averaged over the batch."""
        x = batch["images"]
        labels = batch["labels"] if model.config.conditional else None
        eps = ExampleNoise(batch["seeds"], x.device).randn(model.config.latent_dim)
        mu, logvar, decoded = nets["model"](x, labels, eps)
        log_px = model.log_px_given_z(x, decoded)
        kl = _kl_to_standard_normal(mu.float(), logvar.float())
        loss = (-log_px + model.config.beta * kl).mean()
        yield StepOutput("model", loss, {"loss": loss.detach(), "elbo": (log_px - kl).mean().detach(),
                                         "reconstruction": -log_px.mean().detach(), "kl": kl.mean().detach()})

    @torch.no_grad()
    def sample(self, model: VAE, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Decode n draws from the prior N(0, I); labels default to 0, 1, 2, ... for a conditional model."""
        device = next(model.parameters()).device
        z = randn((n, model.config.latent_dim), generator, device)
        labels = self._labels(model, n, labels, device)
        return model.to_image(model.decode(z, labels))

    @staticmethod
    def _labels(model: VAE, n: int, labels: Tensor | None, device: torch.device) -> Tensor | None:
        if not model.config.conditional:
            return None
        return (torch.arange(n) % model.config.num_classes if labels is None else labels).to(device)

    @torch.no_grad()
    def reconstruct(self, model: VAE, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decode the posterior mean of each image: (B, C, H, W) in [-1, 1]."""
        labels = self._labels(model, images.shape[0], labels, images.device)
        mu, _ = model.encode(images, labels)
        return model.to_image(model.decode(mu, labels))

    @torch.no_grad()
    def interpolate(self, model: VAE, start: Tensor, end: Tensor, steps: int = 8,
                    labels: Tensor | None = None) -> Tensor:
        """Decode `steps` points on the straight line between the posterior means of two images (C, H, W)."""
        pair = torch.stack([start, end])
        labels = self._labels(model, 2, labels, pair.device)
        mu, _ = model.encode(pair, labels)
        weights = torch.linspace(0, 1, steps, device=mu.device)[:, None]
        z = (1 - weights) * mu[0] + weights * mu[1]
        line_labels = labels[:1].expand(steps) if labels is not None else None
        return model.to_image(model.decode(z, line_labels))

    @torch.no_grad()
    def log_likelihood(self, model: VAE, images: Tensor, labels: Tensor | None = None, *, k: int = 64,
                       generator: torch.Generator | None = None) -> dict[str, Any]:
        """The importance-weighted bound (IWAE, https://arxiv.org/abs/1509.00519) on -log p(x); self-describing.

        log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x); the bound tightens as k grows
        and equals the ELBO's expectation at k = 1.

        Returns "bound" and "pixel_model" (what was computed), "discretisation" ("8-bit" or None), "dims", and
        per image (B,): "nats" (the bound on -log p(x)), "elbo" and "iwae" (bounds on log p(x)), and
        "bits_per_dim" only when p(x|z) is a probability of 8-bit pixels (the discretised Gaussian).
        """
        labels = self._labels(model, images.shape[0], labels, images.device)
        mu, logvar = model.encode(images, labels)
        std = (0.5 * logvar).exp()
        log_weights = []
        for _ in range(k):
            eps = randn(mu.shape, generator, mu.device)
            z = mu + std * eps
            log_px = model.log_px_given_z(images, model.decode(z, labels))
            log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
            log_qz = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
            log_weights.append(log_px + log_pz - log_qz)
        log_w = torch.stack(log_weights)  # (k, B)
        iwae = torch.logsumexp(log_w, dim=0) - math.log(k)
        elbo = log_w.mean(0)  # the Monte Carlo ELBO from the same k samples
        pixel_model, discretisation = PIXEL_MODELS[model.config.likelihood]
        dims = images[0].numel()
        out = {"bound": f"IWAE bound on -log p(x), k={k} samples of q(z|x)", "pixel_model": pixel_model,
               "discretisation": discretisation, "dims": dims, "nats": -iwae, "elbo": elbo, "iwae": iwae}
        if discretisation is not None:
            out["bits_per_dim"] = -iwae / (dims * math.log(2))
        return out

    def inpaint(self, model: VAE, images: Tensor, known: Tensor, *, labels: Tensor | None = None,
                generator: torch.Generator | None = None, iterations: int = 300, lr: float = 0.05) -> Tensor:
        """Repaint where known == 0 by optimising z: max log p(x_known | z) + log p(z), then decode.

        The latent starts at the encoder's mean for the image with its hole filled with grey; `generator`
        is unused (the optimisation is deterministic).
        """
        labels = self._labels(model, images.shape[0], labels, images.device)
        known = known.to(images.dtype)
        with torch.no_grad():
            z = model.encode(images * known, labels)[0]
        z = z.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        for _ in range(iterations):
            decoded = model.decode(z, labels)
            # log p(x|z) over known pixels only: the likelihood factorises per pixel
            per_pixel = model.log_px_given_z(images, decoded, reduce=False)
            loss = -(per_pixel * known).flatten(1).sum(1).sum() + 0.5 * z.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            filled = model.to_image(model.decode(z, labels))
        return known * images + (1 - known) * filled


FAMILIES.register("vae")(VAEFamily())
