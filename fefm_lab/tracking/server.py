"""`fefm-lab server`: one MLflow tracking server that many machines log to.

SQLite is for one machine (many writers on many hosts need a database server), so a team or a
cluster runs one `mlflow server` with a PostgreSQL backend store and a shared artifact
destination, and every job logs to it with `mlflow.tracking_uri=http://HOST:PORT`. This module
checks the `server.*` settings and the backend store before anything starts (a wrong password or
a missing driver is one clear line, not a traceback from inside the server), then builds the
`mlflow server` command line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fefm_lab.errors import ConfigError, UserError
from fefm_lab.uris import masked_text, masked_uri

# Backend store schemes `mlflow server` accepts (SQLAlchemy dialects, optionally +driver).
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql", "sqlite")
# The driver module `fefm-lab[cluster]` installs (psycopg 3; pyproject.toml).
CLUSTER_EXTRA_DRIVER = "psycopg"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# MLflow 3.x starts about ten job-execution worker processes per server unless told not to.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _scheme(uri: str) -> str:
    """`postgresql+psycopg://...` -> `postgresql`."""
    return urlsplit(uri).scheme.split("+")[0].lower()


def check_backend_store_uri(uri: str) -> None:
    """Refuse a backend store URI `mlflow server` cannot use, naming `server.backend_store_uri`."""
    scheme = _scheme(uri)
    if scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            f"server.backend_store_uri: expected a database URI "
            f"(postgresql://USER@HOST/DB for a team or a cluster, sqlite:////ABSOLUTE/PATH.db "
            f"for one machine), got {masked_uri(uri)!r}"
        )
    if scheme == "sqlite":
        path = uri[len("sqlite:///") :]
        if not path.startswith("/"):
            raise ConfigError(
                f"server.backend_store_uri: {masked_uri(uri)!r} is a relative SQLite path (it "
                "would depend on the directory the server starts in); give an absolute one, "
                "sqlite:////ABSOLUTE/PATH/mlflow.db"
            )
        return
    port = _port_text(uri)
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            f"server.backend_store_uri={masked_uri(uri)}: expected a port 1..65535 after the "
            f"host, got {port!r}"
        )


def _port_text(uri: str) -> str:
    """The port as written in a URI's authority ('' when none), after the last `@`."""
    authority = uri.partition("://")[2]
    host_port = re.split(r"[/?#]", authority[authority.rfind("@") + 1 :], maxsplit=1)[0]
    if host_port.startswith("["):
        return host_port.partition("]")[2].removeprefix(":")
    return host_port.rpartition(":")[2] if ":" in host_port else ""


def _driver_hint(module: str) -> str:
    """How to get a missing database driver: the cluster extra brings psycopg 3 only."""
    if module.split(".")[0] == CLUSTER_EXTRA_DRIVER:
        return "install fefm-lab's cluster extra: pip install 'fefm-lab[cluster]'"
    return (
        f"install the package that provides the Python module {module!r} "
        f"(fefm-lab's cluster extra brings only {CLUSTER_EXTRA_DRIVER}, which SQLAlchemy uses "
        "for postgresql:// and postgresql+psycopg:// URIs)"
    )


def _connect_database(uri: str) -> None:
    """Open and close one connection, so a bad URI fails here with a message, not in the server."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri)
    except ModuleNotFoundError as missing:
        raise UserError(
            f"server.backend_store_uri={masked_uri(uri)}: the database driver is not installed "
            f"({missing.name}); {_driver_hint(missing.name or '')}"
        ) from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as error:
        raise ConfigError(f"server.backend_store_uri: {masked_text(str(error))}") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        first_line = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise UserError(
            f"server.backend_store_uri={masked_uri(uri)}: cannot connect to the database: "
            f"{masked_text(first_line)}"
        ) from None
    finally:
        engine.dispose()


def artifacts_destination(value: str) -> str:
    """A URI for `--artifacts-destination`: object store URIs as they are, paths made absolute.

    The directory is created, so a typo in a shared mount shows up now rather than at the
    first artifact a job logs.
    """
    if "://" in value:
        return value
    path = Path(value).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"server.artifacts_destination: cannot create {path}: {error.strerror}"
        ) from None
    return path.as_uri()


def allowed_hosts(host: str, port: int, extra: list[str]) -> list[str]:
    """The Host headers the server accepts: how clients name it, with and without the port.

    MLflow checks the Host header against this list (DNS-rebinding protection). A server bound to
    one address is reached by that address; one bound to every interface (0.0.0.0 or ::) by this
    machine's names. Loopback names are always allowed (a client on the same machine).
    """
    every_interface = host in ("0.0.0.0", "::")
    names = [socket.gethostname(), socket.getfqdn()] if every_interface else [host]
    names += ["localhost", "127.0.0.1", *extra]
    seen: list[str] = []
    for name in names:
        shown = f"[{name}]" if ":" in name and not name.startswith("[") else name
        for entry in (shown, f"{shown}:{port}"):
            if entry not in seen:
                seen.append(entry)
    return seen


def check_server_settings(server: Mapping[str, Any]) -> None:
    """Types and ranges of `server.*`, each mistake naming its key."""
    if server.get("backend_store_uri") is None:
        raise ConfigError(
            "server.backend_store_uri: not set; give the database the server keeps runs in: "
            "postgresql://USER@HOST/DB (a team or a cluster) or sqlite:////ABSOLUTE/PATH.db "
            "(one machine)"
        )
    for key in ("backend_store_uri", "artifacts_destination", "host"):
        value = server.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"server.{key}: expected a non-empty string, got {value!r}")
    port = server.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"server.port: expected a port 1..65535, got {port!r}")
    workers = server.get("workers")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"server.workers: expected an integer >= 1, got {workers!r}")
    extra = server.get("allowed_hosts")
    if not isinstance(extra, list) or not all(isinstance(h, str) and h for h in extra):
        raise ConfigError(f"server.allowed_hosts: expected a list of host names, got {extra!r}")
    check_backend_store_uri(server["backend_store_uri"])


def server_command(server: Mapping[str, Any], *, check_connection: bool = True) -> list[str]:
    """The `mlflow server` command line for these settings (checked first)."""
    check_server_settings(server)
    uri = server["backend_store_uri"]
    if check_connection:
        _connect_database(uri)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        artifacts_destination(server["artifacts_destination"]),
        "--host",
        server["host"],
        "--port",
        str(server["port"]),
        "--workers",
        str(server["workers"]),
        "--allowed-hosts",
        ",".join(allowed_hosts(server["host"], server["port"], list(server["allowed_hosts"]))),
    ]


def tracking_uri_of(server: Mapping[str, Any]) -> str:
    """What jobs set as `mlflow.tracking_uri` to log to this server."""
    host = server["host"]
    if host in ("0.0.0.0", "::"):
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server['port']}"


def serve(server: Mapping[str, Any]) -> None:
    """Replace this process with the server (Ctrl-C and kill reach it; no orphan is left)."""
    command = server_command(server)
    print(
        f"MLflow tracking server on {tracking_uri_of(server)} "
        f"(backend {masked_uri(server['backend_store_uri'])}, "
        f"artifacts {artifacts_destination(server['artifacts_destination'])})\n"
        f"jobs log to it with: mlflow.tracking_uri={tracking_uri_of(server)}",
        flush=True,
    )
    if not is_loopback_host(server["host"]):
        print(
            "note: the server listens beyond this machine and has no authentication; "
            "keep it on a trusted network",
            file=sys.stderr,
            flush=True,
        )
    sys.stderr.flush()
    os.execve(sys.executable, command, {**os.environ, **SERVER_ENVIRONMENT})
