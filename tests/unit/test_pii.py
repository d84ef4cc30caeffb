"""Redaction of personal data and secrets into typed placeholders, with counts per type."""

from collections import Counter

import pytest

from llmexp.errors import ConfigError
from llmexp.prepare.pii import PIIConfig, luhn_valid

FOUND = [
    ("Write to jane.doe+news@mail.example.co.uk today", "Write to <EMAIL> today", "email"),
    ("Call +1 (415) 555-0132 now", "Call <PHONE> now", "phone"),
    ("Call 415-555-0132 now", "Call <PHONE> now", "phone"),
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
    # Prefixed key names (the key word is the end of a longer name).
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY=<SECRET>", "secret"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = <SECRET>", "secret"),
    ("export DB_PASSWORD=s3cr3t-P4ss!", "export DB_PASSWORD=<SECRET>", "secret"),
    ("MY_API_KEY=0123456789abcdef0123 ok", "MY_API_KEY=<SECRET> ok", "secret"),
    ('client_secret="correcthorsebattery"', 'client_secret="<SECRET>"', "secret"),
    ('{"dbPassword": "Tr0ub4dor&3"}', '{"dbPassword": "<SECRET>"}', "secret"),
    # Phone formats of other countries and an undivided US number.
    ("Paris: +33 1 42 68 53 00.", "Paris: <PHONE>.", "phone"),
    ("mobile +91 98765 43210 today", "mobile <PHONE> today", "phone"),
    ("Tokyo +81-3-1234-5678", "Tokyo <PHONE>", "phone"),
    ("Berlin +49 (0)30 901820 ext", "Berlin <PHONE> ext", "phone"),
    ("text 4155550199 now", "text <PHONE> now", "phone"),
    ("IBAN GB82 WEST 1234 5698 7654 32 (UK)", "IBAN <IBAN> (UK)", "iban"),
    ("pay to DE89370400440532013000.", "pay to <IBAN>.", "iban"),
    ("SSN 078-05-1120 on file", "SSN <SSN> on file", "ssn"),
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
    "the password: Enter it twice; token: Environment",  # plain words after a key name are prose
    "tokenizer = BertTokenizerFast",
    "we met in 2020 2021 2022 and again",
    "serial 1234 5678 9012 and 123456789012, part 98765432101",
    "running version 1.2.3.4 since release 10.0.0.1",
    "IBAN-like GB82 WEST 1234 5698 7654 33 fails mod 97",
    "SSN-like 000-12-3456 and 666-12-3456 were never issued",
    "Call 555-123-4567 (a fictional number)",
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
        PIIConfig(types=["passport"])
    with pytest.raises(ConfigError, match=r"pii\.phone_region"):
        PIIConfig(phone_region="XX")


def test_national_phone_formats_follow_the_region():
    text = "ring 01 42 68 53 00 today"
    assert PIIConfig().redact(text, Counter()) == text
    assert PIIConfig(phone_region="FR").redact(text, Counter()) == "ring <PHONE> today"


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
