import json

import pytest
import torch

from aigckit import load
from aigckit.checkpoint import _manifest_digest, from_pretrained, latest_checkpoint
from aigckit.errors import CheckpointError
from aigckit.training import Trainer
from helpers import tiny_config


@pytest.fixture
def run_dir(tmp_path):
    Trainer(tiny_config({"name": "dcgan", "conditional": True}), tmp_path / "run", show_progress=False).fit()
    return tmp_path / "run"


def test_load_returns_a_pipeline_that_samples_and_saves(run_dir, tmp_path):
    pipeline = load(run_dir)
    images = pipeline.sample(4, labels=[3, 1, 4, 1], seed=7)
    assert torch.equal(images, pipeline.sample(4, labels=[3, 1, 4, 1], seed=7))
    assert images.shape == (4, 1, 8, 8)
    assert pipeline.to_pil(images)[0].size == (8, 8)
    assert pipeline.save_grid(images, tmp_path / "grid.png", nrow=2).stat().st_size > 0


def test_a_tampered_weights_file_is_refused(run_dir):
    weights = latest_checkpoint(run_dir) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the tensor data: still parses as safetensors
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged or was modified"):
        from_pretrained(latest_checkpoint(run_dir), use_ema=False)


def test_a_truncated_weights_file_is_refused_even_without_a_manifest_hash(run_dir):
    checkpoint = latest_checkpoint(run_dir)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    manifest = json.loads((checkpoint / "config.json").read_text())
    del manifest["files"]["model.safetensors"]  # so the safetensors reader itself meets the damage
    manifest["config_sha256"] = _manifest_digest(manifest)
    (checkpoint / "config.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        from_pretrained(checkpoint, use_ema=False)


def test_pickles_are_never_loaded(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="never pickles"):
        from_pretrained(tmp_path)


def test_a_newer_format_is_refused_with_a_message(run_dir):
    checkpoint = latest_checkpoint(run_dir)
    manifest = json.loads((checkpoint / "config.json").read_text())
    manifest["format_version"] = 99
    (checkpoint / "config.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="newer aigckit"):
        from_pretrained(checkpoint)


def test_an_existing_run_is_not_overwritten_without_resume(run_dir):
    with pytest.raises(CheckpointError, match="--resume"):
        Trainer(tiny_config({"name": "dcgan"}), run_dir, show_progress=False)


def test_weights_packed_in_one_buffer_save_and_tied_weights_stay_tied(tmp_path):
    from aigckit.checkpoint import save_pretrained
    from aigckit.family import FAMILIES
    from aigckit.models.lm import LMConfig

    family = FAMILIES.get("lm")
    lstm = family.build(LMConfig(name="lstm", vocab_size=20, block_size=8, n_layer=2, n_embd=8, hidden_size=8))
    weights = [p for name, p in lstm.lstm.named_parameters()]
    packed = torch.cat([p.detach().flatten() for p in weights])  # as cuDNN packs an LSTM's weights on a GPU
    offset = 0
    for p in weights:
        p.data = packed[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    gpt = family.build(LMConfig(name="gpt", vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8))
    tokens = torch.randint(0, 20, (2, 8))
    for model in (lstm, gpt):
        folder = tmp_path / model.config.name
        folder.mkdir()
        save_pretrained(folder, model, "lm")
        loaded = from_pretrained(folder)
        assert torch.equal(model.eval()(tokens)[0], loaded(tokens)[0])
    assert loaded.lm_head.weight is loaded.wte.weight


def test_an_edited_config_json_is_refused(run_dir):
    checkpoint = latest_checkpoint(run_dir)
    manifest = json.loads((checkpoint / "config.json").read_text())
    manifest["model"]["z_dim"] += 1  # a plausible edit that would load into the wrong network
    (checkpoint / "config.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="config.json is damaged or was modified"):
        from_pretrained(checkpoint)


def test_the_core_imports_no_family():
    """config.py, checkpoint.py, registry.py and family.py must not import aigckit.models (DESIGN.md)."""
    import ast
    from pathlib import Path

    import aigckit

    package = Path(aigckit.__file__).parent
    for name in ("config.py", "checkpoint.py", "registry.py", "family.py", "errors.py", "atomic.py"):
        tree = ast.parse((package / name).read_text())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [m for m in imported if m.startswith(("models", "aigckit.models"))], name


def test_capabilities_are_declared_and_unknown_ones_raise():
    from aigckit.errors import AigcError
    from aigckit.family import FAMILIES

    assert FAMILIES.get("diffusion").supports("inpaint") and not FAMILIES.get("gan").supports("inpaint")
    with pytest.raises(ValueError, match="unknown capability"):
        FAMILIES.get("gan").supports("inpainting")
    with pytest.raises(AigcError, match="gan models cannot repaint.*diffusion, vae"):
        FAMILIES.get("gan").require("inpaint", "repaint an image")
    for name in FAMILIES:  # every declared capability is a real method
        family = FAMILIES.get(name)
        methods = {"inpaint": "inpaint", "log_likelihood": "log_likelihood", "encode": "reconstruct",
                   "training_flops": "training_flops_per_example", "text_samples": "write_samples"}
        for capability in family.capabilities:
            assert callable(getattr(family, methods[capability])), (name, capability)
