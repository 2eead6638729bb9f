"""The GAN family: D and G updated in turn, https://arxiv.org/abs/1406.2661."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...family import FAMILIES, Batch, FamilyBase, StepOutput
from ...layers import ExampleNoise, check_class_labels, randn
from .config import PRESETS, GANConfig
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .losses import discriminator_loss, generator_loss, gradient_penalty
from .mlp import MLPDiscriminator, MLPGenerator

__all__ = ["GAN", "GANFamily"]

_NETWORKS = {"mlp-gan": (MLPGenerator, MLPDiscriminator), "dcgan": (DCGANGenerator, DCGANDiscriminator)}


class GAN(nn.Module):
    """A generator and a discriminator under one module, so one state dict holds both."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        generator_class, discriminator_class = _NETWORKS[config.name]
        self.generator = generator_class(config)
        self.discriminator = discriminator_class(config)


def _judged(discriminator: nn.Module, images: Tensor, labels: Tensor | None,
            config: GANConfig) -> tuple[Tensor, Tensor | float]:
    """D's logits for images and, with the auxiliary classifier, the cross-entropy of its class logits against
    labels (0 without it)."""
    if config.classifier_weight == 0:
        return discriminator(images, labels), 0.0
    logits, classes = discriminator(images, labels, with_classes=True)
    return logits, F.cross_entropy(classes.float(), labels)


class GANFamily(FamilyBase):
    """Generative adversarial networks: MLP and DCGAN, unconditional or class-conditional."""

    name = "gan"
    config_class = GANConfig
    presets = PRESETS
    models = {
        "mlp-gan": "MLP GAN of the worked example (noise 100 -> 128 -> 256 -> 512 -> image)",
        "dcgan": "DCGAN: transposed-conv generator with batch norm, strided-conv discriminator",
    }

    def build(self, config: GANConfig) -> GAN:
        """Both networks, DCGAN-style N(0, 0.02) initialisation for the convolutional one."""
        model = GAN(config)
        if model.generator.label_embed is not None:
            # A unit-variance label embedding drowns the noise: G then learns one image per class and
            # ignores z (measured on digits: within-class pixel std 0.04 vs 0.22 with this scale).
            nn.init.normal_(model.generator.label_embed.weight, 0.0, 0.1)
        if config.name == "dcgan":
            for module in model.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(module.weight, 0.0, 0.02)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.normal_(module.weight, 1.0, 0.02)
                    nn.init.zeros_(module.bias)
        return model

    def optimizers(self, model: GAN, config: GANConfig) -> dict[str, torch.optim.Optimizer]:
        """Adam for each network with its own learning rate; D first, the order training_step uses."""
        betas = (config.betas[0], config.betas[1])
        return {
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=config.lr_d, betas=betas),
            "generator": torch.optim.Adam(model.generator.parameters(), lr=config.lr_g, betas=betas),
        }

    def networks(self, model: GAN) -> dict[str, nn.Module]:
        """Each network is trained by the optimizer of its name."""
        return {"discriminator": model.discriminator, "generator": model.generator}

    def training_step(self, model: GAN, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """d_steps discriminator updates, then one generator update, on one batch of real images; with
        classifier_weight, D's auxiliary classifier learns the real images' classes (only theirs: a classifier
        also fitted to G's images would learn G's mistakes) and G is pushed towards what it names the asked class."""
        config = model.config
        real = batch["images"]
        labels = batch["labels"] if config.conditional else None
        noise = ExampleNoise(batch["seeds"], real.device)
        D = nets["discriminator"]  # trained in the D updates: through its wrapper

        for _ in range(config.d_steps):
            z = noise.randn(config.z_dim)
            with torch.no_grad():
                fake = model.generator(z, labels)  # D's loss must not reach G
            real_logits, class_loss = _judged(D, real, labels, config)
            fake_logits = D(fake, labels)
            d_loss = discriminator_loss(config.loss, real_logits, fake_logits) + config.classifier_weight * class_loss
            logs: dict[str, Tensor | float] = {"d_real": real_logits.detach().mean(),
                                               "d_fake": fake_logits.detach().mean()}
            if config.classifier_weight > 0:
                logs["d_class_loss"] = class_loss.detach()
            if config.loss == "wgan-gp":
                penalty = gradient_penalty(lambda x: D(x, labels), real, fake.to(real.dtype), noise.rand())
                d_loss = d_loss + config.gp_weight * penalty
                logs["gradient_penalty"] = penalty.detach()
            logs["d_loss"] = d_loss.detach()
            yield StepOutput("discriminator", d_loss, logs)

        # G's update: G through its wrapper; D only passes gradients to G's images, its weights stay as they are
        fake_logits, class_loss = _judged(model.discriminator, nets["generator"](noise.randn(config.z_dim), labels),
                                          labels, config)
        g_loss = generator_loss(config.loss, fake_logits) + config.classifier_weight * class_loss
        g_logs = {"g_loss": g_loss.detach()}
        if config.classifier_weight > 0:
            g_logs["g_class_loss"] = class_loss.detach()
        yield StepOutput("generator", g_loss, g_logs)

    @torch.no_grad()
    def sample(self, model: GAN, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """n images from the generator in eval mode; labels default to 0, 1, 2, ... for a conditional model."""
        config = model.config
        check_class_labels(labels, conditional=config.conditional, num_classes=config.num_classes)
        device = next(model.parameters()).device
        z = randn((n, config.z_dim), generator, device)
        if config.conditional and labels is None:
            labels = torch.arange(n) % config.num_classes
        if labels is not None:
            labels = labels.to(device)
        was_training = model.generator.training
        model.generator.eval()
        try:
            return model.generator(z, labels).float().clamp(-1, 1)
        finally:
            model.generator.train(was_training)


FAMILIES.register("gan")(GANFamily())
