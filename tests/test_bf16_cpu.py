"""bf16 on a CPU: detection of bf16 instructions, and the warning when they are absent."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autonat import runtime
from autonat.generator.checkpoint import Generator
from autonat.runtime import bf16_cpu_warning, cpu_flags, cpu_has_bf16
from autonat.sampling.pipeline import Pipeline
from autonat.training.recipe import resolve_mixed_precision

X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 sve\n"


def test_cpu_flags_read_the_first_cpu_of_x86_and_arm_cpuinfo(tmp_path):
    (tmp_path / "x86").write_text(X86)
    (tmp_path / "arm").write_text(ARM)
    assert cpu_flags(tmp_path / "x86") == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    assert "bf16" in cpu_flags(tmp_path / "arm")
    assert cpu_flags(tmp_path / "absent") is None


def test_cpu_has_bf16_from_flags():
    assert cpu_has_bf16(frozenset({"avx2", "avx512_bf16"})) is True
    assert cpu_has_bf16(frozenset({"amx_bf16"})) is True
    assert cpu_has_bf16(frozenset({"avx2", "fma"})) is False


@pytest.mark.parametrize("has", [False, True, None])
def test_bf16_warning_only_when_the_cpu_lacks_bf16(monkeypatch, has):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda flags=None: has)
    warning = bf16_cpu_warning("sampling", "use fp32")
    if has is False:
        assert warning.startswith("autonat: warning: bf16 sampling") and "4x slower" in warning
        assert "\n" not in warning and warning.endswith("use fp32")
    else:
        assert warning is None


def _pipeline(precision: str) -> Pipeline:
    gen = Generator(model=None, config=None, tokenizer={}, path=Path("."), meta={})
    return Pipeline(gen, torch.nn.Identity(), torch.device("cpu"), precision)


@pytest.mark.parametrize("has", [False, True])
def test_pipeline_warns_for_bf16_on_a_cpu_without_it_and_keeps_bf16(monkeypatch, capsys, has):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda flags=None: has)
    pipe = _pipeline("bf16")
    err = capsys.readouterr().err
    assert pipe.sampler_options().autocast_dtype is torch.bfloat16  # kept: the user asked for it
    assert ("4x slower than fp32" in err and "--precision fp32" in err) is (not has)
    assert err.count("\n") == (0 if has else 1)
    _pipeline("auto")
    _pipeline("fp32")
    assert capsys.readouterr().err == ""  # auto is fp32 on a CPU: nothing to warn about


@pytest.mark.parametrize("has", [False, True])
def test_training_warns_for_bf16_on_a_cpu_without_it(monkeypatch, capsys, has):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda flags=None: has)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_mixed_precision("bf16") == "bf16"
    assert resolve_mixed_precision("auto") == "no"
    err = capsys.readouterr().err
    assert ("bf16 training" in err and "40x slower" in err and "mixed_precision=no" in err) is (not has)
    assert err.count("\n") == (0 if has else 1)


def test_without_cpuinfo_only_x86_asks_torch(monkeypatch):
    """No /proc/cpuinfo: torch's x86 probe on x86, "cannot tell" (no warning) on an Arm Mac."""
    monkeypatch.setattr(runtime, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": None)
    monkeypatch.setattr(runtime.platform, "machine", lambda: "arm64")
    assert cpu_has_bf16() is None and bf16_cpu_warning("sampling", "x") is None
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_has_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert cpu_has_bf16() is True
