"""Cloud Run functions entry point: every webhook arrives here."""

import functions_framework

from relay.app import relay_webhook as _relay_webhook


@functions_framework.http
def relay_webhook(request):  # noqa: ANN001, ANN201 - the framework's signature
    return _relay_webhook(request)
