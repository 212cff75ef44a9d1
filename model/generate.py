"""`python -m model.generate`: sample a continuation of a prompt from a training checkpoint.

The model is rebuilt from the ModelConfig stored in the checkpoint. Text <-> ids: without
`--tokenizer`, raw UTF-8 bytes (ids 0..255, the byte-level fallback of `model.train`); with
`--tokenizer DIR`, `tokenizer.Tokenizer.from_dir(DIR)` (vocab.json, merges.txt,
special_tokens.json). Prints the prompt followed by the generated text to stdout; `--prompt` may
be repeated (one batch: each continuation printed in order, a blank line between them). Decoding
uses a KV cache unless `--no-cache` (same tokens, the prefix recomputed at every step);
`--stats` prints tokens/s to stderr. (The sampling functions are `model.sampling.generate` and
`generate_batch`.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from accounting.cli_support import OneLineArgumentParser, run_cli
from accounting.errors import UserError

PROG = "python -m model.generate"
_DEFAULT_EOS = "<|endoftext|>"


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="ckpt.pt written by model.train")
    parser.add_argument("--tokenizer", help="tokenizer directory (default: raw UTF-8 bytes)")
    parser.add_argument("--prompt", required=True, action="append",
                        help="prompt text; repeat for a batch of prompts")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eos", default=None,
                        help=f"stop token text (default {_DEFAULT_EOS} when the tokenizer has it)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole prefix at every token (no KV cache)")
    parser.add_argument("--stats", action="store_true", help="new tokens, seconds and tokens/s on stderr")
    return parser


class _ByteCodec:
    """Text <-> UTF-8 byte ids; invalid byte sequences decode to U+FFFD."""

    special_tokens: list[str] = []

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def _codec(directory: str | None):
    if directory is None:
        return _ByteCodec()
    from tokenizer import Tokenizer

    return Tokenizer.from_dir(directory)


def _eos_id(codec, eos: str | None) -> int | None:
    if eos is None:
        eos = _DEFAULT_EOS if _DEFAULT_EOS in codec.special_tokens else None
        if eos is None:
            return None
    ids = codec.encode(eos)
    if len(ids) != 1:
        raise UserError(f"--eos {eos!r} is not a single token ({len(ids)} ids)")
    return ids[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if not 0 <= args.temperature < float("inf") or not 0 < args.top_p <= 1:  # NaN fails both
        raise UserError("--temperature must be a finite number >= 0 and --top-p in (0, 1]")
    import torch

    from model import TransformerLM
    from model.checkpoint import checkpoint_model_config, read_checkpoint
    from model.data import resolve_device
    from model.sampling import generate_batch

    device = resolve_device(args.device)
    payload = read_checkpoint(args.checkpoint, map_location=device)
    cfg = checkpoint_model_config(payload)
    codec = _codec(args.tokenizer)
    codec_size = len(getattr(codec, "vocab", range(256)))
    if codec_size != cfg.vocab_size:  # checked before sampling: every id the model emits must decode
        source = f"tokenizer {args.tokenizer}" if args.tokenizer else "raw bytes (no --tokenizer)"
        hint = "wrong --tokenizer?" if args.tokenizer else "pass the model's --tokenizer"
        raise UserError(f"{source} has {codec_size} tokens but the model's vocab_size is "
                        f"{cfg.vocab_size} ({hint})")
    prompts = [codec.encode(text) for text in args.prompt]
    if not all(prompts):
        raise UserError("--prompt is empty")
    top = max(max(ids) for ids in prompts)
    if top >= cfg.vocab_size:
        raise UserError(f"prompt token id {top} is outside the model's vocab_size "
                         f"{cfg.vocab_size} (wrong --tokenizer?)")
    model = TransformerLM(cfg, device=device)
    model.load_state_dict(payload["model"])
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    start = time.perf_counter()
    new = generate_batch(model, prompts, args.max_new_tokens, temperature=args.temperature,
                         top_p=args.top_p, eos_id=_eos_id(codec, args.eos), generator=generator,
                         use_cache=not args.no_cache)
    seconds = time.perf_counter() - start
    sys.stdout.write("\n".join(codec.decode(ids + tokens) + "\n" for ids, tokens in zip(prompts, new)))
    if args.stats:
        count = sum(len(tokens) for tokens in new)
        rate = count / seconds if seconds > 0 else 0.0
        sys.stderr.write(f"{count} new tokens in {seconds:.3f} s: {rate:,.1f} tokens/s "
                         f"({'no cache' if args.no_cache else 'KV cache'}, {len(prompts)} prompt(s))\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog=PROG))
