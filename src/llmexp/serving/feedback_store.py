"""The feedback store: every answered completion (so feedback can name it by id) and every piece of feedback, in one
SQLite file.

WAL journal. Feedback is committed with `synchronous=FULL`: the commit returns only after the log is fsync'd, so
feedback the server has acknowledged survives a killed server and a power cut. Completions are committed with
`NORMAL` (no fsync of their own: ~8 ms per commit on this machine's disk would cap a server at ~125 answers/s); they
survive a killed server, and a power cut can only lose answers that nobody has given feedback on yet (the next
feedback's fsync covers the log before it). One connection, used from worker threads under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    id TEXT PRIMARY KEY, created REAL NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL,
    answers TEXT NOT NULL, sampling TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, completion_id TEXT NOT NULL, choice INTEGER NOT NULL,
    rating INTEGER, other_id TEXT, other_choice INTEGER, preferred TEXT, text TEXT
);
"""


@dataclass(frozen=True)
class Answer:
    """One choice of a completion: the prompt it answered (chat messages, or a /v1/completions prompt) and its text."""

    prompt: list[dict] | str
    text: str


@dataclass(frozen=True)
class Completion:
    id: str
    model: str
    kind: str  # "chat" or "text"
    answers: list[Answer]
    sampling: dict


@dataclass(frozen=True)
class Feedback:
    """A rating (1-5) of one answer, or a preference between two answers (`preferred`: completion, other or tie)."""

    completion_id: str
    choice: int = 0
    rating: int | None = None
    other_id: str | None = None
    other_choice: int = 0
    preferred: str | None = None
    text: str | None = None
    seq: int = 0  # the order of arrival, set by the store


class FeedbackStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)

    def add_completion(self, completion: Completion) -> None:
        answers = json.dumps([{"prompt": a.prompt, "text": a.text} for a in completion.answers])
        row = (completion.id, time.time(), completion.model, completion.kind, answers, json.dumps(completion.sampling))
        with self._lock:
            self._db.execute("INSERT INTO completions VALUES (?, ?, ?, ?, ?, ?)", row)

    def completion(self, ident: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, model, kind, answers, sampling FROM completions WHERE id = ?", (ident,)
            ).fetchone()
        if row is None:
            return None
        answers = [Answer(a["prompt"], a["text"]) for a in json.loads(row[3])]
        return Completion(row[0], row[1], row[2], answers, json.loads(row[4]))

    def add_feedback(self, feedback: Feedback) -> int:
        """Append one piece of feedback; its sequence number once it is on disk."""
        row = (time.time(), feedback.completion_id, feedback.choice, feedback.rating, feedback.other_id,
               feedback.other_choice, feedback.preferred, feedback.text)  # fmt: skip
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            try:
                cursor = self._db.execute(
                    "INSERT INTO feedback (created, completion_id, choice, rating, other_id, other_choice, preferred, "
                    "text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")
        return int(cursor.lastrowid)

    def feedback(self) -> list[Feedback]:
        """All feedback in the order it arrived."""
        with self._lock:
            rows = self._db.execute(
                "SELECT completion_id, choice, rating, other_id, other_choice, preferred, text, seq FROM feedback "
                "ORDER BY seq"
            ).fetchall()
        return [Feedback(*row) for row in rows]

    def preferences(self) -> list[tuple[Feedback, tuple[str, str]]]:
        """Each preference in the order it arrived, with the models that gave the two answers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.completion_id, f.choice, f.rating, f.other_id, f.other_choice, f.preferred, f.text, f.seq, "
                "a.model, b.model FROM feedback f JOIN completions a ON a.id = f.completion_id "
                "JOIN completions b ON b.id = f.other_id WHERE f.other_id IS NOT NULL ORDER BY f.seq"
            ).fetchall()
        return [(Feedback(*row[:8]), (row[8], row[9])) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def latest(feedback: list[Feedback]) -> list[Feedback]:
    """The last word on each answer (ratings) and on each pair of answers (preferences, either order): a person who
    changes their mind replaces their earlier feedback rather than counting twice."""
    kept: dict[tuple, Feedback] = {}
    for item in feedback:
        if item.rating is not None:
            key: tuple = ("rating", item.completion_id, item.choice)
        else:
            key = ("pair", *sorted([(item.completion_id, item.choice), (item.other_id, item.other_choice)]))
        kept[key] = item
    return sorted(kept.values(), key=lambda item: item.seq)
