"""Symbolic (sympy) accounting of parameters, FLOPs, memory and time for a Transformer LM.

Imports no torch. The model configuration and presets shared by the whole project live here
(`ModelConfig`, `get_preset`, `list_presets`).
"""

from accounting.config import GPT2_PRESETS, ModelConfig, get_preset, list_presets

__all__ = ["GPT2_PRESETS", "ModelConfig", "get_preset", "list_presets"]
