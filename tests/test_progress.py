"""The course's progress bars are plain text: an executed notebook stores their last line, not a frozen widget."""

import io

from imagegen.progress import progress_bar


def test_progress_bar_writes_one_plain_text_line(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    assert list(progress_bar(range(5), desc="denoising")) == list(range(5))
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("denoising: 100%") and "5/5" in last and last.endswith("\n")


def test_progress_bar_can_be_disabled(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    assert list(progress_bar(range(3), desc="x", disable=True)) == [0, 1, 2]
    assert stream.getvalue() == ""
