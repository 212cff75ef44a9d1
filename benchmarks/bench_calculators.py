"""The accuracy ledger: what the calculators users reach for say about GPT-2 XL and Llama-3-8B,
beside a ground truth measured on Hugging Face's own models (validation.hf_reference), every cell
with the reason it differs.

    python benchmarks/bench_calculators.py [--configs DIR] [--update-results]

Settings: GPT-2 XL as released (config.json: dropout 0.1) training at B=1, T=1024 in float32 and
in bf16 mixed precision; Llama-3-8B training in bf16 mixed precision at B=1, T=8192 (its context)
and inference (bf16 weights + KV cache after 8192 tokens, B=1). AdamW; memory budget 80 GB = 80e9
bytes.

Ground truth (column "HF measured"): transformers' model built on the meta device with its default
attention (sdpa) and CUDA's dispatch emulated (dropout -> a bool mask, sdpa -> flash in bf16 or
memory-efficient attention in fp32; see validation/_hf_instruments.py): parameters counted
(unique tensors); forward and backward FLOPs from torch's FlopCounterMode (2mnp per matmul,
attention dense, flash's backward recomputes QK^T); activations = bytes autograd saves for
backward in the forward + HF's loss (saved_tensors_hooks, storages once, parameters excluded).
Weights, gradients and AdamW state are the parameter count x bytes: float32 4 / 4 / 8;
bf16 mixed precision 4 (fp32 master) + 2 (bf16 working copy) / 4 (fp32) / 8 (m, v in fp32).
Peak = weights + gradients + AdamW state + activations at B=1 (no allocator overheads). Largest
batch = floor((80e9 - model states - fixed saved bytes) / saved bytes per sequence), the per-
sequence bytes measured at B=2 minus B=1. KV cache: the bytes of HF's DynamicCache after a
no-grad prefill.

Calculators (optional; a missing one prints "not installed" and its install command):
    pip install -e ".[bench]"                                  # transformers, calflops, accelerate
    DS_BUILD_OPS=0 pip install deepspeed                       # an sdist: nothing compiles with this
    python -m venv .venv-llm-analysis && .venv-llm-analysis/bin/pip install llm-analysis
llm-analysis pins transformers 4.31 and huggingface-hub 0.14, which conflict with the project's
environment, so it lives in that venv (git-ignored, at the repo root; needs no torch) and runs
through benchmarks/_llm_analysis_driver.py.

The column "ours" is this project's accounting of the same config.json
(ModelConfig.from_hf_config; attention sdpa, as HF runs it), for our own model of that config.

--update-results writes the "## Calculators' accuracy" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import RESULTS_MD, replace_section  # noqa: E402
from calculator_columns import (MODEL, Cell, Column, Inference, Training, accelerate_column,  # noqa: E402
                                calflops_column, deepspeed_columns, llm_analysis_column)

SECTION = "## Calculators' accuracy (`benchmarks/bench_calculators.py`)"
BUDGET_BYTES = 80 * 10**9
QUANTITIES = {  # key -> row label
    "parameters": "parameters",
    "forward_flops": "forward FLOPs",
    "train_step_flops": "training-step FLOPs (fwd + bwd)",
    "weight_bytes": "weights, bytes",
    "gradient_bytes": "gradients, bytes",
    "optimizer_bytes": "optimizer state, bytes",
    "model_state_bytes": "weights + gradients + optimizer, bytes",
    "activation_bytes": "activations (saved for backward), bytes",
    "peak_bytes": "peak (model states + activations), bytes",
    "largest_batch": "largest batch in 80 GB",
    "inference_weight_bytes": "weights (bf16), bytes",
    "kv_cache_bytes": "KV cache, bytes",
    "inference_bytes": "weights + KV cache, bytes",
}
TRAIN_QUANTITIES = tuple(QUANTITIES)[3:10]
INFER_QUANTITIES = tuple(QUANTITIES)[10:]
ISSUE_GPT2_XL_SAVED_GB = (25.39, 14.69)
"""Bytes saved for backward the issue reported for HF's GPT-2 XL (fp32, B=1, T=1024, eager), dropout 0.1 / 0."""
STATE_BYTES = {"float32": (4, 4, 8), "bfloat16": (6, 4, 8)}  # weights, gradients, AdamW m+v per parameter


