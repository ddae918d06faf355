"""Each source type declares the Build fields its builds carry (`Source.fields`, always;
`Source.sometimes`, with when one may lack it): `check` warns of a route on any other. The
declarations are held to the sample deliveries here."""

import time

import pytest

from relay.models import Build
from relay.plugins import typed_sources
from relay.sources import Delivery, build_source, known_types, source_class
from tests.payloads import payload

SAMPLES = [
    ("eas", "eas-build-finished-ios.json"),
    ("eas", "eas-build-finished-android.json"),
    ("github", "github-release-published.json"),
    ("github", "github-workflow-run-completed.json"),
    ("github", "github-repository-dispatch.json"),
    ("bitrise", "bitrise-build-finished.json"),
    ("codemagic", "codemagic-build-finished.json"),
    ("generic", "standard-webhooks-build-finished.json"),
    ("app-store-connect", "appstoreconnect-build-upload.json"),
]
ALWAYS = {"source", "system"}


def parsed(source_type: str, sample: str) -> tuple[Build, dict[str, str | None]]:
    (settings,) = typed_sources({source_type: {"secret": {"env": "S"}}}).values()
    source = build_source(source_type, settings)
    body = payload(sample)
    headers = {k.lower(): v for k, v in source.sign(body, "s", time.time(), "d-1").items()}
    event = source.parse(Delivery(headers, body, time.time()))
    assert event.build is not None, event.ignored
    return event.build, source.provides()


def carried(build: Build) -> set[str]:
    return {name for name, value in build if value not in (None, "", ())} - ALWAYS


@pytest.mark.parametrize("source_type", known_types())
def test_the_declared_fields_are_build_fields(source_type):
    cls = source_class(source_type)
    assert cls.fields <= set(Build.model_fields) - ALWAYS
    assert set(cls.sometimes) <= set(Build.model_fields) - ALWAYS
    assert not cls.fields & set(cls.sometimes), "a field is either always there or sometimes"


@pytest.mark.parametrize(("source_type", "sample"), SAMPLES)
def test_a_sample_build_carries_only_declared_fields_and_every_promised_one(source_type, sample):
    build, provides = parsed(source_type, sample)
    assert carried(build) <= set(provides), carried(build) - set(provides)
    promised = {name for name, when in provides.items() if when is None}
    assert promised <= carried(build), promised - carried(build)


def test_eas_promises_no_branch():
    """EAS documents no branch: the relay reads `gitRef` when a delivery has one."""
    build, provides = parsed("eas", "eas-build-finished-ios.json")
    assert "gitRef" in (provides["branch"] or "")
    assert build.branch is None
