"""Hugging Face interop on randomly initialised models saved locally: no download anywhere."""

import json
import shutil

import pytest
import torch
import transformers
from typer.testing import CliRunner

from aigckit import load
from aigckit.checkpoint import latest_checkpoint
from aigckit.cli import app
from aigckit.config import config_from_dict
from aigckit.data import load_dataset
from aigckit.data.tokenizers import load_tokenizer, tokenizer_sha256
from aigckit.errors import CheckpointError
from aigckit.evaluation.language import validation_loss
from aigckit.models.lm import gpt_from_transformers
from aigckit.models.lm.generation import generate_tokens
from aigckit.models.lm.hf import weights_sha256
from aigckit.models.lm.watermark import Watermark
from aigckit.training import Trainer
from helpers import save_tiny_transformers_model, tiny_gpt2_config


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    return folder, save_tiny_transformers_model(folder, tiny_gpt2_config())


def test_gpt2_checkpoint_gives_the_same_logits_in_our_gpt(gpt2_dir):
    folder, reference = gpt2_dir
    ours = gpt_from_transformers(folder)
    tokens = torch.randint(0, 300, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(input_ids=tokens).logits
        logits, past = ours(tokens[:, :30], use_cache=True)
        incremental, _ = ours(tokens[:, 30:], past)  # the KV cache continues where the prompt ended
    assert torch.allclose(logits, expected[:, :30], atol=1e-4)
    assert torch.allclose(incremental, expected[:, 30:], atol=1e-4)


def test_generate_accepts_a_transformers_directory_and_matches_generate(gpt2_dir):
    folder, reference = gpt2_dir
    pipeline = load(folder)
    prompt = "The "
    ids = pipeline.tokenizer.encode(prompt)
    expected = reference.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False,
                                  pad_token_id=0)[0, len(ids):].tolist()
    assert pipeline.generate(prompt, max_new_tokens=12, greedy=True) == pipeline.tokenizer.decode(expected)
    result = CliRunner().invoke(app, ["generate", str(folder), "--prompt", prompt, "--max-new-tokens", "12",
                                      "--greedy"])
    assert result.exit_code == 0 and result.stdout == pipeline.tokenizer.decode(expected) + "\n"


