"""Measured vs analytic: run the validation for the sidebar's configuration (model, T, B, dtype,
checkpointing) and show its table; also the committed results, labelled with their hardware.
`validation` (and with it torch) is imported when the view is drawn.

Devices: meta at any size (shapes only: parameters, FLOPs, saved bytes; no time), CPU for models
up to CPU_PARAMETER_LIMIT parameters, CUDA when present. On CPU and CUDA the batch is the
sidebar's B unless the step's predicted peak (accounting.check_fits, the memory timeline) exceeds
the device's free memory: then the largest batch that fits, and the page says so."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import accounting as acc
from explorer.compute import table_height
from explorer.sidebar import config_or_error
from explorer.state import Settings

CPU_PARAMETER_LIMIT = 50_000_000
"""Largest model (parameters) the view runs on CPU: bigger ones take minutes and many GiB."""


def table(measurement) -> pd.DataFrame:
    """One row per comparison: symbolic, measured, relative difference, convention, reason."""
    return pd.DataFrame([{
        "quantity": r.quantity, "component": r.component, "unit": r.unit, "symbolic": r.symbolic,
        "measured": r.measured, "relative difference": r.rel_diff, "residual explained": r.reason,
        "convention": r.convention,
    } for r in measurement.rows])


def summary(measurement) -> pd.DataFrame:
    """Per quantity: how many rows, how many exactly equal, the largest |relative difference|."""
    frame = table(measurement)
    frame["equal"] = [r.equal for r in measurement.rows]
    frame["abs_rel"] = frame["relative difference"].abs()
    return frame.groupby("quantity", sort=False).agg(
        rows=("component", "size"), exactly_equal=("equal", "sum"),
        largest_abs_relative_difference=("abs_rel", "max")).reset_index().rename(
        columns={"exactly_equal": "exactly equal",
                 "largest_abs_relative_difference": "largest |relative difference|"})


def label(measurement) -> str:
    """A one-line name of a measurement: device and hardware, model shape, step."""
    hw, cfg, st_ = measurement.hardware or {}, measurement.config or {}, measurement.settings or {}
    return (f"{st_.get('device', hw.get('device', '?'))} ({hw.get('name', 'unknown hardware')}) · "
            f"L={cfg.get('num_layers')} d={cfg.get('d_model')} V={cfg.get('vocab_size')} "
            f"attention={cfg.get('attention')} · B={st_.get('batch_size')} T={st_.get('context_length')} "
            f"{st_.get('dtype')}")


def _show(measurement, key: str) -> None:
    hardware = measurement.hardware or {}
    st.caption("Hardware: " + (", ".join(f"{k}: {v}" for k, v in hardware.items()) or "unknown"))
    overview = summary(measurement)
    st.dataframe(overview, hide_index=True, width="stretch", height=table_height(len(overview)),
                 column_config={"largest |relative difference|": st.column_config.NumberColumn(format="%.2e")})
    quantities = ["all"] + list(dict.fromkeys(r.quantity for r in measurement.rows))
    chosen = st.selectbox("Rows of", quantities, key=f"w_measure_q_{key}")
    frame = table(measurement)
    if chosen != "all":
        frame = frame[frame["quantity"] == chosen]
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "relative difference": st.column_config.NumberColumn(format="%.2e"),
        "symbolic": st.column_config.NumberColumn(format="localized"),
        "measured": st.column_config.NumberColumn(format="localized")})
    for note in getattr(measurement, "notes", []) or []:
        st.caption(f"Note: {note}")


def _devices(cfg: acc.ModelConfig) -> list[str]:
    devices = ["meta"]
    if acc.total_parameters(cfg) <= CPU_PARAMETER_LIMIT:
        devices.append("cpu")
    import torch

    if torch.cuda.is_available():
        devices.append("cuda")
    return devices


def batch_that_fits(settings: Settings, cfg: acc.ModelConfig, device: str) -> tuple[int, str]:
    """(B to measure with, why): the sidebar's B, or on CPU / CUDA the largest batch whose predicted
    peak fits the device's free memory when B does not (ValueError when not even B = 1 fits)."""
    if device == "meta":
        return settings.batch_size, "the sidebar's B (the meta device holds no memory)"
    from model.guard import describe, free_memory_bytes

    free = free_memory_bytes(device)
    fit = acc.check_fits(cfg, settings.batch_size, free, dtype=settings.dtype,
                         checkpointing=settings.checkpointing, where=describe(device))
    if fit.fits:
        return settings.batch_size, f"the sidebar's B; its predicted peak {acc.fmt_bytes(fit.peak_bytes)} fits"
    if not fit.largest_batch:
        raise ValueError(f"not even B = 1 fits: {fit.message}")
    return fit.largest_batch, (f"the largest batch that fits: the sidebar's B = {settings.batch_size:,} "
                               f"would peak at {acc.fmt_bytes(fit.peak_bytes)}, more than the "
                               f"{acc.fmt_bytes(free)} free on {describe(device)}")


