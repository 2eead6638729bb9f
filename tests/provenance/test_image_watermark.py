import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from skimage import data as photos
from sklearn.datasets import load_digits

from aigckit.errors import AigcError
from aigckit.provenance import capacity, detect, detection_threshold, embed
from aigckit.provenance.image_watermark import psnr

KEY = b"test-key"


def photo(size: int, mode: str = "RGB") -> Image.Image:
    image = Image.fromarray(photos.astronaut()).resize((size, size), Image.LANCZOS)
    return image.convert(mode)


def digits(n: int, size: int) -> list[Image.Image]:
    """scikit-learn's bundled 8x8 digits, scaled to `size` px: generated-looking small images."""
    images = load_digits().images[:n]
    return [Image.fromarray((d * 255 / 16).round().astype(np.uint8)).resize((size, size), Image.BICUBIC)
            for d in images]


def bits(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(0, 2, n).tolist()


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("size", [16, 32, 64, 256])
def test_round_trip_is_invisible_and_detected(size, mode):
    image = photo(size, mode)
    payload = bits(min(48, capacity(size, size)))
    marked = embed(image, KEY, payload)
    assert marked.size == image.size and marked.mode == mode
    assert psnr(image, marked) >= 38
    found = detect(marked, KEY, len(payload))
    assert found.bits == payload
    assert found.detected and found.p_value <= detection_threshold(size, size)
    assert found.bit_accuracy == 1.0


def test_flat_image_is_decoded():
    image = Image.new("L", (64, 64), 128)
    payload = bits(48, seed=1)
    marked = embed(image, KEY, payload)
    assert psnr(image, marked) >= 38
    found = detect(marked, KEY, 48)
    assert found.bits == payload and found.detected and found.p_value <= 1e-6


def test_survives_jpeg_75_at_32_px():
    accuracies = []
    for i, image in enumerate(digits(10, 32)):
        payload = bits(32, seed=i)
        found = detect(jpeg(embed(image, KEY, payload), 75), KEY, 32)
        accuracies.append(np.mean(np.array(found.bits) == payload))
    assert np.mean(accuracies) >= 0.95


def test_survives_halving_and_jpeg_50_at_256_px():
    image, payload = photo(256), bits(48, seed=2)
    marked = embed(image, KEY, payload)
    halved = marked.resize((128, 128), Image.BICUBIC).resize((256, 256), Image.BICUBIC)
    for attacked in (halved, marked.resize((192, 192), Image.BICUBIC), jpeg(marked, 50)):
        found = detect(attacked, KEY, 48)
        assert found.detected
        assert np.mean(np.array(found.bits) == payload) >= 0.95


def centre_crop(image: Image.Image, keep_area: float) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * keep_area ** 0.5), round(h * keep_area ** 0.5)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def test_survives_small_crops_at_64_px():
    # guards the crop search and the unmarked border of the 64 grid
    for i, image in enumerate(digits(3, 64)):
        payload = bits(48, seed=10 + i)
        marked = embed(image, KEY, payload)
        for cropped in (centre_crop(marked, 0.9), marked.crop((3, 0, 64, 64)), marked.crop((1, 2, 62, 63))):
            found = detect(cropped, KEY, 48)
            assert found.detected and found.bits == payload


def fashion_mnist(n: int, size: int) -> list[Image.Image]:
    """The first n Fashion-MNIST test images at `size` px, from the shared data folder."""
    from aigckit.config import DataConfig
    from aigckit.data import load_dataset

    root = Path(__file__).parents[3] / "shared" / "data" / "fashion-mnist"
    data = load_dataset(DataConfig(name="fashion-mnist", root=str(root), image_size=size), "test")
    return [Image.fromarray(pixels[0]) for pixels in data.pixels[:n].numpy()]


@pytest.mark.parametrize("change", [lambda im: im.resize((32, 32), Image.BICUBIC).resize((64, 64), Image.BICUBIC),
                                    lambda im: im.resize((48, 48), Image.BICUBIC)], ids=["halved and back", "x0.75"])
def test_survives_resampling_at_64_px(change):
    # guards the low-pass search: without it 2 to 4 of these 16 images are missed after each change (measured)
    accuracy = []
    for i, image in enumerate(fashion_mnist(16, 64)):
        payload = bits(48, seed=i)
        found = detect(change(embed(image, KEY, payload)), KEY, 48)
        assert found.detected, i
        accuracy.append(np.mean(np.array(found.bits) == payload))
    assert np.mean(accuracy) >= 0.9


def darkened(image: Image.Image) -> Image.Image:
    """An additive brightness change of -10 % of the range, clipped at 0."""
    return Image.fromarray(np.clip(np.asarray(image, np.float64) - 25.5, 0, 255).round().astype(np.uint8))


