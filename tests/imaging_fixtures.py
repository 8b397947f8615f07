"""Shared imaging fixtures; import them into a test module (pytest only auto-loads conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A tiny random-weight Stable Diffusion pipeline folder, built once per test session."""
    from qia_cli.imaging.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A tiny random-weight AutoencoderTiny folder that fits the tiny pipeline, built once per test session."""
    from qia_cli.imaging.tiny import build_tiny_vae

    return build_tiny_vae(tmp_path_factory.mktemp("models") / "tiny-taesd")
