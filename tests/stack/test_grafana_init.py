"""stack/grafana/init-admin-password.sh, the script grafana-init runs before Grafana.

The container runs it with busybox sh; here the host's /bin/sh runs the very same file
(both are POSIX shells, and the commands it uses are checked against the image in
test_compose.py). It must leave Grafana a non-empty password that nobody knew in
advance, readable by Grafana's user alone, and never change one Grafana already used.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.compose import ROOT

SCRIPT = ROOT / "stack" / "grafana" / "init-admin-password.sh"


def run_init(
    password_file: Path, admin_password: str | None = None, path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path}
    if admin_password is not None:
        env["GRAFANA_ADMIN_PASSWORD"] = admin_password
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), str(password_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    volume = tmp_path / "grafana-data"
    volume.mkdir()
    return volume / "admin-password"


def test_writes_a_random_password_only_its_owner_can_read(password_file: Path) -> None:
    result = run_init(password_file)
    assert result.returncode == 0, result.stderr
    password = password_file.read_text()
    assert len(password) == 48 and int(password, 16) >= 0, f"not 24 random bytes: {password!r}"
    assert mode(password_file) == 0o600
    assert [p.name for p in password_file.parent.iterdir()] == ["admin-password"]


def test_each_stack_gets_its_own_password(tmp_path: Path) -> None:
    passwords = set()
    for stack in ("one", "two", "three"):
        (tmp_path / stack).mkdir()
        assert run_init(tmp_path / stack / "admin-password").returncode == 0
        passwords.add((tmp_path / stack / "admin-password").read_text())
    assert len(passwords) == 3


def test_an_empty_variable_means_random(password_file: Path) -> None:
    assert run_init(password_file, admin_password="").returncode == 0
    assert len(password_file.read_text()) == 48


@pytest.mark.parametrize("chosen", ["something-long", "with spaces, 'quotes' \"and\" $HOME\\n"])
def test_honours_grafana_admin_password(password_file: Path, chosen: str) -> None:
    result = run_init(password_file, admin_password=chosen)
    assert result.returncode == 0, result.stderr
    assert password_file.read_text() == chosen
    assert mode(password_file) == 0o600


def test_keeps_the_password_grafana_was_created_with(password_file: Path) -> None:
    """A restart, or a later GRAFANA_ADMIN_PASSWORD, must not change the file: Grafana
    read it once, when it created its database, and `tasks.py compose grafana-password` prints
    it."""
    assert run_init(password_file).returncode == 0
    first = password_file.read_text()
    assert run_init(password_file).returncode == 0
    assert password_file.read_text() == first
    result = run_init(password_file, admin_password="chosen-too-late")
    assert result.returncode == 0, result.stderr
    assert password_file.read_text() == first
    assert "GRAFANA_ADMIN_PASSWORD is ignored" in result.stderr


def test_replaces_an_empty_file(password_file: Path) -> None:
    """Grafana would read an empty password as none, and use its built-in `admin`."""
    password_file.touch()
    assert run_init(password_file).returncode == 0
    assert len(password_file.read_text()) == 48


def test_a_leftover_partial_file_does_not_leak_its_mode(password_file: Path) -> None:
    leftover = password_file.with_name("admin-password.partial")
    leftover.write_text("half")
    leftover.chmod(0o644)
    assert run_init(password_file, admin_password="chosen").returncode == 0
    assert password_file.read_text() == "chosen" and mode(password_file) == 0o600
    assert not leftover.exists()


def test_warns_when_grafanas_database_is_older_than_the_file(password_file: Path) -> None:
    (password_file.parent / "grafana.db").write_bytes(b"")
    result = run_init(password_file)
    assert result.returncode == 0, result.stderr
    assert "database already exists" in result.stderr
    assert len(password_file.read_text()) == 48


def test_fails_rather_than_leave_no_password(tmp_path: Path) -> None:
    """A non-zero exit keeps Grafana (service_completed_successfully) from starting."""
    missing = tmp_path / "no-such-volume" / "admin-password"
    result = run_init(missing)
    assert result.returncode != 0
    assert not missing.parent.exists()


def test_fails_when_no_random_bytes_come(tmp_path: Path, password_file: Path) -> None:
    """An `od` that fails leaves an empty pipe: that must not become an empty password."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "od").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "od").chmod(0o755)
    result = run_init(password_file, path=f"{fake_bin}:/usr/bin:/bin")
    assert result.returncode != 0
    assert "could not write a password" in result.stderr
    assert list(password_file.parent.iterdir()) == []


def test_needs_the_file_argument() -> None:
    result = subprocess.run(
        ["/bin/sh", str(SCRIPT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0 and "usage" in result.stderr
