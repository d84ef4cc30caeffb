"""A prepared dataset's manifest as a page a person reads (DATACARD.md)."""

from __future__ import annotations

from typing import Any


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    return lines


def _counts(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"**{title}**: none", ""]
    return [f"**{title}**", "", *_table(("reason", "count"), sorted(counts.items())), ""]


def render(manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    dedup = counts["dedup"]
    lines = [
        f"# Data card: {manifest['name']}",
        "",
        f"Prepared by llmexp {manifest['llmexp_version']} on {manifest['created']} in {manifest['run']['seconds']} s. "
        f"Tokenizer: {manifest['tokenizer']['kind']}, {manifest['vocab_size']:,} tokens "
        f"(sha256 {manifest['tokenizer']['sha256'][:12]}…); shards hold {manifest['dtype']} token ids, every document "
        f"followed by EOS (id {manifest['eos_id']}).",
        "",
        "## Sources",
        "",
        *_table(
            ("source", "kind", "weight", "units", "input bytes", "documents kept"),
            [
                (s["label"], s["kind"], s["weight"], s["units"], s["input_bytes"], s["documents_kept"])
                for s in manifest["sources"]
            ],
        ),
        "",
        "## From raw documents to shards",
        "",
        *_table(
            ("step", "documents"),
            [
                ("read", counts["documents_read"]),
                ("after cleaning and filtering", counts["documents_out"]),
                ("exact duplicates removed", dedup["exact"]),
                ("near duplicates removed", dedup["near"]),
                ("kept", dedup["kept"]),
            ],
        ),
        "",
        *_counts("Inputs skipped", counts["skipped"]),
        *_counts("Documents filtered (first failed rule)", counts["filtered"]),
        *_counts("Lines removed", counts["lines_removed"]),
        *_counts("Personal data redacted", counts["pii"]),
        "## Splits",
        "",
        *_table(
            ("split", "documents", "unique documents", "tokens", "shards"),
            [
                (name, s["documents"], s["unique_documents"], s["tokens"], len(s["shards"]))
                for name, s in manifest["splits"].items()
            ],
        ),
        "",
        "Train with: `llmexp-train data=shards data.path=<this folder>`",
        "",
    ]
    return "\n".join(lines)
