"""All human formatting of numbers in one place (the computing layer returns raw ints/floats).

- counts: thousands separators ("1,557,611,200") or short ("1.56B")
- bytes: decimal GB (10^9) or binary GiB (2^30), spelled as such
- FLOPs: SI prefixes ("5.86 PFLOP"), FLOP/s likewise
- seconds: the largest sensible unit ("0.41 ms", "3.2 h", "4.1 days")
"""

from __future__ import annotations

import math

from accounting.errors import UserError

_SI = ((10**18, "E"), (10**15, "P"), (10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))
_BINARY = ((2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
_DECIMAL = ((10**15, "PB"), (10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB"))


def fmt_int(n: int) -> str:
    """Exact integer with thousands separators."""
    return f"{n:,}"


def fmt_count(n: float) -> str:
    """Short count: 1.56B, 124.4M, 12.3K."""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def _sig3(v: float) -> str:
    """Three significant digits without an exponent: 42.3, 1.01, and 1,014 (not 1.01e+03) for a
    value of a unit's last steps (1000 to 1023 MiB) or of an open-ended unit (6,584 days)."""
    text = f"{v:.3g}"
    return f"{v:,.0f}" if "e+" in text else text


def _scaled(value: float, table: tuple[tuple[int, str], ...], unit: str) -> str:
    for scale, prefix in table:
        if abs(value) >= scale:
            return f"{_sig3(value / scale)} {prefix}{unit}"
    return f"{_sig3(value)} {unit}"


def fmt_flops(flops: float) -> str:
    """FLOPs with an SI prefix: '5.86 PFLOP'."""
    return _scaled(flops, _SI, "FLOP")


def fmt_flops_per_s(rate: float) -> str:
    """FLOP/s with an SI prefix: '989 TFLOP/s'."""
    return _scaled(rate, _SI, "FLOP") + "/s"


def fmt_bytes(n: float, binary: bool = True) -> str:
    """Bytes in GiB/MiB (binary=True, 2^30) or GB/MB (decimal, 10^9)."""
    for scale, unit in (_BINARY if binary else _DECIMAL):
        if abs(n) >= scale:
            return f"{_sig3(n / scale)} {unit}"
    return f"{n:g} B"


def fmt_bytes_per_s(rate: float) -> str:
    """A bandwidth in decimal units: '3.35 TB/s' (10^12 bytes/s)."""
    return fmt_bytes(rate, binary=False) + "/s"


def fmt_seconds(s: float) -> str:
    """Seconds as µs, ms, s, min, h or days."""
    for scale, unit in ((86_400, "days"), (3_600, "h"), (60, "min")):
        if s >= scale:
            return f"{_sig3(s / scale)} {unit}"
    if 0 < s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if 0 < s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_share(x: float) -> str:
    """A fraction as a percentage: 0.4231 -> '42.3%'."""
    return f"{100 * x:.1f}%"


_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """'80GB' -> 80*10^9, '80GiB' -> 80*2^30, '1e9' -> 10^9. Raises UserError on bad input."""
    s = text.strip().lower().replace(" ", "")
    unit = s.lstrip("0123456789.e+-")
    number = s[: len(s) - len(unit)] if unit else s
    if unit not in _BYTE_UNITS or not number:
        raise UserError(f"cannot read a byte size from {text!r} (e.g. 80GB, 80GiB, 1e9)")
    try:
        value = float(number) * _BYTE_UNITS[unit]
    except ValueError:
        raise UserError(f"cannot read a byte size from {text!r} (e.g. 80GB, 80GiB, 1e9)") from None
    if not 0 < value < math.inf:
        raise UserError(f"byte size must be positive and finite, got {text!r}")
    return int(value)