@dataclass(frozen=True)
class Ledger:
    name: str
    config_file: str
    trainings: tuple[Training, ...]
    inference: Inference | None = None


LEDGERS = (
    Ledger("GPT-2 XL", "gpt2-xl",
           (Training("fp32", "float32", 1, 1024), Training("bf16 mixed", "bfloat16", 1, 1024))),
    Ledger("Llama-3-8B", "llama-3-8b", (Training("bf16 mixed", "bfloat16", 1, 8192),), Inference(1, 8192)),
)


def ground_truth(hf_config: dict, ledger: Ledger) -> tuple[Column, int]:
    """The measured column, and the attention core's forward FLOPs (QK^T and weights.V, for
    calflops' note)."""
    from validation.hf_reference import hf_kv_cache, hf_parameters, hf_training_step

    n = hf_parameters(hf_config).parameters
    col: Column = {("parameters", MODEL): Cell(n)}
    attention_flops = 0
    for t in ledger.trainings:
        run = dict(seq_len=t.seq_len, dtype=t.dtype, attn_implementation="sdpa", kernels="cuda")
        step = hf_training_step(hf_config, batch_size=t.batch_size, **run)
        two = hf_training_step(hf_config, batch_size=t.batch_size + 1, backward=False, **run)
        col[("forward_flops", MODEL)] = Cell(step.forward_flops)
        col[("train_step_flops", MODEL)] = Cell(step.forward_flops + step.backward_flops, (
            f"the measured backward: {step.backward_flops:,} = 2 x forward + the attention core's recompute in "
            f"the fused kernels' backward ({step.backward_flops - 2 * step.forward_flops:,})"))
        # the attention core (QK^T, weights.V) runs in the attention module's own forward, not a child
        attention_flops = sum(v for k, v in step.forward_flops_by_component.items()
                              if k.endswith((".attn", ".self_attn")))
        w, g, o = (n * b for b in STATE_BYTES[t.dtype])
        per_sequence = two.saved_bytes - step.saved_bytes
        fixed = step.saved_bytes - t.batch_size * per_sequence
        col.update({(q, t.label): Cell(v) for q, v in (
            ("weight_bytes", w), ("gradient_bytes", g), ("optimizer_bytes", o), ("model_state_bytes", w + g + o),
            ("peak_bytes", w + g + o + step.saved_bytes),
            ("largest_batch", max(0, (BUDGET_BYTES - w - g - o - fixed) // per_sequence)))})
        col[("activation_bytes", t.label)] = Cell(step.saved_bytes,
                                                  _saved_breakdown(step.saved_bytes_by_component))
    if ledger.inference is not None:
        i = ledger.inference
        kv = hf_kv_cache(hf_config, batch_size=i.batch_size, prefill_tokens=i.tokens)
        col.update({("inference_weight_bytes", i.label): Cell(2 * n),
                    ("kv_cache_bytes", i.label): Cell(kv.kv_cache_bytes, (
                        f"{kv.layers} layers x keys and values of {kv.key_shape} (B, kv heads, tokens, "
                        f"head dim) x 2 bytes")),
                    ("inference_bytes", i.label): Cell(2 * n + kv.kv_cache_bytes)})
    return col, attention_flops


def _saved_breakdown(by_component: dict[str, int]) -> str:
    """The measured items that formulas tend to size differently: HF's loss, the norms, the MLP's
    activation function."""
    from validation._hf_instruments import OUTSIDE

    def total(*suffixes: str) -> int:
        return sum(v for k, v in by_component.items() if k.endswith(suffixes))

    norms = total("ln_1", "ln_2", "ln_f", "layernorm", ".norm")
    return (f"of which HF's loss (log-softmax of the logits upcast to float32) {by_component.get(OUTSIDE, 0):,}, "
            f"the norms {norms:,}, the MLP's activation function {total('.act', '.act_fn'):,}")


_OURS_ACTIVATIONS = (
    "our model's own saved bytes (the implementation convention), not HF's: our LayerNorm, SiLU, "
    "softmax and cross-entropy are written out (their extra tensors are sized, cause by cause, in "
    "validation.hf_compare), our RoPE indexes cos/sin per block, and our dropout masks are bool")


def ours_column(hf_config: dict, ledger: Ledger) -> Column:
    """The project's own accounting of the same config.json (accounting.hf_config), sdpa attention
    as HF runs it by default."""
    from accounting import (
        activation_bytes, adamw_state_bytes, forward_flops, kv_cache_bytes, largest_batch_size,
        memory_timeline, total_parameters, train_step_flops, weight_bytes,
    )
    from accounting.config import ModelConfig

    cfg = ModelConfig.from_hf_config(hf_config)
    n = total_parameters(cfg)
    col: Column = {("parameters", MODEL): Cell(n)}
    for t in ledger.trainings:
        cfg_t = cfg.replace(context_length=max(cfg.context_length, t.seq_len))
        col[("forward_flops", MODEL)] = Cell(forward_flops(cfg_t, t.batch_size, t.seq_len))
        col[("train_step_flops", MODEL)] = Cell(train_step_flops(cfg_t, t.batch_size, t.seq_len), (
            "forward + backward matmuls (2 x forward); the fused kernels' QK^T recompute in backward is "
            "reported apart (attention_recompute_flops), not in the step"))
        weights, gradients = 4 * n, 4 * n  # float32 master weights and their gradients
        timeline = memory_timeline(cfg_t, t.batch_size, t.seq_len, t.dtype)
        copies = max(e.bytes["weights_bf16_copy"] for e in timeline.events)  # autocast's working copy
        optimizer = adamw_state_bytes(cfg_t)
        col.update({
            ("weight_bytes", t.label): Cell(weights + copies, None if not copies else (
                "float32 master weights + autocast's bf16 copy of the matmul weights (the embedding "
                "is gathered, not cast)")),
            ("gradient_bytes", t.label): Cell(gradients),
            ("optimizer_bytes", t.label): Cell(optimizer),
            ("model_state_bytes", t.label): Cell(weights + copies + gradients + optimizer),
            ("activation_bytes", t.label): Cell(activation_bytes(cfg_t, t.batch_size, t.seq_len, dtype=t.dtype),
                                                _OURS_ACTIVATIONS),
            ("peak_bytes", t.label): Cell(timeline.peak_bytes, (
                "the step's memory timeline: the most bytes alive at once (gradients are created in the "
                "backward and freed by zero_grad, so not all of them coexist with all activations)")),
        })
        try:
            fit = largest_batch_size(cfg_t, BUDGET_BYTES, t.seq_len, dtype=t.dtype).batch_size
        except ValueError:  # the budget cannot hold the model states
            fit = 0
        col[("largest_batch", t.label)] = Cell(fit)
    if ledger.inference is not None:
        i = ledger.inference
        cfg_i = cfg.replace(context_length=max(cfg.context_length, i.tokens))
        w, kv = weight_bytes(cfg_i, "bfloat16"), kv_cache_bytes(cfg_i, i.batch_size, i.tokens, "bfloat16")
        col.update({("inference_weight_bytes", i.label): Cell(w),
                    ("kv_cache_bytes", i.label): Cell(kv, "accounting.inference: 2 L B S d h_kv/h x 2 bytes"),
                    ("inference_bytes", i.label): Cell(w + kv)})
    return col


def columns_for(hf_config: dict, ledger: Ledger) -> dict[str, Column]:
    truth, attention_flops = ground_truth(hf_config, ledger)
    parameters = truth[("parameters", MODEL)].value
    zero2, zero3 = deepspeed_columns(hf_config, ledger.trainings, parameters)
    columns = {
        "HF measured": truth,
        "calflops": calflops_column(hf_config, ledger.trainings, truth[("forward_flops", MODEL)].value,
                                    attention_flops),
        "DeepSpeed ZeRO-2": zero2,
        "DeepSpeed ZeRO-3": zero3,
        "accelerate": accelerate_column(hf_config, ledger.trainings, ledger.inference),
        "llm-analysis": llm_analysis_column(hf_config, ledger.trainings, ledger.inference),
    }
    columns["ours"] = ours_column(hf_config, ledger)
    return columns


def row_keys(ledger: Ledger) -> list[tuple[str, str]]:
    keys = [("parameters", MODEL), ("forward_flops", MODEL), ("train_step_flops", MODEL)]
    keys += [(q, t.label) for t in ledger.trainings for q in TRAIN_QUANTITIES]
    if ledger.inference is not None:
        keys += [(q, ledger.inference.label) for q in INFER_QUANTITIES]
    return keys


def render_table(ledger: Ledger, columns: dict[str, Column]) -> str:
    """A markdown table: exact values, the difference from the measured value, a note number."""
    names = list(columns)
    truth = columns[names[0]]
    notes: dict[str, list[str]] = {}  # note -> the columns giving it
    lines = ["| quantity | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in row_keys(ledger):
        quantity, setting = key
        label = QUANTITIES[quantity] + (f" ({setting})" if setting else "")
        cells = [_cell_text(columns[name].get(key), truth.get(key), quantity, name, notes) for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    footnotes = (f"[{i}] {', '.join(who)}: {note}." for i, (note, who) in enumerate(notes.items(), 1))
    return "\n".join([*lines, "", *footnotes])


def _cell_text(cell: Cell | None, truth: Cell | None, quantity: str, name: str,
               notes: dict[str, list[str]]) -> str:
    """'value (difference) [note]'; relative difference, absolute for batch sizes."""
    from accounting.format import fmt_int

    if cell is None:
        return "—"
    if cell.value is None:
        text = "not installed" if cell.note.startswith("not installed") else "—"
    elif truth is None or cell is truth or truth.value is None:
        text = fmt_int(cell.value)
    elif cell.value == truth.value:
        text = f"{fmt_int(cell.value)} (equal)"
    elif quantity == "largest_batch" or truth.value == 0:
        text = f"{fmt_int(cell.value)} ({cell.value - truth.value:+,})"
    else:
        text = f"{fmt_int(cell.value)} ({(cell.value - truth.value) / truth.value:+.1%})"
    equal = truth is not None and cell is not truth and cell.value == truth.value
    if cell.note and not equal:
        who = notes.setdefault(cell.note, [])
        if name not in who:
            who.append(name)
        text += f" [{list(notes).index(cell.note) + 1}]"
    return text


def issue_reproduction(hf_config: dict) -> str:
    """The issue's measurement: HF GPT-2 XL, float32, B=1, T=1024, eager attention, with the
    dropout of the released config and without, as torch runs on meta (CPU's dropout) and with
    CUDA's dispatch emulated."""
    from accounting.format import fmt_int

    from validation.hf_reference import hf_training_step

    lines = ["| dispatch | dropout 0.1 | dropout 0 | difference |", "|---|---|---|---|"]
    measured = {}
    for kernels, label in (("meta", "meta (= CPU): dropout mask in fp32, 4 bytes/element"),
                           ("cuda", "CUDA emulated: bool mask, 1 byte/element")):
        on, off = (hf_training_step(hf_config, batch_size=1, seq_len=1024, dropout=d, kernels=kernels,
                                    backward=False).saved_bytes for d in (True, False))
        measured[kernels] = on, off
        lines.append(f"| {label} | {fmt_int(on)} ({on / 1e9:.2f} GB) | {fmt_int(off)} ({off / 1e9:.2f} GB) | "
                     f"{fmt_int(on - off)} |")
    issue_on, issue_off = ISSUE_GPT2_XL_SAVED_GB
    on, off = measured["meta"]
    lines += ["", (
        f"The issue reported {issue_on} GB and {issue_off} GB: its difference ({issue_on - issue_off:.2f} GB) "
        f"is the meta/CPU dispatch's ({(on - off) / 1e9:.2f} GB: each dropout keeps an fp32 mask, and the "
        f"dropped attention probabilities are a second (B, h, T, T) tensor beside softmax's output), not "
        f"CUDA's ({(measured['cuda'][0] - measured['cuda'][1]) / 1e9:.2f} GB). Both of its values are "
        f"{issue_on - on / 1e9:.2f} / {issue_off - off / 1e9:.2f} GB above the values measured here with the "
        f"same dispatch, a residual independent of dropout; the issue's torch and transformers versions are not "
        f"known.")]
    return "\n".join(lines)


def versions() -> str:
    found = []
    for package in ("torch", "transformers", "calflops", "deepspeed", "accelerate"):
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    venv = ROOT / ".venv-llm-analysis" / "lib"
    dists = sorted(venv.glob("python*/site-packages/llm_analysis-*.dist-info")) if venv.exists() else []
    found.append(f"llm-analysis {dists[0].name.removesuffix('.dist-info').split('-')[1]} (own venv)" if dists
                 else "llm-analysis not installed")
    return ", ".join(found)


def build_section(configs: Path) -> str:
    from validation.timing import hardware

    t0 = time.perf_counter()
    parts = [SECTION, "",
             f"{hardware('cpu')['name']}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; "
             f"{versions()}; {time.strftime('%Y-%m-%d')}.", "",
             "Ground truth (\"HF measured\"): transformers' own model on the meta device, default attention "
             "(sdpa) with CUDA's dispatch emulated (dropout saves a bool mask; sdpa runs flash in bf16, "
             "memory-efficient attention in fp32), dropout as in config.json; FLOPs from FlopCounterMode "
             "(2mnp per matmul, attention dense; the measured backward includes flash's QK^T recompute); "
             "activations = bytes saved for backward by the forward + HF's loss (storages once, parameters "
             "excluded); weights / gradients / AdamW state = parameters x 4/4/8 bytes (fp32) or 6/4/8 "
             "(bf16 mixed: fp32 master + bf16 copy, fp32 gradients, fp32 m and v); peak = their sum + "
             "activations at B=1; largest batch in 80e9 bytes from the per-sequence saved bytes (B=2 minus "
             "B=1). Each other cell: its value, its difference from the measured one, and a note saying why."]
    for ledger in LEDGERS:
        hf_config = json.loads((configs / f"{ledger.config_file}.json").read_text())
        columns = columns_for(hf_config, ledger)
        settings = "; ".join(f"{t.label}: B={t.batch_size}, T={t.seq_len}" for t in ledger.trainings)
        if ledger.inference:
            settings += f"; inference: B={ledger.inference.batch_size}, {ledger.inference.tokens} tokens, bf16"
        parts += ["", f"### {ledger.name} ({settings}; AdamW)", "", render_table(ledger, columns)]
    parts += ["", "### The issue's GPT-2 XL measurement (fp32, B=1, T=1024, eager attention, HF's loss)", "",
              issue_reproduction(json.loads((configs / "gpt2-xl.json").read_text())), "",
              f"Whole run: {time.perf_counter() - t0:.0f} s."]
    return "\n".join(parts) + "\n"


def update_results(section: str) -> None:
    if SECTION not in RESULTS_MD.read_text():
        RESULTS_MD.write_text(RESULTS_MD.read_text().rstrip("\n") + "\n\n" + SECTION + "\n")
    replace_section(SECTION, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, default=ROOT.parent / "shared" / "data" / "hf_configs",
                        help="folder with gpt2-xl.json and llama-3-8b.json (published config.json files)")
    parser.add_argument("--update-results", action="store_true")
    args = parser.parse_args()
    if importlib.util.find_spec("transformers") is None:
        parser.exit(2, "error: the ground truth needs transformers: pip install -e '.[bench]'\n")
    missing = [f"{ledger.config_file}.json" for ledger in LEDGERS
               if not (args.configs / f"{ledger.config_file}.json").is_file()]
    if missing:
        parser.exit(2, f"error: {', '.join(missing)} not found in {args.configs} (pass --configs DIR)\n")
    section = build_section(args.configs)
    print(section)
    if args.update_results:
        update_results(section)


if __name__ == "__main__":
    main()
