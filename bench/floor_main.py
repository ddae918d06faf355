"""The floor: the least any relay must do for one EAS webhook that starts one Revyl test.

Read the body, check the `expo-signature` HMAC, make the one execute POST over a pooled
`requests.Session`, answer JSON. No config, no routing, no dedup, no Secret Manager, no log
line; the session does not re-read proxy settings from the environment on each call (nor does
the relay's). The benchmark serves it exactly as the relay is served (functions-framework,
same gunicorn settings) and reports the relay's figures as ratios to this one's.

    FLOOR_SIGNING_SECRET=... FLOOR_REVYL_URL=http://... FLOOR_REVYL_TOKEN=... \
    FLOOR_TEST_ID=<uuid> python -m functions_framework --target floor_webhook \
        --source bench/floor_main.py
"""

import hashlib
import hmac
import json
import os

import flask
import functions_framework
import requests

SECRET = os.environ["FLOOR_SIGNING_SECRET"].encode()
EXECUTE_URL = os.environ["FLOOR_REVYL_URL"] + "/api/v1/execution/api/execute_test_id_async"
TOKEN = os.environ["FLOOR_REVYL_TOKEN"]
TEST_ID = os.environ["FLOOR_TEST_ID"]

session = requests.Session()
session.trust_env = False  # proxy settings are not re-read from os.environ on every call


@functions_framework.http
def floor_webhook(request: flask.Request) -> flask.Response:
    body = request.get_data()
    expected = "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()
    signature = request.headers.get("expo-signature", "")
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return flask.Response('{"decision":"rejected"}', 401, mimetype="application/json")
    build = json.loads(body)
    headers = {  # what the relay sends with the same call
        "Authorization": f"Bearer {TOKEN}",
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
