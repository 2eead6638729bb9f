"""Every input a command cannot serve, tried as a new user would: one 'error: ...' line, exit 2, no traceback,
nothing written. One row per bad input: the command line (placeholders filled from tiny runs trained once per
session) and a fragment of the expected message."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.training import Trainer
from helpers import pydoc_lm_config, tiny_config

runner = CliRunner()
CONFIGS = Path(__file__).parents[2] / "configs"

RUNS = {  # placeholder -> the tiny run it names (one training step each: only the run's shape matters here)
    "diff": {"name": "diffusion", "conditional": True},  # T = 100 in the tiny preset
    "udiff": {"name": "diffusion"},
    "gan": {"name": "dcgan"},
    "vae": {"name": "conv-vae"},
}


@pytest.fixture(scope="session")
def places(tmp_path_factory) -> dict[str, str]:
    """Placeholder -> path: tiny runs of every family, images, masks, and things that are not what they seem."""
    root = tmp_path_factory.mktemp("bad-inputs")
    for name, model in RUNS.items():
        config = tiny_config(model, train={"max_steps": 1, "precision": "fp32"})
        Trainer(config, root / name, show_progress=False).fit()
    Trainer(pydoc_lm_config({"name": "gpt"}, max_steps=1), root / "lm", show_progress=False).fit()
    hole = np.zeros((8, 8), dtype=np.uint8)
    hole[2:6, 2:6] = 255
    Image.new("L", (8, 8), 120).save(root / "img.png")
    Image.fromarray(hole).save(root / "hole.png")
    Image.new("L", (8, 8), 0).save(root / "nohole.png")
    Image.new("L", (8, 8), 255).save(root / "allwhite.png")
    Image.new("L", (9, 9), 255).save(root / "mask9.png")
    (root / "zero.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image\n")
    (root / "emptydir").mkdir()
    (root / "string.yaml").write_text("just a string\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe")
    names = {"img": "img.png", "hole": "hole.png", "nohole": "nohole.png", "allwhite": "allwhite.png",
             "mask9": "mask9.png", "zero": "zero.png", "file": "notes.txt", "emptydir": "emptydir",
             "missing": "no-such-run", "ckpts": "diff/checkpoints", "lm": "lm", **{name: name for name in RUNS},
             "strcfg": "string.yaml", "bincfg": "binary.yaml"}
    return {key: str(root / name) for key, name in names.items()} | {"dcgan_yaml": str(CONFIGS / "dcgan-digits.yaml")}


INPAINT = "inpaint {diff} --image {img} --mask {hole} --out {out}"
CASES = [
    # aigckit sample
    ("sample {lm} --out {out}", "holds a language model, and aigckit sample works on image models; for text use: "
                                "aigckit generate"),
    ("sample {missing} --out {out}", "does not exist; give a run directory"),
    ("sample {emptydir} --out {out}", "has no checkpoints"),
    ("sample {file} --out {out}", "is a file, not a run directory"),
    ("sample {ckpts} --out {out}", "is a run's checkpoints folder; give the run directory"),
    ("sample {diff} --n 0 --out {out}", "--n must be at least 1, got 0"),
    ("sample {diff} --n -3 --out {out}", "--n must be at least 1, got -3"),
    ("sample {diff} --nrow 0 --out {out}", "--nrow must be at least 1"),
    ("sample {diff} --seed -1 --out {out}", "--seed must be a whole number in 0.."),
    ("sample {diff} --labels 12 --out {out}", "labels must be in 0..9, got [12]"),
    ("sample {diff} --labels -1 --out {out}", "labels must be in 0..9"),
    ("sample {diff} --labels x --out {out}", "--labels takes comma-separated class numbers"),
    ("sample {diff} --labels 1,,2 --out {out}", "--labels takes comma-separated class numbers"),
    ("sample {diff} --n 4 --labels 1,2,3 --out {out}", "got 3 labels for 4 images"),
    ("sample {udiff} --labels 1 --out {out}", "unconditional and takes no labels"),
    ("sample {gan} --labels 1 --out {out}", "unconditional and takes no labels"),
    ("sample {diff} --sampler ddmi --out {out}", "unknown sampler 'ddmi'; choose one of ddpm, ddim, dpm-solver++"),
    ("sample {diff} --steps 0 --out {out}", "steps must be a whole number in 1..100"),
    ("sample {diff} --steps 101 --out {out}", "steps must be a whole number in 1..100"),
    ("sample {diff} --sampler ddim --steps -2 --out {out}", "steps must be a whole number in 1..100"),
    ("sample {diff} --guidance -1 --out {out}", "guidance must be a number >= 0"),
    ("sample {diff} --guidance nan --out {out}", "guidance must be a number >= 0"),
    ("sample {udiff} --guidance 2 --out {out}", "guidance needs a conditional model"),
    ("sample {diff} --sampler ddim --eta 1.5 --out {out}", "eta must be in [0, 1]"),
    ("sample {diff} --sampler ddim --eta -0.1 --out {out}", "eta must be in [0, 1]"),
    ("sample {diff} --eta 0.5 --out {out}", "eta applies to the ddim sampler only, not dpm-solver++"),
    ("sample {diff} --sampler ddpm --eta 0.5 --out {out}", "eta applies to the ddim sampler only, not ddpm"),
    ("sample {gan} --sampler ddim --out {out}", "sampler does not apply to dcgan models"),
    ("sample {gan} --steps 5 --out {out}", "steps does not apply to dcgan models"),
    ("sample {vae} --guidance 2 --out {out}", "guidance does not apply to conv-vae models"),
    ("sample {diff} --out {nodir_out}", "does not exist; create it or choose another"),
    ("sample {diff} --out {jpg_out}", "give a file name ending in .png"),
    ("sample {diff} --out {emptydir}", "is a folder; give a file name ending in .png"),
    # aigckit inpaint
    ("inpaint {diff} --image {missing} --mask {hole} --out {out}", "is not a file; give --image a PNG or JPEG"),
    ("inpaint {diff} --image {file} --mask {hole} --out {out}", "is not an image PIL can read"),
    ("inpaint {diff} --image {img} --mask {zero} --out {out}", "the mask"),
    ("inpaint {diff} --image {img} --mask {emptydir} --out {out}", "is not a file; give --mask"),
    ("inpaint {diff} --image {img} --mask {mask9} --out {out}", "give a mask of the image's size"),
    ("inpaint {diff} --image {img} --mask {nohole} --out {out}", "the mask has no white pixels"),
    ("inpaint {diff} --image {img} --mask {allwhite} --out {out}", "the mask is white everywhere"),
    ("inpaint {missing} --image {img} --mask {hole} --out {out}", "does not exist; give a run directory"),
    ("inpaint {lm} --image {img} --mask {hole} --out {out}", "holds a language model, and aigckit inpaint"),
    ("inpaint {gan} --image {img} --mask {hole} --out {out}", "gan models cannot inpaint images"),
    (INPAINT + " --method repant", "unknown method 'repant'; choose one of repaint, latent, telea, navier-stokes"),
    (INPAINT + " --method latent", "diffusion models inpaint with --method repaint, not latent"),
    ("inpaint {vae} --image {img} --mask {hole} --out {out} --method repaint",
     "conv-vae models inpaint with --method latent, not repaint"),
    ("inpaint --image {img} --mask {hole} --out {out} --method repaint", "--method repaint needs a trained run"),
    (INPAINT + " --method telea", "--method telea uses no trained model, so a run cannot apply"),
    ("inpaint --image {img} --mask {hole} --out {out} --method telea --steps 5", "so steps cannot apply"),
    ("inpaint --image {img} --mask {hole} --out {out} --label 3", "so labels cannot apply"),
    (INPAINT + " --iterations 5", "iterations does not apply to --method repaint"),
    ("inpaint {vae} --image {img} --mask {hole} --out {out} --steps 5", "steps does not apply to --method latent"),
    (INPAINT + " --steps 0", "--steps must be at least 1"),
    (INPAINT + " --steps 500", "steps must be a whole number in 1..100"),
    (INPAINT + " --jump-length 0", "--jump-length must be at least 1"),
    (INPAINT + " --resamplings 0", "--resamplings must be at least 1"),
    (INPAINT + " --steps 5", "jump_length (5) must be below steps (5)"),
    (INPAINT + " --label 10", "labels must be in 0..9"),
    ("inpaint {udiff} --image {img} --mask {hole} --out {out} --label 1", "unconditional and takes no labels"),
    ("inpaint {vae} --image {img} --mask {hole} --out {out} --label 1", "unconditional and takes no labels"),
    (INPAINT + " --guidance 2", "give the image's label with it"),
    ("inpaint {udiff} --image {img} --mask {hole} --out {out} --guidance 2", "needs a conditional model"),
    ("inpaint {vae} --image {img} --mask {hole} --out {out} --iterations 0", "--iterations must be at least 1"),
    ("inpaint {diff} --image {img} --mask {hole} --out {nodir_out}", "does not exist; create it"),
    ("inpaint {diff} --image {img} --mask {hole} --out {txt_out}", "give a file name ending in .png"),
    # aigckit eval
    ("eval {missing}", "has no config.yaml"),
    ("eval {emptydir}", "has no config.yaml"),
    ("eval {diff} --n 0", "--n must be at least 4"),
    ("eval {diff} --n 3", "--n must be at least 4"),
    ("eval {lm} --n 1", "--n must be at least 2 for a language model"),
    ("eval {diff} --n 8 --extractor incepton", "--extractor must be one of evaluator, inception"),
    ("eval {diff} --n 8 --extractor inception", "--extractor inception needs --inception-weights FILE"),
    ("eval {diff} --n 8 --extractor inception --inception-weights {missing}", "is not a file"),
    ("eval {diff} --n 8 --inception-weights {file}", "--inception-weights is for --extractor inception"),
    ("eval {diff} --n 8 --sampler ddmi", "unknown sampler 'ddmi'"),
    ("eval {diff} --n 8 --steps 0", "steps must be a whole number in 1..100"),
    ("eval {diff} --n 8 --guidance -1", "guidance must be a number >= 0"),
    ("eval {udiff} --n 8 --guidance 2", "guidance needs a conditional model"),
    ("eval {diff} --n 8 --sweep a", "--sweep takes step counts"),
    ("eval {diff} --n 8 --sweep 0,10", "--sweep step counts must be at least 1"),
    ("eval {diff} --n 8 --sweep 5,500", "steps must be a whole number in 1..100"),
    ("eval {gan} --n 8 --sweep 5", "dcgan models do not have; drop --sweep"),
    ("eval {gan} --n 8 --sampler ddim", "sampler does not apply to dcgan models"),
    ("eval {lm} --n 8 --sampler ddim", "holds a language model; --sampler applies to image models only"),
    ("eval {diff} --n 8 --seed -5", "--seed must be a whole number"),
    # aigckit compare
    ("compare {emptydir} --out {report}", "is not a run directory (no config.yaml)"),
    ("compare {missing} --out {report}", "does not exist; give run directories"),
    ("compare {diff} {diff} --out {report}", "given twice"),
    ("compare {diff} --out {file}", "is a file; give a folder"),
    ("compare {diff} --out {nodir_report}", "does not exist; create it"),
    # aigckit train
    ("train {strcfg} --run-dir {run}", "holds a str, not a mapping"),
    ("train {bincfg} --run-dir {run}", "is not UTF-8 text"),
    ("train {emptydir} --run-dir {run}", "is a folder, not a file"),
    ("train {missing}.yaml --run-dir {run}", "does not exist"),
    ("train {dcgan_yaml} model.preset=tiny --run-dir {file}", "is a file; give a folder"),
    ("train {dcgan_yaml} model.preset=tiny --num-processes 0 --run-dir {run}", "--num-processes must be at least 1"),
    ("train {dcgan_yaml} --init gpt2 --run-dir {run}", "--init fine-tunes a pretrained language model"),
    ("train {dcgan_yaml} data.name=mnsit --run-dir {run}", "did you mean 'mnist'"),
    ("train {dcgan_yaml} model.lr_g=abc --run-dir {run}", "model.lr_g: expected float"),
    ("train {dcgan_yaml} train.precision=fp16 --run-dir {run}", "train.precision: expected 'auto' | 'fp32' | 'bf16'"),
    ("train {dcgan_yaml} train.max_stepz=3 --run-dir {run}", "did you mean train.max_steps"),
    ("train {dcgan_yaml} model.preset=tiny --resume --run-dir {run}", "no complete checkpoint to resume"),
    ("train {dcgan_yaml} model.preset=tiny --run-dir {gan}", "already holds a run; pass --resume"),
]


@pytest.mark.parametrize("line, message", CASES, ids=[line for line, _ in CASES])
def test_a_bad_input_is_one_error_line_exit_2_and_writes_nothing(places, tmp_path, line, message):
    fresh = {"out": tmp_path / "out.png", "nodir_out": tmp_path / "nodir" / "out.png", "jpg_out": tmp_path / "out.jpg",
             "txt_out": tmp_path / "out.txt", "report": tmp_path / "report", "nodir_report": tmp_path / "nodir" / "r",
             "run": tmp_path / "run"}
    result = runner.invoke(app, shlex.split(line.format(**places, **fresh)))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output + result.stderr
    assert not any(path.exists() for path in fresh.values()), "a refused command wrote its output"
    assert not list(tmp_path.glob(".*.tmp")), "a refused command left a temporary file"
    assert not any((Path(places[name]) / "eval").exists() for name in (*RUNS, "lm")), "a refused eval wrote"
    assert not any(Path(places["emptydir"]).iterdir())


def test_the_same_runs_serve_good_inputs(places, tmp_path):
    """The catalogue's runs are fine: each command succeeds on them, so the refusals above are about the inputs."""
    out = tmp_path / "ok.png"
    for line in ("sample {diff} --n 2 --labels 3 --sampler ddim --steps 2 --eta 0.5 --guidance 2 --out {out}",
                 "sample {ckpts}/step-000001 --n 2 --steps 1 --out {out}",
                 "sample {gan} --n 2 --out {out}",
                 "inpaint {diff} --image {img} --mask {hole} --steps 3 --jump-length 1 --resamplings 2 --label 3 "
                 "--guidance 2 --out {out}",
                 "inpaint {vae} --image {img} --mask {hole} --iterations 3 --out {out}",
                 "inpaint --image {img} --mask {hole} --method navier-stokes --out {out}"):
        result = runner.invoke(app, shlex.split(line.format(**places, out=out)))
        assert result.exit_code == 0, (line, result.output)
        assert out.stat().st_size > 0
        out.unlink()
