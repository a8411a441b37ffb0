"""`taskscheduler dev`: flags, environment variables, port checks and the planned children."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskscheduler import cli
from taskscheduler.cli import DevConfig
from taskscheduler.devstack import DEV_WORKER_ID, describe_exit, dev_children
from taskscheduler.ports import find_free_port, find_free_port_run, find_free_ports, is_port_free

ENV_NAMES = [option.env for option in cli.DEV_OPTIONS]


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _config(argv: list[str], environ: dict[str, str] | None = None) -> DevConfig:
    parser = cli.build_parser()
    args = parser.parse_args(["dev", *argv])
    return cli.dev_config_from(args, environ or {}, args.command_parser)


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port with a listening socket on 127.0.0.1 for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_dev_defaults(tmp_path: Path) -> None:
    config = _config([])

    assert config == DevConfig(
        data_dir=tmp_path / ".taskscheduler",
        gateway_port=8080,
        coordinator_port=50051,
        etcd_port=2379,
        agent_concurrency=4,
    )
    assert config.etcd_peer_port == 2380
    assert config.log_dir == tmp_path / ".taskscheduler" / "logs"


@pytest.mark.parametrize(
    ("argv", "environ", "field", "expected"),
    [
        (["--gateway-port", "9000"], {}, "gateway_port", 9000),
        ([], {"TASKSCHEDULER_GATEWAY_PORT": "9001"}, "gateway_port", 9001),
        (["--gateway-port", "9000"], {"TASKSCHEDULER_GATEWAY_PORT": "9001"}, "gateway_port", 9000),
        ([], {"TASKSCHEDULER_COORDINATOR_PORT": "6000"}, "coordinator_port", 6000),
        (["--etcd-port", "65534"], {}, "etcd_port", 65534),
        ([], {"TASKSCHEDULER_ETCD_PORT": "3379"}, "etcd_port", 3379),
        (["--agent-concurrency", "16"], {}, "agent_concurrency", 16),
        ([], {"TASKSCHEDULER_AGENT_CONCURRENCY": "2"}, "agent_concurrency", 2),
        (["--data-dir", "state"], {}, "data_dir", "state"),
        ([], {"TASKSCHEDULER_DATA_DIR": "/var/tmp/ts"}, "data_dir", "/var/tmp/ts"),
    ],
    ids=[
        "gateway-flag",
        "gateway-env",
        "flag-beats-env",
        "coordinator-env",
        "etcd-flag-max",
        "etcd-env",
        "concurrency-flag",
        "concurrency-env",
        "data-dir-relative",
        "data-dir-env-absolute",
    ],
)
def test_dev_option_sources(
    tmp_path: Path, argv: list[str], environ: dict[str, str], field: str, expected: object
) -> None:
    config = _config(argv, environ)

    if field == "data_dir":
        expected = tmp_path / str(expected)
    assert getattr(config, field) == expected


ETCD_PORT_LIMIT = "etcd's port must be at most 65534 because its peer port is one above"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ["--gateway-port", "0"],
            {},
            "argument --gateway-port: a port must be between 1 and 65535, got 0",
        ),
        (
            ["--coordinator-port", "http"],
            {},
            "argument --coordinator-port: expected a whole number, got 'http'",
        ),
        (["--etcd-port", "65535"], {}, f"argument --etcd-port: {ETCD_PORT_LIMIT}"),
        (
            ["--agent-concurrency", "0"],
            {},
            "argument --agent-concurrency: expected at least 1, got 0",
        ),
        (
            [],
            {"TASKSCHEDULER_GATEWAY_PORT": "80x"},
            "environment variable TASKSCHEDULER_GATEWAY_PORT='80x' is invalid: "
            "expected a whole number, got '80x'",
        ),
        (
            [],
            {"TASKSCHEDULER_AGENT_CONCURRENCY": "-1"},
            "environment variable TASKSCHEDULER_AGENT_CONCURRENCY='-1' is invalid: "
            "expected at least 1, got -1",
        ),
    ],
)
def test_dev_rejects_bad_values(
    capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        _config(argv, environ)

    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"taskscheduler dev: error: {message}"


def test_help_names_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["dev", "--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    for name in ENV_NAMES:
        assert f"env {name};" in help_text


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([], environ={})

    assert caught.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("taken", "message"),
    [
        (
            2379,
            "port 2379 on 127.0.0.1 is already in use, so the etcd client API cannot listen on it; "
            "choose another with --etcd-port (or TASKSCHEDULER_ETCD_PORT)",
        ),
        (
            2380,
            "port 2380 on 127.0.0.1 is already in use, so the etcd peer API cannot listen on it; "
            "choose another with --etcd-port (or TASKSCHEDULER_ETCD_PORT), "
            "since the peer port is one above it",
        ),
        (
            50051,
            "port 50051 on 127.0.0.1 is already in use, so the coordinator cannot listen on it; "
            "choose another with --coordinator-port (or TASKSCHEDULER_COORDINATOR_PORT)",
        ),
        (
            8080,
            "port 8080 on 127.0.0.1 is already in use, so the gateway cannot listen on it; "
            "choose another with --gateway-port (or TASKSCHEDULER_GATEWAY_PORT)",
        ),
    ],
)
def test_check_ports_names_taken_port(tmp_path: Path, taken: int, message: str) -> None:
    config = DevConfig(data_dir=tmp_path)

    with pytest.raises(cli.PortInUseError) as caught:
        cli.check_ports(config, is_free=lambda port: port != taken)

    assert str(caught.value) == message


def test_check_ports_rejects_clash(tmp_path: Path) -> None:
    config = DevConfig(data_dir=tmp_path, gateway_port=2380)

    with pytest.raises(cli.PortInUseError) as caught:
        cli.check_ports(config, is_free=lambda _port: True)

    assert str(caught.value) == (
        "port 2380 is planned for both the etcd peer API and the gateway; "
        "change --gateway-port (or TASKSCHEDULER_GATEWAY_PORT)"
    )


def test_is_port_free_sees_listener(listening_port: int) -> None:
    assert is_port_free(listening_port) is False


def test_dev_exits_when_port_taken(
    tmp_path: Path, listening_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    etcd_port = find_free_port_run(2)
    coordinator_port = find_free_port()
    while coordinator_port in (etcd_port, etcd_port + 1):
        coordinator_port = find_free_port()
    argv = [
        "dev",
        *("--data-dir", str(tmp_path / "data")),
        *("--etcd-port", str(etcd_port), "--coordinator-port", str(coordinator_port)),
        *("--gateway-port", str(listening_port)),
    ]

    code = cli.main(argv, environ={})

    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        f"taskscheduler dev: port {listening_port} on 127.0.0.1 is already in use, so the "
        "gateway cannot listen on it; choose another with --gateway-port "
        "(or TASKSCHEDULER_GATEWAY_PORT)\n"
    )
    assert not (tmp_path / "data").exists()


def test_ready_banner_lists_addresses(tmp_path: Path) -> None:
    config = DevConfig(
        data_dir=tmp_path, gateway_port=18080, coordinator_port=15051, etcd_port=12379
    )

    banner = cli.ready_banner(config)

    assert "REST API          http://127.0.0.1:18080/api/jobs" in banner
    assert "dashboard         http://127.0.0.1:18080/" in banner
    assert "OpenAPI           http://127.0.0.1:18080/openapi.json" in banner
    assert "coordinator gRPC  127.0.0.1:15051" in banner
    assert "etcd              127.0.0.1:12379" in banner
    assert "curl -s -X POST http://127.0.0.1:18080/api/jobs" in banner


def test_dev_children_plan(tmp_path: Path) -> None:
    config = DevConfig(
        data_dir=tmp_path,
        gateway_port=18080,
        coordinator_port=15051,
        etcd_port=12379,
        agent_concurrency=7,
    )

    children = dev_children(config, etcd_binary=Path("/opt/etcd"))

    assert [child.name for child in children] == ["etcd", "coordinator", "agent", "gateway"]
    etcd, coordinator, agent, gateway = (list(child.argv) for child in children)
    assert etcd[0] == "/opt/etcd"
    assert f"--data-dir={tmp_path / 'etcd'}" in etcd
    assert "--listen-peer-urls=http://127.0.0.1:12380" in etcd
    console = ["--log-format", "console"]
    assert coordinator[-6:] == [
        "--listen",
        "127.0.0.1:15051",
        "--etcd",
        "127.0.0.1:12379",
        *console,
    ]
    assert agent[-10:] == [
        *("--coordinators", "127.0.0.1:15051", "--worker-id", DEV_WORKER_ID),
        *("--max-concurrent", "7", "--shutdown-grace-s", "5", *console),
    ]
    assert gateway[-6:] == [
        *("--listen", "127.0.0.1:18080", "--coordinators", "127.0.0.1:15051", *console),
    ]
    assert [child.echo for child in children] == [False, True, True, True]


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, "exit code 0"), (3, "exit code 3"), (-9, "signal SIGKILL"), (-15, "signal SIGTERM")],
)
def test_describe_exit(code: int, expected: str) -> None:
    assert describe_exit(code) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gateway_port": 0}, "gateway_port must be between 1 and 65535, got 0"),
        (
            {"etcd_port": 65535},
            "etcd_port must be at most 65534 because etcd's peer port is one above",
        ),
        ({"agent_concurrency": 0}, "agent_concurrency must be at least 1, got 0"),
    ],
)
def test_dev_config_rejects(tmp_path: Path, overrides: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        DevConfig(data_dir=tmp_path, **overrides)  # type: ignore[arg-type]

    assert str(caught.value) == message


def test_find_free_ports_are_distinct_and_free() -> None:
    ports = find_free_ports(5)

    assert len(set(ports)) == 5
    assert all(is_port_free(port) for port in ports)


def test_find_free_port_run_is_consecutive() -> None:
    first = find_free_port_run(2)

    assert is_port_free(first)
    assert is_port_free(first + 1)
