"""The dispatcher's release of held events: 300 of every kind leave as one message that fits
the byte budget and counts each kind exactly."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from bot.dispatcher import Dispatcher
from bot.sample import sample_push
from core.events import PullRequestEvent
from core.records import NewDelivery
from core.store import Store
from core.wakeup import Wakeup
from formatters import FORMATTERS, Rendered
from formatters.budget import CONTENT_BUDGET, content_size
from tests.unit.test_dispatcher import ROOM_A, Clock, queued

REPO = {"full_name": "acme/widgets", "html_url": "https://git.example.org/acme/widgets"}
BOB = {"login": "bob"}


def _pull_request(n: int) -> tuple[str, dict[str, Any]]:
    pull = {
        "number": n,
        "title": f"Make widget {n} spin " + "faster " * 60,  # cut to 72 characters
        "html_url": f"https://git.example.org/acme/widgets/pulls/{n}",
        "head": {"ref": f"feature-{n}"},
        "base": {"ref": "main"},
    }
    return "pull_request", {"action": "opened", "number": n, "pull_request": pull}


def _issue_closed(n: int) -> tuple[str, dict[str, Any]]:
    url = f"https://git.example.org/acme/widgets/issues/{n}"
    return "issues", {
        "action": "closed",
        "issue": {"number": n, "title": "Wobble", "html_url": url},
    }


def _comment(n: int) -> tuple[str, dict[str, Any]]:
    url = f"https://git.example.org/acme/widgets/issues/{n}"
    issue = {"number": n, "title": "Wobble", "html_url": url}
    comment = {"body": "Seen it too. " * 500, "html_url": f"{url}#c{n}"}
    return "issue_comment", {"action": "created", "issue": issue, "comment": comment}


def _ci_failure(n: int) -> tuple[str, dict[str, Any]]:
    status = {"sha": f"{n:040x}", "state": "failure", "context": "ci", "target_url": ""}
    return "status", status | {"branches": [{"name": "main"}]}


def _push(n: int) -> tuple[str, dict[str, Any]]:
    return "push", sample_push(branch=f"feature/{'x' * 150}-{n}", message=f"change {n}", commits=3)


KINDS = [_push, _pull_request, _issue_closed, _comment, _ci_failure]


async def _accept(store: Store, n: int) -> None:
    kind, payload = KINDS[n % len(KINDS)](n)
    body = json.dumps(payload | {"repository": REPO} | ({} if kind == "push" else {"sender": BOB}))
    digest = hashlib.sha256(body.encode()).hexdigest()
    public = NewDelivery(f"d{n}", kind, digest, "acme/widgets", body, 0.0, "pending", private=False)
    await store.record_delivery(public)


async def test_300_held_events_of_five_kinds_leave_as_one_message_within_budget(
    store: Store,
) -> None:
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await store.subscribe(
        ROOM_A, "acme/widgets", "@a:x", trusted=True, events="push,pull_request,issues,comment,ci"
    )
    for n in range(301):
        await _accept(store, n)
    await dispatcher.route_pending()
    (first,) = await queued(store, clock)
    assert first.body.startswith("[acme/widgets] alice pushed 3 commits to feature/")
    clock.now += 60
    await dispatcher.release_due()
    (message,) = await queued(store, clock)
    assert await store.held_groups() == []
    assert content_size(message.body, message.html) <= CONTENT_BUDGET
    head, *details = message.body.split("\n")
    assert head.startswith("[acme/widgets] 60 pushes (180 commits) to feature/")
    assert head.endswith(
        " and 55 more branches by alice; 60 PRs opened; 60 issues closed; 60 comments;"
        " 60 CI failures"
    )
    assert details[10] == "… and 50 more branches"
    assert details[-1] == "… and 220 more events"


async def test_an_event_whose_formatter_fails_is_left_out_not_the_whole_group(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FORMATTERS[PullRequestEvent]

    def broken_for_pr_6(event: Any) -> Rendered | None:
        if event.pr_number == 6:
            raise RuntimeError("a formatter bug")
        return real(event)

    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await store.subscribe(
        ROOM_A, "acme/widgets", "@a:x", trusted=True, events="push,pull_request,issues"
    )
    for n in range(16):  # pushes, PRs and closed issues: 3 kinds from the 5 above
        if n % 5 < 3:
            await _accept(store, n)
    await dispatcher.route_pending()
    await queued(store, clock)
    kind: type[Any] = PullRequestEvent
    monkeypatch.setitem(FORMATTERS, kind, broken_for_pr_6)
    clock.now += 60
    await dispatcher.release_due()
    (message,) = await queued(store, clock)
    assert message.body.startswith("[acme/widgets] 3 pushes (9 commits) to feature/")
    assert message.body.split("\n")[0].endswith(
        " by alice; 2 PRs opened; 3 issues closed"  # PR 6 left out; PRs 1 and 11 counted
    )
    assert await store.held_groups() == []
