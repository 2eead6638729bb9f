"""Video data: VideoDataset, bouncing digits (moving-digits from the bundled digits, moving-mnist from
../shared/data/mnist and the published mnist_test_seq.npy layout), the training loader over clips, GIF and MP4."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import VideoDataset, load_dataset, training_batches
from aigckit.data.base import data_identity
from aigckit.data.transforms import resize_pixels
from aigckit.data.video import RECIPES, STANDARD_TEST_FILE, bouncing_layout, clip_layout, render_clips
from aigckit.errors import AigcError, DataError
from aigckit.video import as_frames, read_video, save_gif, save_mp4, video_grid

SHARED = Path(__file__).parents[3] / "shared" / "data"  # the copies beside the repository
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="../shared/data/mnist is not here")
DIGITS = DataConfig(name="moving-digits", image_size=16)  # the recipe's own canvas: frames are not resized
MNIST = DataConfig(name="moving-mnist", root=str(SHARED / "mnist"), image_size=64, download=False)  # not resized


@pytest.fixture(scope="module")
def digit_clips(tmp_path_factory):
    """moving-digits' training clips, their layout and the source digits, built once in a cache of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGCKIT_CACHE", str(tmp_path_factory.mktemp("module-cache")))
        glyphs = load_dataset(DataConfig(name="digits", image_size=8), "train").pixels.numpy()[:, 0]
        return load_dataset(DIGITS, "train"), clip_layout(DIGITS, "train"), glyphs


# ---- VideoDataset and moving-digits


def test_moving_digits_needs_no_files_and_serves_float_clips(digit_clips):
    data, layout, _ = digit_clips
    assert isinstance(data, VideoDataset) and len(data) == 2048
    assert data.model_facts == {"image_size": 16, "channels": 1, "frames": 8, "num_classes": 10,
                                "labels_per_video": 1}
    batch = data.batch(torch.tensor([5, 0, 2047]))
    videos, labels = batch["videos"], batch["labels"]
    assert videos.shape == (3, 8, 1, 16, 16) and videos.dtype == torch.float32
    assert labels.shape == (3, 1) and labels.dtype == torch.int64
    assert labels.tolist() == layout.labels[[5, 0, 2047]].tolist()
    pixels = data.pixels[[5, 0, 2047]]
    assert torch.equal(videos, pixels.float() / 255 * 2 - 1)
    assert videos.min() == -1 and videos.max() == 1
    val, test = load_dataset(DIGITS, "val"), load_dataset(DIGITS, "test")
    assert len(val) == 256 and torch.equal(val.pixels, test.pixels) and torch.equal(val.labels, test.labels)
    assert not torch.equal(val.pixels, data.pixels[:256])


def test_clips_are_their_layout_rendered_and_digits_bounce_inside_the_frame(digit_clips):
    data, layout, glyphs = digit_clips
    frames = data.pixels.numpy()[:, :, 0]  # (N, T, 16, 16)
    assert np.array_equal(frames, render_clips(layout, glyphs))
    assert layout.labels.tolist() == load_dataset(DataConfig(name="digits", image_size=8),
                                                  "train").labels[layout.rows].tolist()
    corners, free = layout.corners, layout.canvas - layout.glyph
    assert corners.min() == 0 and corners.max() == free  # the digits reach every border, and stay inside
    # one whole digit per frame: the ink is the same every frame, and moves exactly as its corner does
    mass = frames.sum(axis=(2, 3), dtype=np.int64)  # (N, T)
    assert np.array_equal(mass, np.repeat(glyphs[layout.rows[:, 0]].sum(axis=(1, 2), dtype=np.int64)[:, None], 8, 1))
    grid = np.arange(16)
    centre = np.stack([(frames.sum(3) * grid).sum(2), (frames.sum(2) * grid).sum(2)], -1) / mass[..., None]
    glyph_centre = centre - corners[:, :, 0]  # the same for every frame of a clip
    assert np.allclose(glyph_centre, glyph_centre[:, :1])
    # a constant speed, 2 pixels a frame; between bounces the position moves by the velocity
    speed = np.linalg.norm(layout.velocities, axis=-1)
    assert np.allclose(speed, RECIPES["moving-digits"].step * free)
    moved = layout.positions[:, 1:] - layout.positions[:, :-1]
    straight = np.isclose(moved, layout.velocities[:, :-1]).all(-1)[..., 0]  # (N, T - 1)
    assert 0.6 < straight.mean() < 0.99  # most steps are straight, some bounce
    centre_moved = (centre[:, 1:] - centre[:, :-1])[straight]
    assert np.abs(centre_moved - layout.velocities[:, :-1, 0][straight]).max() <= 1 + 1e-9  # rounding: 1/2 + 1/2
    # consecutive frames differ wherever the digit moved a pixel, which is nearly always
    corner_moved = (corners[:, 1:] != corners[:, :-1]).any(-1)[..., 0]
    assert corner_moved.mean() > 0.9
    frame_moved = (frames[:, 1:] != frames[:, :-1]).any(axis=(2, 3))
    assert np.array_equal(frame_moved, corner_moved)


