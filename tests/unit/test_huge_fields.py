"""A huge field in any event kind (a 60 KB title, a 1 MB ref) still renders within the byte
budget: long names are cut with "…", overlong URLs are left out, the message never grows."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sample import sample_push
from core.events import PushEvent, parse_event
from formatters import Rendered, render
from formatters.budget import CONTENT_BUDGET, size_of
from tests.unit.test_event_kinds import ALICE, CASES, REPO

# Every character of it costs many bytes in JSON or HTML: ASCII-escaped, or entity-escaped.
HOSTILE = 'é😀<"&\\\x01 '


def huge(n: int) -> str:
    return (HOSTILE * (n // len(HOSTILE) + 1))[:n]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every string leaf of a payload."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _with(payload: dict[str, Any], path: tuple[Any, ...], text: str) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    target = changed
    for key in path[:-1]:
        target = target[key]
    # A repository name must look like one: make it huge within the forge's alphabet.
    target[path[-1]] = "a" * len(text) + "/b" if path == ("repository", "full_name") else text
    return changed


def _full(case: str) -> tuple[str, dict[str, Any]]:
    kind, payload = CASES[case]
    return kind, payload | {"repository": REPO, "sender": ALICE}


# Fields that choose whether an event is announced at all: any other value renders nothing.
SELECTORS = frozenset({"action", "state", "conclusion", "status", "type"})
FIELDS = [
    (case, path)
    for case in sorted(CASES)
    for path in _paths(_full(case)[1])
    if path[-1] not in SELECTORS
]


def _rendered(kind: str, payload: dict[str, Any]) -> Rendered:
    event = parse_event(kind, payload)
    assert event is not None
    rendered = render(event)
    assert rendered is not None
    return rendered


@pytest.mark.parametrize(
    ("case", "path"), FIELDS, ids=[f"{c}:{'.'.join(map(str, p))}" for c, p in FIELDS]
)
def test_a_100k_field_in_any_kind_stays_within_budget(case: str, path: tuple[Any, ...]) -> None:
    kind, payload = _full(case)
    rendered = _rendered(kind, _with(payload, path, huge(100_000)))
    assert size_of(rendered) <= CONTENT_BUDGET
    assert rendered.body.startswith("[")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIELDS),
    st.text(min_size=1, max_size=50),
    st.integers(min_value=1, max_value=20_000),
)
def test_any_text_repeated_in_any_field_stays_within_budget(
    field: tuple[str, tuple[Any, ...]], text: str, times: int
) -> None:
    case, path = field
    kind, payload = _full(case)
    try:
        event = parse_event(kind, _with(payload, path, text * times))
    except ValueError:
        return  # text the receiver refuses (a lone surrogate): never rendered
    rendered = render(event) if event is not None else None
    assert rendered is None or size_of(rendered) <= CONTENT_BUDGET


def _push(ref: str = "refs/heads/main", titles: list[str] | None = None) -> Rendered:
    payload = sample_push(commits=5)
    payload["ref"] = ref
    for commit, title in zip(payload["commits"], titles or [], strict=False):
        commit["message"] = title
    return render(PushEvent.model_validate(payload))  # type: ignore[return-value]


def test_a_push_with_a_60kb_commit_title() -> None:
    rendered = _push(titles=["x" * 60_000])
    assert size_of(rendered) <= CONTENT_BUDGET
    assert f" {'x' * 71}… (Alice)" in rendered.body


def test_a_push_with_a_1mb_ref() -> None:
    rendered = _push(ref="refs/heads/" + "r" * 1_000_000)
    assert size_of(rendered) <= CONTENT_BUDGET
    assert rendered.body.startswith(f"[acme/widgets] alice pushed 5 commits to {'r' * 199}…\n")


def test_a_push_of_5_commits_of_20kb_each() -> None:
    rendered = _push(titles=[huge(20_000)] * 5)
    assert size_of(rendered) <= CONTENT_BUDGET
    assert rendered.body.count("\n") == 6  # head, compare link, 5 commits: nothing dropped
