"""`python -m validation.measure_inference`: measure one decoding request of the real model (its KV
cache, the prefill, a decode step) beside accounting's inference formulas.

(The function behind it is `validation.inference.measure_inference`.)

--device meta|cpu|cuda (default: cuda if available, else cpu), --preset NAME plus every config
override flag (--num-kv-heads, --attention sdpa, ...), --batch-size B, --prompt-tokens P,
--new-tokens G (>= 2: the last decode step is measured at t = P + G - 2, the cache full),
--dtype float32|bfloat16, --peak-flops / --hbm-bandwidth (the roofline's numbers; on CUDA the GPU
table gives them), --format table|markdown|json, --out FILE (written atomically).
Bad input: one line, exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from accounting.atomic import check_writable
from accounting.cli_support import OneLineArgumentParser, emit, run_cli
from accounting.conventions import TRAINING_DTYPES
from accounting.flags import add_model_flags, flag_type, model_config_from_args
from accounting.format import parse_bytes

PROG = "python -m validation.measure_inference"


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_model_flags(p)
    p.add_argument("--device", default=None, help="meta | cpu | cuda[:n] (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=1, help="B: sequences decoded together")
    p.add_argument("--prompt-tokens", type=int, default=16, help="P: prompt tokens per sequence")
    p.add_argument("--new-tokens", type=int, default=16, help="G: new tokens per sequence (>= 2)")
    p.add_argument("--dtype", choices=TRAINING_DTYPES, default="float32",
                   help="parameters, activations and KV cache (the model runs in it)")
    p.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s for the roofline bound")
    p.add_argument("--hbm-bandwidth", type=flag_type(parse_bytes), default=None,
                   help="memory bytes/s for the roofline bound, or with a unit: 3.35TB")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.add_argument("--out", default=None, help="write here (atomically) instead of stdout")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out:
        check_writable(args.out)  # before the measurement, not after it
    from validation.inference import measure_inference
    from validation.inference_render import render_inference_measurement

    cfg = model_config_from_args(args)
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    result = measure_inference(cfg, device=device, batch_size=args.batch_size, prompt_tokens=args.prompt_tokens,
                               new_tokens=args.new_tokens, dtype=args.dtype, peak_flops_per_s=args.peak_flops,
                               hbm_bytes_per_s=args.hbm_bandwidth)
    text = render_inference_measurement(result, args.format)
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog=PROG))
