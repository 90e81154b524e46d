"""Audience hashing and request checks, no server: each destination's normalization and test
vectors (computed here with hashlib from the literal normalized string, and copied from the
vendor's documentation where it gives one)."""

from __future__ import annotations

import hashlib

import pytest

from identity.audiences.export import ExportRequest, export_request
from identity.audiences.hashing import hashed_for, normalized_for
from identity.errors import InputError
from identity.policy import Policy


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Meta Marketing API, "Customer information parameters": em and ph examples with their SHA-256.
META_EMAIL = (
    "john_smith@gmail.com",
    "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
)
META_PHONE = ("+16505551212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176")


def test_meta_vectors_from_the_vendor_documentation() -> None:
    email, expected_email = META_EMAIL
    phone, expected_phone = META_PHONE  # stored as idgraph stores phones: E.164
    assert hashed_for("meta", "email", email) == expected_email
    assert hashed_for("meta", "phone", phone) == expected_phone


def test_google_hashes_e164_with_plus_and_meta_digits_only() -> None:
    assert normalized_for("google", "phone", "+33612345678") == "+33612345678"
    assert normalized_for("meta", "phone", "+33612345678") == "33612345678"
    assert hashed_for("google", "phone", "+33612345678") == sha("+33612345678")
    assert hashed_for("meta", "phone", "+33612345678") == sha("33612345678")
    assert hashed_for("google", "phone", "+16505551212") == sha("+16505551212")
    assert hashed_for("google", "phone", "+16505551212") != META_PHONE[1]


def test_email_is_trimmed_and_lower_cased_for_both_and_gmail_dots_are_kept() -> None:
    for destination in ("google", "meta"):
        assert normalized_for(destination, "email", " Ann.Lee@Gmail.com ") == "ann.lee@gmail.com"
        assert hashed_for(destination, "email", "ann.lee@gmail.com") == sha("ann.lee@gmail.com")
    # Customer Match does not require removing gmail dots: the address is hashed as stored
    assert hashed_for("google", "email", "ann.lee@gmail.com") != sha("annlee@gmail.com")
    assert hashed_for("google", "email", META_EMAIL[0]) == META_EMAIL[1]


def test_hashes_are_lower_case_hex_of_64() -> None:
    value = hashed_for("google", "email", "ann@example.org")
    assert len(value) == 64 and value == value.lower() and int(value, 16) >= 0


def test_other_types_are_not_normalized() -> None:
    maid = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert normalized_for("google", "maid", maid) == maid
    assert normalized_for("meta", "cookie", "ck-ABC") == "ck-ABC"


def test_request_checks_types_format_and_destination() -> None:
    policy = Policy()
    request = export_request(policy, " seg-1 ", ["email", " phone", "email", ""], format="NDJSON")
    assert request == ExportRequest("seg-1", ("email", "phone"), "ndjson", False, None, False)
    with pytest.raises(InputError, match="unknown identifier type 'fax': known types are"):
        export_request(policy, "s", ["email", "fax"])
    with pytest.raises(InputError, match="no identifier types"):
        export_request(policy, "s", [" "])
    with pytest.raises(InputError, match="unknown format 'xml'"):
        export_request(policy, "s", ["email"], format="xml")
    with pytest.raises(InputError, match="unknown destination 'tiktok'"):
        export_request(policy, "s", ["email"], hashed=True, destination="tiktok")
    with pytest.raises(InputError, match="needs a destination"):
        export_request(policy, "s", ["email"], hashed=True)


def test_audience_id_is_stable_and_a_plain_export_has_no_destination() -> None:
    policy = Policy()
    a = export_request(policy, "s", ["email", "phone"], hashed=True, destination="google")
    b = export_request(policy, "s", ["phone", "email"], hashed=True, destination="Google")
    assert a.audience == b.audience and a.audience.startswith("aud-")
    meta = export_request(policy, "s", ["email", "phone"], hashed=True, destination="meta")
    plain = export_request(policy, "s", ["email", "phone"], destination="meta")
    assert len({a.audience, meta.audience, plain.audience}) == 3
    assert plain.destination is None
    assert plain.audience == export_request(policy, "s", ["email", "phone"]).audience
    # the format and delta flag do not change what the audience holds
    assert export_request(
        policy, "s", ["email", "phone"], format="ndjson", delta=True
    ).audience == (plain.audience)
