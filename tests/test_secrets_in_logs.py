"""No secret, token or signature ever reaches the log: one full life of a real receiver, every line read.

The life: signed deliveries from all four sources (GitLab both by token and by signing key), their
delivery to the sandbox platform, a forced token refresh (the platform expires every token, the next
call is refused with 401 and the receiver fetches a new one), a platform 403 that makes a job dead
with a diagnosis, and deliveries with bad signatures. The receiver logs at DEBUG, so every line it
can write is written. Then no line may contain a configured webhook secret (nor the key inside a
whsec_ secret), the OAuth client secret, any access token the sandbox issued, any signature header
value that was sent, nor "Authorization" or "Bearer "; and every line must be one JSON object.
The output of `receiver preflight --json` (which fetches a token of its own) is held to the same rule.

The receiver runs with RECEIVER_PREFLIGHT_ON_START=0 (the helper's default): with it on, the
preflight thread runs in the gunicorn master while workers are forked, and a worker forked while
that thread holds a module's import lock hangs for good at boot (seen about once in 10 starts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver.sandbox.server import SandboxServer
from tests.helpers.receiver import REPO, ReceiverProcess, hcp_run_body, wait_for
from tests.helpers.sandbox import CLIENT_SECRET, journal, sandbox_config

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data"
HCP_SECRET = "log-leak-hcp-" + "7c1d" * 6
GITHUB_SECRET = "log-leak-github-" + "a9e3" * 6
GITLAB_TOKEN = "log-leak-gitlab-token-" + "5b08" * 6
GITLAB_KEY = "whsec_" + base64.b64encode(b"log-leak-gitlab-signing-key-32b!").decode()
STANDARD_KEY = "whsec_" + base64.b64encode(b"log-leak-standard-signing-key-32").decode()
MAPPING = {
    "version": 1,
    "defaults": {"division_id": "div-ops", "cooldown": 0},
    "routes": [
        {"name": "everything", "match": {"source": "*"}, "continue": True,
         "target": {"action": "trigger", "contact_list_id": "cl-oncall"}},
        {"name": "standard-contact", "match": {"source": "standard"},
         "target": {"action": "add_contact", "contact_list_id": "cl-oncall",
                    "contact": {"Phone": "+15550100", "Workspace": "{workspace}", "Reason": "{state}: {message}"}}},
    ],
}


class Sender:
    """Signs deliveries like the real senders and remembers every signature header value it sent."""

    def __init__(self, receiver: ReceiverProcess) -> None:
        self.receiver = receiver
        self.sent: list[str] = []
        self._serial = 0

    def _id(self) -> str:
        self._serial += 1
        return f"log-leak-delivery-{self._serial}"

    def post(self, source: str, body: bytes, headers: dict[str, str], status: int) -> None:
        for name in ("X-TFE-Notification-Signature", "X-Hub-Signature-256", "X-Gitlab-Token", "webhook-signature"):
            if name in headers:
                self.sent.append(headers[name])
        answer = self.receiver.post(body, {"Content-Type": "application/json", **headers}, source=source)
        assert answer.status_code == status, (source, answer.status_code, answer.text)

    def hcp(self, body: bytes, *, status: int = 202, secret: str = HCP_SECRET) -> None:
        signature = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
        self.post("hcp-terraform", body, {"X-TFE-Notification-Signature": signature}, status)

    def github(self, body: bytes, event: str, *, status: int = 202, secret: str = GITHUB_SECRET) -> None:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        self.post("github", body, {"X-Hub-Signature-256": signature, "X-GitHub-Event": event,
                                   "X-GitHub-Delivery": self._id()}, status)

    def gitlab_token(self, body: bytes, event: str, *, status: int = 202, token: str = GITLAB_TOKEN) -> None:
        self.post("gitlab", body, {"X-Gitlab-Token": token, "X-Gitlab-Event": event,
                                   "X-Gitlab-Event-UUID": self._id()}, status)

    def signed(self, source: str, body: bytes, key: str, *, status: int = 202,
               extra: dict[str, str] | None = None) -> None:
        msg_id, timestamp = self._id(), str(int(time.time()))
        raw = base64.b64decode(key.removeprefix("whsec_"))
        mac = hmac.new(raw, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        self.post(source, body, {"webhook-id": msg_id, "webhook-timestamp": timestamp,
                                 "webhook-signature": "v1," + base64.b64encode(mac).decode(), **(extra or {})},
                  status)


@pytest.fixture(name="platform")
def _platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxServer, list[str]]]:
    """A sandbox platform that records every access token it issues."""
    server = SandboxServer(sandbox_config()).start()
    issued: list[str] = []
    issue = server.state.issue_token

    def recording(client_id: str) -> tuple[str, float]:
        token, ttl = issue(client_id)
        issued.append(token)
        return token, ttl

    monkeypatch.setattr(server.state, "issue_token", recording)
    try:
        yield server, issued
    finally:
        server.stop()


def fixture(source: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / source / name).read_text())
    return data


def compact(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()



def test_no_secret_token_or_signature_is_ever_logged(
    tmp_path: Path, platform: tuple[SandboxServer, list[str]]
) -> None:
    server, issued = platform
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    receiver = ReceiverProcess(tmp_path, sandbox_url=server.url, mapping=mapping, env={
        "RECEIVER_SECRET_HCP_TERRAFORM": HCP_SECRET,
        "RECEIVER_SECRET_GITHUB": GITHUB_SECRET,
        "RECEIVER_SECRET_GITLAB": f"{GITLAB_TOKEN},{GITLAB_KEY}",
        "RECEIVER_SECRET_STANDARD": STANDARD_KEY,
        "RECEIVER_LOG_LEVEL": "DEBUG",
    })
    sender = Sender(receiver)
    receiver.start()
    try:
        # 1. Signed deliveries from every source, delivered to the platform.
        sender.hcp(hcp_run_body("run-leak-1"))
        sender.github(compact(fixture("github", "workflow_run.completed.payload.json")), "workflow_run")
        sender.gitlab_token(compact(fixture("gitlab", "pipeline-hook.json")), "Pipeline Hook")
        sender.signed("gitlab", compact(fixture("gitlab", "job-hook.doc-example.json")), GITLAB_KEY,
                      extra={"X-Gitlab-Event": "Job Hook"})
        standard = {"state": "failed", "kind": "ci.deploy", "workspace": "prod-network", "message": "deploy failed",
                    "run_id": "leak-1"}
        sender.signed("standard", compact(standard), STANDARD_KEY)
        wait_for(lambda: len(journal(server.url)) >= 6, timeout=30)

        # 2. A forced token refresh: every token expires, the next call is refused and retried with a new one.
        tokens_before = len(issued)
        assert requests.post(f"{server.url}/sandbox/expire-tokens", timeout=5).json()["expired"] >= 1
        sender.hcp(hcp_run_body("run-leak-2"))
        wait_for(lambda: len(journal(server.url)) >= 7, timeout=30)
        assert len(issued) > tokens_before

        # 3. A platform error: the next trigger is refused with 403, the job is dead with a diagnosis.
        script = {"method": "POST", "path": "/contactlists/cl-oncall/trigger",
                  "responses": [{"status": 403, "code": "missing.any.permissions",
                                 "message": "Unable to perform the requested action. You are missing the following "
                                            "permission(s): outbound:contactList:edit"}]}
        assert requests.post(f"{server.url}/sandbox/script", json=script, timeout=5).status_code == 200
        sender.hcp(hcp_run_body("run-leak-3"))
        wait_for(lambda: any(line.get("outcome") == "dead" for line in receiver.log_lines()), timeout=30)

        # 4. Bad signatures, each value distinct so a leak of it would be found.
        body = hcp_run_body("run-leak-bad")
        sender.hcp(body, status=401, secret="wrong-" + secrets.token_hex(16))
        sender.post("hcp-terraform", body, {"X-TFE-Notification-Signature": secrets.token_hex(64)}, 401)
        sender.post("hcp-terraform", body, {"X-TFE-Notification-Signature": secrets.token_hex(64).upper()}, 401)
        github = compact(fixture("github", "workflow_run.completed.payload.json"))
        sender.github(github, "workflow_run", status=401, secret="wrong-" + secrets.token_hex(16))
        sender.post("github", github, {"X-Hub-Signature-256": "sha256=" + secrets.token_hex(20),
                                       "X-GitHub-Event": "workflow_run"}, 401)
        gitlab = compact(fixture("gitlab", "pipeline-hook.json"))
        sender.gitlab_token(gitlab, "Pipeline Hook", status=401, token="wrong-token-" + secrets.token_hex(12))
        sender.gitlab_token(gitlab, "Pipeline Hook", status=401, token=GITLAB_KEY)  # the signing key is no token
        sender.signed("gitlab", gitlab, "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(), status=401)
        sender.signed("standard", compact(standard), "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
                      status=401)
        sender.post("standard", compact(standard), {
            "webhook-id": "leak-bad", "webhook-timestamp": str(int(time.time()) - 3600),
            "webhook-signature": "v1," + base64.b64encode(secrets.token_bytes(32)).decode()}, 401)
    finally:
        receiver.stop()
    # 5. Preflight, as an operator runs it (RECEIVER_PREFLIGHT_ON_START stays off: see the module docstring).
    preflight = subprocess.run([sys.executable, "-m", "receiver", "preflight", "--json"], cwd=REPO, env=receiver.env,
                               capture_output=True, text=True, timeout=60, check=False)
    assert '"check": "token"' in preflight.stdout, preflight.stdout + preflight.stderr

    output = receiver.output()
    lines = receiver.log_lines()
    assert lines, "the receiver logged nothing"
    not_json = [line["unparsed"] for line in lines if "unparsed" in line]
    assert not not_json, not_json[:5]
    assert all(isinstance(line, dict) for line in lines)

    # The life happened as intended (otherwise the assertions below prove little).
    outcomes = [line.get("outcome") for line in lines]
    assert outcomes.count("accepted") >= 7 and outcomes.count("delivered") >= 7 and "dead" in outcomes, outcomes
    assert sum(1 for line in lines if line.get("status_code") == 401 and line.get("outcome") == "rejected") >= 10
    assert any(line.get("message") == "platform refused the token, refreshing once" for line in lines)
    assert len(issued) >= 2

    forbidden: dict[str, str] = {
        "hcp-terraform secret": HCP_SECRET,
        "github secret": GITHUB_SECRET,
        "gitlab token": GITLAB_TOKEN,
        "gitlab signing key": GITLAB_KEY,
        "gitlab signing key, base64": GITLAB_KEY.removeprefix("whsec_"),
        "standard signing key": STANDARD_KEY,
        "standard signing key, base64": STANDARD_KEY.removeprefix("whsec_"),
        "OAuth client secret": CLIENT_SECRET,
        "Authorization header": "Authorization",
    }
    forbidden |= {f"access token {i}": token for i, token in enumerate(issued)}
    forbidden |= {f"signature header value {i}": value for i, value in enumerate(sender.sent)}
    # Also look at the decoded values, in case an escape (\\u, \\/) hides a value in the raw text.
    decoded = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    for label, value in forbidden.items():
        assert value, label
        for text in (output, decoded, preflight.stdout, preflight.stderr):
            assert value not in text, f"{label} is in the log: {next(ln for ln in text.splitlines() if value in ln)}"
    for text in (output, decoded, preflight.stdout, preflight.stderr):
        assert "bearer " not in text.lower(), next(line for line in text.splitlines() if "bearer " in line.lower())
