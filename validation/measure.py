"""`python -m validation.measure` (the CLI lives in validation.cli).

`validation.measure` is also the function `validation.core.measure`: once this module is imported
(which sets the attribute `validation.measure` to the module), the module itself is callable and
forwards to that function, so `validation.measure(cfg, ...)` works either way.
"""

from __future__ import annotations

import sys
import types

from validation.core import measure as _measure


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    from validation.cli import run

    raise SystemExit(run())
