"""The GPU campaign: one command measures everything a GPU can tell us, in under 8 minutes.

    PYTHONPATH=. python -m validation.campaign --out DIR [--only STEP[,STEP]] [--budget-s 480]
    PYTHONPATH=. python -m validation.campaign --dry-run --out DIR     # the same plan, tiny, on CPU

Runs from a plain checkout (no install step) with what a GPU machine has: torch (CUDA build,
2.11+), numpy, sympy, pandas, regex, tqdm, psutil; nothing on this path imports streamlit or
plotly. Writes one JSON per measurement (validation's Measurement.to_dict format, so
validation.load_results() and the explorer read them; file names carry the GPU-table entry) and
summary.md (targets met or missed with their numbers, the steps, the environment, every row); prints
the targets and the steps. A step that fails (out of memory, an error, over its budget) is recorded
with its error and the plan goes on; `--budget-s` stops scheduling new steps once spent (skipped
steps are recorded). The issue's gpt2-small / -medium / -xl are CS336's shapes, the presets
cs336-gpt2-small / -medium / -xl.

The plan (validation.campaign.plan.PLAN), each step with its wall-clock budget and its estimated
time on an H100 SXM (80 GiB, ~989 dense bf16 TFLOP/s, ~67 fp32):

| step | what | budget s | est. s |
|---|---|---:|---:|
| 1 env | GPU, memory, driver, torch, CUDA, table entry, CUDA context, sdpa kernels | 15 | 3 |
| 2 peak | dense matmul peak: 8192^3 bf16 (33x), tf32 (33x), fp32 (13x) | 25 | 3 |
| 3a small-fp32 | measure cs336-gpt2-small B=8 T=1024 fp32 naive + probe | 45 | 15 |
| 3b small-bf16 | the same in bf16 autocast, sdpa | 45 | 12 |
| 3c xl | measure cs336-gpt2-xl B=1 T=1024 bf16 sdpa + probe | 50 | 25 |
| 3d xl-ckpt | cs336-gpt2-xl B=1 bf16 sdpa, activation checkpointing: the probe | 35 | 10 |
| 3e tinystories | measure tinystories B=32 T=256 fp32 naive + probe | 30 | 8 |
| 4 largest-batch | cs336-gpt2-medium bf16 sdpa: probes at B=1, 2, the predicted B (~38) | 45 | 15 |
| 5 throughput | cs336-gpt2-small B=16 T=1024 bf16, sdpa, fused AdamW, compiled; ours, torch's | 190 | 120 |
| total | | 480 | ~210 |

Where the estimates come from: CUDA init ~1-2 s; an 8192^3 matmul ~1.4 ms (bf16), ~2.5 ms (tf32),
~20 ms (fp32). `validation.core.measure` builds the model 3 times (~1 s each; ~2 s at 2.1B
parameters), runs the instrumented step (Python dispatch hooks on every op: ~2 s, ~5 s over
gpt2-xl's 48 layers) and 1 + 3 timed + 2 memory steps; cs336-gpt2-small's fp32 step is 8.4 TFLOP,
~0.3 s at ~40 TFLOP/s; bf16 steps ~0.05 s; gpt2-xl B=1 steps 0.1-0.5 s; its sympy rows ~2 s. The
probe (validation.campaign.memory) builds once and runs 2 + 3 steps. Step 5 is two inductor
compiles (~40-60 s each) and 3 + 20 steps of ~40 ms per contender. Add ~15 s of imports and CUDA
start: under 4 minutes expected, 8 at most.

Budgets are checked between phases (a compile or a kernel is never interrupted), timed loops stop
early when a budget runs short, every step is followed by gc, torch.cuda.empty_cache, clearing the
cuBLAS workspaces and resetting the peak counters. On a 15-minute device lease run it as
`timeout 540 python -m validation.campaign --out $OUT`; rerun a failed step with `--only KEY`.

Targets (validation.campaign.targets): exact counts on CUDA as on CPU (differences named); peak
memory within 3% of the prediction plus the measured residuals; the predicted largest batch runs;
cs336-gpt2-small bf16 T=1024 MFU >= 45% of the dense bf16 peak and >= 0.95x the torch-modules
baseline.
"""

PROG = "python -m validation.campaign"
