import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.errors import AigcError
from aigckit.evaluation.video import (digits_apart, evaluate_video, frame_fid, load_or_train_video_evaluator,
                                      repeated_frame_clips, temporal_consistency, video_frechet_distance)

DATA = DataConfig(name="moving-digits", image_size=16)
STEPS = 300  # trained once per module: 143 s on 2 cores shared with two other trainings, less on idle ones


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("video-cache")


@pytest.fixture(scope="module")
def evaluator(cache):
    return load_or_train_video_evaluator(DATA, cache, steps=STEPS)


@pytest.fixture(scope="module")
def clips():
    """Real held-out clips, as many real training clips, and two broken versions of the held-out ones."""
    real = load_dataset(DATA, "test").videos  # (256, 8, 1, 16, 16)
    train = load_dataset(DATA, "train").batch(torch.arange(len(real)) * 7)["videos"]
    N, T = real.shape[:2]
    mixed = real.flatten(0, 1)[torch.randperm(N * T, generator=torch.Generator().manual_seed(0))].view_as(real)
    return {"real": real, "train": train, "mixed": mixed, "repeated": repeated_frame_clips(real, 3)}


def test_the_video_evaluator_beats_chance_and_is_named(evaluator, cache):
    info = evaluator.info
    assert info["held_out_accuracy"] > 0.6  # which of 10 digits the clip holds: chance is 0.1
    assert info["frame_held_out_accuracy"] > 0.6
    assert info["order_held_out_accuracy"] > 0.75  # moves as filmed or not: chance is 0.5
    name = evaluator.name
    assert name["extractor"] == "video-evaluator-moving-digits-16" and len(name["sha256"]) == 64
    assert "not I3D" in name["architecture"]
    again = load_or_train_video_evaluator(DATA, cache, steps=STEPS)  # read from the cache
    assert again.info == info
    clip = torch.rand(2, 8, 1, 16, 16) * 2 - 1
    assert torch.equal(again.outputs(clip)["clip_features"], evaluator.outputs(clip)["clip_features"])


def test_fvd_style_distance_is_small_for_real_clips_and_large_for_broken_ones(evaluator, clips):
    own = video_frechet_distance(clips["real"], clips["train"], evaluator)
    mixed = video_frechet_distance(clips["mixed"], clips["train"], evaluator)
    repeated = video_frechet_distance(clips["repeated"], clips["train"], evaluator)
    assert mixed > 3 * own and repeated > 3 * own, (own, mixed, repeated)
    # the frames of the mixed clips are the real frames: per-frame FID cannot tell them apart, FVD-style can
    assert frame_fid(clips["mixed"], clips["train"], evaluator) == pytest.approx(
        frame_fid(clips["real"], clips["train"], evaluator), rel=1e-6)


def test_real_clips_keep_their_digit_and_mixed_clips_do_not(evaluator, clips):
    def consistency(videos):
        return temporal_consistency(evaluator.outputs(videos)["frame_logits"])

    real, mixed, repeated = consistency(clips["real"]), consistency(clips["mixed"]), consistency(clips["repeated"])
    assert real["consistent"].float().mean() > 0.8
    assert mixed["consistent"].float().mean() < 0.2
    assert real["agreement"].mean() > mixed["agreement"].mean() + 0.3
    assert repeated["consistent"].all() and torch.equal(repeated["agreement"], torch.ones(len(clips["real"])))


def test_digits_apart_counts_whole_separate_pieces_of_ink_in_each_frame():
    frames = -torch.ones(1, 5, 1, 16, 16)
    frames[0, :, 0, 2:6, 2:6] = 1.0  # a digit at the top left in every frame
    frames[0, 0, 0, 9:13, 9:13] = 1.0  # frame 0: a second one well apart
    frames[0, 1, 0, 6:10, 6:10] = 1.0  # frame 1: a second one touching the first at a corner
    frames[0, 2, 0, 7:11, 2:6] = 1.0  # frame 2: one pixel of background between them, bridged by growing the ink
    frames[0, 3, 0, 12, 12] = 1.0  # frame 3: a speck, not a digit
    frames[0, 4, 0, 9:13, 9:13] = -0.2  # frame 4: a second one too faint to be ink
    assert digits_apart(frames, 2).tolist() == [[True, False, False, False, False]]
    assert digits_apart(frames, 1).tolist() == [[False, True, True, True, True]]
    # pieces in the same place of consecutive frames are counted in each frame, never joined across frames
    assert digits_apart(frames[:, [0, 0, 0]], 2).tolist() == [[True, True, True]]
    assert not digits_apart(-torch.ones(2, 3, 1, 16, 16), 1).any()  # blank clips: no piece anywhere


