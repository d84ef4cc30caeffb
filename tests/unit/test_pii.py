"""Redaction of personal data and secrets into typed placeholders, with counts per type."""

from collections import Counter

import pytest

from llmexp.errors import ConfigError
from llmexp.prepare.pii import PIIConfig, luhn_valid

FOUND = [
    ("Write to jane.doe+news@mail.example.co.uk today", "Write to <EMAIL> today", "email"),
    ("Call +1 (555) 123-4567 now", "Call <PHONE> now", "phone"),
    ("Call 555-123-4567 now", "Call <PHONE> now", "phone"),
    ("London office: +44 20 7946 0958.", "London office: <PHONE>.", "phone"),
    ("server at 192.168.1.20 is down", "server at <IP_ADDRESS> is down", "ip_address"),
    ("v6 host 2001:db8:85a3::8a2e:370:7334 up", "v6 host <IP_ADDRESS> up", "ip_address"),
    ("loopback ::1 and fe80::1ff:fe23:4567:890a", "loopback ::1 and <IP_ADDRESS>", "ip_address"),
    ("card 4111 1111 1111 1111 exp 12/29", "card <CREDIT_CARD> exp 12/29", "credit_card"),
    ("card 5500-0000-0000-0004.", "card <CREDIT_CARD>.", "credit_card"),
    ("aws AKIAIOSFODNN7EXAMPLE key", "aws <SECRET> key", "secret"),
    ("token ghp_" + "a1B2" * 9 + " here", "token <SECRET> here", "secret"),
    ('api_key = "sk_live_abcdefghijklmnop1234"', 'api_key = "<SECRET>"', "secret"),
    ("PASSWORD: hunter2hunter2hunter2", "PASSWORD: <SECRET>", "secret"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "<SECRET>",
        "secret",
    ),
]

KEPT = [
    "card-like 4111 1111 1111 1112 fails Luhn",
    "version 1.2.3 and 999.1.1.1 and 10.0.0.256 are not addresses",
    "at 12:30:45 we met; std::vector<int> is code",
    "in 1999 and 2024 there were 365 days",
    "ISBN 978-3-16-148410-0",
    "password: short",
]


@pytest.mark.parametrize(("text", "expected", "kind"), FOUND, ids=[f[2] + str(i) for i, f in enumerate(FOUND)])
def test_each_type_is_replaced_and_counted(text, expected, kind):
    counts = Counter()
    assert PIIConfig().redact(text, counts) == expected
    assert counts == Counter({kind: 1})


@pytest.mark.parametrize("text", KEPT)
def test_lookalikes_are_left_alone(text):
    counts = Counter()
    assert PIIConfig().redact(text, counts) == text
    assert not counts


def test_types_and_placeholders_are_configurable():
    text = "mail a@b.io from 10.0.0.1"
    counts = Counter()
    assert PIIConfig(types=["email"], placeholder="[{type}]").redact(text, counts) == "mail [EMAIL] from 10.0.0.1"
    assert counts == Counter(email=1)
    with pytest.raises(ConfigError, match=r"pii\.types"):
        PIIConfig(types=["ssn"])


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
