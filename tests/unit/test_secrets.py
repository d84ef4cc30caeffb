from llmexp.tracking.secrets import REDACTED, is_secret_key, redact, redact_text, secret_overrides


def test_secret_keys_are_recognised_and_token_counts_are_not():
    assert all(is_secret_key(k) for k in ("api_key", "WANDB_API_KEY", "hf_token", "secret", "password", "auth"))
    assert all(is_secret_key(k) for k in ("token", "access_token", "auth_token", "WANDB_TOKEN"))
    assert not any(is_secret_key(k) for k in ("max_new_tokens", "special_tokens", "tokenizer", "eos_token", "lr"))
    assert not any(is_secret_key(k) for k in ("pad_token_id", "bos_token_id", "max_tokens_limit", "tokens_per_sec"))


def test_redact_walks_nested_containers():
    data = {"a": 1, "logger": {"api_key": "sk-123", "project": "p"}, "list": [{"token": "t"}, 2], "password": None}
    assert redact(data) == {
        "a": 1,
        "logger": {"api_key": REDACTED, "project": "p"},
        "list": [{"token": REDACTED}, 2],
        "password": None,
    }


def test_secret_overrides_are_found_and_scrubbed_from_text():
    args = ["model=gpt_tiny", "+logger.wandb.api_key=sk-FAKE", "optimizer.lr=1e-3"]
    assert secret_overrides(args) == ["+logger.wandb.api_key=sk-FAKE"]
    assert redact_text("- +logger.wandb.api_key=sk-FAKE\nkey: sk-FAKE\n", args) == (
        f"- +logger.wandb.api_key={REDACTED}\nkey: {REDACTED}\n"
    )
