"""What keeping answers and feedback costs the server: one commit to the feedback store (SQLite, WAL) of a completion
(synchronous=NORMAL, no fsync) and of a piece of feedback (synchronous=FULL, fsync'd before the reply), alternated.

    PYTHONPATH=src .venv/bin/python benchmarks/feedback_store.py [--rounds 300] [--dir /tmp]

`--dir` is where the store is written: the disk a server's serve.feedback_path would be on.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from llmexp.serving.feedback_store import Answer, Completion, Feedback, FeedbackStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    prompt = [{"role": "user", "content": "Give three tips for staying healthy. " * 4}]
    times: dict[str, list[float]] = {"completion (NORMAL)": [], "feedback (FULL, fsync)": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        store = FeedbackStore(Path(folder) / "feedback.db")
        for index in range(args.rounds):
            answers = [Answer(prompt, "An answer of about four hundred characters. " * 9)] * 2
            started = time.perf_counter()
            store.add_completion(Completion(f"chatcmpl-{index}", "model", "chat", answers, {"n": 2}))
            middle = time.perf_counter()
            store.add_feedback(Feedback(f"chatcmpl-{index}", rating=5, text="clear"))
            times["completion (NORMAL)"].append(middle - started)
            times["feedback (FULL, fsync)"].append(time.perf_counter() - middle)
        store.close()
    for name, values in times.items():
        median, p90 = statistics.median(values), sorted(values)[len(values) * 9 // 10]
        print(f"{name:24s} median {median * 1e3:6.2f} ms  p90 {p90 * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
