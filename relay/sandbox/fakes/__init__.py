"""The loopback fakes, one module per service (each module's docstring lists its endpoints and
its scripting API); `_http` holds the machinery they share (FakeHTTPServer, FakeApi).

- revyl: FakeRevyl (runs, builds, run lifecycle scripts) · secret_manager: FakeSecretManager
- github_api (artifacts, releases, commit statuses) · bitrise_api · codemagic_api · asc_api
- slack_response_url: a slash command's response_url · slack_api: FakeSlackApi (Web API)
- oidc: OidcIssuer (Google-style ID tokens and certificates) · cloud_tasks: FakeCloudTasks
- webhook_receiver: WebhookReceiver (verifies Standard Webhooks signatures)
"""
