"""`fefm-lab server`: settings checks and the `mlflow server` command line (no server started)."""

from __future__ import annotations

import socket
import sys

import pytest

from fefm_lab import cli
from fefm_lab.errors import ConfigError, UserError
from fefm_lab.tracking.server import (
    allowed_hosts,
    check_server_settings,
    is_loopback_host,
    server_command,
    tracking_uri_of,
)


def _settings(tmp_path, **changes):
    values = {
        "backend_store_uri": f"sqlite:///{tmp_path}/server.db",
        "artifacts_destination": str(tmp_path / "artifacts"),
        "host": "127.0.0.1",
        "port": 5123,
        "workers": 2,
        "allowed_hosts": [],
    }
    return values | changes


def test_command_line_for_a_loopback_sqlite_server(tmp_path) -> None:
    command = server_command(_settings(tmp_path))
    assert command == [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
        "--artifacts-destination", (tmp_path / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", "5123", "--workers", "2",
        "--allowed-hosts", "127.0.0.1,127.0.0.1:5123,localhost,localhost:5123",
    ]  # fmt: skip
    assert (tmp_path / "artifacts").is_dir()  # a typo in a shared mount shows up at once
    assert tracking_uri_of(_settings(tmp_path)) == "http://127.0.0.1:5123"


def test_allowed_hosts_follow_the_host() -> None:
    assert allowed_hosts("10.1.2.3", 80, ["mlflow.lab"]) == [
        "10.1.2.3", "10.1.2.3:80", "localhost", "localhost:80", "127.0.0.1", "127.0.0.1:80",
        "mlflow.lab", "mlflow.lab:80",
    ]  # fmt: skip
    every = allowed_hosts("0.0.0.0", 5000, [])
    assert socket.gethostname() in every and f"{socket.getfqdn()}:5000" in every
    assert "0.0.0.0" not in every
    assert allowed_hosts("::1", 5000, [])[:2] == ["[::1]", "[::1]:5000"]


def test_loopback_hosts() -> None:
    assert [is_loopback_host(h) for h in ("localhost", "127.0.0.1", "127.3.4.5", "::1")] == [
        True, True, True, True,
    ]  # fmt: skip
    assert not any(is_loopback_host(h) for h in ("10.0.0.1", "db.example.org", "0.0.0.0"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend_store_uri": None}, "server.backend_store_uri: not set; give the database"),
        ({"backend_store_uri": "sqlite:///mlflow.db"}, "is a relative SQLite path"),
        ({"backend_store_uri": "/tmp/x.db"}, "server.backend_store_uri: expected a database URI"),
        ({"backend_store_uri": "http://h:5000"}, "expected a database URI"),
        ({"port": 0}, "server.port: expected a port 1..65535, got 0"),
        ({"port": "80"}, "server.port: expected a port 1..65535, got '80'"),
        ({"workers": 0}, "server.workers: expected an integer >= 1, got 0"),
        ({"host": ""}, "server.host: expected a non-empty string, got ''"),
        ({"allowed_hosts": "a,b"}, "server.allowed_hosts: expected a list of host names"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, changes, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_server_settings(_settings(tmp_path, **changes))


def test_an_unreachable_database_is_one_clear_line(tmp_path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"postgresql://fefm:secret@127.0.0.1:{port}/mlflow"
    with pytest.raises(UserError) as error:
        server_command(_settings(tmp_path, backend_store_uri=uri))
    text = str(error.value)
    assert text.startswith(
        f"server.backend_store_uri=postgresql://fefm:***@127.0.0.1:{port}/mlflow: "
        "cannot connect to the database: "
    )
    assert "secret" not in text and "\n" not in text


def test_cli_without_a_backend_exits_2(tmp_path, capsys) -> None:
    assert cli.main(["server", f"paths.root_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.startswith("error: server.backend_store_uri: not set;")
    assert list(tmp_path.iterdir()) == []
