import importlib
import sys

import mujoco
import pytest
import torch

import hapo
from hapo import _build_info, _version_check


def test_linked_mujoco_is_the_installed_one():
    assert hapo.mujoco_version() == mujoco.__version__


def test_build_info_matches_runtime():
    assert _build_info.TORCH_VERSION == torch.__version__
    assert _build_info.MUJOCO_VERSION == mujoco.__version__


def test_version_mismatch_names_both_versions_and_the_fix(monkeypatch):
    monkeypatch.setattr(_build_info, "TORCH_VERSION", "1.0.0")
    with pytest.raises(ImportError) as err:
        _version_check.check_build_versions()
    message = str(err.value)
    assert "torch 1.0.0 at build time" in message
    assert f"{torch.__version__} now" in message
    assert _version_check.REBUILD in message


def test_import_fails_on_mismatch(monkeypatch):
    monkeypatch.setattr(_build_info, "MUJOCO_VERSION", "0.0.1")
    saved = {name: mod for name, mod in sys.modules.items() if name == "hapo"}
    monkeypatch.delitem(sys.modules, "hapo")
    try:
        with pytest.raises(ImportError, match="mujoco 0.0.1 at build time"):
            importlib.import_module("hapo")
    finally:
        sys.modules.update(saved)
