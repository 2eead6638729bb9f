import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage import data as skdata

from aigckit.evaluation.metrics.style import edge_correlation, style_scores
from aigckit.pipelines.style import stylize_gatys
from aigckit.style.features import RandomMultiScale

CONTENT = Image.fromarray(skdata.astronaut()).resize((48, 48), Image.Resampling.LANCZOS)
STYLE = Image.fromarray(skdata.coffee()).resize((48, 48), Image.Resampling.LANCZOS)


def test_edge_correlation_equals_scipy_sobel_and_numpy_corrcoef():
    a, b = (np.asarray(im.convert("L"), dtype=np.float64) / 255 for im in (CONTENT, STYLE))

    def magnitude(x):  # torch's "reflect" padding is scipy's "mirror"
        return np.hypot(ndimage.sobel(x, axis=1, mode="mirror"), ndimage.sobel(x, axis=0, mode="mirror")).ravel()

    expected = np.corrcoef(magnitude(a), magnitude(b))[0, 1]
    ours = edge_correlation(*(torch.from_numpy(x)[None, None] for x in (a, b)))
    assert abs(ours - expected) < 1e-9 and abs(expected) < 0.9


def test_an_image_scores_perfectly_against_itself():
    scores = style_scores(STYLE, STYLE, STYLE)
    assert scores["style_distance"] < 1e-10 and scores["patch_fd"] < 1e-6
    assert abs(scores["content_ssim"] - 1) < 1e-6 and abs(scores["edge_correlation"] - 1) < 1e-9
    assert scores["scored_with"].startswith("random multi-scale features (seed 1")


def test_a_stylised_image_is_closer_to_the_style_on_filters_it_never_saw():
    result = stylize_gatys(CONTENT, STYLE, size=48, steps=40, optimizer="adam", features=RandomMultiScale(0))
    stylised, untouched = style_scores(result.image, CONTENT, STYLE), style_scores(CONTENT, CONTENT, STYLE)
    assert stylised["style_distance"] < 0.5 * untouched["style_distance"], (stylised, untouched)
    assert stylised["patch_fd"] < untouched["patch_fd"]
    assert 0.2 < stylised["content_ssim"] < 0.99 and stylised["edge_correlation"] > 0.3
