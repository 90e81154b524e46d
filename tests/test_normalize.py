"""Unit tests of identity.normalize: no server, hypothesis for the properties."""

from __future__ import annotations

import hashlib
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import ConfigError, IdgraphError
from identity.model import Identifier
from identity.normalize import (
    DEFAULT_BLOCKED,
    DEFAULT_NULLISH,
    DEFAULT_TYPES,
    REASON_CODES,
    NormalizationError,
    Normalizer,
    NormalizerConfig,
    sha256_hex,
)

NORMALIZER = Normalizer()
UNBLOCKED = Normalizer(NormalizerConfig(blocked={}))

# sha256("john.doe@example.com"), computed once with `printf 'john.doe@example.com' | sha256sum`.
JOHN_DOE_SHA256 = "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"
# Published as the expected hash of "TEST@test.com " after trim + lowercase (a third-party
# checklist for Meta/Google uploads), so it checks the normalization, not only the hash.
TEST_AT_TEST_SHA256 = "f660ab912ec121d1b1e928a0bb4bc61b15f5ad44d5efdc4e1c92a25e99b8e44a"


def reject(type_: str, raw: object, normalizer: Normalizer = NORMALIZER) -> NormalizationError:
    with pytest.raises(NormalizationError) as info:
        normalizer.normalize(type_, raw)
    assert info.value.code in REASON_CODES
    assert str(info.value) == info.value.message
    return info.value


def test_error_is_an_idgraph_error() -> None:
    error = reject("email", "john@@x")
    assert isinstance(error, IdgraphError)
    assert error.code == "invalid_email"
    assert error.message.startswith("'john@@x' is not a valid email: ")


# --- email --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        " John.Doe@Example.COM ",
        "john.doe@example.com",
        "JOHN.DOE@EXAMPLE.COM",
        "\tjohn.doe@example.com\n",
        "\u00a0john.doe@example.com\u2003",
        "\u200bjohn.doe@example.com\ufeff",
    ],
)
def test_email_case_and_whitespace(raw: str) -> None:
    assert NORMALIZER.normalize("email", raw) == Identifier("email", "john.doe@example.com")


def test_email_keeps_plus_tags_and_dots() -> None:
    value = NORMALIZER.normalize("email", "Jane.Doe+News@Gmail.com").value
    assert value == "jane.doe+news@gmail.com"


def test_email_internationalized_domain_is_kept_in_unicode() -> None:
    assert NORMALIZER.normalize("email", "Anne@XN--MLLER-KVA.DE").value == "anne@müller.de"
    assert NORMALIZER.normalize("email", "anne@Müller.de").value == "anne@müller.de"


@pytest.mark.parametrize(
    "raw",
    [
        "john@@x",
        "john.doe",
        "john.doe@",
        "@example.com",
        "john doe@example.com",
        "john..doe@example.com",
        "john@localhost",
        "john@example",
        "john@example.test",
        "john@-example.com",
        "john@" + "a" * 64 + ".com",
    ],
)
def test_invalid_emails(raw: str) -> None:
    error = reject("email", raw)
    assert error.code == "invalid_email"
    assert repr(raw) in error.message


# --- phone --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 78",
        "0612345678",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "+33 6 12 34 56 78",
        "+33612345678",
        "0033612345678",
        "0033 6 12 34 56 78",
        612345678,
    ],
)
def test_french_phones_become_e164(raw: str | int) -> None:
    assert UNBLOCKED.normalize("phone", raw) == Identifier("phone", "+33612345678")


@pytest.mark.parametrize("raw", ["06 12 34 56 78", "+33 6 12 34 56 78", "0033612345678"])
def test_default_blocklist_is_checked_on_the_e164_form(raw: str) -> None:
    assert "+33612345678" in DEFAULT_BLOCKED["phone"]
    assert reject("phone", raw).code == "blocked_value"


def test_french_phone_with_default_config() -> None:
    assert NORMALIZER.normalize("phone", "06 71 23 45 98").value == "+33671234598"
    assert NORMALIZER.normalize("phone", "01 42 68 53 00").value == "+33142685300"


def test_foreign_numbers_in_international_form() -> None:
    assert NORMALIZER.normalize("phone", "+1 (202) 456-1111").value == "+12024561111"
    assert NORMALIZER.normalize("phone", "0044 20 7946 0958").value == "+442079460958"


