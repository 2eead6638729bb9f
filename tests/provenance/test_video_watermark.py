"""The watermark in clips: every frame marked, found through H.264 and GIF by the frames' combined votes, with the
ids and the file's comment; the null stays exact (an unmarked clip is found at chance)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_sample_image

from aigckit.errors import AigcError
from aigckit.provenance.image_watermark import psnr
from aigckit.provenance.marking import read_video_metadata, read_video_watermark, save_marked_video
from aigckit.provenance.payload import encode
from aigckit.provenance.video_watermark import detect_frames
from aigckit.video import read_comment, read_video, save_gif, save_mp4

KEY = b"video-watermark-test-key"
SHA = "c0ffee" + "0" * 58


def _panning_clip(frames: int = 12, side: int = 64, grey: bool = False) -> np.ndarray:
    """A real photo seen through a window that pans 3 px a frame: uint8 (T, side, side, C)."""
    photo = load_sample_image("china.jpg")  # (427, 640, 3)
    clip = np.stack([photo[100:100 + side, 200 + 3 * t:200 + 3 * t + side] for t in range(frames)])
    if grey:
        clip = np.round(clip @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    return clip


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@pytest.mark.parametrize("grey", [False, True])
def test_a_marked_clip_is_found_in_its_file_with_its_ids(tmp_path, suffix, grey):
    clip = _panning_clip(grey=grey)
    path = tmp_path / f"clip{suffix}"
    marked, fields = save_marked_video(clip, path, {"checkpoint_sha256": SHA, "seed": 77}, key=KEY, fps=10)
    assert fields["watermark_bits"] == 48 and read_video_metadata(path) == fields
    assert min(psnr(_image(a), _image(b)) for a, b in zip(clip, marked)) >= 38
    found = read_video_watermark(read_video(path, channels=1 if grey else 3), KEY)
    assert found["detected"] and found["p_value"] < 1e-12 and found["bit_accuracy"] == 1.0
    assert found["bits"] == encode(SHA, 77, 48).bits
    assert not read_video_watermark(read_video(path), b"another key")["detected"]


def _image(frame: np.ndarray):
    from PIL import Image

    return Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)


def test_the_votes_outlast_a_stronger_encoder_dropped_frames_and_a_lone_frame(tmp_path):
    marked, _ = save_marked_video(_panning_clip(), tmp_path / "clip.gif", {"seed": 5}, key=KEY, fps=10)
    save_mp4(marked, tmp_path / "crf20.mp4", quality=6)  # libx264 CRF 20, past the CRF 10 we write
    for frames in (read_video(tmp_path / "crf20.mp4"), marked[::3], marked[4:5]):
        assert read_video_watermark(frames, KEY)["detected"]
    save_mp4(_panning_clip(), tmp_path / "plain.mp4", quality=5)
    assert not read_video_watermark(read_video(tmp_path / "plain.mp4"), KEY)["detected"]


def test_unmarked_clips_decode_the_known_bits_at_chance(tmp_path):
    """The combined projections depend on the frames only, so on one grid the known bits come out right half the
    time, and the detector (every grid, Bonferroni) almost never crosses its threshold: 400 clips of noise and
    photo windows, 16 px, 4 frames, each under its own key (the null is over keys: with one key, a clip too flat to
    move its projections decodes the key's dithers, the same bits for every such clip)."""
    rng = np.random.default_rng(0)
    photo = load_sample_image("flower.jpg")
    accuracies, detected = [], 0
    for i in range(400):
        if i % 2:
            clip = rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)
        else:
            y, x = rng.integers(0, 400, 2)
            clip = np.stack([photo[y:y + 16, x + t:x + t + 16] for t in range(4)])
        key = f"null-key-{i}".encode()
        accuracies.append(detect_frames(clip, key, {16: 8}, search=False).bit_accuracy)  # one hypothesis
        detected += read_video_watermark(clip, key)["detected"]
    assert abs(np.mean(accuracies) - 0.5) < 0.02  # 400 x 24 known bits: standard error 0.005
    assert detected <= 2  # threshold 1e-4 at 16 px


def test_a_comment_with_the_characters_ffmetadata_escapes_comes_back_whole(tmp_path):
    comment = 'a=b; #c\\d\n{"é": "ü"}'
    clip = _panning_clip(frames=2, side=16)
    for save, name in ((save_mp4, "c.mp4"), (save_gif, "c.gif")):
        save(clip, tmp_path / name, comment=comment)
        assert read_comment(tmp_path / name) == comment
        save(clip, tmp_path / f"plain-{name}")
        plain = tmp_path / f"plain-{name}"
        assert read_comment(plain) is None and read_video_metadata(plain) is None


def test_a_clip_is_written_only_as_gif_or_mp4(tmp_path):
    with pytest.raises(AigcError, match="as .gif or .mp4"):
        save_marked_video(_panning_clip(frames=2), tmp_path / "clip.avi", {"seed": 1}, key=KEY, fps=10)
    assert not (tmp_path / "clip.avi").exists()