def test_a_bounce_mirrors_the_overshoot_and_reverses_that_velocity_component():
    layout = bouncing_layout(np.arange(10), 500, frames=30, num_digits=2, canvas=64, glyph=28, step=0.1, seed=1)
    assert layout.rows.shape == layout.labels.shape == (500, 2) and layout.positions.shape == (500, 30, 2, 2)
    free = 36
    assert layout.positions.min() >= 0 and layout.positions.max() <= free
    ahead = layout.positions[:, :-1] + layout.velocities[:, :-1]  # where a digit would go without the walls
    following, v, v_next = layout.positions[:, 1:], layout.velocities[:, :-1], layout.velocities[:, 1:]
    low, high = ahead < 0, ahead > free
    assert low.any() and high.any()
    assert np.allclose(following[low], -ahead[low]) and np.allclose(following[high], 2 * free - ahead[high])
    inside = ~(low | high)
    assert np.allclose(following[inside], ahead[inside])
    assert np.array_equal(v_next[low | high], -v[low | high]) and np.array_equal(v_next[inside], v[inside])
    again = bouncing_layout(np.arange(10), 500, frames=30, num_digits=2, canvas=64, glyph=28, step=0.1, seed=1)
    assert np.array_equal(again.positions, layout.positions) and np.array_equal(again.rows, layout.rows)


def test_loads_are_deterministic_across_fresh_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path / "one"))
    first = load_dataset(DIGITS, "val")
    again = load_dataset(DIGITS, "val")  # from the cache
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path / "two"))
    fresh = load_dataset(DIGITS, "val")
    assert Path(first.storage.filename).parent != Path(fresh.storage.filename).parent
    for other in (again, fresh):
        assert torch.equal(first.pixels, other.pixels) and torch.equal(first.labels, other.labels)
    resized = load_dataset(DataConfig(name="moving-digits", image_size=8), "val")
    assert resized.pixels.shape == (256, 8, 1, 8, 8)
    assert np.array_equal(resized.pixels.numpy(), resize_pixels(first.pixels.numpy().reshape(-1, 1, 16, 16),
                                                                 8).reshape(256, 8, 1, 8, 8))
    assert data_identity(DIGITS, "val") != data_identity(DIGITS, "train")


def test_subsets_flips_and_pickles_share_the_memory_mapped_clips(digit_clips):
    data = digit_clips[0]
    assert isinstance(data.storage, np.memmap)
    part = data.subset(torch.tensor([7, 3, 100]))
    assert len(part) == 3 and part.storage is data.storage
    assert all(torch.equal(part.batch(torch.arange(3))[key], data.batch(torch.tensor([7, 3, 100]))[key])
               for key in ("videos", "labels"))
    for copy in (pickle.loads(pickle.dumps(data)), pickle.loads(pickle.dumps(part))):
        assert isinstance(copy.storage, np.memmap) and copy.storage.shape == data.storage.shape
    assert torch.equal(pickle.loads(pickle.dumps(part)).pixels, part.pixels)
    flip = np.array([True, False, True])
    flipped, plain = part.batch(torch.arange(3), flip=flip)["videos"], part.batch(torch.arange(3))["videos"]
    assert torch.equal(flipped[flip], plain[flip].flip(-1)) and torch.equal(flipped[~flip], plain[~flip])
    with pytest.raises(DataError, match="give uint8 \\(N, T, C, H, W\\)"):
        VideoDataset(np.zeros((2, 3, 16, 16), dtype=np.uint8), None, [])
    with pytest.raises(DataError, match="K per clip"):
        VideoDataset(np.zeros((2, 3, 1, 16, 16), dtype=np.uint8), torch.zeros(2, dtype=torch.int64), [])


def test_the_frames_datasets_serve_every_frame_of_the_clips_with_its_clips_labels(digit_clips):
    clips = digit_clips[0]
    frames = load_dataset(DataConfig(name="moving-digits-frames", image_size=16), "train")
    T = clips.frames
    assert len(frames) == len(clips) * T and frames.frames == 1
    assert frames.model_facts == {**clips.model_facts, "frames": 1}
    assert torch.equal(frames.pixels, clips.pixels.flatten(0, 1)[:, None])  # clip by clip, frame by frame
    assert torch.equal(frames.labels, clips.labels.repeat_interleave(T, dim=0))
    part = clips.subset(torch.tensor([7, 3])).single_frames()  # rows of a subset map to its clips' frames
    served = part.batch(torch.arange(2 * T))
    assert torch.equal(served["videos"][:, 0], clips.batch(torch.tensor([7, 3]))["videos"].flatten(0, 1))
    assert served["labels"].tolist() == [clips.labels[7].tolist()] * T + [clips.labels[3].tolist()] * T
    copy = pickle.loads(pickle.dumps(part))
    assert isinstance(copy.storage, np.memmap) and torch.equal(copy.pixels, part.pixels)
    assert data_identity(DataConfig(name="moving-digits-frames", image_size=16), "train") \
        != data_identity(DIGITS, "train")


