"""Read a W&B offline run (`<run>/wandb/offline-run-*/run-*.wandb`) without uploading it.

wandb 0.2x+ moved its record reader into the Go core, so the log is read here: a LevelDB-style log (32 KiB blocks,
records with a 7-byte header and FULL/FIRST/MIDDLE/LAST fragments) whose payloads are wandb's protobuf `Record`s.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

_FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_records(path: str | Path) -> Iterator[pb.Record]:
    data = Path(path).read_bytes()
    if not data.startswith(_FILE_HEADER):
        raise ValueError(f"{path} is not a W&B run log")
    pos, pending = len(_FILE_HEADER), b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # block trailer too small for a header: zero padding
            pos += _BLOCK - pos % _BLOCK
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            pending = payload
        elif kind == _FIRST:
            pending = payload
            continue
        elif kind == _MIDDLE:
            pending += payload
            continue
        elif kind == _LAST:
            pending += payload
        else:  # zero padding at the end of a partly written block
            break
        record = pb.Record()
        record.ParseFromString(pending)
        yield record


@dataclass
class OfflineRun:
    run_id: str = ""
    project: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Config, metric history and summary of one offline run folder."""
    logs = sorted(Path(run_dir).glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    run = OfflineRun()
    for record in iter_records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.group = record.run.run_id, record.run.display_name, record.run.run_group
            run.project, run.tags = record.run.project, list(record.run.tags)
            for item in record.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
    for row in run.history:
        run.summary.update({k: v for k, v in row.items() if not k.startswith("_")})
    return run
