"""Turn raw identifier values into the canonical form that is stored and matched on.

Two records name the same person only if they spell the identifier the same way, so every
value goes through one function before it reaches the graph: `` John.Doe@Example.COM `` and
``john.doe@example.com`` must become one node, and ``06 12 34 56 78`` and ``+33612345678``
another. Values that cannot identify anyone (``"null"``, an all-zero advertising id, a
placeholder address typed into a form) are rejected with a reason code rather than stored,
because one such value shared by thousands of records would merge them all into one identity.

Rules, per type:

- email: trimmed, lowercased, checked for RFC 5321 / RFC 6531 syntax by ``email-validator``
  (no DNS lookup) and kept in the normalized form it returns.
- phone: parsed by ``phonenumbers`` (national numbers read in ``default_region``, a ``00``
  prefix read as ``+``), stored in ITU-T E.164 (``+33612345678``). By default (``check =
  "valid"``) a number must be *valid*: in a range its country has allocated. With ``check =
  "possible"`` (the policy's ``[types.phone]``), a number of a possible length for its country
  is kept even in a range not allocated (yet, or as far as the ``phonenumbers`` metadata
  knows): more real numbers kept from old lists, more typos kept too.
- maid, device, crm_id: an id made only of zeros (and dashes) is rejected; maid is lowercased
  (IDFA/GAID are UUIDs, whose case carries no meaning); device and crm_id keep their case.
- cookie, dmp_id and any extra configured type: trimmed, case kept.

With ``hash_pii``, emails and phones are stored as the lowercase hex SHA-256 of the UTF-8
normalized value, which is what Google Customer Match expects ("Prepare user data": trim,
lowercase, E.164 with ``+``, SHA-256). Meta Custom Audiences hash phones *without* the ``+``,
so a Meta export has to hash the digits itself.

References: ITU-T Recommendation E.164; RFC 5321 and RFC 6531 (through email-validator);
https://developers.google.com/display-video/api/guides/tasks/upload-customer-match-audience/prepare-data
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from identity.errors import ConfigError, IdgraphError, InputError
from identity.model import Identifier

if TYPE_CHECKING:  # the policy and settings hold what make_normalizer reads; no import cycle
    from identity.config import Settings
    from identity.policy import Policy

ReasonCode = Literal[
    "not_a_string",
    "nullish",
    "too_long",
    "invalid_email",
    "invalid_phone",
    "all_zero_id",
    "blocked_value",
    "unknown_type",
    "invalid_value",
]
REASON_CODES: tuple[ReasonCode, ...] = get_args(ReasonCode)

DEFAULT_TYPES: tuple[str, ...] = ("cookie", "email", "phone", "device", "maid", "crm_id", "dmp_id")
# fmt: off
DEFAULT_NULLISH = frozenset({
    "", "null", "nil", "none", "undefined", "nan", "n/a", "na", "0", "-1", "unknown", "false",
    "true", "[object object]",
})
DEFAULT_BLOCKED: Mapping[str, frozenset[str]] = MappingProxyType({
    "email": frozenset({
        "test@example.com", "test@test.com", "test@gmail.com", "test@domain.com",
        "example@example.com", "email@example.com", "user@example.com", "name@example.com",
        "noreply@example.com", "no-reply@example.com", "email@email.com", "name@domain.com",
        "user@domain.com", "a@a.com", "abc@abc.com", "asdf@asdf.com", "foo@bar.com",
        "none@none.com", "null@null.com", "no@no.com", "xxx@xxx.com",
    }),
    "phone": frozenset({
        "+33600000000", "+33612345678", "+33123456789", "+33102030405", "+33601020304",
        "+15555555555", "+10000000000", "+11234567890", "+12345678900",
    }),
})
# fmt: on

# Trimmed from both ends besides what str.isspace() calls whitespace.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u180e"
_EDGES = re.compile(rf"\A[\s{_ZERO_WIDTH}]+|[\s{_ZERO_WIDTH}]+\Z")
_ALL_ZERO = re.compile(r"[0-]+")
_INT_TYPES = frozenset({"crm_id", "dmp_id", "phone", "device"})
_PII_TYPES = frozenset({"email", "phone"})
_ZERO_CHECKED_TYPES = frozenset({"device", "maid", "crm_id"})
_SHOWN = 80


CACHE_SIZE = 200_000  # memoized (type, raw string) results per Normalizer


class NormalizationError(IdgraphError):
    """A value was rejected; ``code`` is one of :data:`REASON_CODES`."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code: ReasonCode = code
        self.message = message


