"""Cloud Run functions entry point: every webhook arrives here."""

import flask
import functions_framework

from relay.app import relay_webhook as _relay_webhook


@functions_framework.http
def relay_webhook(request: flask.Request) -> flask.Response:
    return _relay_webhook(request)
