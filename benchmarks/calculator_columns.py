"""One column of the accuracy ledger per calculator: each called the way its documentation shows,
on the settings of bench_calculators, returning {(quantity, setting): Cell}. A missing package
gives one "not installed" cell with its install command. Each cell's note says why its value
differs from the ground truth (a convention or an error); bench_calculators prints the notes.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LLM_ANALYSIS_PYTHON = ROOT / ".venv-llm-analysis" / "bin" / "python"
LLM_ANALYSIS_GPU = "a100-sxm-80gb"


@dataclass(frozen=True)
class Training:
    """One training step: AdamW, float32 or bf16 mixed precision ("bfloat16")."""

    label: str
    dtype: str
    batch_size: int
    seq_len: int


@dataclass(frozen=True)
class Inference:
    """Weights in bf16 plus the KV cache after `tokens` tokens per row."""

    batch_size: int
    tokens: int
    label: str = "inference"


@dataclass(frozen=True)
class Cell:
    value: int | None
    note: str = ""


Key = tuple[str, str]  # (quantity, setting label; "" for the model itself)
Column = dict[Key, Cell]
MODEL = ""


def not_installed(command: str) -> Column:
    return {("parameters", MODEL): Cell(None, f"not installed: {command}")}


def _quiet(fn, *args, **kwargs):
    """Call fn with its prints (tables, banners) swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- calflops

def calflops_column(hf_config: dict, trainings: tuple[Training, ...], truth_forward: int,
                    truth_attention: int) -> Column:
    """calflops.calculate_flops on HF's model (default attention, sdpa) built on meta, fed
    input_ids of (B, T); training = its include_backPropagation (backward = 2x forward)."""
    try:
        from calflops import calculate_flops
    except ImportError:
        return not_installed("pip install calflops")
    import torch

    from validation.hf_reference import hf_model

    t = trainings[0]
    ids = torch.zeros(t.batch_size, t.seq_len, dtype=torch.long, device="meta")

    def count(attn: str, backward: bool) -> tuple[int, int]:
        flops, _macs, params = _quiet(calculate_flops, hf_model(hf_config, attn_implementation=attn),
                                      kwargs={"input_ids": ids}, include_backPropagation=backward,
                                      print_results=False, print_detailed=False, output_as_string=False)
        return int(flops), int(params)

    forward, params = count("sdpa", False)
    step, _ = count("sdpa", True)
    eager, _ = count("eager", False)
    conv1d = ("; GPT-2's Conv1D (addmm) is counted once on meta: the issue's +86% is not reproduced"
              if hf_config["model_type"] == "gpt2" else "")
    return {
        ("parameters", MODEL): Cell(params),
        ("forward_flops", MODEL): Cell(forward, (
            f"F.scaled_dot_product_attention has no calflops formula, so sdpa's attention core "
            f"({truth_attention:,}) is missing, while element-wise ops (softmax, activation, norms, "
            f"{forward - truth_forward + truth_attention:,}) are added; with attn_implementation='eager' it "
            f"counts {eager:,} ({(eager - truth_forward) / truth_forward:+.2%}){conv1d}")),
        ("train_step_flops", MODEL): Cell(step, "3 x its forward (compute_bp_factor=2): inherits the "
                                               "forward's miss; the measured backward also recomputes QK^T "
                                               "(flash)"),
    }


# ---------------------------------------------------------------- DeepSpeed

def deepspeed_columns(hf_config: dict, trainings: tuple[Training, ...], parameters: int) -> tuple[Column, Column]:
    """ZeRO-2 and ZeRO-3 model-state estimators on one GPU without offload. The parameter count
    is what their `_all_live(model)` path derives from the meta model; the bytes are their
    `_all_cold(total_params=...)` path given the true count."""
    try:  # its import logs "Setting accelerator to CPU" to stdout
        with contextlib.redirect_stdout(io.StringIO()):
            import deepspeed  # noqa: F401
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage3 import model_to_params as zero3_params
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import model_to_params as zero2_params
    except ImportError:
        cell = not_installed("DS_BUILD_OPS=0 pip install deepspeed")
        return cell, cell
    from validation.hf_reference import hf_model

    model = hf_model(hf_config)
    live = zero2_params(model)
    _, largest_layer = zero3_params(model)
    live_note = ("its _all_live(model) path dedups parameters by data_ptr(), which is 0 for every "
                 f"meta tensor: only the last parameter tensor survives ({live:,} elements)")
    _, zero2_bytes = estimate_zero2_model_states_mem_needs(parameters, 1, 1, cpu_offload=False)
    _, zero3_bytes, _ = estimate_zero3_model_states_mem_needs(parameters, largest_layer, 1, 1, cpu_offload=False,
                                                             cpu_offload_params=False)
    columns = []
    for gpu_bytes, extra in ((zero2_bytes, ""),
                             (zero3_bytes, f"; + 4 bytes x the largest layer ({largest_layer:,} parameters)")):
        column = {("parameters", MODEL): Cell(live, live_note)}
        for t in trainings:
            mode = "no fp32 mode: " if t.dtype == "float32" else ""
            column[("model_state_bytes", t.label)] = Cell(int(gpu_bytes), (
                f"{mode}always 20 bytes/parameter (16-bit weights and gradients + fp32 gradients, master "
                f"weights, m, v), from the true parameter count (the _all_cold path){extra}; no activations"))
        columns.append(column)
    return columns[0], columns[1]


