"""The offline data pipeline behind `llmexp-prepare`: read, clean, redact, deduplicate, train a tokenizer, write
token shards with a manifest and a data card. Training-time data (DataModules, samplers, collators) is `llmexp.data`."""
