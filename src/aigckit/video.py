"""Video files in and out: clips as GIF (Pillow) and MP4 (H.264 through imageio-ffmpeg, which ships the ffmpeg
binary), read back as uint8 frames; a batch of clips tiled into one clip of grids. Writes are atomic."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError
from torch import Tensor

from .atomic import atomic_path
from .errors import AigcError
from .imaging import make_grid

__all__ = ["as_frames", "video_grid", "save_gif", "save_mp4", "save_clip", "check_clip_path", "frame_image",
           "read_video", "read_comment", "DEFAULT_FPS", "VIDEO_SUFFIXES"]

DEFAULT_FPS = 10.0  # frames per second of the clips aigckit writes (`aigckit sample`, the server, training GIFs)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")  # read through ffmpeg; .gif through Pillow


def as_frames(frames: Tensor | np.ndarray, *, upscale: int = 1) -> np.ndarray:
    """A clip as uint8 frames (T, H, W, C), C 1 or 3, the layout files hold.

    frames: float (T, C, H, W) in [-1, 1], a model's layout (tensor or array), rounded as imaging.to_pil rounds
        pixels; or uint8 (T, H, W, C), what read_video and video_grid give, kept as it is.
    upscale: enlarge each frame by this factor with nearest pixels (small frames in a viewer).
    """
    x = frames.detach().cpu() if isinstance(frames, Tensor) else np.asarray(frames)
    if x.dtype == (torch.uint8 if isinstance(x, Tensor) else np.uint8):
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise AigcError(f"uint8 frames must be (T, H, W, C) with C 1 or 3, got {tuple(x.shape)}; permute a "
                            f"(T, C, H, W) array with .transpose(0, 2, 3, 1)")
        pixels = x.numpy() if isinstance(x, Tensor) else x
    elif not (x.is_floating_point() if isinstance(x, Tensor) else np.issubdtype(x.dtype, np.floating)):
        raise AigcError(f"frames must be float in [-1, 1] or uint8 in [0, 255], got {x.dtype}; convert them")
    else:
        x = x.float() if isinstance(x, Tensor) else torch.from_numpy(x.astype(np.float32))
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise AigcError(f"float frames must be (T, C, H, W) in [-1, 1] with C 1 or 3, got {tuple(x.shape)}; "
                            f"give one clip of a (N, T, C, H, W) batch, or video_grid(batch)")
        pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if len(pixels) == 0:
        raise AigcError("a clip needs at least one frame, got 0")
    if upscale < 1:
        raise AigcError(f"upscale must be a whole factor of 1 or more, got {upscale}")
    if upscale > 1:
        pixels = pixels.repeat(upscale, axis=1).repeat(upscale, axis=2)
    return np.ascontiguousarray(pixels)


def frame_image(frame: np.ndarray) -> Image.Image:
    """One uint8 frame (H, W, C), C 1 or 3, as a Pillow image ("L" or "RGB")."""
    return Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)


def video_grid(videos: Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Clips (N, T, C, H, W) in [-1, 1] tiled into one clip, uint8 (T, H', W', C): frame t is the grid of every
    clip's frame t, `nrow` clips per row with a dark border (imaging.make_grid's layout)."""
    if videos.ndim != 5:
        raise AigcError(f"video_grid takes clips (N, T, C, H, W), got shape {tuple(videos.shape)}")
    grids = torch.stack([make_grid(videos[:, t], nrow, padding) for t in range(videos.shape[1])])  # (T, C, H', W')
    return as_frames(grids)


def _checked(path: str | Path, suffix: str, fps: float) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise AigcError(f"{path}: this writes {suffix[1:].upper()}; give a file name ending in {suffix}")
    if not fps > 0:
        raise AigcError(f"fps must be positive, got {fps}")
    return path


def save_gif(frames: Tensor | np.ndarray, path: str | Path, *, fps: float = DEFAULT_FPS, upscale: int = 1,
             comment: str | None = None) -> Path:
    """Save a clip (see as_frames) as a looping GIF, atomically, with `comment` (read_comment) when given. Grey
    clips keep their 256 levels exactly; colour frames are reduced to a 256-colour palette each. GIF stores
    durations in hundredths of a second, and Pillow stores identical consecutive frames as one frame shown as long
    as they were."""
    path = _checked(path, ".gif", fps)
    pixels = as_frames(frames, upscale=upscale)
    images = [frame_image(frame) for frame in pixels]
    with atomic_path(path) as tmp:
        extra = {} if comment is None else {"comment": comment.encode()}
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=10 * max(1, round(100 / fps)), **extra)  # milliseconds, whole hundredths
    return path


def _ffmpeg():  # noqa: ANN202 - the imageio_ffmpeg module
    try:
        import imageio_ffmpeg
    except ImportError:
        raise AigcError("MP4 files need the imageio-ffmpeg package, which ships ffmpeg; pip install imageio-ffmpeg, "
                        "or save a GIF") from None
    return imageio_ffmpeg


