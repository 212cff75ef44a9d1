"""AppTest helpers, as the `ui` fixture: open the app from URL query parameters, read metrics,
check that no exception reached the page."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

APP = Path(__file__).resolve().parents[2] / "app.py"


def open_app(timeout: float = 60, **query: str):
    """An AppTest of app.py run once with `query` as the URL query parameters."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = str(value)
    return at.run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_clean(at) -> None:
    """No exception element and no traceback in the page."""
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="session")
def ui():
    return SimpleNamespace(open=open_app, metrics=metrics, clean=assert_clean, app=APP)