def test_consistency_over_judged_frames_ignores_the_others_and_needs_two():
    three, five, eight = (torch.full((10,), -5.0).index_fill(0, torch.tensor(d), 5.0) for d in (3, 5, 8))
    logits = torch.stack([torch.stack([three, eight, three, three]),  # an 8 where the digits merged
                          torch.stack([three, five, three, five]),  # identity changes in frames that are judged
                          torch.stack([three, eight, eight, eight])])  # one judged frame: not judged
    judged = torch.tensor([[True, False, True, True], [True, True, True, False], [True, False, False, False]])
    kept = temporal_consistency(logits, judged)
    assert kept["judged"].tolist() == [True, True, False]
    assert kept["consistent"].tolist() == [True, False, False]
    assert kept["agreement"].tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    assert kept["majority"][0].nonzero().flatten().tolist() == [3]
    every = temporal_consistency(logits)  # every frame judged: the merged frame breaks the first clip
    assert every["consistent"].tolist() == [False, False, False] and every["judged"].all()


def test_evaluate_video_reports_the_ceiling_and_the_baseline_and_is_deterministic(evaluator, cache, clips):
    generated = clips["mixed"][:128]
    labels = load_dataset(DATA, "test").labels[:128]
    report = evaluate_video(generated, DATA, cache, labels=labels, steps=STEPS)  # finds the evaluator cached
    ceiling, baseline, ours = report["real_held_out"], report["repeated_frame_baseline"], report["generated"]
    assert report["extractor"]["sha256"] == evaluator.info["sha256"]
    assert ceiling["clips"] == ours["clips"] == 128
    assert ceiling["consistent_share"] > 0.8 and ceiling["majority_is_labels"] > 0.8
    assert baseline["consistent_share"] == 1.0 and baseline["fvd_style"] > 3 * ceiling["fvd_style"]
    assert ours["fvd_style"] > 3 * ceiling["fvd_style"] and ours["consistent_share"] < 0.2
    # one digit a clip, never hidden: nearly every real frame shows it whole, and it keeps its identity
    assert ceiling["digits_apart_frames"] > 0.9 and ceiling["identity_judged_share"] > 0.9
    assert ceiling["identity_kept_share"] > 0.8 and ours["identity_kept_share"] < 0.3
    assert baseline["identity_kept_share"] in (1.0, None)
    assert evaluate_video(generated, DATA, cache, labels=labels, evaluator=evaluator) == report


def test_a_latent_models_ceiling_is_the_real_clips_through_its_autoencoder(evaluator, cache, clips):
    generated, labels = clips["mixed"][:64], load_dataset(DATA, "test").labels[:64]
    exact = evaluate_video(generated, DATA, cache, labels=labels, evaluator=evaluator, autoencode=lambda v: v)
    assert exact["autoencoded"] == exact["real_held_out"]  # a perfect autoencoder: the ceiling itself
    blurred = evaluate_video(generated, DATA, cache, labels=labels, evaluator=evaluator,
                             autoencode=lambda v: torch.nn.functional.avg_pool3d(v, (1, 3, 3), 1, (0, 1, 1)))
    assert blurred["autoencoded"]["fvd_style"] > 2 * exact["real_held_out"]["fvd_style"]
    assert "autoencoded" not in evaluate_video(generated, DATA, cache, labels=labels, evaluator=evaluator)