def save_mp4(frames: Tensor | np.ndarray, path: str | Path, *, fps: float = DEFAULT_FPS, upscale: int = 1,
             quality: float = 8.0, comment: str | None = None) -> Path:
    """Save a clip (see as_frames) as an H.264 MP4 in yuv420p (what every player reads), atomically, with
    `comment` in its metadata (read_comment) when given.

    H.264 in yuv420p needs even sides, so an odd height or width gains one black row or column at the bottom or
    right. quality: 1 (smallest file) to 10, imageio-ffmpeg's scale: libx264's CRF is int(51 (1 - quality / 10)),
    10 at the default 8 (nearly invisible losses), 0 (lossless, which few players play) at 10.
    """
    path = _checked(path, ".mp4", fps)
    if not 1 <= quality <= 10:
        raise AigcError(f"quality runs from 1 to 10, got {quality}")
    imageio_ffmpeg = _ffmpeg()
    pixels = as_frames(frames, upscale=upscale)
    if pixels.shape[-1] == 1:
        pixels = pixels.repeat(3, axis=-1)  # grey as RGB: ffmpeg's rgb24 input
    _, height, width, _ = pixels.shape
    pixels = np.pad(pixels, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (pixels.shape[2], pixels.shape[1]), fps=fps, codec="libx264", pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", quality=quality, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-f", "mp4", "-movflags", "+faststart",  # the temporary name has no .mp4 to go by
                           *([] if comment is None else ["-metadata", f"comment={comment}"])])
        try:
            writer.send(None)  # start ffmpeg
            for frame in pixels:
                writer.send(np.ascontiguousarray(frame))
        except OSError as error:  # ffmpeg quit: its own message went to stderr
            raise AigcError(f"ffmpeg could not write {path} ({str(error).splitlines()[0]}); see its message "
                            f"above") from None
        finally:
            writer.close()  # waits for ffmpeg to finish the file
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise AigcError(f"ffmpeg wrote nothing to {path}; see its message above")
    return path


def check_clip_path(path: str | Path) -> None:
    """AigcError unless `path` names a file save_clip writes (.gif or .mp4)."""
    if Path(path).suffix.lower() not in (".gif", ".mp4"):
        raise AigcError(f"{path}: clips are written as .gif or .mp4; change the suffix")


def save_clip(frames: Tensor | np.ndarray, path: str | Path, **options: Any) -> Path:
    """Save a clip as GIF or MP4 by the file's suffix (save_gif / save_mp4 and their options)."""
    check_clip_path(path)
    saver = save_gif if Path(path).suffix.lower() == ".gif" else save_mp4
    return saver(frames, path, **options)


def _read_gif(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise AigcError(f"{path}: not a GIF Pillow can read ({error}); give a GIF or MP4 file") from None


def _read_ffmpeg(path: Path) -> np.ndarray:
    imageio_ffmpeg = _ffmpeg()
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        width, height = next(reader)["size"]  # the first item is the metadata
        frames = [np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3) for data in reader]
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise AigcError(f"{path}: not a video ffmpeg can read ({error}); give a GIF or MP4 file") from None
    if not frames:
        raise AigcError(f"{path}: the video holds no frames; give a GIF or MP4 file with at least one")
    return np.stack(frames)


def read_video(path: str | Path, *, channels: int = 3) -> np.ndarray:
    """The frames of a GIF (Pillow) or MP4 / other video (ffmpeg), uint8 (T, H, W, channels); channels 1 gives
    grey (ITU-R 601 luma, as Pillow's "L": exact for grey frames), 3 RGB. A GIF's frames come as stored."""
    path = Path(path)
    if channels not in (1, 3):
        raise AigcError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not path.is_file():
        raise AigcError(f"{path}: no such file; give a GIF or MP4 file")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        frames = _read_gif(path)
    elif suffix in VIDEO_SUFFIXES:
        frames = _read_ffmpeg(path)
    else:
        raise AigcError(f"{path}: unknown video type {suffix or '(none)'}; give a .gif or {', '.join(VIDEO_SUFFIXES)}")
    if channels == 1:
        rgb = frames.astype(np.int32)
        luma = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000
        frames = luma.astype(np.uint8)[..., None]
    return frames


def read_comment(path: str | Path) -> str | None:
    """The comment a GIF or MP4 carries (what save_gif / save_mp4 wrote), None without one."""
    path = Path(path)
    if not path.is_file():
        raise AigcError(f"{path}: no such file; give a GIF or MP4 file")
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as image:
                comment = image.info.get("comment")
        except (UnidentifiedImageError, OSError) as error:
            raise AigcError(f"{path}: not a GIF Pillow can read ({error}); give a GIF or MP4 file") from None
        return comment.decode("utf-8", errors="replace") if comment else None
    ffmpeg = _ffmpeg().get_ffmpeg_exe()
    done = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"], capture_output=True)
    if done.returncode != 0:
        raise AigcError(f"{path}: not a video ffmpeg can read ({done.stderr.decode(errors='replace').strip()}); "
                        f"give a GIF or MP4 file")
    # ffmetadata escapes '=', ';', '#', '\\' and newlines with a backslash
    for line in re.split(r"(?<!\\)\n", done.stdout.decode("utf-8", errors="replace")):
        if line.startswith("comment="):
            return re.sub(r"\\(.)", r"\1", line[len("comment="):], flags=re.DOTALL)
    return None
