"""llama.cpp on real CPUs: no crash on Intel AMX (weight repacking off), threads that leave room for others."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from qia_cli import cpu
from qia_cli.llm import llama

AMX_CPU = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8

"""
PLAIN_CPU = AMX_CPU.replace(" amx_bf16 amx_tile amx_int8", "")


@pytest.fixture
def amx_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(AMX_CPU)
    return path


@pytest.fixture
def plain_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo-plain"
    path.write_text(PLAIN_CPU)
    return path


def test_amx_is_detected_from_cpuinfo(amx_cpuinfo, plain_cpuinfo, tmp_path):
    assert cpu.has_amx(amx_cpuinfo)
    assert not cpu.has_amx(plain_cpuinfo)
    assert not cpu.has_amx(tmp_path / "missing")  # macOS, Windows: no /proc/cpuinfo


def test_auto_turns_repacking_off_only_on_amx(amx_cpuinfo, plain_cpuinfo):
    assert llama.repack_enabled("auto", amx_cpuinfo) is False
    assert llama.repack_enabled("auto", plain_cpuinfo) is True
    assert llama.repack_enabled("on", amx_cpuinfo) is True
    assert llama.repack_enabled("off", plain_cpuinfo) is False


def test_an_amx_cpu_loads_models_without_extra_buffer_types(monkeypatch, tmp_path):
    """The parameters llama-cpp-python builds inside Llama.__init__ come out with use_extra_bufts off."""
    lib = pytest.importorskip("llama_cpp.llama_cpp")
    if "use_extra_bufts" not in {name for name, *_ in lib.llama_model_params._fields_}:
        pytest.skip("this llama-cpp-python has no extra buffer types")
    monkeypatch.setattr(cpu, "has_amx", lambda *_a, **_k: True)
    from qia_cli.llm.bundled import bundled_path

    model = llama.LlamaLLM(bundled_path())
    assert model.repack is False
    original = lib.llama_model_default_params
    try:
        llama.prepare_process(repack=model.repack)
        assert lib.llama_model_default_params().use_extra_bufts is False
        llama.prepare_process(repack=True)  # 'on' restores llama.cpp's own default
        assert lib.llama_model_default_params().use_extra_bufts is True
    finally:
        lib.llama_model_default_params = getattr(original, "_qia_original", original)


def test_physical_cores_count_smt_siblings_once(amx_cpuinfo, monkeypatch):
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert cpu.physical_cores(amx_cpuinfo) == 1  # two logical CPUs, one core


def test_default_threads_leave_a_core_free_from_three_cores(monkeypatch):
    cpu.default_llm_threads.cache_clear()
    try:
        for cores, expected in ((1, 1), (2, 2), (3, 2), (4, 3), (16, 4)):
            monkeypatch.setattr(cpu, "physical_cores", lambda c=cores: c)
            cpu.default_llm_threads.cache_clear()
            assert cpu.default_llm_threads() == expected
    finally:
        cpu.default_llm_threads.cache_clear()


@pytest.mark.slow
def test_a_real_completion_in_a_subprocess_exits_cleanly():
    """The crash on AMX CPUs is a SIGSEGV inside decode: only a separate process can see it."""
    pytest.importorskip("llama_cpp")
    code = textwrap.dedent(
        """
        from qia_cli.llm.bundled import bundled_path
        from qia_cli.llm.llama import LlamaLLM
        out = LlamaLLM(bundled_path()).complete("Q: What is the capital of France?\\nA:", max_tokens=8)
        print("ANSWER:", out.text)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "ANSWER:" in proc.stdout
