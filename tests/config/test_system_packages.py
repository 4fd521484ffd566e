"""config.system_packages: what each set-up command needs, and what it does without root."""

from __future__ import annotations

import pytest

from config import system_packages


@pytest.fixture
def bare_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the font nor chromium is there."""
    monkeypatch.setitem(system_packages.PROVIDES, "fonts-noto-cjk", lambda: False)
    monkeypatch.setitem(system_packages.PROVIDES, "chromium", lambda: False)


def test_the_server_needs_the_font_and_the_tests_chromium_too(bare_machine: None) -> None:
    assert system_packages.missing("server") == ["fonts-noto-cjk"]
    assert system_packages.missing("tests") == ["fonts-noto-cjk", "chromium"]


def test_without_root_it_says_what_to_install_and_goes_on(
        bare_machine: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(system_packages, "_as_root", lambda: None)
    assert system_packages.main(["tests"]) == 0
    assert "sudo apt-get install fonts-noto-cjk chromium" in capsys.readouterr().err


def test_nothing_runs_when_everything_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    for package in system_packages.PROVIDES:
        monkeypatch.setitem(system_packages.PROVIDES, package, lambda: True)
    monkeypatch.setattr(system_packages, "install", pytest.fail)
    assert system_packages.main(["server"]) == 0


def test_an_unknown_purpose_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert system_packages.main(["everything"]) == 2
    assert "usage" in capsys.readouterr().err
