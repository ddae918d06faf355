"""Log lines are bounded, field by field, and a cut never shows part of a secret."""

from __future__ import annotations

import json
import logging
import sys

from relay.logs import FIELD_CAP, ITEMS_CAP, TRACE_CAP, JsonFormatter, never_show

SECRET = "whsec_log_unit_secret_0123456789"


def line(message: str = "m", exc_info=None, **extra) -> str:
    record = logging.LogRecord("relay", logging.ERROR, __file__, 1, message, (), exc_info)
    record.__dict__.update(extra)
    return JsonFormatter().format(record)


def test_a_huge_field_is_cut_with_a_marker():
    text = line(event="eas:" + "x" * 2_000_000 + ":finished", message="y" * 50_000)
    entry = json.loads(text)
    assert len(text) < 3 * FIELD_CAP
    assert len(entry["event"]) <= FIELD_CAP
    assert entry["event"].endswith("more characters]")
    assert len(entry["message"]) <= FIELD_CAP


def test_lists_and_mappings_are_bounded_item_by_item():
    entry = json.loads(
        line(
            errors=["Revyl answered 400: " + "z" * 10_000] * 3,
            targets=[f"route/test/{n}" for n in range(10_000)],
            detail={f"k{n}": "v" * 5000 for n in range(200)},
        )
    )
    assert all(len(e) <= FIELD_CAP for e in entry["errors"])
    assert len(entry["targets"]) == ITEMS_CAP + 1
    assert entry["targets"][-1] == f"… [{10_000 - ITEMS_CAP} more items]"
    assert len(entry["detail"]) == ITEMS_CAP + 1
    assert all(len(v) <= FIELD_CAP for v in entry["detail"].values())


def test_a_secret_across_the_cut_is_masked_not_half_shown():
    never_show(SECRET)
    text = line(reason="a" * (FIELD_CAP - 50) + SECRET + "b" * 5000)
    assert SECRET[:10] not in text
    assert "***" in text


def test_a_long_stack_trace_keeps_its_end():
    try:
        raise ValueError("the cause, at the end of the trace " + "q" * 20_000)
    except ValueError:
        entry = json.loads(line(exc_info=sys.exc_info()))
    assert len(entry["stack_trace"]) <= TRACE_CAP
    assert entry["stack_trace"].endswith("q" * 100)
    assert entry["error_type"] == "ValueError"
