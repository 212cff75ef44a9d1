"""Train, Tokenizer and Downloads views: a tiny live run to completion with falling loss, cancel,
sampling, the tokenizer's byte counts, the downloads (AppTest + the worker registry)."""

from __future__ import annotations

import io
import time
import zipfile

import pytest

import accounting as acc
from explorer import runs


def _wait(at, job_id, timeout=90.0):
    job = runs.get_job(job_id)
    deadline = time.monotonic() + timeout
    while job.running and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()  # the page keeps polling while the worker trains
    assert job.wait(5), "the training job did not end"
    return job


def _tiny(at, steps):
    at.number_input(key="w_train_kb").set_value(60)
    at.number_input(key="w_train_vocab").set_value(300)
    at.number_input(key="w_train_d_model").set_value(32)
    at.number_input(key="w_train_d_ff").set_value(64)
    at.number_input(key="w_train_ctx").set_value(32)
    at.number_input(key="w_train_batch").set_value(8)
    at.number_input(key="w_train_steps").set_value(steps)
    at.number_input(key="w_train_lr").set_value(0.01)
    return at.run()


@pytest.fixture(scope="module")
def trained(ui):
    """One session that trained the baseline and the SiLU ablation for 40 steps."""
    at = _tiny(ui.open(view="train", timeout=120), 40)
    at.multiselect(key="w_train_variants").select("SiLU FFN").run()
    at.button(key="w_train_start").click().run()
    ui.clean(at)
    job_id = at.session_state["train_job"]
    job = _wait(at, job_id)
    at.run()
    return at, job


def test_tiny_run_completes_with_falling_loss(ui, trained):
    at, job = trained
    ui.clean(at)
    states = job.snapshot()
    assert [s.label for s in states] == ["baseline", "SiLU FFN"]
    for s in states:
        assert s.status == "done", s.message
        steps, losses, vsteps, vlosses = s.losses()
        assert steps[-1] == 40 and vsteps[-1] == 40
        assert losses[-1] < losses[0] - 0.5  # from ~ln(300) = 5.7 down
        assert s.checkpoint is not None and s.checkpoint.is_file()
    silu = states[1].config
    assert (silu.ffn, silu.d_ff) == ("silu", 96)  # 3/2 of 64: about SwiGLU's parameter count
    shown = ui.metrics(at)
    last = states[1].last("step")  # the page shows the last variant that trained
    steps = [e for e in states[1].events if e["type"] == "step"]
    # the run's average: every token over the whole wall clock (not the last logging interval)
    assert shown["tokens/s (mean)"] == f"{last['tokens'] / last['wall_s']:,.0f}"
    assert last["tokens"] == 40 * 8 * 32 and len(steps) > 2
    assert shown["train loss"] == f"{last['loss']:.3f}"
    table = next(d.value for d in at.dataframe if "variant" in d.value.columns)
    per_token = acc.train_step_flops(silu, 1) / silu.context_length  # exact matmul FLOPs per token
    silu_row = table[table["variant"] == "SiLU FFN"].iloc[0]
    assert silu_row["tokens"] == 40 * 8 * 32 and silu_row["seconds"] == round(last["wall_s"], 2)
    # 1 thread x the assumed 50 GFLOP/s
    assert silu_row["average MFU"] == round(last["tokens"] / last["wall_s"] * per_token / 50e9, 4)
    assert any("baseline" in m.value and "done" in m.value for m in at.markdown)
    from tokenizer import DOCUMENT_SEPARATOR, stdlib_corpus_text

    text = stdlib_corpus_text().encode()[:60_000].decode(errors="ignore")  # the 60 kB chosen above
    docs = [d for d in text.split(DOCUMENT_SEPARATOR) if d]
    per_token = sum(len(d.encode()) for d in docs) / sum(len(job.tokenizer.encode(d)) for d in docs)
    assert shown["Compression"] == f"{per_token:.2f} bytes/token"
    assert job.tokenizer.vocab_size == 300
    table = next(d.value for d in at.dataframe if "variant" in d.value.columns)
    assert table["variant"].tolist() == ["baseline", "SiLU FFN"]
    assert table["val loss"].tolist() == [round(s.last("eval")["val_loss"], 4) for s in states]


def test_sampling_uses_the_trained_model(ui, trained):
    at, job = trained
    at.slider(key="w_sample_temp").set_value(0.0)
    at.number_input(key="w_sample_n").set_value(5)
    at.button(key="w_sample_go").click().run()
    ui.clean(at)
    text = at.code[-1].value
    assert text.startswith("def ") and len(text) > len("def ")


def test_downloads_offer_checkpoint_and_tokenizer(ui, trained):
    at, job = trained
    at.radio(key="w_view").set_value("downloads").run()
    ui.clean(at)
    labels = [b.label for b in at.get("download_button")]
    assert [label for label in labels if label.startswith("Checkpoint")] == [  # every variant's
        "Checkpoint: baseline (ckpt_baseline.pt)", "Checkpoint: SiLU FFN (ckpt_silu-ffn.pt)"]
    assert any(label.startswith("Tokenizer") for label in labels)
    archive = zipfile.ZipFile(io.BytesIO(runs.tokenizer_zip(job.tokenizer)))
    assert {"vocab.json", "merges.txt"} <= set(archive.namelist())


