"""imagegen.modes: which mode was asked for, how auto resolves, and what pick returns."""

import pytest

from imagegen import modes


def test_requested_mode_reads_the_environment(monkeypatch):
    for value in ("quick", "full", "auto", " Quick "):
        monkeypatch.setenv("IMAGEGEN_MODE", value)
        assert modes.requested_mode() == value.strip().lower()
    monkeypatch.delenv("IMAGEGEN_MODE")
    assert modes.requested_mode() == "auto"


def test_unknown_mode_names_the_choices(monkeypatch):
    monkeypatch.setenv("IMAGEGEN_MODE", "fast")
    with pytest.raises(ValueError, match="quick, full, auto"):
        modes.requested_mode()


def test_explicit_modes_pass_through():
    assert modes.resolve_mode("quick", accelerator=True, network=True) == "quick"
    assert modes.resolve_mode("full", accelerator=False, network=False) == "full"


def test_auto_is_full_only_with_accelerator_and_network():
    assert modes.resolve_mode("auto", accelerator=True, network=True) == "full"
    assert modes.resolve_mode("auto", accelerator=True, network=False) == "quick"
    assert modes.resolve_mode("auto", accelerator=False, network=True) == "quick"


def test_auto_on_cpu_never_probes_the_network(monkeypatch):
    def no_network():
        raise AssertionError("the network was probed on a CPU machine")

    monkeypatch.setattr(modes, "network_available", no_network)
    assert modes.resolve_mode("auto", accelerator=False) == "quick"


def test_mode_is_quick_under_tests():
    assert modes.mode() == "quick" and modes.is_quick()
    assert modes.pick(quick=1, full=2) == 1
