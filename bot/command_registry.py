"""A small decorator registry: command name → handler, with usage and who may run it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.commands import CommandContext

Handler = Callable[["CommandContext", list[str]], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    privileged: bool
    handler: Handler


COMMANDS: dict[str, Command] = {}


def command(
    name: str, usage: str, summary: str, privileged: bool = False
) -> Callable[[Handler], Handler]:
    """Register a handler under `!name`; the registry order is the order of `!help`."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, summary, privileged, handler)
        return handler

    return register


def help_text() -> str:
    return "\n".join(f"{cmd.usage} — {cmd.summary}" for cmd in COMMANDS.values())