# ---------------------------------------------------------------- accelerate

def accelerate_column(hf_config: dict, trainings: tuple[Training, ...], inference: Inference | None) -> Column:
    """What `accelerate estimate-memory` computes, on a model built the way its create_empty_model
    builds one (AutoModel under init_empty_weights, float32), without the hub."""
    try:
        from accelerate import init_empty_weights
        from accelerate.commands.estimate import estimate_training_usage
        from accelerate.utils import calculate_maximum_sizes
    except ImportError:
        return not_installed("pip install accelerate")
    import torch
    from transformers import AutoModel

    from validation.hf_reference import hf_pretrained_config

    with init_empty_weights():
        model = AutoModel.from_config(hf_pretrained_config(hf_config), dtype=torch.float32)
    total_bytes, _largest = calculate_maximum_sizes(model)
    tied = hf_config.get("tie_word_embeddings", True)
    column = {("parameters", MODEL): Cell(total_bytes // 4, (
        "its fp32 total bytes / 4, buffers included; the CLI builds AutoModel, the model without its LM head"
        + (" (tied here: nothing lost)" if tied else "")))}
    no_head = "over AutoModel's size (no LM head)"
    for t in trainings:
        usage = estimate_training_usage(total_bytes, t.dtype)
        grads = "fp32 + fp16 gradients (6 bytes/parameter)" if t.dtype == "bfloat16" else "fp32"
        copy = " (no bf16 working copy)" if t.dtype == "bfloat16" else ""
        column[("weight_bytes", t.label)] = Cell(usage["model"], f"fp32 weights{copy}, {no_head}")
        column[("gradient_bytes", t.label)] = Cell(usage["gradients"], f"{grads}, {no_head}")
        column[("optimizer_bytes", t.label)] = Cell(usage["optimizer"], f"Adam m and v, {no_head}")
        column[("model_state_bytes", t.label)] = Cell(usage["model"] + usage["gradients"] + usage["optimizer"],
                                                      "the sum of its model, gradients and optimizer entries "
                                                      f"(the CLI prints no sum), {no_head}")
        column[("peak_bytes", t.label)] = Cell(max(usage.values()), (
            "the CLI's 'Training using Adam' is max(model, gradients, optimizer, step), not a sum, and has "
            "no activations" + ("; in bf16 that max is the optimizer alone (8 bytes/parameter)"
                                if t.dtype == "bfloat16" else "")))
    if inference is not None:
        column[("inference_weight_bytes", inference.label)] = Cell(total_bytes // 2, (
            f"the CLI's float16 'Total Size' (fp32 bytes / 2), {no_head}"))
    return column


# ---------------------------------------------------------------- llm-analysis

def llm_analysis_model(hf_config: dict) -> dict[str, Any] | str:
    """A built-in llm-analysis config name when it has one, else its ModelConfig fields mapped from
    config.json (what a user writes: its hub lookup needs the network)."""
    if hf_config["model_type"] == "gpt2":
        return {1600: "gpt2-xl", 1280: "gpt2-large", 1024: "gpt2-medium", 768: "gpt2"}[hf_config["n_embd"]]
    d, f = hf_config["hidden_size"], hf_config["intermediate_size"]
    return {"name": f"hf-{hf_config['model_type']}-{d}-{hf_config['num_hidden_layers']}",
            "num_layers": hf_config["num_hidden_layers"], "n_head": hf_config["num_attention_heads"],
            "hidden_dim": d, "vocab_size": hf_config["vocab_size"],
            "max_seq_len": hf_config["max_position_embeddings"],
            "num_key_value_heads": hf_config["num_key_value_heads"],
            "ffn_embed_dim": f, "expansion_ratio": f / d,  # both, or its __post_init__ asserts d | f
            "model_type": hf_config["model_type"]}


