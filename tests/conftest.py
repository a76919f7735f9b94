"""Shared fixtures: the real data in ../shared/data, one torch thread, temp run folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    torch.set_num_threads(int(os.environ.get("LSTMVISION_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real data; tests skip only when the folder is absent (never in CI)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Each test runs in its own folder and never inherits a run folder from a DDP parent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LSTMVISION_RUN_DIR", raising=False)
