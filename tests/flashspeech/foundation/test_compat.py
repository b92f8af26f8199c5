"""The torch / torchaudio pairing check: a mismatch is one clear error naming both versions and the fix."""

from __future__ import annotations

import builtins

import pytest

from flashspeech.foundation import compat


@pytest.mark.parametrize(
    ("torch_version", "audio_version", "ok"),
    [
        ("2.11.0", "2.11.0", True),
        ("2.11.0+cu128", "2.11.0", True),
        ("2.11.0+cpu", "2.11.0+cpu", True),
        ("2.11.0", "2.11.1", False),  # what the registry paired in 2026-11: undefined symbol at import
        ("2.12.0", "2.11.0", False),
        ("2.0.1", "2.0.2", True),  # before 2.1 torchaudio's micro version ran one ahead
        (None, "2.11.0", True),
        ("2.11.0", None, True),
    ],
)
def test_pair_problem(torch_version, audio_version, ok):
    problem = compat.pair_problem(torch_version, audio_version)
    assert (problem is None) is ok
    if not ok:
        assert torch_version in problem and audio_version in problem and "requirements/lock.txt" in problem


def test_installed_pair_is_consistent():
    """The environment the tests run in was installed from the lock: its pair must pass."""
    compat.check_torch_pair()
    torch_version, audio_version = compat.installed_versions()
    assert torch_version and audio_version


def test_check_raises_on_mismatch(monkeypatch):
    monkeypatch.setattr(compat, "installed_versions", lambda: ("2.11.0", "2.11.1"))
    with pytest.raises(compat.TorchPairError, match=r"torchaudio 2\.11\.1 .*torch 2\.11\.0"):
        compat.check_torch_pair()


def test_loader_failure_is_rewritten(monkeypatch):
    """An undefined-symbol failure inside `import torchaudio` becomes one error with both versions."""
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torchaudio":
            raise OSError("libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(compat, "installed_versions", lambda: ("2.11.0", "2.11.0"))
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(compat.TorchPairError) as info:
        compat.import_torchaudio()
    message = str(info.value)
    assert "torchaudio 2.11.0 failed to load with torch 2.11.0" in message
    assert "undefined symbol" in message and "requirements/lock.txt" in message
