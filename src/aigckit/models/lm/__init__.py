"""Language-model family: GPT (causal or masked-LM encoder), LSTM and transformers models over token ids."""

from .config import LMConfig
from .family import LMFamily
from .hf import TransformersCausalLM, gpt_from_transformers
from .mlm import fill_masks

__all__ = ["LMConfig", "LMFamily", "TransformersCausalLM", "gpt_from_transformers", "fill_masks"]
