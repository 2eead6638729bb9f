"""Every input of `aigckit generate` and `aigckit watermark` a new user might get wrong: each is refused with one
'error: ...' line on stderr and exit code 2, never a traceback, and nothing on stdout."""

import json
import shutil
from pathlib import Path

import pytest
import transformers
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.config import DataConfig, config_from_dict
from aigckit.data.text import read_corpus
from aigckit.data.tokenizers import load_tokenizer, tokenizer_sha256
from aigckit.models.lm.watermark import Watermark
from aigckit.training import Trainer
from helpers import save_tiny_transformers_model, tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A tiny character-level GPT run (context 32), an image run, transformers directories and files to feed in."""
    root = tmp_path_factory.mktemp("text-commands")
    lm = config_from_dict({
        "model": {"name": "gpt", "preset": "tiny"},
        "data": {"name": "pydoc", "block_size": 32},
        "train": {"max_steps": 2, "batch_size": 8, "use_ema": False, "log_every": 1, "sample_every": 1000,
                  "checkpoint_every": 1000, "precision": "fp32"},
    })
    Trainer(lm, root / "run", show_progress=False).fit()
    Trainer(tiny_config({"name": "dcgan"}, train={"max_steps": 1, "precision": "fp32"}), root / "image",
            show_progress=False).fit()

    llama = transformers.LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                     bos_token_id=0, eos_token_id=0)
    save_tiny_transformers_model(root / "llama", llama)
    (root / "no-tokenizer").mkdir()
    for file in (root / "llama").glob("*.*"):
        if file.name != "tokenizer.json":
            shutil.copy(file, root / "no-tokenizer")
    vit = transformers.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                                 image_size=8, patch_size=4)
    transformers.ViTModel(vit).save_pretrained(root / "vit")  # an image encoder: no causal language model
    shutil.copy(root / "llama" / "tokenizer.json", root / "vit")

    shutil.copytree(root / "run", root / "damaged")
    weights = next((root / "damaged" / "checkpoints").iterdir()) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    shutil.copytree(root / "run", root / "no-tokenizer-run")
    (root / "no-tokenizer-run" / "tokenizer.json").unlink()

    (root / "empty").mkdir()
    (root / "file.txt").write_text("hello", encoding="utf-8")
    (root / "text.txt").write_text(read_corpus(DataConfig(name="pydoc"))[-300:], encoding="utf-8")
    (root / "nothing.txt").write_text("", encoding="utf-8")
    (root / "blank.txt").write_text(" \n\n ", encoding="utf-8")
    (root / "latin1.txt").write_bytes("Café au lait, s'il vous plaît.".encode("latin-1"))
    (root / "short.txt").write_text("a", encoding="utf-8")

    tokenizer = load_tokenizer(root / "run")
    vocab = tokenizer.vocab_size  # a GPT's logits cover exactly its vocabulary
    Watermark(key=1, vocab_size=vocab, tokenizer_sha256=tokenizer_sha256(tokenizer)).save(root / "key.json")
    Watermark(key=1, vocab_size=vocab + 7, tokenizer_sha256=tokenizer_sha256(tokenizer)).save(root / "vocab.json")
    Watermark(key=1, vocab_size=vocab, tokenizer_sha256="0" * 64).save(root / "tokenizer-key.json")
    (root / "foreign.json").write_text(json.dumps({"secret": 1}))
    names = ["run", "image", "llama", "no-tokenizer", "vit", "damaged", "no-tokenizer-run", "empty", "file.txt",
             "text.txt", "nothing.txt", "blank.txt", "latin1.txt", "short.txt", "key.json", "vocab.json",
             "tokenizer-key.json", "foreign.json"]
    return {"missing": str(root / "missing"), "new": str(root / "new-key.json"),
            **{name.split(".")[0].replace("-", "_"): str(root / name) for name in names}}


def refused(args, paths, fragment):
    result = runner.invoke(app, [a.format(**paths) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert fragment.format(**paths) in lines[0], lines[0]
    assert "Traceback" not in result.output and result.stdout == ""


GENERATE = [
    ("missing run", ["{missing}"], "{missing}"),  # the wording of these four is the run loader's
    ("empty directory", ["{empty}"], "{empty}"),
    ("a file for the run", ["{file}"], "{file}"),
    ("damaged checkpoint", ["{damaged}"], "damaged"),
    ("image run", ["{image}"], "holds an image model"),
    ("transformers dir without tokenizer", ["{no_tokenizer}"], "no tokenizer at"),
    ("not a causal LM", ["{vit}"], "cannot be loaded as a transformers causal language model"),
    ("no new tokens", ["{run}", "--max-new-tokens", "0"], "max_new_tokens must be at least 1"),
    ("negative new tokens", ["{run}", "--max-new-tokens", "-5"], "max_new_tokens must be at least 1"),
    ("temperature 0", ["{run}", "--temperature", "0"], "temperature must be a positive number"),
    ("negative temperature", ["{run}", "--temperature", "-1"], "temperature must be a positive number"),
    ("temperature nan", ["{run}", "--temperature", "nan"], "temperature must be a positive number"),
    ("temperature inf", ["{run}", "--temperature", "inf"], "temperature must be a positive number"),
    ("top-k 0", ["{run}", "--top-k", "0"], "top_k must be at least 1"),
    ("negative top-k", ["{run}", "--top-k", "-3"], "top_k must be at least 1"),
    ("top-p 0", ["{run}", "--top-p", "0"], "top_p must be in (0, 1]"),
    ("top-p above 1", ["{run}", "--top-p", "1.5"], "top_p must be in (0, 1]"),
    ("negative top-p", ["{run}", "--top-p", "-0.1"], "top_p must be in (0, 1]"),
    ("top-p nan", ["{run}", "--top-p", "nan"], "top_p must be in (0, 1]"),
    ("no beams", ["{run}", "--num-beams", "0"], "num_beams must be at least 1"),
    ("negative beams", ["{run}", "--num-beams", "-2"], "num_beams must be at least 1"),
    ("repetition penalty 0", ["{run}", "--repetition-penalty", "0"], "repetition_penalty must be a positive"),
    ("negative repetition penalty", ["{run}", "--repetition-penalty", "-1"], "repetition_penalty must be a positive"),
    ("repetition penalty nan", ["{run}", "--repetition-penalty", "nan"], "repetition_penalty must be a positive"),
    ("greedy with temperature", ["{run}", "--greedy", "--temperature", "0.5"], "--greedy takes the most likely"),
    ("greedy with top-k", ["{run}", "--greedy", "--top-k", "5"], "--greedy takes the most likely"),
    ("beams with top-p", ["{run}", "--num-beams", "2", "--top-p", "0.9"], "beam search (--num-beams > 1) does not"),
    ("beams with greedy", ["{run}", "--num-beams", "2", "--greedy"], "beam search (--num-beams > 1) does not"),
    ("beams with a watermark", ["{run}", "--num-beams", "2", "--watermark-key", "1"], "beam search"),
    ("negative seed", ["{run}", "--seed", "-1"], "--seed must be in"),
    ("seed beyond 64 bits", ["{run}", "--seed", str(2**64)], "--seed must be in"),
    ("empty stop string", ["{run}", "--stop", ""], "a stop string is empty"),
    ("prompt beyond the context", ["{run}", "--prompt", "x" * 40], "longer than the model's context of 32 tokens"),
    ("beam search beyond the context", ["{run}", "--num-beams", "2", "--max-new-tokens", "40"],
     "beam search keeps the whole sequence"),
    ("transformers model beyond its positions", ["{llama}", "--max-new-tokens", "100"],
     "exceed the model's context of 64 tokens (this model cannot slide its window)"),
    ("watermark option without a key", ["{run}", "--watermark-gamma", "0.5"], "need --watermark-key"),
    ("watermark gamma 0", ["{run}", "--watermark-key", "1", "--watermark-gamma", "0"], "gamma"),
    ("watermark gamma 1", ["{run}", "--watermark-key", "1", "--watermark-gamma", "1"], "gamma"),
    ("watermark gamma nan", ["{run}", "--watermark-key", "1", "--watermark-gamma", "nan"], "gamma"),
    ("watermark gamma all green", ["{run}", "--watermark-key", "1", "--watermark-gamma", "0.999"],
     "on the green list"),
    ("negative watermark delta", ["{run}", "--watermark-key", "1", "--watermark-delta", "-1"], "delta"),
    ("watermark delta nan", ["{run}", "--watermark-key", "1", "--watermark-delta", "nan"], "delta"),
    ("watermark context 0", ["{run}", "--watermark-key", "1", "--watermark-context", "0"], "context width"),
    ("negative watermark key", ["{run}", "--watermark-key", "-3"], "key must be a non-negative integer"),
    ("missing key file", ["{run}", "--watermark-key", "{missing}.json"], "no watermark key file at"),
    ("key file not JSON", ["{run}", "--watermark-key", "{file}"], "not a watermark key file"),
    ("foreign JSON key", ["{run}", "--watermark-key", "{foreign}"], "not an aigckit text-watermark key"),
    ("key for another vocabulary", ["{run}", "--watermark-key", "{vocab}"], "was made for a vocabulary of"),
    ("key for another tokenizer", ["{run}", "--watermark-key", "{tokenizer_key}"], "another tokenizer"),
    ("key file with gamma", ["{run}", "--watermark-key", "{key}", "--watermark-gamma", "0.5"], "fixes gamma"),
    ("base model for a run without LoRA", ["{run}", "--base-model", "{empty}"], "is not a LoRA run"),
    ("missing base model", ["{run}", "--base-model", "{missing}"], "is not a directory"),
    ("base model for a transformers directory", ["{llama}", "--base-model", "{empty}"], "is not a LoRA run"),
]


@pytest.mark.parametrize("args, fragment", [pytest.param(a, f, id=i) for i, a, f in GENERATE])
def test_generate_refuses_what_it_cannot_serve_in_one_line(paths, args, fragment):
    refused(["generate", *args], paths, fragment)


DETECT = [
    ("missing file", ["{missing}", "--run", "{run}", "--key", "1"], "no file at"),
    ("a directory for the file", ["{empty}", "--run", "{run}", "--key", "1"], "is not a file"),
    ("empty file", ["{nothing}", "--run", "{run}", "--key", "1"], "is empty"),
    ("blank file", ["{blank}", "--run", "{run}", "--key", "1"], "is empty"),
    ("not UTF-8", ["{latin1}", "--run", "{run}", "--key", "1"], "is not UTF-8 text"),
    ("too short", ["{short}", "--run", "{run}", "--key", "1"], "the watermark test needs more than 1"),
    ("missing run", ["{text}", "--run", "{missing}", "--key", "1"], "no run directory at"),
    ("empty run directory", ["{text}", "--run", "{empty}", "--key", "1"], "{empty}"),
    ("image run", ["{text}", "--run", "{image}", "--key", "1"], "holds an image model"),
    ("damaged run", ["{text}", "--run", "{damaged}", "--key", "1"], "damaged"),
    ("run without tokenizer", ["{text}", "--run", "{no_tokenizer_run}", "--key", "1"], "no tokenizer.json in"),
    ("negative key", ["{text}", "--run", "{run}", "--key", "-1"], "key must be a non-negative integer"),
    ("missing key file", ["{text}", "--run", "{run}", "--key", "{missing}.json"], "no watermark key file at"),
    ("key file not JSON", ["{text}", "--run", "{run}", "--key", "{file}"], "not a watermark key file"),
    ("foreign JSON key", ["{text}", "--run", "{run}", "--key", "{foreign}"], "not an aigckit text-watermark key"),
    ("key for another vocabulary", ["{text}", "--run", "{run}", "--key", "{vocab}"], "was made for a vocabulary"),
    ("key for another tokenizer", ["{text}", "--run", "{run}", "--key", "{tokenizer_key}"], "another tokenizer"),
    ("key file with gamma", ["{text}", "--run", "{run}", "--key", "{key}", "--gamma", "0.5"], "fixes gamma"),
    ("key file with context", ["{text}", "--run", "{run}", "--key", "{key}", "--context-width", "2"],
     "fixes context_width"),
    ("gamma 0", ["{text}", "--run", "{run}", "--key", "1", "--gamma", "0"], "gamma"),
    ("gamma 1", ["{text}", "--run", "{run}", "--key", "1", "--gamma", "1"], "gamma"),
    ("gamma nan", ["{text}", "--run", "{run}", "--key", "1", "--gamma", "nan"], "gamma"),
    ("context 0", ["{text}", "--run", "{run}", "--key", "1", "--context-width", "0"], "context width"),
    ("threshold nan", ["{text}", "--run", "{run}", "--key", "1", "--threshold", "nan"], "--threshold must be"),
]


@pytest.mark.parametrize("args, fragment", [pytest.param(a, f, id=i) for i, a, f in DETECT])
def test_watermark_detect_refuses_what_it_cannot_serve_in_one_line(paths, args, fragment):
    refused(["watermark", "detect", *args], paths, fragment)


KEY = [
    ("existing key file", ["--run", "{run}", "--out", "{file}"], "already exists"),
    ("image run", ["--run", "{image}", "--out", "{new}"], "holds an image model"),
    ("missing run", ["--run", "{missing}", "--out", "{new}"], "no run directory at"),
    ("gamma 1", ["--run", "{run}", "--out", "{new}", "--gamma", "1"], "gamma"),
    ("negative delta", ["--run", "{run}", "--out", "{new}", "--delta", "-2"], "delta"),
    ("negative key", ["--run", "{run}", "--out", "{new}", "--key", "-5"], "key must be a non-negative integer"),
]


@pytest.mark.parametrize("args, fragment", [pytest.param(a, f, id=i) for i, a, f in KEY])
def test_watermark_key_refuses_what_it_cannot_serve_in_one_line(paths, args, fragment):
    refused(["watermark", "key", *args], paths, fragment)
    assert not Path(paths["new"]).exists()


def test_the_same_commands_with_sound_inputs_succeed(paths, tmp_path):
    key = tmp_path / "key.json"
    assert runner.invoke(app, ["watermark", "key", "--run", paths["run"], "--out", str(key)]).exit_code == 0
    generated = runner.invoke(app, ["generate", paths["run"], "--prompt", "x" * 32, "--max-new-tokens", "40",
                                    "--top-k", "5", "--top-p", "0.9", "--temperature", "0.8", "--seed", "3",
                                    "--watermark-key", str(key), "--stop", "zzzz"])
    assert generated.exit_code == 0 and len(generated.stdout) == 41  # slides past the 32-token context
    (tmp_path / "text.txt").write_text(generated.stdout, encoding="utf-8")
    detected = runner.invoke(app, ["watermark", "detect", str(tmp_path / "text.txt"), "--run", paths["run"],
                                   "--key", str(key), "--json"])
    assert detected.exit_code == 0 and "z" in json.loads(detected.stdout)
    beams = runner.invoke(app, ["generate", paths["run"], "--num-beams", "2", "--max-new-tokens", "8"])
    assert beams.exit_code == 0 and beams.stdout
    assert runner.invoke(app, ["generate", paths["llama"], "--max-new-tokens", "10", "--greedy"]).exit_code == 0
