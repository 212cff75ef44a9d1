"""accounting.json_io.read_json_file: parsed value, or one-line errors naming the file."""

import pytest

from accounting.json_io import read_json_file


def test_reads_json(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"steps": 3, "betas": [0.9, 0.95]}', encoding="utf-8")
    assert read_json_file(path, "train config") == {"steps": 3, "betas": [0.9, 0.95]}


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text (byte 0)"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_json_file(path, "train config")
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_names_what(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary not found"):
        read_json_file(tmp_path / "nope.json", "summary")
