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


def _tiny_dit(tmp_path_factory, family: str, name: str) -> Path:
    from qia_cli.imaging.tiny_dit import build_tiny_dit

    return build_tiny_dit(family, tmp_path_factory.mktemp("models") / name)


# The tiny transformer-family pipelines, each built once per test session (well under a second each). Their
# folder names say nothing of the family: qia finds it from model_index.json and the transformer's config.
@pytest.fixture(scope="session")
def tiny_flux_dir(tmp_path_factory) -> Path:
    """A FLUX.1-schnell-shaped pipeline: CLIP + T5 (512 tokens), a transformer without guidance embedding."""
    return _tiny_dit(tmp_path_factory, "flux.1-schnell", "tiny-dit-a")


@pytest.fixture(scope="session")
def tiny_sd3_dir(tmp_path_factory) -> Path:
    return _tiny_dit(tmp_path_factory, "sd3", "tiny-dit-b")


@pytest.fixture(scope="session")
def tiny_qwen_image_dir(tmp_path_factory) -> Path:
    return _tiny_dit(tmp_path_factory, "qwen-image", "tiny-dit-c")


@pytest.fixture(scope="session")
def tiny_z_image_dir(tmp_path_factory) -> Path:
    return _tiny_dit(tmp_path_factory, "z-image-turbo", "tiny-dit-d")


@pytest.fixture(scope="session")
def tiny_flux_gguf(tiny_flux_dir, tmp_path_factory) -> Path:
    """The tiny FLUX pipeline's transformer written as a GGUF file (Q8_0 and F32 tensors)."""
    from qia_cli.imaging.tiny_dit import write_tiny_gguf

    return write_tiny_gguf(tiny_flux_dir, tmp_path_factory.mktemp("gguf") / "tiny-flux-Q8_0.gguf")
