"""The clip family: it learns to match captioned canvases through the Trainer, its loss is CLIP's symmetric InfoNCE,
its embeddings are unit vectors that reload identically, and it refuses what it cannot do in one line."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aigckit.config import DataConfig, config_from_dict
from aigckit.data import load_dataset
from aigckit.data.captions import decode_captions, encode_captions
from aigckit.errors import AigcError
from aigckit.evaluation.clip_score import (clip_extractor, clip_score, load_clip, retrieval_accuracy,
                                          swap_preference)
from aigckit.family import FAMILIES
from aigckit.models.clip import CLIP, CLIPConfig, contrastive_loss
from aigckit.models.clip.retrieval import retrieval_scores
from aigckit.training import Trainer

from helpers import tiny_config

FAMILY = FAMILIES.get("clip")
MNIST = Path(__file__).parents[3] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="../shared/data/mnist is not here")
CANVASES = {"name": "captioned-mnist", "root": str(MNIST), "image_size": 24, "download": False}


def _tiny_model(image_size=8):
    torch.manual_seed(0)
    return FAMILY.build(CLIPConfig(image_size=image_size, channels=1, **FAMILY.presets["tiny"]))


def _captions(n):
    texts = [f"a small {i % 10} at the top left" + (" and a large 3 on the right" if i % 3 else "") for i in range(n)]
    return torch.from_numpy(encode_captions(texts)).long()


@pytest.fixture(scope="module")
def val_pairs():
    """The first 256 validation canvases and their captions."""
    val = load_dataset(DataConfig(**CANVASES), "val")
    return val.batch(torch.arange(256))


@needs_mnist
def test_loss_falls_on_captioned_canvases(clip_run):
    trainer, run_dir = clip_run
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert first > 0.9 * math.log(64)  # near chance over the first 10 steps: log(batch size)
    assert last < 0.4 * first, (first, last)  # 300 steps: about 4.2 -> 0.7
    assert float(rows[-1]["accuracy"]) > 0.5  # in-batch image -> caption top-1: about 0.07 -> 0.7
    steps = trainer.config.train.max_steps
    probe = json.loads((run_dir / "samples" / f"step-{steps:06d}.json").read_text())  # the end's samples file
    assert probe["pairs"] == 256 and probe["clip_score"] > probe["clip_score_shuffled"]


@needs_mnist
def test_matched_pairs_score_higher_and_retrieval_beats_chance(clip_run, val_pairs):
    _, run_dir = clip_run
    model = load_clip(run_dir)
    images, captions = val_pairs["images"], val_pairs["captions"]
    true = clip_score(model, images, captions)
    shuffled = clip_score(model, images, captions.roll(1, 0))
    assert true > shuffled + 10, (true, shuffled)
    scores = retrieval_accuracy(model, images, captions)
    assert scores["image_to_text_top1"] > 10 * scores["chance_top1"], scores
    assert scores["text_to_image_top1"] > 10 * scores["chance_top1"], scores
    assert scores["image_to_text_top5"] >= scores["image_to_text_top1"]
    assert scores["extractor"] == "aigckit-clip-" + scores["checkpoint_sha256"][:12]
    assert retrieval_accuracy(model, images, decode_captions(captions)) == scores  # strings or bytes: the same
    texts = decode_captions(captions)
    swap = swap_preference(model, images, texts)
    two_places = [t for t in texts if " and " in t and len({t.split(" and ")[0].split(" ", 3)[3],
                                                             t.split(" and ")[1].split(" ", 3)[3]}) == 2]
    assert swap["pairs"] == len(two_places) > 20 and 0 <= swap["own_over_swapped"] <= 1
    assert swap["checkpoint_sha256"] == scores["checkpoint_sha256"]
    with pytest.raises(AigcError, match="two-item captions"):
        swap_preference(model, images[:3], ["a large 3 in the centre"] * 3)


@needs_mnist
def test_checkpoint_reloads_to_identical_embeddings(clip_run, val_pairs):
    trainer, run_dir = clip_run
    loaded = load_clip(run_dir)
    images, captions = val_pairs["images"][:32], val_pairs["captions"][:32]
    assert torch.equal(FAMILY.embed_images(trainer.model, images), FAMILY.embed_images(loaded, images))
    assert torch.equal(FAMILY.embed_captions(trainer.model, captions), FAMILY.embed_captions(loaded, captions))
    assert clip_extractor(loaded)["checkpoint"].endswith(f"step-{trainer.config.train.max_steps:06d}")


def test_loss_is_symmetric_infonce():
    model = _tiny_model()
    images, captions = torch.rand(12, 1, 8, 8) * 2 - 1, _captions(12)
    with torch.no_grad():
        model.logit_scale.fill_(2.5)  # not the initial value, so that the scale is seen to be used
        step = next(FAMILY.training_step(model, {"images": images, "captions": captions}, 0, {"model": model}))
        # the reference, written out: normalised projections, scaled cosines, cross-entropy both ways
        image = F.normalize(model.image_projection(model.image_encoder(images)), dim=1)
        text = F.normalize(model.text_projection(model.text_encoder(captions)[2]), dim=1)
        logits = math.exp(2.5) * image @ text.T
        targets = torch.arange(12)
        reference = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    assert abs(float(step.loss) - float(reference)) < 1e-6
    random_logits = torch.randn(7, 7, dtype=torch.float64) * 5
    by_hand = ((random_logits.logsumexp(1) - random_logits.diag()).mean()
               + (random_logits.logsumexp(0) - random_logits.diag()).mean()) / 2
    assert abs(float(contrastive_loss(random_logits)) - float(by_hand)) < 1e-6


def test_hard_negatives_offer_each_two_item_caption_with_its_places_swapped_to_the_images_only():
    import dataclasses

    model = _tiny_model()
    model.config = dataclasses.replace(model.config, hard_negatives=True)
    images, captions = torch.rand(12, 1, 8, 8) * 2 - 1, _captions(12)  # rows 1, 2, 4, 5, ... have two items
    with torch.no_grad():
        step = next(FAMILY.training_step(model, {"images": images, "captions": captions}, 0, {"model": model}))
        texts = decode_captions(captions)
        owners = [i for i, text in enumerate(texts) if " and " in text]
        swapped = [texts[i].replace("at the top left", "@").replace("on the right", "at the top left")
                   .replace("@", "on the right") for i in owners]
        image = F.normalize(model.image_projection(model.image_encoder(images)), dim=1)
        text = F.normalize(model.text_projection(model.text_encoder(torch.cat(
            [captions, torch.from_numpy(encode_captions(swapped)).long()]))[2]), dim=1)
        logits = model.scale() * image @ text.T  # (12, 12 + 8)
        targets = torch.arange(12)
        reference = (F.cross_entropy(logits, targets) + F.cross_entropy(logits[:, :12].T, targets)) / 2
        swap = (logits[owners, owners] > logits[owners, 12 + torch.arange(len(owners))]).float().mean()
    assert len(owners) == 8 and logits.shape == (12, 20)
    assert abs(float(step.loss) - float(reference)) < 1e-6 and float(step.logs["swap_accuracy"]) == float(swap)
    with torch.no_grad():
        plain = next(FAMILY.training_step(_tiny_model(), {"images": images, "captions": captions}, 0,
                                          {"model": _tiny_model()}))
    assert "swap_accuracy" not in plain.logs and float(plain.loss) < float(step.loss)  # fewer captions to pick from


def test_swap_places_exchanges_the_two_items_places():
    from aigckit.data.captions import swap_places

    assert swap_places("a small 7 at the top and a large 6 at the bottom left") == \
        "a small 7 at the bottom left and a large 6 at the top"
    assert swap_places("a large ankle boot in the centre and a small t-shirt at the top left") == \
        "a large ankle boot at the top left and a small t-shirt in the centre"
    assert swap_places("a large 3 in the centre") is None  # one item
    assert swap_places("a small 1 on the left and a large 2 on the left") is None  # one place
    assert swap_places("two cats and a dog") is None  # outside the grammar


def test_logit_scale_starts_at_clips_temperature_and_is_capped_at_100():
    model = _tiny_model()
    assert math.isclose(float(model.scale().detach()), 1 / 0.07, rel_tol=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert float(model.scale().detach()) == 100.0


def test_embeddings_are_unit_vectors_and_the_mode_is_kept():
    model = _tiny_model().train()
    images = FAMILY.embed_images(model, torch.rand(300, 1, 8, 8) * 2 - 1, batch_size=128)  # three batches
    texts = FAMILY.embed_captions(model, ["a large 2 in the centre", "a small 9 at the bottom"])
    assert images.shape == (300, 32) and texts.shape == (2, 32)
    assert torch.allclose(images.norm(dim=1), torch.ones(300), atol=1e-5)
    assert torch.allclose(texts.norm(dim=1), torch.ones(2), atol=1e-5)
    assert model.training  # embedding mid-training (samples file) leaves the model training
    alone = FAMILY.embed_captions(model, ["a large 2 in the centre"])
    assert torch.allclose(alone, texts[:1], atol=1e-5)  # padding and batch do not change a caption's embedding


def test_retrieval_counts_a_shared_caption_once():
    captions = torch.from_numpy(encode_captions(["a", "a", "b", "c"])).long()
    texts = torch.eye(4)[[0, 0, 1, 2]]  # one vector per distinct caption
    images = torch.eye(4)[[0, 1, 1, 2]]
    images[1] = 0.6 * images[0] + 0.8 * images[2]  # image 1 (caption a) looks more like caption b
    scores = retrieval_scores(images, texts, captions, k=(1, 2))
    assert scores["distinct_captions"] == 3 and scores["chance_top1"] == 1 / 3
    assert scores["image_to_text_top1"] == 0.75  # images 0, 2, 3 right; image 1 picks b
    assert scores["image_to_text_top2"] == 1.0
    assert scores["text_to_image_top1"] == 1.0  # a finds image 0, b image 2 (image 1 is less b-like), c image 3


def test_sample_raises_its_one_line():
    with pytest.raises(AigcError, match="clip models embed images and captions; they generate nothing") as error:
        FAMILY.sample(_tiny_model(), 4)
    assert "\n" not in str(error.value)


def test_training_on_uncaptioned_data_raises_one_line(tmp_path):
    trainer = Trainer(tiny_config({"name": "clip"}), tmp_path / "run", show_progress=False)
    with pytest.raises(AigcError, match="captioned-mnist or captioned-fashion-mnist") as error:
        trainer.fit()
    assert "\n" not in str(error.value)


def test_wrong_inputs_raise_one_line():
    model = _tiny_model()
    with pytest.raises(AigcError, match=r"reads \(N, 1, 8, 8\)"):
        FAMILY.embed_images(model, torch.zeros(2, 1, 16, 16))
    with pytest.raises(AigcError, match=r"in \[-1, 1\]"):
        FAMILY.embed_images(model, torch.full((2, 1, 8, 8), 255.0))
    with pytest.raises(AigcError, match="reads at most 96"):
        FAMILY.embed_captions(model, ["x" * 97])
    with pytest.raises(AigcError, match="one caption per image"):
        clip_score(model, torch.zeros(3, 1, 8, 8), ["a", "b"])
    with pytest.raises(AigcError, match="need a clip model"):
        clip_score(torch.nn.Linear(2, 2), torch.zeros(1, 1, 8, 8), ["a"])
    assert isinstance(model, CLIP)


@needs_mnist
def test_a_diffusion_model_reads_captions_through_a_frozen_clip_text_encoder(clip_run, tmp_path):
    import shutil

    from aigckit.checkpoint import from_pretrained, latest_checkpoint

    clip_dir = tmp_path / "clip"
    shutil.copytree(clip_run[1], clip_dir)
    clip = load_clip(clip_dir)
    text = {"text_conditional": True, "text_width": 32, "text_layers": 1, "text_heads": 2, "patch_size": 2,
            "base_channels": 8, "channel_mults": [1, 2], "attention_resolution": 0, "cross_attention_resolution": 12}
    config = config_from_dict({
        "model": {"name": "diffusion", **text, "text_encoder_run": str(clip_dir), "text_adapter_layers": 1,
                  "lr": 1e-2},
        "data": CANVASES,
        "train": {"max_steps": 3, "batch_size": 8, "use_ema": False, "sample_every": 100000,
                  "checkpoint_every": 100000, "precision": "fp32"},
    })
    trainer = Trainer(config, tmp_path / "t2i", show_progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    encoder = {k: v for k, v in after.items() if k.startswith("unet.text.")}
    assert encoder and all(torch.equal(v, clip.text_encoder.state_dict()[k.removeprefix("unet.text.")])
                           for k, v in encoder.items())
    assert any(not torch.equal(before[k], v) for k, v in after.items() if k not in encoder)  # the UNet trained
    adapter = [k for k in after if k.startswith("unet.text_adapter.")]  # and the layers over the frozen encoder
    assert adapter and all(not torch.equal(before[k], after[k]) for k in adapter if k.endswith("weight"))

    shutil.rmtree(clip_dir)  # the checkpoint holds the encoder: the clip run is no longer needed
    reloaded = from_pretrained(latest_checkpoint(tmp_path / "t2i"))
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in encoder.items())

    wrong = config_from_dict({"model": {"name": "diffusion", **text, "text_width": 64,
                                        "text_encoder_run": str(clip_run[1])}, "data": CANVASES})
    with pytest.raises(AigcError, match=r"set model\.text_width=32$"):
        Trainer(wrong, tmp_path / "wrong", show_progress=False)