def test_another_default_region() -> None:
    us = Normalizer(NormalizerConfig(default_region="US"))
    assert us.normalize("phone", "(202) 456-1111").value == "+12024561111"
    assert us.normalize("phone", "202.456.1111").value == "+12024561111"
    assert us.normalize("phone", "+33 6 71 23 45 98").value == "+33671234598"
    assert reject("phone", "06 71 23 45 98", us).code == "invalid_phone"
    assert reject("phone", "(202) 456-1111").code == "invalid_phone"  # read as French


@pytest.mark.parametrize(
    "raw",
    [
        "12",
        "06 12 34",
        "06 12 34 56 78 90 12",
        "+33 0 12 34 56 78",
        "+999 123 456 789",
        "not a phone",
        "+",
        "+1 555 555 5555",
        "+33700000000",
    ],
)
def test_invalid_phones(raw: str) -> None:
    error = reject("phone", raw)
    assert error.code == "invalid_phone"
    assert "is not a valid phone number" in error.message


POSSIBLE = Normalizer(NormalizerConfig(phone_check="possible"))


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+33 6 39 48 03 55", "+33639480355"), ("+33 7 00 12 34 56", "+33700123456")],
)
def test_the_possible_check_keeps_numbers_outside_allocated_ranges(raw: str, e164: str) -> None:
    error = reject("phone", raw, UNBLOCKED)  # valid, the default, refuses them
    assert error.code == "invalid_phone" and "not in an allocated range" in error.message
    assert 'check = "possible"' in error.message
    assert POSSIBLE.normalize("phone", raw).value == e164


@pytest.mark.parametrize("raw", ["06 12 34", "06 12 34 56 78 90 12", "not a phone", "+"])
def test_the_possible_check_still_refuses_impossible_numbers(raw: str) -> None:
    error = reject("phone", raw, POSSIBLE)
    assert error.code == "invalid_phone" and "is not a valid phone number" in error.message


@pytest.mark.parametrize("raw", ["06 66 66 66 66", "+33 7 77 77 77 77", "+33 1 11 11 11 11"])
def test_phone_of_one_repeated_digit_is_blocked(raw: str) -> None:
    error = reject("phone", raw, UNBLOCKED)
    assert error.code == "blocked_value"
    assert "repeated digit" in error.message


# --- ids ----------------------------------------------------------------------------------


def test_maid_is_lowercased_and_device_keeps_case() -> None:
    idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    assert NORMALIZER.normalize("maid", f" {idfa} ") == Identifier("maid", idfa.lower())
    assert NORMALIZER.normalize("device", f" {idfa} ") == Identifier("device", idfa)


@pytest.mark.parametrize("type_", ["maid", "device"])
@pytest.mark.parametrize(
    "raw", ["00000000-0000-0000-0000-000000000000", "0000000000000000", "00-00", " 000 "]
)
def test_all_zero_advertising_ids(type_: str, raw: str) -> None:
    error = reject(type_, raw)
    assert error.code == "all_zero_id"
    assert type_ in error.message


@pytest.mark.parametrize(
    ("raw", "code"),
    [("00", "all_zero_id"), (" 0000000000 ", "all_zero_id"), (0, "nullish"), ("0", "nullish")],
)
def test_all_zero_crm_id(raw: str | int, code: str) -> None:
    assert reject("crm_id", raw).code == code
    assert NORMALIZER.normalize("crm_id", "000123").value == "000123"


@pytest.mark.parametrize("type_", ["cookie", "crm_id", "dmp_id", "device"])
def test_ids_are_trimmed_and_keep_case(type_: str) -> None:
    assert NORMALIZER.normalize(type_, "\t GA1.2.AbC-123 \n") == Identifier(type_, "GA1.2.AbC-123")


def test_zeros_are_fine_in_a_cookie_or_dmp_id() -> None:
    assert NORMALIZER.normalize("cookie", "0000").value == "0000"
    assert NORMALIZER.normalize("dmp_id", "00-00").value == "00-00"


@pytest.mark.parametrize("type_", ["crm_id", "dmp_id", "device", "phone"])
def test_integers_are_accepted_for_numeric_types(type_: str) -> None:
    value = NORMALIZER.normalize(type_, 671234598).value
    assert value == ("+33671234598" if type_ == "phone" else "671234598")


# --- shared checks ------------------------------------------------------------------------


@pytest.mark.parametrize("type_", DEFAULT_TYPES)
@pytest.mark.parametrize(
    "raw",
    [
        *sorted(DEFAULT_NULLISH),
        *["NULL", " None ", "N/A", "[object Object]", "Undefined", "NaN", "\u200b", "   ", "TRUE"],
    ],
)
def test_nullish_values(type_: str, raw: str) -> None:
    assert reject(type_, raw).code == "nullish"


