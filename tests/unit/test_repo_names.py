"""Names in repository specs: `.`, `..`, leading dots and empty segments are refused
everywhere a spec is read (chat commands, `hooks install`), since they end up in API paths."""

from __future__ import annotations

import pytest

from bot.gitea_hooks import Target, parse_targets
from core.repo_spec import RepoSpecError, check_name, normalise_spec

REFUSED_SPECS = {
    "../admin": "'..' is not a name",
    "./admin": "'.' is not a name",
    "acme/..": "'..' is not a name",
    "acme/.": "'.' is not a name",
    ".hidden/widgets": "a name cannot start with a dot",
    "acme/.profile": "a name cannot start with a dot",
    "/widgets": "an empty name",
    "acme/": "an empty name",
    "acme//widgets": "an empty name",
    "acme/widgets/hooks": "exactly one '/'",
    "acme/%2e%2e": "only letters, digits",
    "*/widgets": "only letters, digits",
    "acme": "exactly one '/'",
}


@pytest.mark.parametrize(("spec", "reason"), REFUSED_SPECS.items())
def test_a_bad_spec_is_refused_with_its_reason(spec: str, reason: str) -> None:
    with pytest.raises(RepoSpecError, match="is not OWNER/NAME or OWNER/") as refused:
        normalise_spec(spec)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("Acme/Widgets", "acme/widgets"),
        ("acme/*", "acme/*"),
        (" my-org/repo.name_2 ", "my-org/repo.name_2"),
        ("acme/widgets.git", "acme/widgets.git"),  # a dot inside a name is fine
        ("a/b", "a/b"),
    ],
)
def test_good_specs_are_kept(spec: str, canonical: str) -> None:
    assert normalise_spec(spec) == canonical


def test_a_refusal_quotes_a_long_spec_only_in_part() -> None:
    with pytest.raises(RepoSpecError) as refused:
        normalise_spec("acme/" + "x" * 5000 + "!")
    assert len(str(refused.value)) < 300


@pytest.mark.parametrize("name", ["", ".", "..", ".git", "a/b", "a b", "ä"])
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(RepoSpecError):
        check_name(name)


@pytest.mark.parametrize(
    ("repos", "orgs", "said"),
    [
        (["../admin"], [], "--repo '../admin' is not OWNER/NAME: '..' is not a name"),
        (["acme/widgets/hooks"], [], "exactly one '/'"),
        (["acme/.."], [], "'..' is not a name"),
        (["acme/.profile"], [], "a name cannot start with a dot"),
        (["acme//widgets"], [], "an empty name"),
        (["acme/*"], [], "use --org OWNER"),
        ([], [".."], "--org '..' is not an organisation name: '..' is not a name"),
        ([], [".acme"], "a name cannot start with a dot"),
        ([], [""], "an empty name"),
        ([], ["acme/widgets"], "only letters, digits"),
    ],
)
def test_hooks_install_refuses_bad_names(repos: list[str], orgs: list[str], said: str) -> None:
    with pytest.raises(ValueError, match="is not") as refused:
        parse_targets(repos, orgs)
    assert said in str(refused.value)


@pytest.mark.parametrize(("kind", "name"), [("repo", "../admin"), ("org", ".."), ("repo", "a/")])
def test_no_target_with_a_bad_name_can_be_built(kind: str, name: str) -> None:
    with pytest.raises(RepoSpecError):
        Target(kind, name)  # type: ignore[arg-type]


def test_api_paths_are_built_from_checked_segments() -> None:
    assert Target("repo", "Acme/my.repo").hooks_path == "/api/v1/repos/Acme/my.repo/hooks"
    assert Target("org", "my-org").hooks_path == "/api/v1/orgs/my-org/hooks"
