"""Run the real receiver (`python -m receiver serve`, gunicorn) as a subprocess for end-to-end tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
HCP_SECRET = "e2e-hcp-terraform-token"


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hcp_headers(body: bytes, secret: str = HCP_SECRET) -> dict[str, str]:
    """Sign a body the way HCP Terraform does."""
    sig = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return {"Content-Type": "application/json", "X-TFE-Notification-Signature": sig}


def hcp_run_body(run_id: str, *, trigger: str = "run:errored", status: str = "errored",
                 workspace: str = "prod-network", updated_at: str = "2026-11-21T10:00:00.000Z") -> bytes:
    """Return a compact HCP Terraform run notification for one state change."""
    payload = {
        "payload_version": 1,
        "notification_configuration_id": "nc-e2e",
        "run_url": f"https://app.terraform.io/app/acme/{workspace}/runs/{run_id}",
        "run_id": run_id,
        "run_message": "e2e",
        "run_created_at": "2026-11-21T09:59:00.000Z",
        "run_created_by": "e2e-user",
        "workspace_id": "ws-e2e",
        "workspace_name": workspace,
        "organization_name": "acme",
        "notifications": [{"message": "Run Errored", "trigger": trigger, "run_status": status,
                           "run_updated_at": updated_at, "run_updated_by": "e2e-user"}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


class ReceiverProcess:
    """A `receiver serve` subprocess on a free port, its output in a log file."""

    def __init__(self, tmp_path: Path, *, sandbox_url: str, mapping: Path, env: dict[str, str] | None = None,
                 database_url: str | None = None, workers: int = 1, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"receiver-{self.port}.log"
        self.env = {
            **os.environ,
            "RECEIVER_MAPPING": str(mapping),
            "RECEIVER_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'outbox.db'}",
            "RECEIVER_HOST": "127.0.0.1",
            "RECEIVER_PORT": str(self.port),
            "RECEIVER_WORKERS": str(workers),
            "RECEIVER_SECRET_HCP_TERRAFORM": HCP_SECRET,
            "GENESYSCLOUD_API_URL": sandbox_url,
            "GENESYSCLOUD_LOGIN_URL": sandbox_url,
            "GENESYSCLOUD_OAUTHCLIENT_ID": "pipedial-dev",
            "GENESYSCLOUD_OAUTHCLIENT_SECRET": "pipedial-dev-secret",
            "RECEIVER_RETRY_BASE_SECONDS": "0.1",
            "RECEIVER_RETRY_MAX_SECONDS": "1",
            "RECEIVER_POLL_INTERVAL": "0.1",
            "RECEIVER_LEASE_SECONDS": "3",
            "RECEIVER_REQUEST_TIMEOUT": "5",
            "RECEIVER_PREFLIGHT_ON_START": "0",
            **(env or {}),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ReceiverProcess:
        """Start and wait until /readyz answers 200."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "receiver", "serve"], cwd=REPO, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"receiver not ready after {timeout}s:\n{self.output()}")

    def post(self, body: bytes, headers: dict[str, str], source: str = "hcp-terraform") -> requests.Response:
        return requests.post(f"{self.url}/hooks/{source}", data=body, headers=headers, timeout=10)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers): no graceful anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """Return the JSON log lines (anything else is a bug the caller may assert on)."""
        lines = []
        for line in self.output().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                lines.append({"unparsed": line})
        return lines


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
