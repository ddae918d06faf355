"""Reading and writing JSON safely: the walk is skipped only when it could find nothing."""

from __future__ import annotations

import json

import pytest

from relay.jsontext import MAX_JSON_DEPTH, TooDeep, dumps, plainly_readable, read_json


@pytest.mark.parametrize(
    ("body", "plain"),
    [
        (b'{"id": "abc", "n": [1, 2]}', True),
        ('{"name": "café ü"}'.encode(), True),  # any text that is valid UTF-8
        (b'{"ref": "x\\ud800"}', False),  # an escaped lone surrogate
        (b'{"ref": "x\\uDBFF"}', False),
        (b'{"ref": "\\u00e9"}', True),  # an escape, but of no surrogate
        ('{"ref": "x\ud800"}'.encode("utf-8", "surrogatepass"), False),  # its raw bytes
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, False),  # as deep as allowed: walked
    ],
)
def test_a_body_needs_the_walk_only_when_it_may_hold_what_it_finds(body, plain):
    assert plainly_readable(body) is plain


def test_what_the_walk_finds_is_found_either_way():
    assert read_json(b'{"ref": "x\\ud800"}') == {"ref": "x\ufffd"}
    assert read_json(b'{"ref": "\\u00e9"}') == {"ref": "é"}
    with pytest.raises(TooDeep):
        read_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert read_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)


def test_an_answer_with_a_lone_surrogate_is_still_json_any_stream_can_hold():
    text = dumps({"reason": "x\ud800", "ok": "é"})
    assert json.loads(text) == {"reason": "x\ufffd", "ok": "é"}
    text.encode("utf-8")
    assert dumps({"a": [1, "b"]}) == '{"a":[1,"b"]}'