def test_training_is_deterministic_for_a_seed(tmp_path):
    first = load_or_train_video_evaluator(DATA, tmp_path / "a", steps=5, batch_size=8, held_out_clips=16)
    second = load_or_train_video_evaluator(DATA, tmp_path / "b", steps=5, batch_size=8, held_out_clips=16)
    other = load_or_train_video_evaluator(DATA, tmp_path / "c", steps=5, batch_size=8, held_out_clips=16, seed=1)
    assert first.info["sha256"] == second.info["sha256"] != other.info["sha256"]


def test_wrong_clips_and_image_data_are_refused(evaluator, cache):
    with pytest.raises(AigcError, match="takes clips"):
        evaluator.outputs(torch.zeros(4, 5, 1, 16, 16))
    with pytest.raises(AigcError, match="at most"):
        evaluate_video(torch.zeros(300, 8, 1, 16, 16), DATA, cache, steps=STEPS)
    with pytest.raises(AigcError, match="not a video dataset"):
        load_or_train_video_evaluator(DataConfig(name="digits", image_size=8), cache, steps=1)


def test_aigckit_eval_on_a_video_run_writes_the_video_scores(tmp_path, monkeypatch):
    import json

    from helpers import tiny_config

    import aigckit.evaluation.video as video
    from typer.testing import CliRunner

    from aigckit.cli import app
    from aigckit.evaluation.evaluate import evaluate_run
    from aigckit.evaluation.report import compare_runs
    from aigckit.training import Trainer

    # a prediction model: it also continues the validation clips' first frames, scored as a fourth set
    config = tiny_config({"name": "diffusion", "conditional": True, "given_first_frame": 0.5},
                         data={"name": "moving-digits", "image_size": 8},
                         train={"batch_size": 8, "max_steps": 2, "num_samples": 2})
    Trainer(config, tmp_path / "run", show_progress=False).fit()
    monkeypatch.setattr(video, "EVALUATOR_STEPS", 5)  # a barely trained evaluator: this test checks the wiring
    result = evaluate_run(tmp_path / "run", n=6, steps=2, batch_size=4, cache_dir=tmp_path / "cache")
    assert result["n_samples"] == 6 and result["frames"] == 8
    scores = result["video"]
    assert set(scores) == {"extractor", "reference", "generated", "real_held_out", "repeated_frame_baseline",
                           "predicted"}
    assert scores["predicted"]["clips"] == 6 and "majority_is_labels" in scores["predicted"]
    assert scores["repeated_frame_baseline"]["consistent_share"] == 1.0
    assert scores["extractor"]["train_steps"] == 5 and "majority_is_labels" in scores["generated"]
    assert json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["video"] == scores
    assert (tmp_path / "run" / "eval" / "samples.gif").stat().st_size > 0
    page = compare_runs([tmp_path / "run"], tmp_path / "report").read_text()  # the compare report's previews
    assert page.count("data:image/gif;base64,") == 2  # the last training samples and the eval's clips, animated
    assert f"<tr><td>generated</td><td>{scores['generated']['fvd_style']:.3f}</td>" in page
    assert f"<tr><td>continued from real first frames</td><td>{scores['predicted']['fvd_style']:.3f}</td>" in page
    assert scores["extractor"]["extractor"] in page
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--n", "6", "--steps", "2"],
                                env={"AIGCKIT_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "repeated-frame baseline" in result.stdout and "mostly consistent" in result.stdout
    assert "continued from real first" in result.stdout
    # staggered frames: the settings say so, and the clips are others than plain DDIM's
    plain, staggered = (CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--n", "6", "--steps", "2", "--json",
                                                 "--sampler", "ddim", "--frame-lag", lag],
                                           env={"AIGCKIT_CACHE": str(tmp_path / "cache")}) for lag in ("0", "1"))
    assert plain.exit_code == staggered.exit_code == 0, staggered.output
    plain, staggered = json.loads(plain.stdout), json.loads(staggered.stdout)
    assert staggered["sampler"] == {"sampler": "ddim", "steps": 2, "guidance": 1.0, "frame_lag": 1}
    assert staggered["video"]["generated"]["fvd_style"] != plain["video"]["generated"]["fvd_style"]
