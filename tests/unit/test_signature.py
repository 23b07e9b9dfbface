"""receiver/signature.py against the real signature vectors listed in the payload corpus.

The known-good pairs are parsed from SOURCES.md at test time, so the test follows the corpus;
the payload files are read in place (exact bytes), never copied into the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.signature import SignatureCheck, sign, verify
from tests.conftest import PAYLOADS

HMAC_SHA256_HEADERS = ("X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature-256")
TABLE_TITLE = "## Known-good signature pairs"


@dataclass(frozen=True)
class SignaturePair:
    file: str
    secret: str
    header: str
    value: str


def _cell(text: str) -> str:
    return text.strip().strip("`")


def parse_signature_pairs(sources_md: str) -> list[SignaturePair]:
    """Rows of the "Known-good signature pairs" table, without the SHA1 `X-Hub-Signature` one."""
    _, _, rest = sources_md.partition(TABLE_TITLE)
    pairs: list[SignaturePair] = []
    for line in rest.splitlines()[1:]:
        if not line.startswith("|"):
            if pairs:
                break
            continue
        cells = [_cell(cell) for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].endswith(".json"):
            continue  # the header row and the |---| rule
        header = cells[2].split()[0]
        if header in HMAC_SHA256_HEADERS:
            pairs.append(SignaturePair(cells[0], cells[1], header, cells[3]))
    return pairs


def _pairs_for_collection() -> list[SignaturePair]:
    sources = PAYLOADS / "SOURCES.md"
    return parse_signature_pairs(sources.read_text()) if sources.is_file() else []


KNOWN_GOOD = _pairs_for_collection()


def test_the_table_is_parsed(payloads_dir: Path) -> None:
    pairs = parse_signature_pairs((payloads_dir / "SOURCES.md").read_text())
    headers = {pair.header for pair in pairs}
    assert len(pairs) >= 28
    assert headers == set(HMAC_SHA256_HEADERS)


@pytest.mark.parametrize("pair", KNOWN_GOOD, ids=lambda p: f"{p.file}:{p.header}")
def test_known_good_pair_verifies(payloads_dir: Path, pair: SignaturePair) -> None:
    body = (payloads_dir / pair.file).read_bytes()
    assert verify(pair.secret, body, {pair.header: pair.value}) is SignatureCheck.VALID


@pytest.mark.parametrize("pair", KNOWN_GOOD, ids=lambda p: f"{p.file}:{p.header}")
def test_known_good_pair_with_upper_case_hex(payloads_dir: Path, pair: SignaturePair) -> None:
    body = (payloads_dir / pair.file).read_bytes()
    value = pair.value.upper().replace("SHA256=", "sha256=")
    assert verify(pair.secret, body, {pair.header: value}) is SignatureCheck.VALID


@pytest.mark.parametrize("pair", KNOWN_GOOD, ids=lambda p: f"{p.file}:{p.header}")
def test_known_good_pair_with_wrong_secret(payloads_dir: Path, pair: SignaturePair) -> None:
    body = (payloads_dir / pair.file).read_bytes()
    wrong = pair.secret + "x"
    assert verify(wrong, body, {pair.header: pair.value}) is SignatureCheck.MISMATCH


@pytest.mark.parametrize(
    ("file", "secret", "header", "value"),
    [
        pytest.param(
            "gitea/go-scm__pull_request_edited.json",
            "71295b197fa25f4356d2fb9965df3f2379d903d7",
            "X-Gitea-Signature",
            "failfailfailfail",
            id="gitea-failfail",
        ),
        pytest.param(
            "gogs/go-scm__pull_request_edited.json",
            "topsecret",
            "X-Gogs-Signature",
            "99b0128bef639616331037e0b04624ad8b11dcdb4f2fc421ff22c34fca2754eb",
            id="gogs-99b0",
        ),
        pytest.param(
            "github/go-scm__push.json",
            "topsecret",
            "X-Hub-Signature-256",
            "sha256=3bfbbc3bfc44498db2254f577b2e4bed201ece6163518ba91cb2c21f0f59d512",
            id="github-3bfbbc",
        ),
    ],
)
def test_negative_examples_mismatch(
    payloads_dir: Path, file: str, secret: str, header: str, value: str
) -> None:
    body = (payloads_dir / file).read_bytes()
    assert verify(secret, body, {header: value}) is SignatureCheck.MISMATCH


def test_a_changed_byte_mismatches(payloads_dir: Path) -> None:
    body = (payloads_dir / "github/go-scm__push.json").read_bytes()
    good = "sha256=e3bfe744d4e2e29ed990bde8acfb8255ca51ef65f99657767989fb6349f32957"
    assert verify("topsecret", body + b"\n", {"X-Hub-Signature-256": good}) is (
        SignatureCheck.MISMATCH
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Gitea-Signature": ""},
        {"X-Gitea-Signature": "", "X-Gogs-Signature": "", "X-Hub-Signature-256": ""},
        {"X-Gitea-Signature": "  ", "X-Hub-Signature-256": "sha256="},
    ],
    ids=["absent", "gitea-empty", "all-empty", "blank-and-bare-prefix"],
)
def test_empty_signatures_are_missing(headers: dict[str, str]) -> None:
    assert verify("secret", b'{"ref": "refs/heads/main"}', headers) is SignatureCheck.MISSING


def test_hub_header_without_prefix_is_not_accepted() -> None:
    body = b"{}"
    assert verify("s", body, {"X-Hub-Signature-256": sign("s", body)}) is SignatureCheck.MISSING


def test_forgejo_header_and_upper_case_prefix() -> None:
    body = b'{"a": 1}'
    digest = sign("s", body)
    assert verify("s", body, {"X-Forgejo-Signature": digest}) is SignatureCheck.VALID
    assert verify("s", body, {"X-Hub-Signature-256": "SHA256=" + digest}) is SignatureCheck.VALID


def test_one_valid_header_among_wrong_ones_is_valid() -> None:
    body = b"{}"
    headers = {"X-Gitea-Signature": "00" * 32, "X-Gogs-Signature": sign("s", body)}
    assert verify("s", body, headers) is SignatureCheck.VALID


@given(secret=st.text(min_size=1), body=st.binary())
def test_sign_then_verify_roundtrip(secret: str, body: bytes) -> None:
    digest = sign(secret, body)
    assert verify(secret, body, {"X-Gitea-Signature": digest}) is SignatureCheck.VALID
    assert verify(secret, body + b"x", {"X-Gitea-Signature": digest}) is SignatureCheck.MISMATCH
