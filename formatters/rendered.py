"""What every formatter returns: the same message as plain text and as Matrix HTML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rendered:
    body: str
    html: str
