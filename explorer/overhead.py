"""The overhead margin: device memory a training step cannot use that the memory timeline does not
count (no Streamlit, no torch).

The timeline counts the bytes torch's tensors hold. On a GPU three more things take memory: the
CUDA context (driver and kernel code, outside torch's allocator), the cuBLAS workspace, and
fragmentation (the caching allocator's reserved bytes above the allocated peak). The margin is
their sum, in bytes; the explorer subtracts it from the GPU's memory before solving for the
largest batch, and stacks it on top of the peak in the Memory view.

Default (`default_overhead`): measured values from committed CUDA measurements
(validation.load_results(): rows of quantity "CUDA memory", components "CUDA context", "cuBLAS
workspace", "peak" and "reserved"; fragmentation = reserved - peak), the largest margin over the
runs on the chosen GPU (or on any GPU, said so, when none ran on it). The bytes are those runs'
own, not scaled to another model. With no committed CUDA result the default is 0 bytes and the
source says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from accounting.hardware import match_gpu

QUANTITY = "CUDA memory"


@dataclass(frozen=True)
class Overhead:
    """A margin: (part, bytes) pairs and where they come from (`source`, one line)."""

    parts: tuple[tuple[str, int], ...]
    source: str

    @property
    def total_bytes(self) -> int:
        return sum(b for _, b in self.parts)


NONE_COMMITTED = Overhead((), "no committed CUDA measurement (validation/results), so 0 bytes")


def given(gib: float) -> Overhead:
    """A margin the user typed, in GiB (2^30 bytes)."""
    return Overhead((("margin (user-given)", round(gib * 2**30)),), f"user-given: {gib:g} GiB")


def from_measurement(measurement) -> Overhead | None:
    """The margin one validation Measurement measured (None when it has no CUDA memory rows)."""
    got = {r.component: r.measured for r in measurement.rows if r.quantity == QUANTITY}
    if got.get("CUDA context") is None:
        return None
    peak, reserved = got.get("peak"), got.get("reserved")
    fragmentation = max(int(reserved) - int(peak), 0) if peak is not None and reserved is not None else 0
    hw, st = measurement.hardware or {}, measurement.settings or {}
    source = (f"measured on {hw.get('name', 'an unknown GPU')} (B={st.get('batch_size')}, "
              f"T={st.get('context_length')}, {st.get('dtype')})")
    return Overhead((("CUDA context", int(got["CUDA context"])),
                     ("cuBLAS workspace", int(got.get("cuBLAS workspace") or 0)),
                     ("fragmentation", fragmentation)), source)


def choose(measurements, gpu: str) -> Overhead:
    """The largest margin among `measurements` run on `gpu` (a name of accounting.GPUS), else among
    all of them (the source then says it was another GPU); NONE_COMMITTED when none has CUDA rows."""
    found = [(m, o) for m in measurements if (o := from_measurement(m)) is not None]
    if not found:
        return NONE_COMMITTED
    same = [(m, o) for m, o in found if (g := match_gpu(str((m.hardware or {}).get("name", "")))) and g.name == gpu]
    pool = same or found
    best = max((o for _, o in pool), key=lambda o: o.total_bytes)
    note = "" if same else f"; no committed run on {gpu}"
    return Overhead(best.parts, f"committed result, {best.source}{note}")


@lru_cache(maxsize=32)
def _default(gpu: str, directory: str | None, stamp: float) -> Overhead:
    import validation

    try:
        results = validation.load_results(directory)
    except (OSError, ValueError):  # no folder, or a file that is not a measurement
        return NONE_COMMITTED
    return choose(results, gpu)


def default_overhead(gpu: str, directory: str | os.PathLike[str] | None = None) -> Overhead:
    """The default margin for `gpu` from the committed results in `directory` (default:
    validation/results); re-read when the folder changes."""
    from validation.results import RESULTS_DIR

    folder = os.fspath(directory) if directory is not None else os.fspath(RESULTS_DIR)
    try:
        stamp = os.stat(folder).st_mtime
    except OSError:
        stamp = -1.0
    return _default(gpu, folder, stamp)
