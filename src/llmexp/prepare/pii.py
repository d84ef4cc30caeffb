"""Replace personal data and secrets with typed placeholders (`<EMAIL>`, `<PHONE>`, ...), counting each type.

Detectors run in a fixed order so that one span is claimed once: secrets -> e-mail -> card numbers -> IBAN -> US SSN ->
IP addresses -> phone numbers. A regex finds candidates and a second check accepts them where one exists (Luhn,
ISO 13616 mod 97, `ipaddress`, Google's libphonenumber through `phonenumbers`). `DETECTORS` says what each one
catches and misses; the data card repeats it. detect-secrets was measured as the secret detector and not taken: on
free text its keyword plugin found 1 of the 5 prefixed-key cases this module catches, at ~10 s per MB.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers

from llmexp.errors import ConfigError

PII_TYPES = ("secret", "email", "credit_card", "iban", "ssn", "ip_address", "phone")
DETECTORS = {
    "secret": "private key blocks; AWS, GitHub, Slack, Google, OpenAI/Anthropic, Stripe tokens and JWTs by format; "
    "values assigned to a key whose name ends in api_key, secret, secret_access_key, access_key, access/auth/refresh "
    "token, client_secret, private_key, password, passwd, pwd, passphrase, token or credentials (any prefix: "
    "AWS_SECRET_ACCESS_KEY=, DB_PASSWORD=, MY_API_KEY=, client_secret=) when the value has 8+ characters and is "
    "quoted or holds a digit, a symbol or mixed case. Misses: unlabelled high-entropy strings, plain-word passwords "
    "written without quotes",
    "email": "RFC-5322-like addresses with a dotted domain. Misses: obfuscated forms (name at example dot com)",
    "credit_card": "13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check",
    "iban": "2 letters, 2 check digits and 11-30 letters/digits (grouped by 4 or not) that pass the ISO 13616 mod-97 "
    "check",
    "ssn": "US social security numbers written 123-45-6789 outside the never-issued ranges. Misses: undashed SSNs "
    "(indistinguishable from other 9-digit numbers)",
    "ip_address": "IPv4 and IPv6 addresses that `ipaddress` accepts, except dotted numbers after 'version', 'v', "
    "'release' or 'build' (1.2.3.4 as a version). Misses: addresses inside longer dotted runs",
    "phone": "numbers that libphonenumber finds valid: international (+33 1 42 68 53 00, +49 (0)30 901820) or national "
    "in pii.phone_region (4155550199 for US). Left alone: runs of years, serials, ISBNs, fictional 555 numbers. "
    "Misses: numbers glued to another number without punctuation",
}

_PRIVATE_KEY_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
# Known token formats, one alternation so the text is scanned once.
_TOKEN_RE = re.compile(
    "|".join(
        [
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
            r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
            r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
            r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
            r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}\b",  # OpenAI / Anthropic style
            r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
            r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",  # JWT
        ]
    )
)
_KEY_NAME = (
    r"(?:api[_-]?key|secret(?:[_-]?access)?(?:[_-]?key)?|access[_-]?(?:key|token)|(?:auth|refresh)[_-]?token"
    r"|client[_-]?secret|private[_-]?key|password|passwd|pwd|passphrase|token|credentials?)"
)
# A key name that ends in one of the words above, after any prefix (AWS_SECRET_ACCESS_KEY, db.password, myApiKey).
_ASSIGNMENT_RE = re.compile(rf"(?i)(?<![\w.-])([\w.-]*?{_KEY_NAME}([\"']?)\s*[:=]\s*)([\"']?)([^\s\"'`<>,;]{{8,}})")
_EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN_RE = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_VERSION_BEFORE_RE = re.compile(r"(?i)\b(?:v|ver|version|release|build|rev)\.?\s*$")
# Candidates for libphonenumber: digits with phone punctuation, 7+ characters, not inside a word.
_PHONE_CANDIDATE_RE = re.compile(r"(?<![\w+])\+?\(?\d[\d \t().-]{5,}\d(?!\w)")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, letters as 10..35, mod 97 gives 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    return int("".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])) % 97 == 1


def _is_card(match: re.Match) -> bool:
    digits = re.sub(r"\D", "", match.group())
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_ipv6(match: re.Match) -> bool:
    text = match.group()
    if sum(1 for part in text.split(":") if part) < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_ipv4(match: re.Match) -> bool:
    if _VERSION_BEFORE_RE.search(match.string, max(0, match.start() - 12), match.start()):
        return False
    try:
        ipaddress.IPv4Address(match.group())
    except ValueError:
        return False
    return True


def _looks_secret(quote: str, value: str) -> bool:
    """A quoted value, or one with a digit, a symbol or an upper-case letter after the first (not a plain word)."""
    return bool(quote) or not value.isalpha() or any(ch.isupper() for ch in value[1:])


@dataclass
class PIIConfig:
    """Which types to redact, how placeholders look (`{type}` is replaced by the upper-case type name), and the
    region whose national phone formats count (numbers with a + prefix are found in every region)."""

    types: list[str] = field(default_factory=lambda: list(PII_TYPES))
    placeholder: str = "<{type}>"
    phone_region: str = "US"

    def __post_init__(self) -> None:
        self.types = list(self.types)
        unknown = [t for t in self.types if t not in PII_TYPES]
        if unknown:
            raise ConfigError(f"pii.types: {unknown} not among {list(PII_TYPES)}")
        if self.phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"pii.phone_region={self.phone_region!r} is not a region code such as US, GB, FR, DE")

    def _mark(self, kind: str) -> str:
        return self.placeholder.replace("{type}", kind.upper())

    def _sub(
        self, kind: str, pattern: re.Pattern, text: str, counts: Counter, accept: Callable[[re.Match], bool] | None
    ) -> str:
        mark = self._mark(kind)

        def replace(match: re.Match) -> str:
            if accept is not None and not accept(match):
                return match.group()
            counts[kind] += 1
            return mark

        return pattern.sub(replace, text)

    def _secrets(self, text: str, counts: Counter) -> str:
        text = self._sub("secret", _PRIVATE_KEY_RE, text, counts, None)
        text = self._sub("secret", _TOKEN_RE, text, counts, None)
        mark = self._mark("secret")

        def assignment(match: re.Match) -> str:
            key, _, quote, value = match.groups()
            if value.startswith(mark) or not _looks_secret(quote, value):
                return match.group()
            counts["secret"] += 1
            return key + quote + mark

        return _ASSIGNMENT_RE.sub(assignment, text)

    def _phones(self, text: str, counts: Counter) -> str:
        mark = self._mark("phone")

        def replace(candidate: re.Match) -> str:
            span = candidate.group()
            found = list(phonenumbers.PhoneNumberMatcher(span, self.phone_region, phonenumbers.Leniency.VALID))
            for number in reversed(found):
                span = span[: number.start] + mark + span[number.end :]
                counts["phone"] += 1
            return span

        return _PHONE_CANDIDATE_RE.sub(replace, text)

    def redact(self, text: str, counts: Counter) -> str:
        """The text with every enabled type replaced; `counts[type]` grows by the number of replacements."""
        if "secret" in self.types:
            text = self._secrets(text, counts)
        if "email" in self.types and "@" in text:
            text = self._sub("email", _EMAIL_RE, text, counts, None)
        if "credit_card" in self.types:
            text = self._sub("credit_card", _CARD_RE, text, counts, _is_card)
        if "iban" in self.types:
            text = self._sub("iban", _IBAN_RE, text, counts, lambda m: iban_valid(m.group()))
        if "ssn" in self.types:
            text = self._sub("ssn", _SSN_RE, text, counts, None)
        if "ip_address" in self.types:
            if ":" in text:
                text = self._sub("ip_address", _IPV6_RE, text, counts, _is_ipv6)
            text = self._sub("ip_address", _IPV4_RE, text, counts, _is_ipv4)
        if "phone" in self.types:
            text = self._phones(text, counts)
        return text
