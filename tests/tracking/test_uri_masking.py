"""No secret of a URI is printed or logged: `fefm_lab.uris` and the places that show URIs."""

from __future__ import annotations

import socket

import pytest

from fefm_lab import cli
from fefm_lab.tracking.run_logging import param_value
from fefm_lab.uris import masked_text, masked_uri


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "postgresql://u@127.0.0.1:1/db?password=secret",
            "postgresql://u@127.0.0.1:1/db?password=***",
        ),
        ("postgresql://u:secret@db/mlflow", "postgresql://u:***@db/mlflow"),
        ("postgresql://u:se@cr:et@db:5432/mlflow", "postgresql://u:***@db:5432/mlflow"),
        ("postgresql://u:se/cr?et#x@db/mlflow", "postgresql://u:***@db/mlflow"),
        ("https://ghp_TOKEN@mlflow.lab", "https://***@mlflow.lab"),
        (
            "mysql://db/m?user=u&passwd=s1&PWD=s2&api_token=s3&client_secret=s4&sslkey=s5&x=1",
            "mysql://db/m?user=u&passwd=***&PWD=***&api_token=***&client_secret=***&sslkey=***&x=1",
        ),
        ("sqlite:////data/run@1/mlflow.db", "sqlite:////data/run@1/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db?mode=ro#frag", "sqlite:///mlflow.db?mode=ro#frag"),
    ],
)
def test_masked_uri(uri: str, shown: str) -> None:
    assert masked_uri(uri) == shown


def test_masked_text_masks_every_uri_in_a_message() -> None:
    text = "cannot parse 'postgresql://a:b@h/d' nor (mysql://h/d?password=p), see http://x/y"
    assert masked_text(text) == (
        "cannot parse 'postgresql://a:***@h/d' nor (mysql://h/d?password=***), see http://x/y"
    )


def test_parameters_logged_to_mlflow_are_masked() -> None:
    assert param_value("http://u:pw@host:5000") == "http://u:***@host:5000"
    assert param_value("sqlite:///./mlflow.db") == "sqlite:///./mlflow.db"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://u@127.0.0.1:{port}/db?password=secret",
        "postgresql://u:sec@ret@127.0.0.1:{port}/db",
        "postgresql://u:sec/ret@127.0.0.1:{port}/db",
    ],
)
def test_server_never_prints_the_password(tmp_path, capsys, uri: str) -> None:
    uri = uri.format(port=_free_port())
    code = cli.main(
        [
            "server",
            f"server.backend_store_uri='{uri}'",  # quoted: Hydra's grammar takes '=' apart
            f"server.artifacts_destination={tmp_path}/a",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: server.backend_store_uri=postgresql://")
    assert "cannot connect to the database" in err
    assert "sec" not in err and err.count("\n") == 1


def test_non_numeric_port_is_one_line_exit_2(tmp_path, capsys) -> None:
    code = cli.main(
        ["server", "server.backend_store_uri=postgresql://u:pw@127.0.0.1:x5/db", "paths.root_dir=."]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "error: server.backend_store_uri=postgresql://u:***@127.0.0.1:x5/db: expected a port "
        "1..65535 after the host, got 'x5'\n"
    )


def test_show_masks_uris(capsys) -> None:
    assert cli.main(["show", "mlflow.tracking_uri=http://u:topsecret@127.0.0.1:5000"]) == 0
    out = capsys.readouterr().out
    assert "tracking_uri: http://u:***@127.0.0.1:5000" in out and "topsecret" not in out
