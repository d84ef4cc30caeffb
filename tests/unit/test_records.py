"""Labelled and instruction rows from local files: every supported format, and clear errors."""

from __future__ import annotations

import json

import pytest

from llmexp.data.classification import ClassificationDataModule
from llmexp.data.records import column, read_records
from llmexp.errors import DataError
from llmexp.tokenizer import TokenizerSpec

ROWS = [{"text": 'he said "fine"', "label": "pos"}, {"text": "bad, really", "label": "neg"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".tsv", ".parquet"])
def test_every_format_reads_the_same_rows(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS))
    elif suffix == ".csv":
        path.write_text('text,label\n"he said ""fine""",pos\n"bad, really",neg\n')
    elif suffix == ".tsv":  # GLUE style: quotes are part of the text
        path.write_text('text\tlabel\nhe said "fine"\tpos\nbad, really\tneg\n')
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert read_records(str(path)) == ROWS


def test_a_missing_file_and_a_missing_field_are_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_records(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="'sentence': row 0 has no such field"):
        column(ROWS, "sentence", "data.text_field")


def test_labels_are_sorted_names_and_the_majority_baseline_counts_val_rows(tmp_path):
    train = [{"text": f"t{i}", "label": "b" if i % 3 else "a"} for i in range(30)]
    val = [{"text": "v", "label": label} for label in ("a", "b", "b", "b")]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    data = ClassificationDataModule(str(tmp_path / "train.jsonl"), str(tmp_path / "val.jsonl"), batch_size=4)
    data.prepare(TokenizerSpec(vocab_size=300))
    assert data.label_names == ["a", "b"]
    assert data.majority_accuracy("val") == 0.75  # "b" is the most frequent training label
    batch = next(iter(data.train_dataloader()))
    assert batch["input_ids"].shape[0] == 4 and batch["lengths"].max() == batch["input_ids"].shape[1]
