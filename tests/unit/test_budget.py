"""formatters.budget: the arithmetic holds against a real megolm encryption and Synapse's own
size check, costs add up exactly, and `shrink` keeps the head line and valid HTML."""

from __future__ import annotations

import json
from html import escape
from html.parser import HTMLParser

import vodozemac
from canonicaljson import encode_canonical_json
from hypothesis import given
from hypothesis import strategies as st

from bot.message import notice_content
from formatters.budget import (
    CONTENT_BUDGET,
    CONTENT_MAX,
    EVENT_LIMIT,
    FLOOR,
    content,
    content_size,
    json_cost,
    shrink,
)

# Text whose every character costs the most JSON bytes there are (6 or 12 per character).
COSTLY = "é😀\x01"


def _content_of_size(size: int) -> dict[str, object]:
    """A notice content of exactly `size` bytes as nio serialises it, in costly characters."""
    body = ""
    while content_size(body + COSTLY, "") <= size:
        body += COSTLY
    while content_size(body + "x", "") <= size:
        body += "x"
    assert content_size(body, "") == size
    return content(body, "")


def _worst_pdu(event_content: dict[str, object], event_type: str) -> dict[str, object]:
    """The event as Synapse checks it (`get_pdu_json`), every field at its plausible worst:
    255-byte room id, sender and server name, 10 prev and 5 auth events."""
    server = "s" * 240
    event_id = "$" + "e" * 43
    return {
        "auth_events": [event_id] * 5,
        "content": event_content,
        "depth": 2**53,
        "hashes": {"sha256": "h" * 43},
        "origin": server,
        "origin_server_ts": 2**53,
        "prev_events": [event_id] * 10,
        "room_id": "!" + "r" * 254,
        "sender": "@" + "u" * 254,
        "signatures": {server: {"ed25519:a_abcd": "g" * 86}},
        "type": event_type,
        "unsigned": {"age_ts": 2**53},
    }


def test_the_budget_is_within_the_arithmetic() -> None:
    assert CONTENT_MAX == 45_289
    assert CONTENT_BUDGET <= CONTENT_MAX
    assert content("b", "h") == notice_content("b", "h")
    assert content_size("b", "h") == len(
        json.dumps(notice_content("b", "h"), separators=(",", ":"))
    )


def test_a_message_at_the_budget_fits_as_a_plain_event() -> None:
    pdu = _worst_pdu(_content_of_size(CONTENT_BUDGET), "m.room.message")
    assert len(encode_canonical_json(pdu)) <= EVENT_LIMIT


def test_a_message_at_the_budget_fits_encrypted() -> None:
    """nio's own steps (olm_machine.group_encrypt) with a real megolm session."""
    room_id = "!" + "r" * 254
    plaintext = {"content": _content_of_size(CONTENT_BUDGET), "type": "m.room.message"}
    plaintext["room_id"] = room_id
    ciphertext = vodozemac.GroupSession().encrypt(
        json.dumps(plaintext, separators=(",", ":")).encode()
    )
    encrypted: dict[str, object] = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": "k" * 43,
        "ciphertext": ciphertext.to_base64(),
        "session_id": "i" * 43,
        "device_id": "D" * 64,
    }
    size = len(encode_canonical_json(_worst_pdu(encrypted, "m.room.encrypted")))
    assert size <= EVENT_LIMIT
    assert size > EVENT_LIMIT - 4_096  # the budget is not absurdly cautious either


@given(st.text(), st.text())
def test_costs_add_up_exactly(a: str, b: str) -> None:
    assert json_cost(a + b) == json_cost(a) + json_cost(b)


class _Balance(HTMLParser):
    """Fails on a closing tag that does not match the open one; `open` lists what is left."""

    VOID = frozenset({"br"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag


def _assert_valid_html(html: str) -> None:
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.open == []


LINES = st.lists(st.text(min_size=1).filter(lambda t: "\n" not in t), min_size=1, max_size=60)


@given(LINES, st.integers(min_value=FLOOR // 2, max_value=CONTENT_BUDGET))
def test_shrink_fits_keeps_the_head_line_and_counts_what_it_cut(
    lines: list[str], limit: int
) -> None:
    body = "\n".join(lines)
    html = "".join(f"<p>{escape(line)}</p>" for line in lines)
    shorter = shrink(body, html, limit)
    assert content_size(shorter.body, shorter.html) <= limit
    _assert_valid_html(shorter.html)
    if shorter.body == body:
        return
    kept = shorter.body.split("\n")
    head = lines[0]
    assert kept[0] == head or (kept[0].endswith("…") and head.startswith(kept[0][:-1]))
    if len(lines) > 1:
        cut_count = int(kept[-1].split()[2])  # "… and N more lines"
        assert kept[-1].startswith("… and ")
        assert len(kept) - 2 + cut_count == len(lines) - 1
        assert kept[1:-1] == lines[1 : len(kept) - 1]


def test_shrink_at_the_floor_leaves_the_head_line_alone() -> None:
    body = "[acme/widgets] 300 pushes (900 commits) to main by alice\n" + "\n".join(
        f"line {n} " * 20 for n in range(300)
    )
    shorter = shrink(body, "<p>x</p>", FLOOR)
    assert shorter.body.split("\n") == [body.split("\n")[0], "… and 300 more lines"]
    assert shorter.html.startswith("[acme/widgets] 300 pushes (900 commits) to main by alice<br>")


def test_a_head_line_longer_than_the_limit_is_cut_with_an_ellipsis() -> None:
    shorter = shrink("😀" * 100_000, "", FLOOR)
    assert content_size(shorter.body, shorter.html) <= FLOOR
    assert shorter.body.endswith("😀…")


def test_shrinking_a_shrunk_message_keeps_the_count_exact() -> None:
    body = "\n".join(["head", *(f"line {n} " * 10 for n in range(1000))])
    once = shrink(body, "", 20_000)
    twice = shrink(once.body, once.html, 5_000)
    kept = twice.body.split("\n")
    assert kept[-1] == f"… and {1000 - (len(kept) - 2)} more lines"
    assert kept[:-1] == body.split("\n")[: len(kept) - 1]
