"""The full-mode rehearsal: the pick rule, pins of stand-ins, the stand-in SD files, and the branch check."""

import json

import nbformat
import numpy as np
import pytest

from imagegen import branches, devices, environment, modes, rehearsal
from imagegen.clip import CLIPTokenizer
from imagegen.data.download import download, sha256_of
from imagegen.network import OfflineError
from imagegen.paths import cache_dir


@pytest.fixture
def rehearsing(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGEGEN_REHEARSAL", "1")
    monkeypatch.setenv("IMAGEGEN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_rehearsal_value_keeps_full_choices_at_quick_sizes():
    assert rehearsal.rehearsal_value(6, 250) == 6
    assert rehearsal.rehearsal_value(2e-2, 5e-3) == 5e-3
    assert rehearsal.rehearsal_value(16, 4) == 4
    assert rehearsal.rehearsal_value((16, 32, 64), (32, 64, 96, 128)) == (16, 32, 64)
    assert rehearsal.rehearsal_value(6000, None) is None  # all of the stand-in data set
    assert rehearsal.rehearsal_value("mini", "sd-v1.4") == "sd-v1.4"
    assert rehearsal.rehearsal_value(False, True) is True  # switches are choices, not sizes
    assert rehearsal.rehearsal_value(("<a>", "flower"), ("<b>", "cat")) == ("<b>", "cat")


def test_a_rehearsal_is_full_mode(rehearsing, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_MODE", "quick")
    assert modes.mode() == "full" and not modes.is_quick()
    assert modes.pick(quick=3, full=50) == 3 and modes.pick(quick="mini", full="sd-v1.4") == "sd-v1.4"
    assert "mode:     full (rehearsal)" in environment.describe()
    assert rehearsal.model_config("sd-v1") == "rehearsal" and rehearsal.image_size(512) == 64
    monkeypatch.delenv("IMAGEGEN_REHEARSAL")
    assert modes.mode() == "quick" and rehearsal.model_config("sd-v1") == "sd-v1"


def test_download_checks_a_stand_in_against_its_own_digest(rehearsing, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    url = "https://example.org/weights.h5"
    target = cache_dir("stable_diffusion") / "weights.h5"
    target.write_bytes(b"stand-in")
    (rehearsing / rehearsal.STAND_INS).write_text(json.dumps(
        {url: {"algorithm": "sha256", "digest": sha256_of(target)}}))
    assert download(url, "0" * 64, subdir="stable_diffusion") == target
    target.write_bytes(b"changed")  # a stand-in that no longer matches is not used: offline, that fails at once
    with pytest.raises(OfflineError):
        download(url, "0" * 64, subdir="stable_diffusion")
    with pytest.raises(KeyError, match="no stand-in"):
        download("https://example.org/other.h5", "0" * 64)


def test_a_rehearsal_without_stand_ins_says_how_to_make_them(rehearsing):
    with pytest.raises(FileNotFoundError, match="imagegen.stand_ins"):
        rehearsal.pin("https://example.org/x", "sha256", "0" * 64)


def test_md5_pins_are_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_CACHE", str(tmp_path))
    source = tmp_path / "file.bin"
    source.write_bytes(b"weights")
    path = download(source.as_uri(), sha256_of(source, "md5"), algorithm="md5")
    assert path.read_bytes() == b"weights"
    with pytest.raises(ValueError, match="md5 pin"):
        download(source.as_uri(), "0" * 64, algorithm="md5")


def test_stand_in_sd_files_load_through_the_published_format_loader(tmp_path):
    from imagegen.stable_diffusion import presets, weights

    written = presets.build("tiny")
    fresh = presets.build("tiny")
    for module, other in zip(written, fresh):
        path = tmp_path / f"{module.name}.h5"
        weights.write_in_order(module, path)
        weights.load_keras_h5(other, path)
        for a, b in zip(weights.ordered_variables(module), weights.ordered_variables(other)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="different architecture"):
        weights.load_keras_h5(presets.build("mini")[1], tmp_path / f"{written[1].name}.h5")


def notebook(*sources):
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_markdown_cell("# test")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return book


def test_branch_check_finds_a_full_mode_branch_the_rehearsal_did_not_run(tmp_path):
    cell = ("EPOCHS = modes.pick(quick=2, full=50)\n"
            "for attempt in range(0):\n"
            "    if modes.is_quick():\n"
            "        pass\n")
    book = notebook(cell)
    log = tmp_path / "calls.jsonl"
    log.write_text(json.dumps({"cell": cell, "line": 1}) + "\n")  # the loop never ran: line 3 was not reached
    problems = branches.report({"nb.ipynb": book}, log)
    assert len(problems) == 1 and "cell 1, line 3" in problems[0]
    log.write_text("".join(json.dumps({"cell": cell, "line": n}) + "\n" for n in (1, 3)))
    assert branches.report({"nb.ipynb": book}, log) == []


def test_branch_check_refuses_a_stored_mode(tmp_path):
    book = notebook("QUICK = modes.is_quick()", "x = 1 if QUICK else 2", "if QUICK:\n    pass")
    log = tmp_path / "calls.jsonl"
    log.write_text(json.dumps({"cell": "QUICK = modes.is_quick()", "line": 1}) + "\n")
    problems = branches.report({"nb.ipynb": book}, log)
    assert len(problems) == 2 and all("hidden from the rehearsal" in p for p in problems)
    renamed = notebook("from imagegen.modes import pick", "from imagegen import modes as settings", "from imagegen import modes")
    assert [site.cell for site in branches.mode_sites(renamed, "nb.ipynb")[1]] == [1, 2]


def test_the_course_notebooks_branch_only_where_the_rehearsal_can_see():
    from imagegen.course import REPOSITORY, find_notebooks

    for path in find_notebooks(REPOSITORY / "notebooks"):
        sites, hidden = branches.mode_sites(nbformat.read(path, as_version=4), path.name)
        assert hidden == [], [str(site) for site in hidden]


def test_sd_text_encoder_needs_no_keras_cv(rehearsing, monkeypatch, tmp_path):
    """Notebook 05's full-mode text encoder is read by our own h5 loader: keras-cv may be absent (Colab)."""
    import sys

    from imagegen.stable_diffusion import presets, weights

    monkeypatch.setitem(sys.modules, "keras_cv", None)  # import keras_cv now raises ImportError
    encoder = presets.build(rehearsal.model_config("sd-v1"))[0]
    filename, _ = weights.SD_V1_4_FILES["text_encoder"]
    path = cache_dir("stable_diffusion") / filename
    weights.write_in_order(encoder, path)
    (rehearsing / rehearsal.STAND_INS).write_text(json.dumps(
        {weights.BASE_URL + filename: {"algorithm": "sha256", "digest": sha256_of(path)}}))
    loaded = presets.load_text_encoder("sd-v1.4")
    assert loaded.max_length == 77
    ids = CLIPTokenizer(max_length=77)(["a photo of a sunflower"])
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(encoder(ids)), atol=1e-6)


def test_the_training_strategy_is_made_once():
    pytest.importorskip("tensorflow")
    if devices.backend() != "tensorflow":
        pytest.skip("tf.distribute strategies are the TensorFlow backend's")
    assert devices.get_strategy() is devices.get_strategy()
    assert devices.num_replicas() == devices.get_strategy().num_replicas_in_sync == 1  # this CPU
