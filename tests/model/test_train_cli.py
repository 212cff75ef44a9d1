"""The train and generate CLIs: bad input is one line + exit 2; a tiny run end to end."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from accounting.cli_support import run_cli

REPO = Path(__file__).resolve().parents[2]
TINY = ["--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "24",
        "--vocab-size", "256", "--context-length", "8"]


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def _assert_one_line_error(stderr: str, needle: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "error" in lines[0] and needle in lines[0], lines[0]


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("Once upon a time there was a tiny model that learned bytes. " * 20)
    return path


def _train_in_process(argv, capsys) -> tuple[int, str, str]:
    main = importlib.import_module("model.train").main
    try:
        code = run_cli(main, argv, prog="python -m model.train")
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_and_generate_end_to_end(tmp_path, text_file, capsys):
    # train and resume in-process (same main() as the CLI; saves two torch start-ups), generate
    # in a real subprocess
    out = tmp_path / "run"
    common = ["--train-data", str(text_file), "--out", str(out), *TINY, "--batch-size", "4",
              "--log-interval", "5", "--checkpoint-interval", "10", "--warmup-iters", "2",
              "--max-lr", "1e-2", "--no-progress"]
    code, stdout, stderr = _train_in_process([*common, "--steps", "10"], capsys)
    assert code == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 5, 10]
    assert (out / "ckpt.pt").is_file()
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert logged == events  # stdout and log.jsonl agree
    code, stdout, stderr = _train_in_process(
        ["--train-data", str(text_file), "--resume", str(out / "ckpt.pt"), "--steps", "12",
         "--no-progress"], capsys)
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[0])["step"] == 11
    # a total at or below the checkpoint's step trains nothing: said, exit 2, the checkpoint intact
    before = (out / "ckpt.pt").read_bytes()
    code, stdout, stderr = _train_in_process(
        ["--train-data", str(text_file), "--resume", str(out / "ckpt.pt"), "--steps", "5",
         "--no-progress"], capsys)
    assert code == 2 and stdout == "", stderr
    _assert_one_line_error(stderr, "is at step 12 and steps = 5 is the run's total")
    assert (out / "ckpt.pt").read_bytes() == before
    gen = _cli("model.generate", "--checkpoint", str(out / "ckpt.pt"), "--prompt", "Once",
               "--max-new-tokens", "5", "--temperature", "0")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("Once")


def test_cli_bad_input_subprocess(tmp_path, text_file):
    res = _cli("model.train", "--train-data", str(tmp_path / "missing.txt"), "--out", str(tmp_path))
    assert res.returncode == 2
    _assert_one_line_error(res.stderr, "not found")
    res = _cli("model.generate", "--checkpoint", str(text_file), "--prompt", "x")
    assert res.returncode == 2
    _assert_one_line_error(res.stderr, "checkpoint")


@pytest.mark.parametrize("args,needle", [
    (["--steps", "0"], "steps"),
    (["--dtype", "float16"], "--dtype"),
    (["--ffn", "relu"], "--ffn"),
    (["--preset", "gpt5"], "unknown preset"),
    (["--vocab-size", "100"], "vocab_size"),
    (["--d-model", "15"], "num_heads"),
    (["--max-lr", "banana"], "--max-lr"),
    (["--config", "/nonexistent/train.json"], "not found"),
])
def test_train_cli_bad_input_in_process(tmp_path, text_file, capsys, args, needle):
    argv = ["--train-data", str(text_file), "--out", str(tmp_path / "o"), *TINY, *args]
    code, _, stderr = _train_in_process(argv, capsys)
    assert code == 2
    _assert_one_line_error(stderr, needle)


def test_generate_with_a_tokenizer_dir(tmp_path, capsys):
    import numpy as np

    from tokenizer import Tokenizer

    vocab = {i: bytes([i]) for i in range(256)} | {256: b"On"}
    tok = Tokenizer(vocab, [(b"O", b"n")], ["<|endoftext|>"])  # <|endoftext|> becomes id 257
    tok.save(tmp_path / "tok")
    ids = np.array(tok.encode("Once upon a time.<|endoftext|>" * 30), dtype=np.uint16)
    assert ids.max() == 257
    np.save(tmp_path / "ids.npy", ids)
    argv = ["--train-data", str(tmp_path / "ids.npy"), "--out", str(tmp_path / "run"),
            *TINY[:-4], "--vocab-size", "258", "--context-length", "8", "--steps", "2",
            "--batch-size", "2", "--no-progress"]
    code, _, stderr = _train_in_process(argv, capsys)
    assert code == 0, stderr
    ckpt = str(tmp_path / "run" / "ckpt.pt")
    gen = _cli("model.generate", "--checkpoint", ckpt, "--tokenizer", str(tmp_path / "tok"),
               "--prompt", "Once", "--max-new-tokens", "3", "--temperature", "0")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("Once")