def llm_analysis_column(hf_config: dict, trainings: tuple[Training, ...], inference: Inference | None) -> Column:
    """llm-analysis train() / infer() on an A100-80GB config, bf16 weights (w16a16e16), Adam with
    fp32 master weights, flash attention on; run in its own venv (see the bench's docstring)."""
    if not LLM_ANALYSIS_PYTHON.exists():
        return not_installed("python -m venv .venv-llm-analysis && "
                             ".venv-llm-analysis/bin/pip install llm-analysis")
    column: Column = {}
    gated = hf_config.get("hidden_act") == "silu"
    for i, t in enumerate(trainings):
        if t.dtype == "float32":
            column[("weight_bytes", t.label)] = Cell(None, "n/a: no 32-bit dtype config "
                                                           "(weights of 4, 8 or 16 bits)")
            continue
        request = {"model": llm_analysis_model(hf_config), "gpu": LLM_ANALYSIS_GPU, "dtype": "w16a16e16",
                   "batch_size": t.batch_size, "seq_len": t.seq_len,
                   "train": {"batch_size_per_gpu": t.batch_size, "seq_len": t.seq_len,
                             "total_num_tokens": t.batch_size * t.seq_len, "flash_attn": True,
                             "mlp_gated_linear_units": gated},
                   "infer": None if inference is None else {
                       "batch_size_per_gpu": inference.batch_size, "seq_len": inference.tokens - 1,
                       "num_tokens_to_generate": 1}}
        out = _run_llm_analysis(request)
        column.update(_llm_analysis_cells(out, t, inference, hf_config))
    return column


def _run_llm_analysis(request: dict) -> dict:
    proc = subprocess.run([str(LLM_ANALYSIS_PYTHON), str(ROOT / "benchmarks" / "_llm_analysis_driver.py")],
                          input=json.dumps(request), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _llm_analysis_cells(out: dict, t: Training, inference: Inference | None, hf_config: dict) -> Column:
    s = out["train"]
    gpt2 = hf_config["model_type"] == "gpt2"
    params_note = ("no position embeddings, no biases, LayerNorm weights only" if gpt2
                   else "the MLP is 2 d x d_ff even with gated units (no gate matrix) and the embedding is always "
                        "tied (no LM head)")
    fwd_note = ("" if gpt2 else "its MLP term is fixed at 16 B T d^2 per layer (an ungated 4d MLP) whatever d_ff: "
                "16 d^2 per token where SwiGLU with d_ff = 3.5 d does 21 d^2; attention (dense) and the logits "
                "are counted like the ground truth")
    cells = {
        ("parameters", MODEL): Cell(int(s["num_params_total"]), params_note),
        ("forward_flops", MODEL): Cell(int(out["forward_flops"]), fwd_note),
        ("train_step_flops", MODEL): Cell(int(s["num_flops_total_per_micro_batch"]),
                                          "3 x its forward: no recompute in the attention backward"),
        ("weight_bytes", t.label): Cell(int(s["weight_memory_per_gpu"]), "bf16 weights (2 bytes/parameter); "
                                        "the fp32 master copy is in its optimizer state"),
        ("gradient_bytes", t.label): Cell(int(s["gradient_memory_per_gpu"]), "fp32 (4 bytes/parameter)"),
        ("optimizer_bytes", t.label): Cell(int(s["optimizer_state_memory_per_gpu"]),
                                           "fp32 master weights + m + v (12 bytes/parameter)"),
        ("model_state_bytes", t.label): Cell(int(s["(weight+op_state+grad)_memory_per_gpu"]),
                                             "18 bytes/parameter (as the ground truth) over its parameter count"),
        ("activation_bytes", t.label): Cell(int(s["activation_memory_per_gpu"]), (
            "its per-layer formula (flash attention: no T^2 term) keeps the activation function's input only, "
            "16-bit logits and no float32 norm internals; the measured breakdown is in the ground truth's note")),
        ("peak_bytes", t.label): Cell(int(s["(weight+op_state+grad+act)_memory_per_gpu"]), "its sum"),
    }
    if out["train_refused"]:
        cells[("largest_batch", t.label)] = Cell(0, f"train() refuses B=1 on {LLM_ANALYSIS_GPU}: "
                                                    f"{out['train_refused'].split(',')[0]}")
    else:
        cells[("largest_batch", t.label)] = Cell(int(s["max_batch_size_per_gpu"]), (
            f"{LLM_ANALYSIS_GPU}'s 80 is taken as GiB (85.9e9 bytes), and its activations per sequence "
            f"are smaller"))
    if inference is not None:
        i = out["infer"]
        cells[("inference_weight_bytes", inference.label)] = Cell(
            int(i["weight_memory_per_gpu"]), "2 bytes x its parameter count (no gate, no LM head)")
        cells[("kv_cache_bytes", inference.label)] = Cell(
            int(i["kv_cache_memory_per_gpu"]),
            f"sized for seq_len + num_tokens_to_generate ({inference.tokens - 1} + 1)")
        cells[("inference_bytes", inference.label)] = Cell(
            int(i["weight_memory_per_gpu"] + i["kv_cache_memory_per_gpu"]), "its weights + its KV cache")
    return cells
