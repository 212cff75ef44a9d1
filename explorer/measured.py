"""Measured vs analytic: run the validation for the current config (meta device at any size, CPU
for small models, CUDA when present) and show its table; also the committed results, labelled
with their hardware. `validation` (and with it torch) is imported when the view is drawn."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import accounting as acc
from explorer.compute import table_height
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


def _run(settings: Settings, cfg: acc.ModelConfig) -> None:
    devices = _devices(cfg)
    c = st.columns(3)
    device = c[0].selectbox("Device", devices, key="w_measure_device",
                            help="meta: shapes only (any size, FLOPs and saved bytes, no time); cpu: only "
                                 f"models up to {CPU_PARAMETER_LIMIT:,} parameters.")
    batch = int(c[1].number_input("Batch", 1, 64, 1, key="w_measure_batch"))
    steps = int(c[2].number_input("Steps", 1, 10, 1, key="w_measure_steps"))
    if not st.button("Run the validation", key="w_measure_go", type="primary"):
        return
    bar = st.progress(0.0, text="starting…")

    def progress(phase: str, fraction: float) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=phase)

    from validation.core import measure

    try:
        measurement = measure(cfg, device=device, batch_size=batch, dtype=settings.dtype,
                              steps=steps, progress=progress)
    except (ValueError, RuntimeError, MemoryError) as exc:
        bar.empty()
        st.error(f"The validation could not run: {exc}")
        return
    bar.empty()
    st.session_state["measurement"] = measurement


def render(settings: Settings) -> None:
    try:
        cfg = settings.config()
    except ValueError as exc:
        st.error(f"This configuration is not valid: {exc}. Change it in the sidebar.")
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
