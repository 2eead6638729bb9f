import stat
import threading

import pytest

from aigckit.errors import AigcError
from aigckit.provenance.keys import KEY_ENV, key_file, parse_key, watermark_key


def test_key_file_is_made_once_private_and_reused(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = watermark_key(env)
    path = tmp_path / "config" / "aigckit" / "watermark.key"
    assert key_file(env) == path and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert watermark_key(env) == first and len(first) == 64  # 32 random bytes in hex
    assert [p.name for p in path.parent.iterdir()] == ["watermark.key"]  # no temporary file left behind
    assert watermark_key({"XDG_CONFIG_HOME": str(tmp_path / "other")}) != first


def test_home_config_folder_without_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert key_file({}) == tmp_path / ".config" / "aigckit" / "watermark.key"


def test_environment_variable_wins_and_is_never_written(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path), KEY_ENV: "a-long-enough-secret-value"}
    assert watermark_key(env) == b"a-long-enough-secret-value"
    assert not (tmp_path / "aigckit").exists()
    with pytest.raises(AigcError, match="at least 16"):
        watermark_key({**env, KEY_ENV: "short"})


def test_concurrent_first_use_agrees_on_one_key(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(watermark_key(env))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys) == 8


def test_detection_side_never_creates_a_key(tmp_path):
    with pytest.raises(AigcError, match="no watermark key"):
        watermark_key({"XDG_CONFIG_HOME": str(tmp_path)}, create=False)
    assert not (tmp_path / "aigckit").exists()


def test_parse_key_reads_a_file_or_takes_the_secret(tmp_path):
    (tmp_path / "k").write_text("0123456789abcdef0123\n")
    assert parse_key(str(tmp_path / "k")) == b"0123456789abcdef0123"
    assert parse_key("another-secret-of-length") == b"another-secret-of-length"
    with pytest.raises(AigcError):
        parse_key("tiny")
