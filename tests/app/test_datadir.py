"""The server reads no local file unless the operator names a data directory, and then only files
inside it (explorer.datadir; the Train view's corpus source, AppTest)."""

from __future__ import annotations

import os

import pytest

from explorer.datadir import DATA_DIR_ENV, data_dir, resolve_inside


@pytest.fixture
def folder(tmp_path):
    inside = tmp_path / "data"
    (inside / "sub").mkdir(parents=True)
    (inside / "corpus.txt").write_text("hello world, a tiny corpus. " * 200)
    (inside / "sub" / "more.txt").write_text("more text")
    (tmp_path / "secret.txt").write_text("not for the web")
    os.symlink(tmp_path / "secret.txt", inside / "link-out.txt")
    os.symlink(inside / "corpus.txt", inside / "link-in.txt")
    return inside


def test_only_files_inside_the_data_directory(folder):
    assert resolve_inside("corpus.txt", folder) == (folder / "corpus.txt").resolve()
    assert resolve_inside("sub/more.txt", folder) == (folder / "sub" / "more.txt").resolve()
    assert resolve_inside(str(folder / "corpus.txt"), folder) == (folder / "corpus.txt").resolve()
    assert resolve_inside("link-in.txt", folder) == (folder / "corpus.txt").resolve()  # stays inside
    for text, why in (("/etc/passwd", "outside the data directory"), ("../secret.txt", "'..' is not allowed"),
                      ("sub/../../secret.txt", "'..' is not allowed"), ("link-out.txt", "outside"),
                      ("sub", "not a file"), ("missing.txt", "not a file"), ("", "give a file name")):
        with pytest.raises(ValueError, match=why):
            resolve_inside(text, folder)


def test_the_variable_turns_the_source_on(folder, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert data_dir() is None
    monkeypatch.setenv(DATA_DIR_ENV, str(folder / "corpus.txt"))
    with pytest.raises(ValueError, match="not a directory"):
        data_dir()
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    assert data_dir() == folder.resolve()


def test_the_train_view_offers_and_guards_local_files(ui, folder, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    at = ui.open(view="train", timeout=120)
    assert len(at.radio(key="w_train_source").options) == 2  # no local files without the variable
    assert any(DATA_DIR_ENV in c.value for c in at.caption)
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    at.run()
    at.radio(key="w_train_source").set_value("A file of the server's data directory").run()
    at.text_input(key="w_train_path").input("/etc/passwd").run()
    ui.clean(at)
    assert any("outside the data directory" in e.value for e in at.error)
    at.text_input(key="w_train_path").input("corpus.txt").run()
    ui.clean(at)
    assert not at.error
    assert any(c.value.startswith("corpus.txt: 5,600 UTF-8 bytes") for c in at.caption)