def test_a_link_with_the_job_reopens_the_run(ui, trained):
    at, job = trained
    assert at.query_params["job"] == job.id
    again = ui.open(view="downloads", job=job.id)  # a new session (page reload or shared link)
    ui.clean(again)
    assert any(b.label.startswith("Checkpoint") for b in again.get("download_button"))
    gone = ui.open(view="train", job="0123456789ab")
    ui.clean(gone)
    assert any("no longer on this server" in w.value for w in gone.warning)


def test_cancel_stops_the_worker(ui):
    at = _tiny(ui.open(view="train", timeout=120), 100_000)
    at.multiselect(key="w_train_variants").select("no norm").run()
    at.button(key="w_train_start").click().run()
    job = runs.get_job(at.session_state["train_job"])
    deadline = time.monotonic() + 30
    while not job.snapshot()[0].events and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    at.button(key="w_train_cancel").click().run()
    assert job.wait(30)
    states = job.snapshot()
    assert states[0].status == "stopped" and states[0].events[-1]["reason"] == "stopped"
    assert states[1].status == "cancelled"  # the queued ablation never started
    at.run()
    ui.clean(at)


def test_tokenizer_view_counts_bytes(ui):
    at = ui.open(view="tokenizer", timeout=120)
    text = "héllo wörld 🙂"
    at.text_area(key="w_tok_text").input(text).run()
    ui.clean(at)
    shown = ui.metrics(at)
    assert shown["UTF-8 bytes"] == str(len(text.encode("utf-8")))
    assert shown["UTF-16 bytes"] == str(len(text.encode("utf-16-le")))
    assert shown["UTF-32 bytes"] == str(4 * len(text))
    tokens = int(shown["tokens"])
    assert shown["UTF-8 bytes / token"] == f"{len(text.encode('utf-8')) / tokens:.2f}"


def test_bad_upload_is_an_inline_error():
    from explorer.corpus import read_text

    for data, message in ((b"\x00\x01binary", "binary"), (b"\xff\xfe bad", "not UTF-8"), (b"  ", "no text")):
        with pytest.raises(ValueError, match=message):
            read_text(data, "f.txt")
    assert read_text("héllo".encode(), "f.txt") == "héllo"


def test_measured_view_runs_the_validation(ui):
    pytest.importorskip("validation.core")
    import accounting as acc

    small = dict(preset="custom", vocab_size="97", context_length="16", d_model="32", num_layers="2",
                 num_heads="4", d_ff="48", view="measured")
    at = ui.open(timeout=120, **small)
    ui.clean(at)
    at.selectbox(key="w_measure_device").set_value("cpu")
    at.button(key="w_measure_go").click().run()
    ui.clean(at)
    assert not at.error, [e.value for e in at.error]
    cfg = acc.ModelConfig(vocab_size=97, context_length=16, d_model=32, num_layers=2, num_heads=4, d_ff=48)
    rows = at.session_state["measurement"].rows
    params = {r.component: r for r in rows if r.quantity == "parameters"}
    for row in acc.parameter_rows(cfg):
        assert params[row.name].symbolic == row.value == params[row.name].measured
    assert any(d.value["quantity"].tolist() == [r.quantity for r in rows] for d in at.dataframe)
    overview = next(d.value for d in at.dataframe if "exactly equal" in d.value.columns)
    line = overview[overview["quantity"] == "parameters"].iloc[0]
    assert line["rows"] == line["exactly equal"] == len([r for r in rows if r.quantity == "parameters"])


def test_experiment_logs_are_read_defensively(tmp_path):
    from model.experiments.logs import read_curve

    log = tmp_path / "run.jsonl"
    log.write_text('{"type": "run", "name": "x"}\n{"type": "step", "step": 1, "loss": 5.0}\nnot json\n'
                   '{"type": "eval", "step": 1, "val_loss": 5.5}\n{"step": 2, "train_loss": 4.0, "val_loss": 4.5}\n'
                   '{"step": "x", "loss": 1}\n{"type": "step", "step": 3, "loss": null}\n')
    c = read_curve(log)
    assert (c.step, c.loss, c.eval_step, c.val_loss) == ([1, 2], [5.0, 4.0], [1, 2], [5.5, 4.5])


def test_uploads_binary_is_refused_text_is_used(ui):
    at = ui.open(view="train", timeout=120)
    at.radio(key="w_train_source").set_value("Upload a text file").run()
    assert any("Choose a file" in i.value for i in at.info)
    at.file_uploader(key="w_train_upload").upload("weights.bin", b"\x00\x01\x02" * 100).run()
    ui.clean(at)
    assert any("looks binary" in e.value for e in at.error)
    text = "hello world, a tiny corpus. " * 200
    at.file_uploader(key="w_train_upload").upload("corpus.txt", text.encode(), "text/plain").run()
    ui.clean(at)
    assert not at.error
    assert any(f"corpus.txt: {len(text.encode()):,} UTF-8 bytes" in c.value for c in at.caption)