def test_the_training_loader_serves_clips_resumably(digit_clips):
    data = digit_clips[0]

    def take(start, count, **options):
        batches = training_batches(data, batch_size=8, seed=3, start=start, **options)
        return [next(batches) for _ in range(count)]

    unbroken = take(0, 12, flip=True)
    assert unbroken[0]["videos"].shape == (8, 8, 1, 16, 16) and unbroken[0]["labels"].shape == (8, 1)
    for k, batch in enumerate(take(7, 5, flip=True), start=7):
        assert all(torch.equal(batch[key], unbroken[k][key]) for key in ("videos", "labels"))
    plain = take(0, 12)
    assert any(not torch.equal(a["videos"], b["videos"]) for a, b in zip(plain, unbroken))  # flips happened
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(plain, unbroken))


# ---- moving-mnist


@needs_mnist
def test_moving_mnist_clips_show_their_two_labelled_digits(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path / "cache"))
    data, layout = load_dataset(MNIST, "val"), clip_layout(MNIST, "val")
    assert len(data) == 1000 and data.model_facts == {"image_size": 64, "channels": 1, "frames": 20,
                                                      "num_classes": 10, "labels_per_video": 2}
    source = load_dataset(DataConfig(name="mnist", root=MNIST.root, image_size=28, download=False), "val")
    assert len(source) == 6000 and torch.equal(data.labels, source.labels[layout.rows])
    # clip i's first frame: its two source digits at their corners on a 64x64 frame, combined with np.maximum
    ink = source.pixels.numpy()[:, 0]
    first = np.zeros((40, 64, 64), dtype=np.uint8)
    for i in range(40):
        for k in range(2):
            (y, x), digit = layout.corners[i, 0, k], ink[layout.rows[i, k]]
            first[i, y:y + 28, x:x + 28] = np.maximum(first[i, y:y + 28, x:x + 28], digit)
    assert np.array_equal(data.pixels.numpy()[:40, 0, 0], first)
    assert layout.corners.min() == 0 and layout.corners.max() == 36
    assert np.allclose(np.linalg.norm(layout.velocities, axis=-1), 3.6)  # Srivastava et al.'s 0.1 of 36 pixels
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path / "fresh"))
    assert torch.equal(load_dataset(MNIST, "val").pixels, data.pixels)
    # train clips draw from MNIST's other 54,000 training images, test clips from t10k
    train, test = clip_layout(MNIST, "train"), clip_layout(MNIST, "test")
    assert len(train.rows) == 10_000 and len(test.rows) == 10_000 and train.rows.max() < 54_000
    t10k = load_dataset(DataConfig(name="mnist", root=MNIST.root, image_size=28, download=False), "test")
    assert np.array_equal(test.labels, t10k.labels.numpy()[test.rows])
    assert not np.array_equal(train.positions[:1000], layout.positions)


def _standard_file(folder: Path, clips: int = 6) -> np.ndarray:
    """A small file in the published layout: uint8 (20, clips, 64, 64), frames first."""
    array = np.random.default_rng(0).integers(0, 256, (20, clips, 64, 64), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / STANDARD_TEST_FILE, array)
    return array


@pytest.mark.parametrize("folder", ["", "moving-mnist"])
def test_the_published_test_file_is_the_test_split_when_present(tmp_path, folder):
    array = _standard_file(tmp_path / folder)
    config = DataConfig(name="moving-mnist", root=str(tmp_path), image_size=64, download=False)
    test = load_dataset(config, "test")
    assert len(test) == 6 and test.labels is None and test.model_facts["num_classes"] == 0
    assert test.model_facts["labels_per_video"] == 0 and "labels" not in test.batch(torch.arange(2))
    assert np.array_equal(test.pixels.numpy()[:, :, 0], array.transpose(1, 0, 2, 3))
    small = load_dataset(DataConfig(name="moving-mnist", root=str(tmp_path), image_size=32, download=False), "test")
    expected = resize_pixels(array.transpose(1, 0, 2, 3).reshape(-1, 1, 64, 64), 32).reshape(6, 20, 1, 32, 32)
    assert np.array_equal(small.pixels.numpy(), expected)
    assert data_identity(config, "test")["files_sha256"]
    with pytest.raises(DataError, match="have no layout"):
        clip_layout(config, "test")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):  # train clips still need MNIST's files
        load_dataset(config, "train")


