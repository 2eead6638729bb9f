"""Hugging Face interop on randomly initialised models saved locally: no download anywhere."""

import pytest
import torch
import transformers
from typer.testing import CliRunner

from aigckit import load
from aigckit.cli import app
from aigckit.config import config_from_dict
from aigckit.data import load_dataset
from aigckit.evaluation.language import validation_loss
from aigckit.models.lm import gpt_from_transformers
from aigckit.models.lm.generation import generate_tokens
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
        logits, past = ours(tokens[:, :30])
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
