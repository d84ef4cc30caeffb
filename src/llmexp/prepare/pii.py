"""Replace personal data and secrets with typed placeholders (`<EMAIL>`, `<PHONE>`, ...), counting each type.

Patterns run in a fixed order so that one span is claimed once: secrets (key blocks, known token formats, `key =
value` assignments) -> e-mail -> credit cards (13-19 digits, Luhn-checked) -> IPv6 and IPv4 (validated by the
`ipaddress` module) -> phone numbers. Regexes over-match by design only where a second check (Luhn, `ipaddress`,
digit counts) can reject the candidate.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from llmexp.errors import ConfigError

PII_TYPES = ("secret", "email", "credit_card", "ip_address", "phone")

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
_ASSIGNMENT_RE = re.compile(
    r"(?i)\b((?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?(?:key|token)|auth[_-]?token|password|passwd|token)"
    r"[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9_\-/+=.]{12,})"
)
_EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
# Not part of a longer run of digit groups (a card number that failed Luhn, an ISBN) on either side.
_PHONE_RE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}"
    r"(?!\w|[ .-]\d)"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


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
    try:
        ipaddress.IPv4Address(match.group())
    except ValueError:
        return False
    return True


def _is_phone(match: re.Match) -> bool:
    return 9 <= sum(ch.isdigit() for ch in match.group()) <= 15


@dataclass
class PIIConfig:
    """Which types to redact and how placeholders look (`{type}` is replaced by the upper-case type name)."""

    types: list[str] = field(default_factory=lambda: list(PII_TYPES))
    placeholder: str = "<{type}>"

    def __post_init__(self) -> None:
        self.types = list(self.types)
        unknown = [t for t in self.types if t not in PII_TYPES]
        if unknown:
            raise ConfigError(f"pii.types: {unknown} not among {list(PII_TYPES)}")

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

    def redact(self, text: str, counts: Counter) -> str:
        """The text with every enabled type replaced; `counts[type]` grows by the number of replacements."""
        if "secret" in self.types:
            text = self._sub("secret", _PRIVATE_KEY_RE, text, counts, None)
            text = self._sub("secret", _TOKEN_RE, text, counts, None)
            mark = self._mark("secret")

            def assignment(match: re.Match) -> str:
                if match.group(2) == mark:
                    return match.group()
                counts["secret"] += 1
                return match.group(1) + mark

            text = _ASSIGNMENT_RE.sub(assignment, text)
        if "email" in self.types and "@" in text:
            text = self._sub("email", _EMAIL_RE, text, counts, None)
        if "credit_card" in self.types:
            text = self._sub("credit_card", _CARD_RE, text, counts, _is_card)
        if "ip_address" in self.types:
            if ":" in text:
                text = self._sub("ip_address", _IPV6_RE, text, counts, _is_ipv6)
            text = self._sub("ip_address", _IPV4_RE, text, counts, _is_ipv4)
        if "phone" in self.types:
            text = self._sub("phone", _PHONE_RE, text, counts, _is_phone)
        return text
