"""Atomic writes: final permissions follow the umask (or the replaced file), nothing is left
behind and the target is untouched when the writer fails."""

import builtins
import contextlib
import os
import stat

import pytest

from wasserflow import _atomic
from wasserflow._atomic import atomic_path, current_umask, write_bytes, write_json, write_text

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_follows_umask(tmp_path, mask, expected):
    with umask(mask):
        assert current_umask() == mask
        write_text(tmp_path / "a.json", "{}\n")
        write_json(tmp_path / "sub" / "b.json", {"x": 1.0})
        with atomic_path(tmp_path / "c.png") as tmp:
            tmp.write_bytes(b"png")
    for name in ("a.json", "sub/b.json", "c.png"):
        assert mode(tmp_path / name) == expected, name


def test_umask_fallback_without_proc(tmp_path, monkeypatch):
    real_open = builtins.open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise FileNotFoundError(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    with umask(0o027):
        assert _atomic.current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # read back: the umask was restored


def test_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with umask(0o022):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o640


def test_failed_writer_leaves_target_and_no_temp_file(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "new.json"):
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
