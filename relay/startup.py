"""What the relay checks before it starts, without I/O: `check` runs the same checks.

Light on purpose (the config and nothing that talks to the network), so the operator tools
can tell whether the function would start without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping

from relay.config import RelayConfig, missing_environment, secret_refs
from relay.errors import ConfigError


def project_id(config: RelayConfig, environ: Mapping[str, str]) -> str | None:
    return (
        config.secrets.project or environ.get("GOOGLE_CLOUD_PROJECT") or environ.get("GCP_PROJECT")
    )


def check_startup(config: RelayConfig, environ: Mapping[str, str]) -> None:
    """What can be checked without I/O: env secrets set, a project for Secret Manager names."""
    problems = startup_problems(config, environ)
    if problems:
        raise ConfigError("the relay cannot start:\n" + "\n".join(problems))


def startup_problems(config: RelayConfig, environ: Mapping[str, str]) -> list[str]:
    """Why the relay would refuse to start with this environment (`check` runs this too)."""
    problems = missing_environment(config, environ)
    if not project_id(config, environ):
        names = {ref.secret for _, ref in secret_refs(config) if ref.secret}
        short = sorted(name for name in names if not name.startswith("projects/"))
        if short:
            problems.append(
                f"secrets {short} are Secret Manager short names: set GOOGLE_CLOUD_PROJECT"
            )
        if config.dedup.store == "firestore":
            problems.append("dedup.store firestore needs a project: set GOOGLE_CLOUD_PROJECT")
    return problems


def dry_run_hint(config: RelayConfig) -> str:
    """Why the relay runs dry, and what would make it start runs (`token_is_set` is false)."""
    token = config.revyl.token
    if config.revyl.dry_run:
        return "revyl.dry_run is true (remove it to start runs)"
    if token is None:
        return "the config has no revyl.token (set it, e.g. `token: {env: REVYL_API_KEY}`)"
    return f"revyl.token is {{env: {token.env}}} and {token.env} is not set (export it)"