def test_a_malformed_published_test_file_is_refused(tmp_path):
    np.save(tmp_path / STANDARD_TEST_FILE, np.zeros((20, 3, 64, 64), dtype=np.float32))
    with pytest.raises(DataError, match="uint8 frames-first"):
        load_dataset(DataConfig(name="moving-mnist", root=str(tmp_path), download=False), "test")
    (tmp_path / STANDARD_TEST_FILE).write_bytes(b"not numpy")
    with pytest.raises(DataError, match="not a readable .npy file"):
        load_dataset(DataConfig(name="moving-mnist", root=str(tmp_path), download=False), "test")


# ---- GIF and MP4


def _moving_clip(digit_clips) -> torch.Tensor:
    """A training clip whose digit moves every frame, (8, 1, 16, 16) in [-1, 1]."""
    data, layout, _ = digit_clips
    moves = (layout.corners[:, 1:] != layout.corners[:, :-1]).any(-1).all(axis=(1, 2))
    return data.batch(torch.tensor([int(np.flatnonzero(moves)[0])]))["videos"][0]


def test_gif_round_trip_keeps_every_frame_and_grey_level(digit_clips, tmp_path):
    import imageio.v3 as iio

    clip = _moving_clip(digit_clips)
    path = save_gif(clip, tmp_path / "clip.gif", fps=10, upscale=2)
    expected = as_frames(clip, upscale=2)  # (8, 32, 32, 1)
    assert expected.shape == (8, 32, 32, 1)
    back = iio.imread(path, index=None, mode="L")  # imageio's own reader
    assert back.shape == (8, 32, 32) and np.array_equal(back, expected[..., 0])
    assert np.array_equal(read_video(path, channels=1), expected)
    assert read_video(path).shape == (8, 32, 32, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"]  # the temporary file is gone
    colour = torch.rand(5, 3, 24, 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    back = read_video(save_gif(colour, tmp_path / "colour.gif"))
    assert back.shape == (5, 24, 20, 3)
    assert np.abs(back.astype(int) - as_frames(colour).astype(int)).mean() < 12  # a 256-colour palette per frame


def test_mp4_round_trip_keeps_frame_count_and_size(digit_clips, tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (ffmpeg for MP4) is not installed")
    import imageio.v3 as iio

    clip = _moving_clip(digit_clips)
    path = save_mp4(clip, tmp_path / "clip.mp4", fps=10, upscale=4)
    expected = as_frames(clip, upscale=4).repeat(3, axis=-1)  # (8, 64, 64, 3)
    back = iio.imread(path, index=None, plugin="FFMPEG")  # imageio's own reader
    assert back.shape == (8, 64, 64, 3)
    assert np.abs(back.astype(int) - expected.astype(int)).mean() < 6  # lossy H.264, quality 8
    assert np.array_equal(read_video(path), back)
    odd = read_video(save_mp4(clip[:, :, :15, :], tmp_path / "odd.mp4"))  # 15 x 16: one black row added
    assert odd.shape == (8, 16, 16, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "odd.mp4"]


def test_video_grid_tiles_each_frame():
    videos = torch.rand(3, 4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    grid = video_grid(videos, nrow=2)
    assert grid.shape == (4, 22, 22, 1) and grid.dtype == np.uint8
    for t in range(4):
        assert np.array_equal(grid[t, 2:10, 12:20], as_frames(videos[1])[t])
    assert (grid[:, 12:20, 12:20] == 0).all() and (grid[:, :2] == 0).all()  # no fourth clip; the border


def test_bad_frames_and_file_names_are_refused_in_one_line(tmp_path):
    with pytest.raises(AigcError, match="\\(T, H, W, C\\)"):
        as_frames(np.zeros((4, 1, 8, 8), dtype=np.uint8))
    with pytest.raises(AigcError, match="\\(T, C, H, W\\)"):
        as_frames(torch.zeros(2, 4, 1, 8, 8))
    with pytest.raises(AigcError, match="ending in .gif"):
        save_gif(torch.zeros(2, 1, 8, 8), tmp_path / "clip.png")
    (tmp_path / "clip.png").write_bytes(b"x")
    with pytest.raises(AigcError, match="unknown video type"):
        read_video(tmp_path / "clip.png")
    with pytest.raises(AigcError, match="no such file"):
        read_video(tmp_path / "missing.gif")
    with pytest.raises(AigcError, match="video_grid takes clips"):
        video_grid(torch.zeros(4, 1, 8, 8))
