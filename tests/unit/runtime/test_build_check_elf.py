"""build_check reads the ELF machine of native extensions to prove they are aarch64."""

from __future__ import annotations

from pathlib import Path

from mls_sync_local.build_check import EM_AARCH64, elf_machine, native_problems


def _elf(path: Path, machine: int) -> None:
    # 64-bit, little-endian ELF header up to e_machine
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + (3).to_bytes(2, "little")
    path.write_bytes(header + machine.to_bytes(2, "little") + bytes(44))


def test_aarch64_extension_passes_and_x86_64_fails(tmp_path: Path) -> None:
    # Given a build with one aarch64 and one x86-64 extension, and a non-ELF .so
    (tmp_path / "layer").mkdir()
    _elf(tmp_path / "layer" / "good.cpython-313-aarch64-linux-gnu.so", EM_AARCH64)
    _elf(tmp_path / "layer" / "bad.cpython-313-x86_64-linux-gnu.so", 62)
    (tmp_path / "layer" / "text.so").write_text("not elf")
    # When checked
    count, problems = native_problems(tmp_path)
    # Then both ELF files count, and only the x86-64 one is a problem
    assert count == 2
    assert len(problems) == 1
    assert "bad.cpython-313-x86_64" in problems[0]
    assert elf_machine(tmp_path / "layer" / "text.so") is None
