"""Sign and post a sample webhook the way its real sender would (operator and demo tool)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from pathlib import Path

import requests

DEFAULT_PAYLOADS = {
    "hcp-terraform": "examples/payloads/hcp-terraform.run-errored.json",
    "standard": "examples/payloads/standard.failed.json",
}
SECRET_ENV = {
    "hcp-terraform": "RECEIVER_SECRET_HCP_TERRAFORM",
    "github": "RECEIVER_SECRET_GITHUB",
    "gitlab": "RECEIVER_SECRET_GITLAB",
    "standard": "RECEIVER_SECRET_STANDARD",
}


def signed_headers(source: str, body: bytes, secret: str, event: str | None) -> dict[str, str]:
    """Return the headers the real sender would attach to this body."""
    headers = {"Content-Type": "application/json"}
    if source == "hcp-terraform":
        headers["X-TFE-Notification-Signature"] = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    elif source == "github":
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-GitHub-Event"] = event or "workflow_run"
        headers["X-GitHub-Delivery"] = str(uuid.uuid4())
    elif source == "gitlab":
        headers["X-Gitlab-Token"] = secret
        headers["X-Gitlab-Event"] = event or "Pipeline Hook"
        headers["X-Gitlab-Event-UUID"] = str(uuid.uuid4())
    elif source == "standard":
        msg_id, ts = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
        key = base64.b64decode(secret.removeprefix("whsec_"))
        sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
        headers.update({"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"})
    return headers


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", default="hcp-terraform", choices=sorted(SECRET_ENV))
    p.add_argument("--file", help="payload file (default: a sample for the source)")
    p.add_argument("--event", help="X-GitHub-Event / X-Gitlab-Event value")
    p.add_argument("--fresh", action="store_true", help="make it a new state change (new run id and time)")
    p.add_argument("--url", default=f"http://{os.environ.get('RECEIVER_HOST', '127.0.0.1')}:"
                                     f"{os.environ.get('RECEIVER_PORT', '8080')}")
    args = p.parse_args()
    path = args.file or DEFAULT_PAYLOADS.get(args.source)
    if not path:
        p.error(f"--file is required for {args.source}")
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    if args.fresh and args.source == "hcp-terraform":
        payload["run_id"] = f"run-{uuid.uuid4().hex[:16]}"
        payload["notifications"][0]["run_updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = json.dumps(payload, separators=(",", ":")).encode()
    secret = os.environ.get(SECRET_ENV[args.source], "").split(",")[0]
    if not secret:
        p.error(f"{SECRET_ENV[args.source]} is not set")
    resp = requests.post(f"{args.url}/hooks/{args.source}", data=body,
                         headers=signed_headers(args.source, body, secret, args.event), timeout=10)
    print(f"{resp.status_code} {resp.text.strip()}")
    return 0 if resp.ok else 1


if __name__ == "__main__":
    sys.exit(main())