def test_a_darkening_that_clips_a_dark_image_is_often_survived_at_64_px():
    # guards the darkening search: 8 of these 16 are detected with it, 2 without (measured); the benchmark's 200
    # images: 56 % against 17.5 %. The clipped dark edges lose the host too, so it is not every image
    found = [detect(darkened(embed(image, KEY, bits(48, seed=i))), KEY, 48).detected
             for i, image in enumerate(fashion_mnist(16, 64))]
    assert sum(found) >= 7, found


def test_the_darkening_search_keeps_the_null_on_unmarked_darkened_images():
    p_values = np.array([detect(darkened(image), f"key-{i}".encode(), 48).p_value
                         for i, image in enumerate(fashion_mnist(60, 64))])
    assert (p_values <= 1e-4).sum() == 0
    assert np.mean(p_values <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(p_values))


@pytest.mark.parametrize("change", [lambda im: ImageEnhance.Brightness(im).enhance(1.1),
                                    lambda im: ImageEnhance.Brightness(im).enhance(0.9),
                                    lambda im: ImageEnhance.Contrast(im).enhance(1.1),
                                    lambda im: ImageEnhance.Contrast(im).enhance(0.9)],
                         ids=["gain1.1", "gain0.9", "contrast1.1", "contrast0.9"])
def test_survives_gain_and_contrast(change):
    # guards the gain search: a 10 % gain moves the photo's projections by several quantizer steps
    image, payload = photo(256), bits(48, seed=5)
    marked = embed(image, KEY, payload)
    found = detect(change(marked), KEY, 48)
    assert found.detected
    assert np.mean(np.array(found.bits) == payload) >= 0.95


@pytest.mark.parametrize("size", [256, 512])
def test_photo_survives_crops_keeping_a_tenth_to_nine_tenths(size):
    # guards the tile layer: the main layer decodes nothing after these crops (every projection moved by the
    # half of the photo that is gone), the tiles found at their offset do
    image, payload = photo(size), bits(48, seed=3)
    marked = embed(image, KEY, payload)
    crops = (centre_crop(marked, 0.5), centre_crop(marked, 0.9), centre_crop(marked, 0.1),
             marked.crop((13, 7, 13 + size // 2, 7 + size)))
    for cropped in crops:
        found = detect(cropped, KEY, 48)
        assert found.detected and found.p_value <= 1e-6
        assert np.mean(np.array(found.bits) == payload) >= 0.9


def test_tile_layer_is_what_survives_the_half_crop():
    # without the tiles (an image marked by the main layer only) the same crop is not detected
    from aigckit.provenance import image_watermark_tiles as tiles

    image, payload = photo(256), bits(48, seed=3)
    marked = embed(image, KEY, payload)
    pattern = tiles.pattern(tiles.tiling(KEY), np.array(payload), 256, 256)
    without = Image.fromarray(np.clip(np.asarray(marked, np.float64) - pattern[..., None], 0, 255).round()
                              .astype(np.uint8))
    assert detect(without, KEY, 48).detected  # the main layer alone, uncropped
    assert not detect(centre_crop(without, 0.5), KEY, 48).detected


def test_false_positive_rate_on_unmarked_photo_crops():
    # photos of 128 px and more are also searched for the tile layer; its p-value must stay exact
    rng = np.random.default_rng(0)
    p_values, picture = [], np.asarray(photo(512))
    for i in range(60):
        side = int(rng.integers(128, 200))
        top, left = rng.integers(0, 512 - side, 2)
        crop = Image.fromarray(picture[top:top + side, left:left + side])
        p_values.append(detect(crop, f"key-{i}".encode(), 48).p_value)
    p_values = np.array(p_values)
    assert (p_values <= 1e-4).sum() == 0
    assert np.mean(p_values <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(p_values))


def test_false_positive_rate_on_unmarked_images():
    images = digits(120, 32)
    p_values = np.array([detect(image, f"key-{i % 7}".encode(), 32).p_value for i, image in enumerate(images)])
    assert (p_values <= detection_threshold(32, 32)).sum() == 0
    # the null is exact (binomial) up to the Bonferroni factor: small p-values are no more common than nominal
    assert np.mean(p_values <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(images))


def test_wrong_key_is_not_detected():
    image, payload = photo(64), bits(48, seed=4)
    marked = embed(image, KEY, payload)
    assert detect(marked, KEY, 48).detected
    assert not detect(marked, b"another key", 48).detected


def test_capacity_per_size():
    assert capacity(8, 8) == 4
    assert capacity(16, 31) == 8
    assert capacity(32, 32) == 32
    assert capacity(64, 64) == capacity(512, 300) == 64
    with pytest.raises(AigcError, match="at least 8 px"):
        capacity(7, 100)


def test_user_errors_are_one_line():
    image = photo(32)
    for call in (lambda: embed(image, KEY, bits(33)),
                 lambda: embed(Image.new("L", (7, 7)), KEY, [1]),
                 lambda: embed(image, KEY, [0, 2]),
                 lambda: embed(image.convert("RGBA"), KEY, [1]),
                 lambda: detect(Image.new("L", (6, 40)), KEY)):
        with pytest.raises(AigcError) as error:
            call()
        assert "\n" not in str(error.value)
