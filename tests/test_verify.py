"""The golden-value check of loaded SD v1 weights, and ``python -m imagegen verify``."""

import numpy as np
import pytest

from imagegen.stable_diffusion import from_config_name
from imagegen.stable_diffusion import verify as verify_module
from imagegen.stable_diffusion.verify import WeightsMismatch, golden_values, verify_weights


@pytest.fixture(scope="module")
def tiny():
    return from_config_name("tiny", img_height=32, img_width=32, jit_compile=False, progress=False)


def _golden_of(report):
    return {name: (np.round(values, 6), 1e-4) for name, (values, *_) in report.items()}


def test_random_weights_fail_and_own_values_pass(tiny, monkeypatch, capsys):
    report = golden_values(tiny)
    assert set(report) == {"text encoder", "image encoder"} and not any(ok for *_, ok in report.values())
    with pytest.raises(WeightsMismatch, match="do not reproduce"):
        verify_weights(tiny)
    # The same code passes when the expected values are the model's own: the check can pass as well as fail.
    monkeypatch.setattr(verify_module, "GOLDEN", _golden_of(report))
    verify_weights(tiny)
    assert "weights verified" in capsys.readouterr().out


def test_rehearsal_reports_stand_ins_as_a_mismatch(tiny, monkeypatch, capsys):
    monkeypatch.setenv("IMAGEGEN_REHEARSAL", "1")
    verify_weights(tiny)  # stand-in weights: a mismatch, reported, not raised
    assert "mismatch, as it must be" in capsys.readouterr().out
    monkeypatch.setattr(verify_module, "GOLDEN", _golden_of(golden_values(tiny)))
    with pytest.raises(WeightsMismatch, match="cannot fail"):
        verify_weights(tiny)


def test_half_precision_pipelines_are_checked_in_float32(tiny):
    half = from_config_name("tiny", img_height=32, img_width=32, dtype="mixed_float16", jit_compile=False)
    half.text_encoder.set_weights(tiny.text_encoder.get_weights())
    half.image_encoder.set_weights(tiny.image_encoder.get_weights())
    for name, (values, *_) in golden_values(half).items():
        np.testing.assert_allclose(values, golden_values(tiny)[name][0], atol=1e-6)


def test_cli_verify(diffusers_folder, monkeypatch, capsys):
    from imagegen.cli import main

    folder, *_ = diffusers_folder
    assert main(["verify", "--diffusers", str(folder)]) == 1  # random weights: a mismatch, exit status 1
    assert "MISMATCH" in capsys.readouterr().out
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    assert main(["verify", "--preset", "sd-v1.4"]) == 3  # offline, no cached weights: says so at once
    assert "not available" in capsys.readouterr().err


def test_cli_and_demo_take_single_files_and_refuse_pickles(tmp_path, capsys):
    from imagegen.cli import main
    from imagegen.demo import DemoPanel

    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"never unpickled")
    assert main(["generate", "a cat", "--single-file", str(pickle), "-o", str(tmp_path / "x.png")]) == 2
    assert "pickle" in capsys.readouterr().err
    assert main(["generate", "a cat", "--variant", "fp16", "-o", str(tmp_path / "x.png")]) == 2
    assert "--diffusers" in capsys.readouterr().err
    panel = DemoPanel(loaders={}, preset="v1-5-pruned-emaonly",
                      weights=[str(tmp_path / "v1-5-pruned-emaonly.safetensors"), str(pickle)])
    assert list(panel.loaders) == ["v1-5-pruned-emaonly", "model.ckpt"]
    assert panel.generate() is None and "not available" in panel.status.value  # no such file: said in the panel
