"""Typed results of a validation run: one `ComparisonRow` per measured quantity, and the whole
`Measurement` (rows + hardware + config + settings) with a versioned JSON form.

Imports no torch: the app reads committed results (validation/results/*.json) without it.

Units are in the `unit` field: "params", "flops", "bytes", "seconds", "tokens/s", "flop/s",
"ratio" (a dimensionless fraction such as MFU), "tokens", "bytes/token", "bytes/s".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from accounting.errors import UserError

SCHEMA_VERSION = 1
"""Version of `Measurement.to_dict()`; `from_dict` refuses other versions."""

Number = int | float


@dataclass(frozen=True)
class ComparisonRow:
    """One quantity of one component, symbolic (accounting) beside measured (instruments).

    `quantity` groups rows ("parameters", "forward matmul FLOPs", ...); `component` is the model's
    module path aggregated over layers ("layers.attn.q_proj") or "total". `symbolic` / `measured`
    are None where one side has no counterpart. `convention` says how both were counted; `reason`
    names why they differ (empty when they are equal).
    """

    quantity: str
    component: str
    unit: str
    symbolic: Number | None
    measured: Number | None
    convention: str
    reason: str = ""

    @property
    def rel_diff(self) -> float | None:
        """measured / symbolic - 1 (None when either is missing, or symbolic is 0 and measured
        is not; 0.0 when both are 0)."""
        if self.symbolic is None or self.measured is None:
            return None
        if self.symbolic == 0:
            return 0.0 if self.measured == 0 else None
        return self.measured / self.symbolic - 1

    @property
    def equal(self) -> bool:
        """Both present and exactly equal."""
        return self.symbolic is not None and self.measured is not None and self.symbolic == self.measured


def _number(value: Any) -> Number | None:
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Measurement:
    """A validation run: `rows`, the `hardware` it ran on (device, GPU or CPU name, torch, CUDA,
    python), the model `config` (ModelConfig fields) and the run `settings` (batch_size,
    context_length, dtype, steps, device)."""

    rows: list[ComparisonRow]
    hardware: dict[str, Any]
    config: dict[str, Any]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def row(self, quantity: str, component: str = "total") -> ComparisonRow:
        """The row for (quantity, component); KeyError if absent."""
        for r in self.rows:
            if r.quantity == quantity and r.component == component:
                return r
        raise KeyError(f"no row ({quantity!r}, {component!r})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: {"schema_version", "hardware", "config", "settings", "notes", "rows":
        [{quantity, component, unit, symbolic, measured, rel_diff, convention, reason}]}."""
        return {
            "schema_version": SCHEMA_VERSION,
            "hardware": dict(self.hardware),
            "config": dict(self.config),
            "settings": dict(self.settings),
            "notes": list(self.notes),
            "rows": [{**asdict(r), "rel_diff": r.rel_diff} for r in self.rows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Measurement":
        """Inverse of `to_dict` (rel_diff is recomputed). ValueError on another schema version."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UserError(f"measurement schema_version {version!r} is not {SCHEMA_VERSION}")
        try:
            rows = [ComparisonRow(r["quantity"], r["component"], r["unit"], _number(r["symbolic"]),
                                  _number(r["measured"]), r["convention"], r.get("reason", ""))
                    for r in data["rows"]]
            return cls(rows, dict(data["hardware"]), dict(data["config"]), dict(data["settings"]),
                       list(data.get("notes", [])))
        except (KeyError, TypeError) as exc:
            raise UserError(f"malformed measurement: missing or bad field {exc}") from None