@pytest.mark.parametrize("type_", DEFAULT_TYPES)
def test_none_is_nullish(type_: str) -> None:
    assert reject(type_, None).code == "nullish"


def test_extra_nullish_is_case_insensitive() -> None:
    normalizer = Normalizer(NormalizerConfig(extra_nullish=frozenset({"Anonymous", "-"})))
    assert reject("cookie", " ANONYMOUS ", normalizer).code == "nullish"
    assert reject("cookie", "-", normalizer).code == "nullish"
    assert NORMALIZER.normalize("cookie", "anonymous").value == "anonymous"


@pytest.mark.parametrize("type_", DEFAULT_TYPES)
@pytest.mark.parametrize("raw", [True, False, 1.5, float("nan"), [], ["a"], {}, b"abc", object()])
def test_not_a_string(type_: str, raw: object) -> None:
    error = reject(type_, raw)
    assert error.code == "not_a_string"
    assert type(raw).__name__ in error.message


@pytest.mark.parametrize("type_", ["email", "cookie", "maid"])
def test_integers_are_not_strings_for_textual_types(type_: str) -> None:
    assert reject(type_, 12345).code == "not_a_string"


def test_too_long() -> None:
    assert NORMALIZER.normalize("cookie", "c" * 256).value == "c" * 256
    assert NORMALIZER.normalize("cookie", " " + "c" * 256 + " ").value == "c" * 256
    error = reject("cookie", "c" * 257)
    assert error.code == "too_long"
    assert "257" in error.message
    assert "max_length" in error.message
    short = Normalizer(NormalizerConfig(max_length=8))
    assert reject("crm_id", 123456789, short).code == "too_long"


@pytest.mark.parametrize("type_", DEFAULT_TYPES)
@pytest.mark.parametrize("raw", ["ab\x00cd", "ab\ncd", "ab\tcd", "ab\x7fcd", "ab\u200bcd"])
def test_control_characters_inside(type_: str, raw: str) -> None:
    error = reject(type_, raw)
    assert error.code == "invalid_value"
    assert "U+" in error.message


@pytest.mark.parametrize("type_", ["", "Email", "idfa", "phone_number"])
def test_unknown_type(type_: str) -> None:
    error = reject(type_, "whatever")
    assert error.code == "unknown_type"
    assert repr(type_) in error.message


def test_configured_types() -> None:
    normalizer = Normalizer(NormalizerConfig(types=(*DEFAULT_TYPES, "ga_client_id")))
    assert normalizer.normalize("ga_client_id", " 123.456 ").value == "123.456"
    only_email = Normalizer(NormalizerConfig(types=("email",), blocked={}))
    assert reject("cookie", "abc", only_email).code == "unknown_type"


# --- blocked values -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["test@example.com", " TEST@Example.com ", "A@A.COM"])
def test_default_blocked_emails(raw: str) -> None:
    error = reject("email", raw)
    assert error.code == "blocked_value"
    assert "blocked email" in error.message


def test_blocked_exact_values_per_type() -> None:
    blocked = {"cookie": frozenset({"deleted"}), "crm_id": frozenset({"TEST"})}
    normalizer = Normalizer(NormalizerConfig(blocked=blocked))
    assert reject("cookie", " deleted ", normalizer).code == "blocked_value"
    assert reject("crm_id", "TEST", normalizer).code == "blocked_value"
    assert normalizer.normalize("crm_id", "test").value == "test"
    assert normalizer.normalize("email", "test@example.com").value == "test@example.com"


def test_blocked_patterns_match_the_whole_normalized_value() -> None:
    patterns = {
        "email": (r".*@mailinator\.com", r"no-?reply@.*"),
        "phone": (r"\+336000.*",),
        "cookie": ("x+",),
    }
    normalizer = Normalizer(NormalizerConfig(blocked_patterns=patterns))
    for type_, raw in [
        ("email", "Someone@MAILINATOR.com"),
        ("email", "NoReply@shop.fr"),
        ("phone", "06 00 01 02 03"),
        ("cookie", "xxxx"),
    ]:
        error = reject(type_, raw, normalizer)
        assert error.code == "blocked_value"
        assert "matches" in error.message
    assert normalizer.normalize("email", "reply@shop.fr").value == "reply@shop.fr"
    assert normalizer.normalize("cookie", "xxxy").value == "xxxy"  # fullmatch, not search


def test_blocked_is_checked_before_hashing() -> None:
    hashing = Normalizer(NormalizerConfig(hash_pii=True))
    assert reject("email", "test@example.com", hashing).code == "blocked_value"


