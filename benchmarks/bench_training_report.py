"""Text output of benchmarks/bench_training.py: the tables, the goal lines, the RESULTS.md section.

Works on the result dict that bench_training.measure returns (and writes as JSON), so a saved JSON
can be rendered again: `render(json.load(open(path)))`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Training throughput and MFU (`benchmarks/bench_training.py`)"
TINYSTORIES_TOKENS = 327_680_000


def _speedup_lines(result: dict) -> list[str]:
    lines = []
    for label in dict.fromkeys(r["config"] for r in result["runs"]):
        ok = [r for r in result["runs"] if r["config"] == label and "tokens_per_s" in r]
        ours = max((r for r in ok if r["variant"]["impl"] == "ours"), key=lambda r: r["tokens_per_s"])
        base = max((r for r in ok if r["variant"]["impl"] == "torch"), key=lambda r: r["tokens_per_s"])
        ref = next(r for r in ok if r["variant"]["impl"] == "ours")
        ratio = ours["tokens_per_s"] / base["tokens_per_s"]
        ours_min = min((r for r in ok if r["variant"]["impl"] == "ours"), key=lambda r: r["min_s"])
        base_min = min((r for r in ok if r["variant"]["impl"] == "torch"), key=lambda r: r["min_s"])
        lines.append(f"- {label}: our fastest ({ours['name']}) = {ratio:.2f}x the fastest torch "
                     f"baseline ({base['name']}) by median step time: "
                     f"{'meets' if ratio >= 0.95 else 'MISSES'} the 0.95x goal; "
                     f"{ours['tokens_per_s'] / ref['tokens_per_s']:.2f}x our reference path. By the "
                     f"least-disturbed (min) step: {ours_min['name']} {base_min['min_s'] / ours_min['min_s']:.2f}x "
                     f"{base_min['name']}.")
        for r in ok:  # like for like: our fused-AdamW path vs torch's, same dtype and compile
            v = r["variant"]
            twin = next((b for b in ok if b["variant"]["impl"] == "torch"
                         and b["variant"]["optimizer"] == "fused" and b["variant"]["dtype"] == v["dtype"]
                         and b["variant"]["compile"] == v["compile"]), None)
            if v["impl"] == "ours" and v["optimizer"] == "fused" and not v["checkpointing"] and twin:
                lines.append(f"  - {r['name']}: {r['tokens_per_s'] / twin['tokens_per_s']:.2f}x "
                             f"{twin['name']}")
    return lines


def render(result: dict) -> str:
    def mib(n):
        return "-" if n is None else f"{n / 2**20:,.0f}"  # MiB

    out = [f"machine: {result['machine']}; {result['date']}; load average at start "
           f"{result['load_average_start'][0]:.2f}, at end {result['load_average_end'][0]:.2f}; "
           f"{result['warmup']} warm-up + {result['steps']} timed steps per variant", "",
           "peak FLOP/s for MFU: " + "; ".join(
               f"{dt} {p['flops_per_s'] / 1e12:.3g} TFLOP/s ({p['source']})"
               for dt, p in result["peaks"].items()), ""]
    for label in dict.fromkeys(r["config"] for r in result["runs"]):
        rows = [r for r in result["runs"] if r["config"] == label]
        r0 = rows[0]
        out += [f"{label}: B={r0['batch_size']}, T={r0['context_length']}, "
                f"{r0.get('parameters', 0):,} parameters, train_step_flops "
                f"{r0.get('train_step_flops', 0):,} (matmul, fwd+bwd)", "",
                "| variant | median step s | min step s | tokens/s | MFU | peak MiB (measured) | "
                "peak MiB (accounting) | loss first -> last |", "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if "error" in r:
                out.append(f"| {r['name']} | failed: {r['error']} | | | | | | |")
                continue
            out.append(f"| {r['name']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['tokens_per_s']:,.0f} | "
                       f"{r['mfu']:.1%} | {mib(r.get('peak_bytes'))} | {mib(r['accounting_peak_bytes'])} | "
                       f"{r['loss_first']:.4f} -> {r['loss_last']:.4f} |")
        out.append("")
    out += _speedup_lines(result)
    budget = [r for r in result["runs"] if "tinystories_budget_s" in r and r["variant"]["impl"] == "ours"]
    if budget:
        best = max(budget, key=lambda r: r["tokens_per_s"])
        out.append(f"- TinyStories budget ({TINYSTORIES_TOKENS:,} tokens) at {best['name']}'s "
                   f"{best['tokens_per_s']:,.0f} tokens/s (T={best['context_length']}): "
                   f"{best['tinystories_budget_s'] / 3600:.2f} h measured; accounting's "
                   f"training_seconds at the measured MFU {best['mfu']:.1%}: "
                   f"{best['tinystories_budget_accounting_s'] / 3600:.2f} h.")
    return "\n".join(out) + "\n"


NOTES = (
    "Notes. Every variant of a config starts from the same seed, so \"ours\" variants share their "
    "first loss (the torch baseline initializes its own way; tests/model/test_fast_train.py checks "
    "that it computes our logits with our weights). Step times come from a machine shared with other "
    "jobs (see the load averages): the median is the issue's measure, the min is the least "
    "disturbed step. Measured peak memory is process RSS growth (allocator slack, the logits' "
    "gradient and other temporaries included), so it exceeds accounting's peak_memory_bytes "
    "(weights + gradients + AdamW state + saved activations; with checkpointing, "
    "checkpointed_activation_bytes). CPU MFU is relative to this machine's own measured large-matmul "
    "throughput in the variant's dtype (bf16 matmuls use AMX here, hence the low bf16 MFU). "
    "`--device cuda` (cs336-gpt2-small at T=1024 and tinystories, bf16, compiled variants, TinyStories "
    "budget estimate) is implemented but has not been run: this task had no GPU.",
)


def update_results(text: str, json_path: Path) -> None:
    from bench_common import replace_section

    section = "\n".join([SECTION, "", f"`python benchmarks/bench_training.py` (JSON: "
                         f"`{json_path.relative_to(ROOT)}`). Conventions: see the script's docstring "
                         "(MFU = accounting's exact matmul FLOPs / median step time / peak).", "",
                         text.rstrip("\n"), "", *NOTES, ""])
    replace_section(SECTION, section)
