"""Train view: corpus -> BPE tokenizer -> a small model trained live in a background worker
(explorer.runs), with the ablation variants overlaid, throughput and MFU against the analytic
FLOPs, cancel at any time, and sampling with temperature and top-p.

The page never blocks on training: it polls the worker from a fragment that reruns every 0.5 s
while the job runs (`st.fragment(run_every=...)`), then reruns the whole page once when it ends.
"""

from __future__ import annotations

import streamlit as st

import accounting as acc
from explorer import charts, corpus, rates, runs
from explorer.state import Settings

JOB = "train_job"
_WAS_RUNNING = "_train_was_running"
TINY = dict(d_model=64, num_layers=2, num_heads=4, d_ff=176, context_length=64, batch_size=16,
            steps=200, lr=3e-3)
"""Defaults small enough that 2 CPU cores show a falling loss within seconds."""


def _model_widgets(vocab_size: int) -> tuple[acc.ModelConfig, object, list[str]] | None:
    c = st.columns(4)
    values = {}
    for i, (name, lo, hi) in enumerate((("d_model", 8, 1024), ("num_layers", 1, 24), ("num_heads", 1, 32),
                                        ("d_ff", 8, 4096))):
        values[name] = int(c[i].number_input(name, lo, hi, TINY[name], key=f"w_train_{name}"))
    c = st.columns(4)
    context = int(c[0].number_input("context length", 8, 1024, TINY["context_length"], key="w_train_ctx"))
    batch = int(c[1].number_input("batch size", 1, 256, TINY["batch_size"], key="w_train_batch"))
    steps = int(c[2].number_input("steps", 1, 100_000, TINY["steps"], key="w_train_steps"))
    lr = float(c[3].number_input("max learning rate", 1e-5, 1.0, TINY["lr"], format="%g", key="w_train_lr"))
    variants = st.multiselect("Variants (ablations, trained one after another, curves overlaid)",
                              list(runs.VARIANTS), default=["baseline"], key="w_train_variants")
    from model import TrainConfig

    try:
        cfg = acc.ModelConfig(vocab_size=vocab_size, context_length=context, **values)
        tcfg = TrainConfig(batch_size=batch, steps=steps, max_lr=lr, min_lr=lr / 10,
                           warmup_iters=min(20, steps // 10), eval_interval=max(1, min(steps // 8, 50)),
                           eval_batches=4, checkpoint_interval=0, log_interval=max(1, min(5, steps // 20)),
                           device="cpu", val_fraction=0.1)
    except ValueError as exc:
        st.error(f"Model settings not valid: {exc}")
        return None
    st.caption(f"{acc.fmt_int(acc.total_parameters(cfg))} parameters; "
               f"{acc.fmt_flops(acc.train_step_flops(cfg, batch))} matmul FLOPs per training step "
               f"(2mnp, backward = 2× forward); AdamW, cosine schedule, float32 on CPU, "
               f"{runs.JOB_THREADS} torch thread; at most {runs.max_running()} trainings at once on this "
               f"server (later ones queue).")
    return cfg, tcfg, variants


def _start(data: corpus.Corpus, trained: corpus.TrainedTokenizer | None, vocab: int, chosen) -> None:
    import numpy as np

    from tokenizer import ids_dtype

    if trained is None:
        trained = corpus.train_tokenizer(data, vocab)
    cfg, tcfg, variants = chosen
    cfg = cfg.replace(vocab_size=trained.tokenizer.vocab_size)
    ids = trained.tokenizer.encode(data.text)
    tokens = np.asarray(ids, dtype=ids_dtype(cfg.vocab_size))
    need = int((cfg.context_length + 1) / 0.9) + 1
    if len(tokens) < need:
        raise ValueError(f"The corpus gives {len(tokens):,} tokens; this context length needs at least "
                         f"{need:,} (90% train, 10% validation). Use more text or a shorter context.")
    st.session_state[JOB] = runs.start_job(cfg, tcfg, tokens, variants, tokenizer=trained.tokenizer)


def _peak_per_thread() -> float:
    gflops = st.columns(3)[0].number_input(
        "Assumed peak per torch thread, GFLOP/s (for MFU)", 1.0, 1e6, 50.0, format="%g", key="w_train_peak",
        help="CPUs have no datasheet peak here: 50 GFLOP/s per thread is an assumption (one core's "
             "fp32 FMA vector units at ~3 GHz). Edit it for your machine.")
    return gflops * 1e9


def _throughput(run: runs.RunState, peak: float) -> None:
    """Loss and throughput of one variant: smoothed and average tokens/s and MFU (explorer.rates)."""
    step = run.last("step")
    if step is None:
        return
    cfg = run.config
    per_token = acc.train_step_flops(cfg, 1) / cfg.context_length  # exact matmul FLOPs per token
    rate = rates.throughput(run.events)
    c = st.columns(6)
    c[0].metric("step", f"{step['step']:,}")
    c[1].metric("train loss", f"{step['loss']:.3f}")
    val = run.last("eval")
    c[2].metric("val loss", "–" if val is None else f"{val['val_loss']:.3f}")
    c[3].metric(f"tokens/s ({rates.WINDOW_S:.0f} s)", _rate(rate.recent_tokens_per_s),
                help=f"Tokens trained over the last {rates.WINDOW_S:.0f} s of wall clock (evaluations "
                     "included), not the last logging interval, which jumps with the machine's load.")
    c[4].metric("tokens/s (mean)", _rate(rate.average_tokens_per_s),
                help=f"The run's average: {acc.fmt_int(rate.tokens)} tokens in {rate.elapsed_s:,.1f} s of wall "
                     "clock.")
    recent = rates.mfu(rate.recent_tokens_per_s, per_token, peak)
    average = rates.mfu(rate.average_tokens_per_s, per_token, peak)
    mean = "–" if average is None else f"{average:.1%}"
    c[5].metric(f"MFU ({rates.WINDOW_S:.0f} s)", "–" if recent is None else f"{recent:.1%}",
                help=f"Over the last {rates.WINDOW_S:.0f} s; run average {mean}: tokens/s × "
                     f"{acc.fmt_flops(per_token)} per token (exact matmul FLOPs, accounting) over the assumed "
                     f"peak {acc.fmt_flops_per_s(peak)} of the run's threads.")
    if run.status not in ("running", "queued"):
        st.caption(f"{run.label} {run.status}: {rate.steps:,} steps, {acc.fmt_int(rate.tokens)} tokens in "
                   f"{rate.elapsed_s:,.1f} s, on average {_rate(rate.average_tokens_per_s)} tokens/s"
                   + ("" if average is None else f", MFU {average:.1%}") + ".")
    else:
        st.caption(f"Elapsed {rate.elapsed_s:,.1f} s.")


def _rate(tokens_per_s: float | None) -> str:
    return "–" if tokens_per_s is None else f"{tokens_per_s:,.0f}"


def _status(job: runs.Job, snapshot: list[runs.RunState]) -> str:
    place = job.queue_position
    queued = f" (position {place} in the queue)" if place else ""
    return " · ".join(f"**{r.label}**: {r.status}" + (queued if r.status == "queued" else "") for r in snapshot)


def _live(job_id: str, peak: float) -> None:
    job = runs.get_job(job_id)
    if job is None:
        return
    snapshot = job.snapshot()
    if job.running:
        st.button("Cancel training", on_click=job.cancel, key="w_train_cancel", type="primary")
    st.markdown(_status(job, snapshot))
    for r in snapshot:
        if r.status == "failed":
            st.error(f"{r.label} failed: {r.message}")
    current = next((r for r in snapshot if r.status == "running"), None) or \
        next((r for r in reversed(snapshot) if r.events), None)
    if current is not None:
        st.markdown(f"**{current.label}**" + (" (training now)" if current.status == "running" else ""))
        _throughput(current, peak)
    st.plotly_chart(charts.loss_curves([(r.label, *r.losses()) for r in snapshot if r.events]),
                    width="stretch", key="train_loss_chart")
    if len(snapshot) > 1 or not job.running:
        st.dataframe(_comparison(snapshot, peak), hide_index=True, width="stretch")
    if st.session_state.get(_WAS_RUNNING) and not job.running:
        st.session_state[_WAS_RUNNING] = False
        st.rerun(scope="app")  # the job ended: redraw the page (sampling) and stop polling


def _comparison(snapshot: list[runs.RunState], peak: float) -> list[dict]:
    """One row per variant: status, parameters, last train and validation loss (nats/token), and
    the totals: tokens, wall-clock seconds, average tokens/s and MFU (explorer.rates)."""
    out = []
    for r in snapshot:
        step, val = r.last("step"), r.last("eval")
        rate = rates.throughput(r.events)
        per_token = acc.train_step_flops(r.config, 1) / r.config.context_length
        average = rates.mfu(rate.average_tokens_per_s, per_token, peak)
        out.append({"variant": r.label, "status": r.status, "parameters": acc.total_parameters(r.config),
                    "steps": step["step"] if step else 0,
                    "train loss": round(step["loss"], 4) if step else None,
                    "val loss": round(val["val_loss"], 4) if val else None,
                    "tokens": rate.tokens, "seconds": round(rate.elapsed_s, 2),
                    "average tokens/s": None if rate.average_tokens_per_s is None else round(rate.average_tokens_per_s),
                    "average MFU": None if average is None else round(average, 4)})
    return out


def _sampling(job: runs.Job) -> None:
    done = [r for r in job.snapshot() if r.checkpoint is not None]
    if not done or job.tokenizer is None:
        return
    st.subheader("Sample")
    c = st.columns([2, 1, 1, 1])
    label = c[0].selectbox("Model", [r.label for r in done], key="w_sample_model")
    temperature = c[1].slider("temperature", 0.0, 2.0, 0.8, 0.05, key="w_sample_temp",
                              help="0 = greedy (argmax).")
    top_p = c[2].slider("top-p", 0.05, 1.0, 0.95, 0.05, key="w_sample_top_p",
                        help="Keep the smallest set of tokens holding this much probability.")
    max_new = int(c[3].number_input("new tokens", 1, 1000, 80, key="w_sample_n"))
    prompt = st.text_input("Prompt", "def ", key="w_sample_prompt")
    if st.button("Sample", key="w_sample_go"):
        run = next(r for r in done if r.label == label)
        st.code(_sample(run, job.tokenizer, prompt, temperature, top_p, max_new), language=None)


def _sample(run: runs.RunState, tokenizer, prompt: str, temperature: float, top_p: float, n: int) -> str:
    import torch

    from model import TransformerLM, load_checkpoint
    from model.sampling import generate

    model = TransformerLM(run.config, generator=torch.Generator())  # weights replaced by the checkpoint's
    load_checkpoint(run.checkpoint, model)
    ids = tokenizer.encode(prompt) or [0]
    new = generate(model, ids, n, temperature=temperature, top_p=top_p,
                   generator=torch.Generator().manual_seed(0))
    return prompt + tokenizer.decode(new)


def render(settings: Settings) -> None:
    st.caption("Train a tiny model live on this machine's CPU. Nothing is downloaded.")
    st.subheader("1 · Corpus")
    data = corpus.pick_corpus()
    if data is None:
        return
    st.subheader("2 · BPE tokenizer")
    trained = corpus.tokenizer_section(data)
    st.subheader("3 · Model and training")
    chosen = _model_widgets(trained.tokenizer.vocab_size if trained else 512)
    job = runs.get_job(st.session_state.get(JOB))
    busy = job is not None and job.running
    if chosen is not None and st.button("Start training", disabled=busy, key="w_train_start", type="primary"):
        try:
            _start(data, trained, int(st.session_state.get("w_train_vocab", 512)), chosen)
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.rerun()  # redraw with the tokenizer's numbers and the live job
        job = runs.get_job(st.session_state.get(JOB))
    peak = _peak_per_thread()
    if job is None:
        from explorer import experiments_view
        experiments_view.render()
        return
    st.session_state[_WAS_RUNNING] = job.running
    st.fragment(_live, run_every=0.5 if job.running else None)(job.id, peak * (job.threads or 1))
    if not job.running:
        _sampling(job)
    from explorer import experiments_view
    experiments_view.render()