# --- hashing ------------------------------------------------------------------------------


def test_hashing_emails() -> None:
    hashing = Normalizer(NormalizerConfig(hash_pii=True))
    identifier = hashing.normalize("email", " John.Doe@Example.COM ")
    expected = hashlib.sha256(b"john.doe@example.com").hexdigest()
    assert identifier == Identifier("email", expected, hashed=True)
    assert identifier.value == JOHN_DOE_SHA256


def test_hash_value_matches_a_published_vector() -> None:
    hashing = Normalizer(NormalizerConfig(hash_pii=True, blocked={}))
    assert hashing.normalize("email", "TEST@test.com ").value == TEST_AT_TEST_SHA256
    assert Normalizer.hash_value("test@test.com") == TEST_AT_TEST_SHA256
    assert sha256_hex("john.doe@example.com") == JOHN_DOE_SHA256


def test_hashing_phones_hashes_the_e164_form() -> None:
    hashing = Normalizer(NormalizerConfig(hash_pii=True))
    identifier = hashing.normalize("phone", "06 71 23 45 98")
    assert identifier.hashed
    assert identifier.value == hashlib.sha256(b"+33671234598").hexdigest()


@pytest.mark.parametrize("type_", ["cookie", "device", "maid", "crm_id", "dmp_id"])
def test_hashing_leaves_other_types_alone(type_: str) -> None:
    hashing = Normalizer(NormalizerConfig(hash_pii=True))
    assert hashing.normalize(type_, "abc-123") == Identifier(type_, "abc-123", hashed=False)


def test_hash_is_lowercase_hex_of_utf8() -> None:
    digest = sha256_hex("anne@müller.de")
    assert digest == hashlib.sha256("anne@müller.de".encode()).hexdigest()
    assert len(digest) == 64
    assert digest == digest.lower()


# --- configuration ------------------------------------------------------------------------


def test_invalid_regex_names_the_type() -> None:
    with pytest.raises(ConfigError, match=r"blocked_patterns\['email'\]"):
        Normalizer(NormalizerConfig(blocked_patterns={"email": ("(unclosed",)}))


def test_unknown_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="default_region"):
        Normalizer(NormalizerConfig(default_region="XX"))


def test_bad_max_length_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_length"):
        Normalizer(NormalizerConfig(max_length=0))


def test_blocked_for_unknown_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="blocked_patterns"):
        Normalizer(NormalizerConfig(blocked_patterns=MappingProxyType({"idfa": ("x",)})))
    with pytest.raises(ConfigError, match="blocked"):
        Normalizer(NormalizerConfig(types=("cookie",)))  # default blocked has email and phone


def test_reason_codes() -> None:
    assert REASON_CODES == (
        "not_a_string",
        "nullish",
        "too_long",
        "invalid_email",
        "invalid_phone",
        "all_zero_id",
        "blocked_value",
        "unknown_type",
        "invalid_value",
    )


# --- properties ---------------------------------------------------------------------------

texts = st.text(max_size=300) | st.text(alphabet="0123456789+-(). ", max_size=25)


@settings(max_examples=300, deadline=None)
@given(st.emails())
def test_email_normalization_is_idempotent(raw: str) -> None:
    try:
        first = NORMALIZER.normalize("email", raw)
    except NormalizationError:
        return
    assert NORMALIZER.normalize("email", first.value) == first
    assert NORMALIZER.normalize("email", first.value.upper()) == first


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DEFAULT_TYPES), texts)
def test_normalization_is_idempotent(type_: str, raw: str) -> None:
    try:
        first = NORMALIZER.normalize(type_, raw)
    except NormalizationError:
        return
    assert NORMALIZER.normalize(type_, first.value) == first


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DEFAULT_TYPES), texts, st.booleans())
def test_only_normalization_errors_escape(type_: str, raw: str, hash_pii: bool) -> None:
    normalizer = Normalizer(NormalizerConfig(hash_pii=hash_pii))
    try:
        identifier = normalizer.normalize(type_, raw)
    except NormalizationError as e:
        assert e.code in REASON_CODES
        return
    assert identifier.type == type_
    assert identifier.value
    assert identifier.value == identifier.value.strip()
    assert identifier.hashed == (hash_pii and type_ in ("email", "phone"))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DEFAULT_TYPES), st.from_type(object))
def test_arbitrary_objects_only_raise_normalization_errors(type_: str, raw: object) -> None:
    try:
        NORMALIZER.normalize(type_, raw)
    except NormalizationError as e:
        assert e.code in REASON_CODES