def test_any_causal_lm_runs_through_our_generation(tmp_path, gpt2_dir):
    config = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                      bos_token_id=0, eos_token_id=0)
    reference = save_tiny_transformers_model(tmp_path, config, gpt2_dir[0] / "tokenizer.json")
    pipeline = load(tmp_path)
    prompt = torch.tensor([[5, 17, 42]])
    ours = torch.stack(list(generate_tokens(pipeline.model, prompt, max_new_tokens=10, greedy=True)), 1)
    expected = reference.generate(prompt, max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(ours[0], expected[0, 3:])


def hf_run(tmp_path, folder, **model):
    return config_from_dict({
        "model": {"name": "hf", "pretrained": str(folder), "lr": 1e-2, "weight_decay": 0.0, **model},
        "data": {"name": "pydoc", "tokenizer": str(folder), "block_size": 32},
        "train": {"max_steps": 40, "batch_size": 16, "use_ema": False, "log_every": 10, "sample_every": 1000,
                  "checkpoint_every": 1000},
    })


@pytest.mark.slow
@pytest.mark.parametrize("lora_r", [0, 4])
def test_fine_tuning_a_transformers_model_fully_or_with_lora(tmp_path, gpt2_dir, lora_r):
    folder, reference = gpt2_dir
    config = hf_run(tmp_path, folder, lora_r=lora_r)
    val_ids = load_dataset(config.data, "val").ids[:4000]
    trainer = Trainer(config, tmp_path / "run", show_progress=False)
    before, _ = validation_loss(trainer.model.eval(), val_ids)
    trainer.fit()
    after, _ = validation_loss(trainer.model.eval(), val_ids)
    assert after < before - 0.3, (before, after)

    trained = trainer.model.hf
    if lora_r:
        assert {n for n, p in trained.named_parameters() if p.requires_grad} == \
            {n for n, _ in trained.named_parameters() if "lora_" in n}
        base = trained.unload().state_dict()  # the network without its adapters
        assert all(torch.equal(base[k].cpu(), v) for k, v in reference.state_dict().items())
    else:
        assert not torch.equal(trained.transformer.h[0].attn.c_attn.weight.cpu(),
                               reference.transformer.h[0].attn.c_attn.weight)

    pipeline = load(tmp_path / "run")  # rebuilt from the run: base model directory + our safetensors
    loaded, _ = validation_loss(pipeline.model, val_ids)
    assert loaded == pytest.approx(after, abs=1e-4)
    assert len(pipeline.generate("The ", max_new_tokens=5, seed=0)) > 0


def test_init_from_the_hub_offline_says_what_to_do_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["train", "configs/gpt-pydoc.yaml", "--init", "gpt2", "--run-dir",
                                      str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2
    assert "hf download gpt2 --local-dir" in result.output
    assert not (tmp_path / "run").exists()


def test_a_pretrained_tokenizer_directory_without_tokenizer_json_loads_through_transformers(tmp_path, gpt2_dir):
    from aigckit.data.tokenizers import load_tokenizer

    ours = load_tokenizer(gpt2_dir[0])
    ours.tokenizer.model.save(str(tmp_path))  # vocab.json and merges.txt: GPT-2's original ("slow") format
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "GPT2Tokenizer"}')
    converted = load_tokenizer(tmp_path)
    text = "The assert statement, 春眠不觉晓 — and ümlauts."
    assert converted.decode(converted.encode(text)) == text
    assert converted.encode("def function(argument):") == ours.encode("def function(argument):")


# ---------------------------------------------------------------- a run directory rebuilds itself


def padded_gpt2_config():
    """The tiny GPT-2 with its embedding padded to 320 rows (20 more than its 300-token tokenizer has) and 256
    positions."""
    config = tiny_gpt2_config()
    config.vocab_size, config.n_positions = 320, 256
    return config


def short_hf_run(folder, train=None, **model):
    """Three fp32 steps of a transformers model on the pydoc text with the model's own tokenizer."""
    return config_from_dict({
        "model": {"name": "hf", "pretrained": str(folder), "lr": 1e-2, "weight_decay": 0.0, **model},
        "data": {"name": "pydoc", "tokenizer": str(folder), "block_size": 32},
        "train": {"max_steps": 3, "batch_size": 8, "use_ema": False, "ema_decay": 0.5, "log_every": 1,
                  "sample_every": 1000, "checkpoint_every": 1000, "precision": "fp32", **(train or {})},
    })


def one_error_line(result, fragment):
    """The command refused with exit code 2 and one 'error: ...' line holding `fragment`, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def padded_run(tmp_path_factory):
    """A fully fine-tuned run of the padded GPT-2, whose original directory is gone afterwards."""
    root = tmp_path_factory.mktemp("padded")
    save_tiny_transformers_model(root / "base", padded_gpt2_config())
    trainer = Trainer(short_hf_run(root / "base"), root / "run", show_progress=False)
    trainer.fit()
    shutil.rmtree(root / "base")
    return root / "run", trainer.model.eval().cpu()


def test_a_fully_fine_tuned_run_loads_without_its_model_directory_or_a_network(padded_run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run, trained = padded_run
    manifest = json.loads((latest_checkpoint(run) / "config.json").read_text())
    assert manifest["transformers_config"]["vocab_size"] == manifest["logits_size"] == 320
    pipeline = load(run)
    tokens = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, cache = pipeline.model(tokens)
        assert torch.equal(logits, trained(tokens)[0])
        assert cache is None  # an eval-mode forward keeps no key/value cache; only generation asks for one
    result = CliRunner().invoke(app, ["generate", str(run), "--prompt", "The ", "--max-new-tokens", "8", "--seed", "0"])
    assert result.exit_code == 0 and result.stdout == pipeline.generate("The ", max_new_tokens=8, seed=0) + "\n"


def test_generation_never_picks_the_padded_ids_beyond_the_tokenizer(padded_run):
    pipeline = load(padded_run[0])
    prompt = torch.zeros(64, 1, dtype=torch.long)
    with torch.no_grad():
        logits, _ = pipeline.model(prompt)
    assert logits[:, -1, 300:].softmax(-1).sum() > 0  # the model itself gives the padded ids probability
    new = torch.stack(list(generate_tokens(pipeline.model, prompt, max_new_tokens=30, allowed_tokens=300,
                                           generator=torch.Generator().manual_seed(0))), 1)
    assert new.max() < 300


def test_the_watermark_of_a_padded_model_is_drawn_over_its_logits_and_detected(padded_run, tmp_path):
    run = str(padded_run[0])
    runner = CliRunner()
    key = tmp_path / "key.json"
    assert runner.invoke(app, ["watermark", "key", "--run", run, "--out", str(key), "--key", "42",
                               "--delta", "4"]).exit_code == 0
    fields = json.loads(key.read_text())
    tokenizer = load_tokenizer(padded_run[0])
    assert (fields["vocab_size"], fields["green_list_size"], fields["effective_gamma"]) == (320, 80, 0.25)
    assert tokenizer.vocab_size == 300 and fields["tokenizer_sha256"] == tokenizer_sha256(tokenizer)

    generated = runner.invoke(app, ["generate", run, "--prompt", "The ", "--max-new-tokens", "200", "--seed", "0",
                                    "--watermark-key", str(key)])
    assert generated.exit_code == 0, generated.output
    text = tmp_path / "marked.txt"
    text.write_text(generated.stdout[:-1], encoding="utf-8")
    with_file = runner.invoke(app, ["watermark", "detect", str(text), "--run", run, "--key", str(key), "--json"])
    with_secret = runner.invoke(app, ["watermark", "detect", str(text), "--run", run, "--key", "42", "--json"])
    verdict = json.loads(with_file.stdout)
    assert verdict["watermarked"] and verdict["z"] > 4 and verdict["vocab_size"] == 320
    assert json.loads(with_secret.stdout)["z"] == verdict["z"]  # an integer key is bound to the same vocabulary
    # green lists over the tokenizer's 300 ids (what the detector used to draw) find nothing
    assert Watermark(key=42, vocab_size=300).score(tokenizer.encode(text.read_text())).z < 4

    other = tmp_path / "other.json"
    Watermark(key=42, vocab_size=300, tokenizer_sha256=fields["tokenizer_sha256"]).save(other)
    one_error_line(runner.invoke(app, ["watermark", "detect", str(text), "--run", run, "--key", str(other)]),
                   "made for a vocabulary of 300 tokens but this model has 320")
    one_error_line(runner.invoke(app, ["generate", run, "--watermark-key", str(other)]),
                   "made for a vocabulary of 300 tokens but this model has 320")


def test_a_lora_run_keeps_only_peft_adapters_and_refuses_another_base(tmp_path):
    base = tmp_path / "base"
    reference = save_tiny_transformers_model(base, padded_gpt2_config())
    trainer = Trainer(short_hf_run(base, {"use_ema": True}, lora_r=4), tmp_path / "run", show_progress=False)
    trainer.fit()
    checkpoint = latest_checkpoint(tmp_path / "run")
    manifest = json.loads((checkpoint / "config.json").read_text())
    assert manifest["base_model"] == {"path": str(base), "sha256": weights_sha256(base)}
    for name in ("model", "ema"):
        assert sorted(p.name for p in (checkpoint / name).iterdir()) == ["adapter_config.json",
                                                                         "adapter_model.safetensors"]
    base_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    checkpoint_bytes = sum(p.stat().st_size for p in checkpoint.rglob("*") if p.is_file())
    assert checkpoint_bytes < base_bytes / 4, (checkpoint_bytes, base_bytes)  # no copy of the frozen base

    from peft import PeftModel  # peft itself reads the adapter folder onto the base

    tokens = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    pipeline = load(tmp_path / "run", use_ema=False)
    with torch.no_grad():
        ours = pipeline.model(tokens)[0]
        by_peft = PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(base),
                                            checkpoint / "model").eval()(input_ids=tokens).logits
        assert torch.allclose(by_peft, ours, atol=1e-5)
        assert not torch.allclose(reference(input_ids=tokens).logits, ours, atol=1e-3)  # the adapters trained
        assert torch.equal(trainer.model.eval().cpu()(tokens)[0], ours)

    runner = CliRunner()
    base.rename(tmp_path / "moved")
    one_error_line(runner.invoke(app, ["generate", str(tmp_path / "run"), "--max-new-tokens", "5"]),
                   "not there any more")
    moved = runner.invoke(app, ["generate", str(tmp_path / "run"), "--max-new-tokens", "5", "--seed", "0",
                                "--base-model", str(tmp_path / "moved")])
    assert moved.exit_code == 0, moved.output

    torch.manual_seed(1)  # another random model of the same shape at the original path
    transformers.AutoModelForCausalLM.from_config(padded_gpt2_config()).save_pretrained(base)
    one_error_line(runner.invoke(app, ["generate", str(tmp_path / "run"), "--max-new-tokens", "5"]),
                   "is not the one this LoRA checkpoint was trained on")
    with pytest.raises(CheckpointError, match="is not the one this LoRA checkpoint was trained on"):
        load(tmp_path / "run")


def test_a_resumed_lora_run_equals_an_unbroken_one(tmp_path):
    save_tiny_transformers_model(tmp_path / "base", tiny_gpt2_config())

    def run(name, max_steps, resume=False):
        config = short_hf_run(tmp_path / "base", {"use_ema": True, "max_steps": max_steps, "checkpoint_every": 2},
                              lora_r=4)
        trainer = Trainer(config, tmp_path / name, resume=resume, show_progress=False)
        trainer.fit()
        return trainer

    unbroken = run("unbroken", 4)
    run("broken", 2)
    resumed = run("broken", 4, resume=True)  # adapters, EMA adapters and optimizer state come back through peft files
    for live, again in ((unbroken.model, resumed.model), (unbroken.ema.model, resumed.ema.model)):
        for (name, a), b in zip(live.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), name
