"""The byte budget every message is rendered within, so the homeserver never refuses one.

Synapse refuses an event whose whole PDU, as canonical JSON, exceeds 65,536 bytes
(`MAX_PDU_SIZE`, answered `M_TOO_LARGE`). What the bot controls is the content dict
(`msgtype`, `body`, `format`, `formatted_body`, `m.mentions`); around it come:

- the PDU envelope Synapse adds: `type`, `room_id` and `sender` (each at most 255 bytes),
  `origin_server_ts`, `depth`, up to 10 `prev_events` and a few `auth_events` (~48 bytes per
  id), `hashes`, `signatures` (server name + key id + 86 bytes), `unsigned`: under 2 KB in
  practice; we reserve PDU_ENVELOPE = 4,096.
- in an encrypted room, nio sends `m.room.encrypted` instead: its content wraps the
  ciphertext in `algorithm`, `sender_key`, `session_id` and `device_id` (ENCRYPTED_WRAPPER
  = 512). The ciphertext is unpadded base64 (4/3) of a megolm message: the plaintext JSON
  `{"type":"m.room.message","content":…,"room_id":…}` (PLAINTEXT_WRAPPER = 48 + 255 for
  the room id), AES-CBC padded to 16 bytes, plus version, index, MAC and signature
  (MEGOLM_OVERHEAD = 104; vodozemac measured 124 base64 bytes for an empty plaintext).

So the content may take (65,536 - 4,096 - 512) * 3/4 - 104 - 303 = 45,289 bytes; we keep
CONTENT_BUDGET = 44,000 (1,289 bytes, ~1.7 KB of event, of slack), for every room alike.

The content is measured as nio serialises it before encrypting: `json.dumps` with
`ensure_ascii`, where `é` costs 6 bytes, an emoji 12, `"` `\\` and control characters 2 or 6.
That is never less than Synapse's canonical UTF-8 JSON of the same content, so one measure
serves plain and encrypted rooms. JSON escaping is per character, so the cost of a text is
the sum of the costs of its pieces: messages are assembled piece by piece, exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from html import escape

from formatters.rendered import Rendered

EVENT_LIMIT = 65_536
PDU_ENVELOPE = 4_096
ENCRYPTED_WRAPPER = 512
MEGOLM_OVERHEAD = 104
PLAINTEXT_WRAPPER = 48 + 255
CONTENT_MAX = (EVENT_LIMIT - PDU_ENVELOPE - ENCRYPTED_WRAPPER) * 3 // 4 - (
    MEGOLM_OVERHEAD + PLAINTEXT_WRAPPER
)
CONTENT_BUDGET = 44_000
# The smallest budget a refused message is shrunk to: its head line, alone if need be.
FLOOR = 1_024
# Room kept free for the "… and N more" lines while details are filled in.
TAIL_RESERVE = 400
MARKER_RESERVE = 100  # "… and N more lines", as text and as HTML
NEWLINE_COST = 2  # "\n" in JSON
# The marker `shrink` leaves; a message shrunk again counts what the earlier cut left out.
MORE_LINES = re.compile(r"^… and (\d+) more lines?$")


def content(body: str, html: str) -> dict[str, object]:
    """The content the sender posts (bot.message.notice_content builds the same dict)."""
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": {},
    }


def json_cost(text: str) -> int:
    """Bytes `text` takes inside a JSON string, as nio writes it (ASCII, escaped)."""
    return len(json.dumps(text)) - 2


EMPTY_SIZE = len(json.dumps(content("", ""), separators=(",", ":")))


def content_size(body: str, html: str) -> int:
    """Bytes of the whole content dict as nio serialises it."""
    return EMPTY_SIZE + json_cost(body) + json_cost(html)


def size_of(rendered: Rendered) -> int:
    return content_size(rendered.body, rendered.html)


def line_cost(piece: Rendered) -> int:
    """What adding `piece` (a body line and its HTML) to a message costs, newline included."""
    return json_cost(piece.body) + NEWLINE_COST + json_cost(piece.html)


def take(pieces: Sequence[Rendered], room: int, cap: int | None = None) -> int:
    """How many of `pieces`, in order, fit in `room` bytes (at most `cap`)."""
    used = 0
    for count, piece in enumerate(pieces[:cap]):
        used += line_cost(piece)
        if used > room:
            return count
    return len(pieces[:cap])


def fit(rendered: Rendered, limit: int = CONTENT_BUDGET) -> Rendered:
    """The message itself when it fits, else `shrink`: the last guard of every formatter."""
    return rendered if size_of(rendered) <= limit else shrink(rendered.body, rendered.html, limit)


def shrink(body: str, html: str, limit: int) -> Rendered:
    """Cut lines from the end, with "… and N more lines", until the content fits `limit`.

    The head line always stays (itself cut with "…" if it alone is too long); at or below
    FLOOR it is all that is left. The HTML is rebuilt from the kept text (escaped, one
    `<br>` per line), so it stays valid whatever was cut; links are lost, the text is not.
    """
    if content_size(body, html) <= limit:
        return Rendered(body, html)
    head, *rest = body.split("\n")
    earlier = MORE_LINES.match(rest[-1]) if rest else None
    cut_before = int(earlier.group(1)) if earlier else 0
    if earlier:
        rest.pop()
    head = _clip_to(head, max(0, limit - EMPTY_SIZE - MARKER_RESERVE))
    room = limit - content_size(head, _text_html(head)) - MARKER_RESERVE
    kept = [head, *rest[: _lines_within(rest, room)]] if limit > FLOOR else [head]
    cut_lines = len(rest) + 1 - len(kept) + cut_before
    if cut_lines:
        kept.append(f"… and {cut_lines} more line{'s' if cut_lines != 1 else ''}")
    return Rendered("\n".join(kept), "<br>".join(_text_html(line) for line in kept))


def _lines_within(lines: Sequence[str], room: int) -> int:
    """How many of `lines` fit in `room` bytes as text plus `<br>`-joined escaped HTML."""
    pieces = [Rendered(line, _text_html(line) + "<br>") for line in lines]
    return take(pieces, room)


def _text_html(line: str) -> str:
    return escape(line, quote=True)


def _clip_to(text: str, room: int) -> str:
    """The longest prefix of `text` (plus "…") whose text and HTML together cost <= room."""
    if json_cost(text) + json_cost(_text_html(text)) <= room:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits, by bisection on its cost
        mid = (low + high + 1) // 2
        candidate = text[:mid] + "…"
        if json_cost(candidate) + json_cost(_text_html(candidate)) <= room:
            low = mid
        else:
            high = mid - 1
    return text[:low] + "…"
