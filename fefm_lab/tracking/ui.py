"""The MLflow UI one link away: the URLs of its pages, and a lean server.

MLflow 3.x's UI opens in its GenAI layout unless an experiment says it is model training: the
experiment tag `mlflow.experimentKind=custom_model_development` (`fefm_lab.tracking.experiment`)
and the URL parameter `workflowType=machine_learning` select the model-training layout. The page
`#/compare-runs?runs=[...]&experiments=[...]` puts chosen runs side by side with their parameter
and metric tables (test AUC and log loss included) without further clicks.

`fefm-lab ui` serves MLflow's own ASGI app (`mlflow.server.fastapi_app:app`, what `mlflow ui`
runs under uvicorn) in its own process, on 127.0.0.1: no launcher, no uvicorn worker process, no
job runner (`mlflow ui --workers 1` is a launcher plus a uvicorn process; with job execution on,
also a job runner and its pool). The environment `mlflow ui` hands its server is set before the
app is imported, and the stores are opened as its CLI opens them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit

from mlflow.tracking import MlflowClient

from fefm_lab.errors import ConfigError, UserError
from fefm_lab.tracking.store import (
    TAG_ROLE,
    TAG_SWEEP,
    TrackingStore,
    _quote,
    check_store,
)
from fefm_lab.uris import masked_uri

UI_HOST = "127.0.0.1"
REPORT_ARTIFACT = "report/ablation_report.html"  # fefm_lab.report.write: ARTIFACT_DIR/HTML_NAME


def tracking_has_experiment(tracking_uri: str, name: str) -> bool:
    """Whether the store holds a live experiment of this name (for read-only commands)."""
    check_store(tracking_uri)
    experiment = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return experiment is not None and experiment.lifecycle_stage != "deleted"


def ui_base_url(port: int, host: str = UI_HOST) -> str:
    return f"http://{host}:{port}"


def comparison_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    """The UI page that shows `run_ids` side by side (metrics and parameters as tables)."""
    runs = quote(json.dumps(run_ids, separators=(",", ":")), safe="")
    experiments = quote(json.dumps([experiment_id], separators=(",", ":")), safe="")
    return (
        f"{base_url}/#/compare-runs?runs={runs}&experiments={experiments}"
        "&workflowType=machine_learning"
    )


def report_url(base_url: str, experiment_id: str, parent_run_id: str) -> str:
    """The sweep's HTML report in its parent run's artifact pane: every ablation's test AUC and
    log loss with their verdicts at the top, fitting a 1400 x 1400 window."""
    return (
        f"{base_url}/#/experiments/{experiment_id}/runs/{parent_run_id}/artifacts/"
        f"{REPORT_ARTIFACT}?workflowType=machine_learning"
    )


def runs_url(base_url: str, experiment_id: str, sweep: str) -> str:
    """The experiment's run list filtered to one sweep's runs, best test AUC first."""
    search = quote(f"tags.{TAG_SWEEP} = {_quote(sweep)}", safe="")
    return (
        f"{base_url}/#/experiments/{experiment_id}/runs?searchFilter={search}"
        "&orderByKey=metrics.%60test_auc%60&orderByAsc=false&workflowType=machine_learning"
    )


def latest_sweep(store: TrackingStore) -> str | None:
    """The name of the most recently started sweep of the experiment, or None."""
    parents = store.search(f"tags.{TAG_ROLE} = 'sweep'")
    return parents[-1].data.tags.get(TAG_SWEEP) if parents else None


def check_servable(tracking_uri: str) -> None:
    """`fefm-lab ui` serves a store it opens itself; a tracking server serves its own UI."""
    if urlsplit(tracking_uri).scheme.lower() in ("http", "https"):
        raise ConfigError(
            f"mlflow.tracking_uri={masked_uri(tracking_uri)}: that tracking server serves the "
            f"MLflow UI itself (open {masked_uri(tracking_uri)} in a browser); `fefm-lab ui` "
            "serves a database store (sqlite:///..., postgresql://...)"
        )


def bind_ui_socket(port: int, host: str = UI_HOST) -> socket.socket:
    """The listening socket of the UI, bound before anything is printed (a taken port is one
    clear line, not a log message from inside uvicorn)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise UserError(
            f"mlflow.ui_port={port}: cannot listen on {host}:{port} ({error.strerror}); "
            f"another program (an earlier `fefm-lab ui`?) uses it; pick another port with "
            "mlflow.ui_port=PORT"
        ) from None
    listener.listen(128)
    return listener


class UiStopped(Exception):
    """SIGINT or SIGTERM reached `fefm-lab ui` (after uvicorn's graceful shutdown, if serving)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name


def _raise_stopped(signum: int, _frame: object) -> None:
    raise UiStopped(signum)


def _server_environment(tracking_uri: str) -> dict[str, str]:
    """What `mlflow ui --backend-store-uri URI` puts in its server's environment (mlflow 3.x,
    `mlflow.server._run_server`), job execution off. Artifacts: served (`mlflow ui`'s default),
    new experiments under `mlflow-artifacts:/`; runs fefm-lab logged keep their own location."""
    from mlflow.environment_variables import (
        _MLFLOW_IN_JOB_EXECUTOR,
        _MLFLOW_SERVER_BOOT_ID,
        _MLFLOW_SGI_NAME,
        MLFLOW_ENABLE_WORKSPACES,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION,
    )
    from mlflow.server import constants
    from mlflow.utils.server_cli_utils import resolve_default_artifact_root

    return {
        constants.BACKEND_STORE_URI_ENV_VAR: tracking_uri,
        constants.REGISTRY_STORE_URI_ENV_VAR: tracking_uri,
        constants.ARTIFACT_ROOT_ENV_VAR: resolve_default_artifact_root(True, None, tracking_uri),
        constants.SERVE_ARTIFACTS_ENV_VAR: "true",
        MLFLOW_ENABLE_WORKSPACES.name: "false",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION.name: "false",
        _MLFLOW_SERVER_BOOT_ID.name: uuid.uuid4().hex,
        _MLFLOW_IN_JOB_EXECUTOR.name: "false",
        _MLFLOW_SGI_NAME.name: "uvicorn",
    }


def serve_ui(tracking_uri: str, listener: socket.socket) -> str:
    """Serve MLflow's UI and REST API for `tracking_uri` on `listener` in this process until
    SIGINT or SIGTERM; returns the signal's name. uvicorn runs the app on one event loop (no
    worker processes); Flask handlers run in its thread pool."""
    previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # uvicorn imported first: `mlflow.server` installs its host/CORS security middleware
        # only when it finds itself running under a server (`uvicorn` in sys.modules).
        import uvicorn
        from mlflow import server as mlflow_server

        # MLflow's own app module imports starlette's deprecated WSGI middleware: not ours to fix.
        warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
        environment = _server_environment(tracking_uri)
        os.environ.update(environment)
        artifact_root = environment[mlflow_server.ARTIFACT_ROOT_ENV_VAR]
        mlflow_server.handlers.initialize_backend_stores(tracking_uri, tracking_uri, artifact_root)
        from mlflow.server.fastapi_app import app

        log_config = Path(mlflow_server.__file__).with_name("uvicorn_log_config.yaml")
        config = uvicorn.Config(app, log_config=str(log_config), timeout_graceful_shutdown=5)
        # uvicorn handles SIGINT/SIGTERM while serving, shuts down, then re-raises the signal,
        # which lands in `_raise_stopped`.
        uvicorn.Server(config).run(sockets=[listener])
        return "stopped"
    except UiStopped as stopped:
        return stopped.signal_name
    finally:
        listener.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
