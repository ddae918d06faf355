"""The floor with secrets: bench/floor_main.py, but reading its signing secret and Revyl token
through google-cloud-secret-manager (REST), as the relay must, on the first webhook.

The relay cannot start runs without reading its secrets, and the Secret Manager client library
is most of its cold start; judged against this floor, a cold start measures what the relay adds
on top of what any relay of its kind must load.

    FLOOR_SECRET_MANAGER_ENDPOINT=http://... FLOOR_PROJECT=demo FLOOR_REVYL_URL=http://... \
    FLOOR_TEST_ID=<uuid> python -m functions_framework --target floor_webhook \
        --source bench/floor_secrets_main.py
(secrets `eas-webhook-secret` and `revyl-api-key` in the project)
"""

import hashlib
import hmac
import json
import os
import threading

import flask
import functions_framework
import requests

EXECUTE_URL = os.environ["FLOOR_REVYL_URL"] + "/api/v1/execution/api/execute_test_id_async"
TEST_ID = os.environ["FLOOR_TEST_ID"]
PROJECT = os.environ["FLOOR_PROJECT"]
ENDPOINT = os.environ["FLOOR_SECRET_MANAGER_ENDPOINT"]

session = requests.Session()
session.trust_env = False
_secrets: dict[str, str] = {}
_clients: list[object] = []
_lock = threading.Lock()


def _client():
    """One client for every read, made on first use (as the relay makes its own)."""
    if not _clients:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import secretmanager

        _clients.append(
            secretmanager.SecretManagerServiceClient(
                transport="rest",
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=ENDPOINT),
            )
        )
    return _clients[0]


def secret(name: str) -> str:
    """Read once, through the client library."""
    with _lock:
        if name not in _secrets:
            path = f"projects/{PROJECT}/secrets/{name}/versions/latest"
            _secrets[name] = _client().access_secret_version(name=path).payload.data.decode()
        return _secrets[name]


@functions_framework.http
def floor_webhook(request: flask.Request) -> flask.Response:
    body = request.get_data()
    key = secret("eas-webhook-secret").encode()
    expected = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(
        expected.encode(), request.headers.get("expo-signature", "").encode()
    ):
        return flask.Response('{"decision":"rejected"}', 401, mimetype="application/json")
    build = json.loads(body)
    headers = {
        "Authorization": f"Bearer {secret('revyl-api-key')}",
        "User-Agent": "revyl-relay",
        "X-Revyl-Client": "revyl-relay",
        "X-CI-System": "expo-eas",
        "X-CI-Commit-SHA": build["metadata"]["gitCommitHash"],
        "X-CI-Run-URL": build["buildDetailsPageUrl"],
        "X-CI-Run-ID": build["id"],
    }
    answer = session.post(
        EXECUTE_URL, json={"test_id": TEST_ID, "source": "ci_cd"}, headers=headers, timeout=30
    )
    if answer.status_code != 200:
        return flask.Response('{"decision":"failed"}', 502, mimetype="application/json")
    payload = {"decision": "triggered", "execution_ids": [answer.json()["id"]]}
    return flask.Response(json.dumps(payload), 200, mimetype="application/json")