def _run(settings: Settings, cfg: acc.ModelConfig) -> None:
    devices = _devices(cfg)
    c = st.columns([1, 1, 3])
    device = c[0].selectbox("Device", devices, key="w_measure_device",
                            help="meta: shapes only (any size, FLOPs and saved bytes, no time); cpu: only "
                                 f"models up to {CPU_PARAMETER_LIMIT:,} parameters.")
    steps = int(c[1].number_input("Timed steps", 1, 10, 1, key="w_measure_steps"))
    if "cpu" not in devices:
        c[2].caption(f"No CPU run: {acc.fmt_int(acc.total_parameters(cfg))} parameters is more than the "
                     f"{CPU_PARAMETER_LIMIT:,} this view runs on CPU (minutes and many GiB).")
    try:
        batch, why = batch_that_fits(settings, cfg, device)
    except ValueError as exc:
        st.error(f"Cannot measure on {device}: {exc}.")
        return
    st.markdown(f"Measures the sidebar's model at **B = {batch:,}** ({why}), **T = {cfg.context_length:,}**, "
                f"**{settings.dtype}**, checkpointing **{'on' if settings.checkpointing else 'off'}**, "
                f"on **{device}**.")
    if not st.button("Run the validation", key="w_measure_go", type="primary"):
        return
    bar = st.progress(0.0, text="starting…")

    def progress(phase: str, fraction: float) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=phase)

    from validation.core import measure

    try:
        measurement = measure(cfg, device=device, batch_size=batch, dtype=settings.dtype, steps=steps,
                              checkpointing=settings.checkpointing, progress=progress)
    except (ValueError, RuntimeError, MemoryError) as exc:
        bar.empty()
        st.error(f"The validation could not run: {exc}")
        return
    bar.empty()
    st.session_state["measurement"] = measurement


def render(settings: Settings) -> None:
    cfg = config_or_error(settings)
    if cfg is None:
        return
    st.markdown("Runs the real model with instruments (FLOP counter, saved-tensor hooks, memory) and "
                "puts each measured number beside the accounting's; a non-zero difference names its cause.")
    _run(settings, cfg)
    measurement = st.session_state.get("measurement")
    if measurement is not None:
        st.subheader("This session's run")
        st.markdown(f"**{label(measurement)}**")
        _show(measurement, "session")
    st.subheader("Committed results")
    try:
        results = _load_results()
    except (OSError, ValueError) as exc:
        st.warning(f"Could not read the committed results: {exc}")
        return
    if not results:
        st.info("No committed results found.")
        return
    names = [label(m) for m in results]
    index = st.selectbox("Result (labelled with the hardware it ran on)", range(len(results)),
                         format_func=names.__getitem__, key="w_measure_result")
    _show(results[index], "committed")


@st.cache_resource(show_spinner=False, ttl=60)
def _load_results() -> list:
    """validation.load_results(), read at most once a minute (the files are committed, read-only)."""
    import validation

    return validation.load_results()