@dataclass(frozen=True)
class NormalizerConfig:
    """How identifiers are normalized.

    ``blocked`` values and ``blocked_patterns`` (matched with ``re.fullmatch``) are compared
    with the normalized value, so write them normalized: emails lowercased, phones in E.164.
    """

    default_region: str = "FR"
    hash_pii: bool = False
    max_length: int = 256
    types: tuple[str, ...] = DEFAULT_TYPES
    blocked: Mapping[str, frozenset[str]] = field(default_factory=lambda: DEFAULT_BLOCKED)
    blocked_patterns: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    extra_nullish: frozenset[str] = frozenset()
    phone_check: Literal["valid", "possible"] = "valid"


def sha256_hex(value: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``value`` (Customer Match's format)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _show(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


class Normalizer:
    """Normalizes identifier values by type; build one per configuration and reuse it."""

    hash_value = staticmethod(sha256_hex)

    def __init__(self, config: NormalizerConfig | None = None) -> None:
        self.config = config = config or NormalizerConfig()
        if config.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"default_region: {config.default_region!r} is not a region phonenumbers "
                "knows; use an ISO 3166-1 alpha-2 code such as 'FR' or 'US'"
            )
        if config.max_length < 1:
            raise ConfigError(f"max_length: must be at least 1, got {config.max_length}")
        for setting, keys in [
            ("blocked", config.blocked.keys()),
            ("blocked_patterns", config.blocked_patterns.keys()),
        ]:
            unknown = sorted(set(keys) - set(config.types))
            if unknown:
                raise ConfigError(f"{setting}: unknown identifier types {unknown}")
        self._types = frozenset(config.types)
        self._nullish = DEFAULT_NULLISH | {v.strip().casefold() for v in config.extra_nullish}
        self._blocked = {t: frozenset(values) for t, values in config.blocked.items()}
        self._patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
        for type_, patterns in config.blocked_patterns.items():
            try:
                self._patterns[type_] = tuple(re.compile(p) for p in patterns)
            except re.error as e:
                raise ConfigError(f"blocked_patterns[{type_!r}]: invalid regex: {e}") from e
        self._blocked_hashes: dict[str, frozenset[str]] = {}
        self.blocked_types = frozenset(t for t, v in self._blocked.items() if v) | frozenset(
            t for t, v in self._patterns.items() if v
        )
        self._memo = functools.lru_cache(maxsize=CACHE_SIZE)(self._outcome)

    def normalize(self, type_: str, raw: object) -> Identifier:
        """Return the canonical :class:`Identifier` for ``raw``, or raise NormalizationError.

        Results (and failures) for string values are memoized in a bounded LRU cache: the same
        cookie or user id comes back on most events, and validating emails and phones is the
        costliest step of a load.
        """
        result = self._memo(type_, raw) if isinstance(raw, str) else self._outcome(type_, raw)
        if isinstance(result, NormalizationError):
            raise NormalizationError(result.code, result.message)
        return result

    def _outcome(self, type_: str, raw: object) -> Identifier | NormalizationError:
        try:
            return self._normalize(type_, raw)
        except NormalizationError as e:
            return e

    def _normalize(self, type_: str, raw: object) -> Identifier:
        if type_ not in self._types:
            known = ", ".join(self.config.types)
            raise NormalizationError("unknown_type", f"unknown identifier type {type_!r} ({known})")
        value = self._clean(type_, raw)
        if type_ == "email":
            value = self._email(value)
        elif type_ == "phone":
            value = self._phone(value)
        elif type_ == "maid":
            value = value.lower()
        if type_ in _ZERO_CHECKED_TYPES and _ALL_ZERO.fullmatch(value):
            raise NormalizationError("all_zero_id", f"{_show(value)} is an all-zero {type_}")
        self._check_blocked(type_, value)
        hashed = self.config.hash_pii and type_ in _PII_TYPES
        return Identifier(type_, sha256_hex(value) if hashed else value, hashed)

    def _clean(self, type_: str, raw: object) -> str:
        """Checks shared by every type: a trimmed, non-null string of sane length."""
        if raw is None:
            raise NormalizationError("nullish", f"{type_} is missing (None)")
        if isinstance(raw, int) and not isinstance(raw, bool) and type_ in _INT_TYPES:
            try:
                raw = str(raw)
            except ValueError as e:  # more digits than int->str conversion allows
                raise NormalizationError("too_long", f"{type_} integer is too long") from e
        if not isinstance(raw, str):
            accepted = "a string or an integer" if type_ in _INT_TYPES else "a string"
            raise NormalizationError(
                "not_a_string", f"{type_} must be {accepted}, got {type(raw).__name__}"
            )
        value = _EDGES.sub("", raw)
        if value.casefold() in self._nullish:
            raise NormalizationError(
                "nullish", f"{_show(value)} is a null placeholder, not a {type_}"
            )
        if len(value) > self.config.max_length:
            raise NormalizationError(
                "too_long",
                f"{type_} of {len(value)} characters is longer than max_length "
                f"({self.config.max_length})",
            )
        printable = value.isprintable()  # fast path: no Cc, Cf or Cs character in it
        bad = (
            None
            if printable
            else next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
        )
        if bad is not None:
            raise NormalizationError(
                "invalid_value",
                f"{_show(value)} contains the control or format character U+{ord(bad):04X}",
            )
        return value

    def _email(self, value: str) -> str:
        try:
            result = validate_email(value.lower(), check_deliverability=False)
        except EmailNotValidError as e:
            raise NormalizationError(
                "invalid_email", f"{_show(value)} is not a valid email: {e}"
            ) from e
        return result.normalized.lower()

    def _phone(self, value: str) -> str:
        international = "+" + value[2:] if value.startswith("00") else value
        try:
            number = phonenumbers.parse(international, self.config.default_region)
        except phonenumbers.NumberParseException as e:
            raise NormalizationError(
                "invalid_phone", f"{_show(value)} is not a valid phone number: {e}"
            ) from e
        if not phonenumbers.is_possible_number(number):
            raise NormalizationError(
                "invalid_phone",
                f"{_show(value)} is not a valid phone number: not a possible length "
                f"(read with default region {self.config.default_region})",
            )
        if self.config.phone_check == "valid" and not phonenumbers.is_valid_number(number):
            raise NormalizationError(
                "invalid_phone",
                f"{_show(value)} is not a valid phone number: not in an allocated range "
                f"(read with default region {self.config.default_region}; the policy's "
                '[types.phone] check = "possible" keeps such numbers)',
            )
        national = phonenumbers.national_significant_number(number)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if len(set(national)) == 1:
            raise NormalizationError(
                "blocked_value", f"{e164} is a placeholder phone (one repeated digit)"
            )
        return e164

    def blocked_reason(self, type_: str, value: str, *, hashed: bool = False) -> str | None:
        """Why a stored identifier value is blocked now, or None.

        Used when a changed policy is applied to identifiers already in the graph. A hashed
        value is compared with the hashes of the exact blocked values; patterns cannot match
        a hash.
        """
        if hashed:
            hashes = self._blocked_hashes.get(type_)
            if hashes is None:
                hashes = frozenset(map(sha256_hex, self._blocked.get(type_, ())))
                self._blocked_hashes[type_] = hashes
            return f"a blocked {type_} (hashed)" if value in hashes else None
        try:
            self._check_blocked(type_, value)
        except NormalizationError as e:
            return e.message
        return None

    def _check_blocked(self, type_: str, value: str) -> None:
        if value in self._blocked.get(type_, ()):
            raise NormalizationError("blocked_value", f"{_show(value)} is a blocked {type_}")
        for pattern in self._patterns.get(type_, ()):
            if pattern.fullmatch(value):
                raise NormalizationError(
                    "blocked_value",
                    f"{_show(value)} is a blocked {type_} (matches {pattern.pattern!r})",
                )


def make_normalizer(settings: Settings, policy: Policy) -> Normalizer:
    """The normalizer that loads, lookups and steward actions share, configured from the
    settings (region, hashing) and the policy (types, blocked values, the phone check)."""
    blocked = {
        t: frozenset(DEFAULT_BLOCKED.get(t, frozenset())) | policy.blocked.get(t, frozenset())
        for t in set(DEFAULT_BLOCKED) | set(policy.blocked)
    }
    return Normalizer(
        NormalizerConfig(
            default_region=settings.default_region,
            hash_pii=settings.hash_pii,
            types=policy.types,
            blocked=blocked,
            blocked_patterns=dict(policy.blocked_patterns),
            phone_check=policy.phone_check,
        )
    )


def parse_key(normalizer: Normalizer, given: str) -> str:
    """The stored key of ``TYPE:VALUE`` as a user typed it (``email: Ann@X.com`` gives
    ``email:ann@x.com``), normalized exactly as loaders do; :class:`InputError` otherwise."""
    type_, sep, value = given.partition(":")
    if not sep or not value:
        raise InputError(f"identifier {given!r}: expected TYPE:VALUE, e.g. email:ann@example.com")
    try:
        return normalizer.normalize(type_.strip(), value).key
    except NormalizationError as e:
        raise InputError(f"identifier {given!r}: {e}") from e
