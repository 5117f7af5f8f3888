"""Shared test settings: quick mode, no windows, a private cache, never the real network."""

import os

# Before anything imports Keras or matplotlib (notebook kernels inherit these too).
os.environ.setdefault("IMAGEGEN_MODE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each unit test gets its own cache, figures and tfds folders."""
    monkeypatch.setenv("IMAGEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMAGEGEN_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    return tmp_path / "cache"
