"""Text from outside (payloads, Revyl's answers) made safe to keep: capped and valid UTF-8."""

from __future__ import annotations


def cut(text: str, cap: int) -> str:
    """`text` in at most `cap` characters: its start, then `… [N more characters]`."""
    if len(text) <= cap:
        return text
    kept = max(0, cap - len(f"… [{len(text)} more characters]"))
    return f"{text[:kept]}… [{len(text) - kept} more characters]"


def valid_utf8(text: str) -> str:
    """`text` with each lone surrogate (`"\\ud800"` from a JSON escape: no UTF-8 for it)
    spelled out as the six characters `\\ud800`; any other text unchanged (the same object)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def cut_start(text: str, cap: int) -> str:
    """`text` in at most `cap` characters, keeping its end (where a stack trace says what
    happened): `[N characters before] …`, then the end."""
    if len(text) <= cap:
        return text
    kept = max(0, cap - len(f"[{len(text)} characters before] …"))
    return f"[{len(text) - kept} characters before] …{text[len(text) - kept :]}"
