"""A prepared dataset's manifest as a page a person reads (DATACARD.md)."""

from __future__ import annotations

from typing import Any

SHOWN_SKIPS = 50  # skipped inputs listed on the card (the manifest lists more)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    return lines


def _counts(title: str, counts: dict[str, int], examples: dict[str, list[str]] | None = None) -> list[str]:
    if not counts:
        return [f"**{title}**: none", ""]
    lines = [f"**{title}**", "", *_table(("reason", "count"), sorted(counts.items())), ""]
    for reason, quotes in sorted((examples or {}).items()):
        lines += [f"- `{reason}`, for example:", *[f"  - {_escape(q)}" for q in quotes]]
    return [*lines, ""] if examples else lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def _skipped(manifest: dict[str, Any]) -> list[str]:
    entries = manifest["skipped_inputs"]
    paged = isinstance(entries, dict)
    shown = (entries["first"] if paged else entries)[:SHOWN_SKIPS]
    if not shown:
        return ["**Inputs skipped, by file**: none", ""]
    total = entries["total"] if paged else len(entries)
    rows = [(e["input"], e["reason"], e["count"], _escape(e.get("example", ""))) for e in shown]
    more = f" ({total:,} in all: see manifest.json" + (f" and {entries['all_in']})" if paged else ")")
    return [
        f"**Inputs skipped, by file**{more if total > len(shown) else ''}",
        "",
        *_table(("input", "reason", "count", "first example"), rows),
        "",
    ]


def _fertility(manifest: dict[str, Any]) -> list[str]:
    rows = [
        (label, f["documents"], f["chars"], f["bytes"], f["tokens"], f["chars_per_token"], f["bytes_per_token"])
        for label, f in manifest["fertility"].items()
    ]
    return [
        "## Tokenizer fertility",
        "",
        "Kept documents, each counted once.",
        "",
        *_table(("source", "documents", "characters", "bytes", "tokens", "chars/token", "bytes/token"), rows),
        "",
    ]


def _decontamination(manifest: dict[str, Any]) -> list[str]:
    report = manifest["counts"]["decontamination"]
    if report is None:
        return ["## Benchmark decontamination", "", "Off (decontam=none).", ""]
    head = [f"## Benchmark decontamination ({report['ngram']}-grams)", ""]
    if not report["benchmarks"]:
        return [*head, f"No benchmark file found (benchmarks_dir: {report['benchmarks_dir']}).", ""]
    rows = [
        (name, len(b["files"]), b["rows"], b["ngrams"], b["documents_hit"], b["ngram_hits"])
        for name, b in report["benchmarks"].items()
    ]
    action = f"{report['dropped']:,} dropped" if report["drop"] else "reported, not dropped (decontam.drop=false)"
    lines = [
        *head,
        *_table(("benchmark", "files", "rows", "n-grams", "documents hit", "n-gram hits"), rows),
        "",
        f"Documents that share an n-gram with a benchmark: {action}.",
        "",
    ]
    for name, b in report["benchmarks"].items():
        lines += [f"- {name}: {_escape(q)}" for q in b["examples"]]
    return [*lines, ""]


def _redaction(manifest: dict[str, Any]) -> list[str]:
    detectors = [f"- `{kind}`: {text}" for kind, text in manifest["pii_detectors"].items()]
    return [
        "## Personal data and secrets",
        "",
        *_counts("Redacted", manifest["counts"]["pii"]),
        "What each detector catches, and its known misses:",
        "",
        *detectors,
        "",
    ]


def _steps(counts: dict[str, Any]) -> list[str]:
    dedup = counts["dedup"]
    rows = [
        ("read", counts["documents_read"]),
        ("after cleaning and filtering", counts["documents_out"]),
        ("exact duplicates removed", dedup["exact"]),
        ("near duplicates removed", dedup["near"]),
        ("kept", dedup["kept"]),
    ]
    return ["## From raw documents to shards", "", *_table(("step", "documents"), rows), ""]


def render(manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    dedup = counts["dedup"]
    examples = manifest["examples"]
    lines = [
        f"# Data card: {manifest['name']}",
        "",
        f"Prepared by llmexp {manifest['llmexp_version']} on {manifest['created']} in {manifest['run']['seconds']} s "
        f"({manifest['run']['executor']}, parallelism {manifest['run']['parallelism']}). "
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
        *_steps(counts),
        "## Why documents and inputs were dropped",
        "",
        *_skipped(manifest),
        *_counts("Inputs skipped, by reason", counts["skipped"]),
        *_counts("Documents filtered (first failed rule)", counts["filtered"], examples["filtered"]),
        *_counts(
            "Duplicates removed",
            {k: v for k, v in dedup.items() if k in ("exact", "near") and v},
            {k: v for k, v in examples["dedup"].items() if v and k != "contaminated"},
        ),
        *_counts("Lines removed", counts["lines_removed"]),
        *_decontamination(manifest),
        *_fertility(manifest),
        *_redaction(manifest),
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
