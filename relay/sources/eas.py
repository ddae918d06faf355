"""Expo EAS build webhooks (`eas webhook:create --event BUILD`).

`expo-signature` is HMAC-SHA1 of the raw body, hex, with or without a `sha1=` prefix. EAS sends
only terminal states and retries on any answer outside 200-399.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from relay.errors import BadRequest
from relay.models import Build, Event
from relay.sources.base import Delivery, HmacSignedSource
from relay.sources.payload import artifact_from_url, as_dict, json_object, read_platform, text

IGNORED_STATUSES = {"errored": "the build errored", "canceled": "the build was canceled"}


class EasSource(HmacSignedSource):
    type = "eas"
    wiring_hint = "eas webhook:create --event BUILD --url {url} --secret <its secret>"
    fields = frozenset(
        {"platform", "app", "version", "build_number", "commit", "profile", "build_id"}
        | {"build_url", "run_id", "artifact_url", "artifacts", "actor"}
    )
    sometimes: ClassVar[Mapping[str, str]] = {
        "branch": "EAS documents no branch in its webhook: the relay reads a top-level "
        "`gitRef` only when a delivery has one",
    }

    signature_header = "expo-signature"
    digest = "sha1"
    prefix = "sha1="
    missing_signature = "missing expo-signature header (give the EAS webhook a secret)"

    def parse(self, delivery: Delivery) -> Event:
        payload = json_object(delivery.body)
        build_id = text(payload.get("id"))
        status = text(payload.get("status"))
        if not build_id or not status:
            raise BadRequest("EAS payload needs `id` and `status`")
        key = f"{self.name}:{build_id}:{status}"
        if "submissionDetailsPageUrl" in payload or "turtleBuildId" in payload:
            return Event(key, ignored="EAS Submit events are not builds (subscribe to BUILD)")
        if status != "finished":
            reason = IGNORED_STATUSES.get(status, f"build status {status!r} is not finished")
            return Event(key, ignored=reason)
        return Event(key, build=self._build(payload, build_id))

    def _build(self, payload: dict[str, Any], build_id: str) -> Build:
        metadata = as_dict(payload.get("metadata"))
        artifacts = as_dict(payload.get("artifacts"))
        platform = read_platform(payload.get("platform"), "EAS platform")
        artifact_url = text(artifacts.get("buildUrl"))
        return Build(
            source=self.name,
            system="expo-eas",
            platform=platform,
            app=text(metadata.get("appIdentifier")),
            version=text(metadata.get("appVersion")),
            build_number=text(metadata.get("appBuildVersion")),
            commit=text(metadata.get("gitCommitHash")),
            branch=text(payload.get("gitRef")),
            profile=text(metadata.get("buildProfile")),
            build_id=build_id,
            build_url=text(payload.get("buildDetailsPageUrl")),
            run_id=build_id,
            artifact_url=artifact_url,
            artifacts=(artifact_from_url(artifact_url),) if artifact_url else (),
            actor=text(metadata.get("username")),
        )
