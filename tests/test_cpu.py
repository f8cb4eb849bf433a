"""CPU flags: which machines compute bfloat16 natively, and which compute the same feature bits."""

from imgclf.core.cpu import native_bfloat16, simd_fingerprint


def _cpuinfo(tmp_path, flags: str, key: str = "flags"):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test\n{key}\t\t: {flags}\n\nprocessor\t: 1\n{key}\t\t: {flags}\n")
    return path


def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    assert native_bfloat16(_cpuinfo(tmp_path, "fpu avx2 avx512f avx512_vnni")) is False
    assert native_bfloat16(_cpuinfo(tmp_path, "fpu avx2 avx512f avx512_bf16 amx_tile")) is True
    assert native_bfloat16(tmp_path / "missing") is None


def test_fingerprint_tells_vector_units_apart_and_ignores_other_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    avx512 = simd_fingerprint(_cpuinfo(tmp_path, "fpu vme avx avx2 fma avx512f avx512_vnni hypervisor"))
    assert simd_fingerprint(_cpuinfo(tmp_path, "fpu avx avx2 fma avx512f avx512_vnni md_clear")) == avx512
    assert simd_fingerprint(_cpuinfo(tmp_path, "fpu avx avx2 fma avx512f avx512_vnni amx_tile amx_bf16")) != avx512
    assert simd_fingerprint(_cpuinfo(tmp_path, "fpu avx avx2 fma")) != avx512
    assert "avx512_vnni" in avx512 and "hypervisor" not in avx512
    # Arm spells them "Features"; and switching oneDNN off changes the kernels too.
    assert "asimd" in simd_fingerprint(_cpuinfo(tmp_path, "fp asimd evtstrm", key="Features"))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert simd_fingerprint(_cpuinfo(tmp_path, "fpu vme avx avx2 fma avx512f avx512_vnni hypervisor")) != avx512
