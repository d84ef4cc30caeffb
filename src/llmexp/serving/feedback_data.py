"""`llmexp-feedback`: what people said about served answers, as training data for the next model.

`dataset=sft`: answers rated at least `min_rating`, as chat rows `{messages: [..., {role: assistant, content}]}`
(data=sft). `dataset=preference`: `{messages, chosen, rejected}` rows (data=preference, task=dpo) from preferences
between two answers (ties carry no preference) and from two rated answers to one prompt, one rated at least
`min_rating` and the other below. A /v1/completions prompt becomes the user's message. Only the last word on each
answer or pair counts; identical rows are written once.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from itertools import product
from pathlib import Path

from omegaconf import DictConfig

from llmexp.errors import ConfigError, DataError
from llmexp.serving.feedback_store import Answer, Feedback, FeedbackStore, latest

DATASETS = ("sft", "preference")


def messages_of(prompt: list[dict] | str) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _answer(store: FeedbackStore, ident: str, choice: int) -> Answer:
    completion = store.completion(ident)
    if completion is None or choice >= len(completion.answers):  # the route checked both; a hand-edited store
        raise DataError(f"{store.path}: feedback names answer {choice} of {ident!r}, which the store does not hold")
    return completion.answers[choice]


def sft_rows(store: FeedbackStore, feedback: list[Feedback], min_rating: int) -> list[dict]:
    rows = []
    for item in feedback:
        if item.rating is not None and item.rating >= min_rating:
            answer = _answer(store, item.completion_id, item.choice)
            rows.append({"messages": [*messages_of(answer.prompt), {"role": "assistant", "content": answer.text}]})
    return rows


def preference_rows(store: FeedbackStore, feedback: list[Feedback], min_rating: int) -> list[dict]:
    pairs: list[tuple[Answer, Answer]] = []
    rated: dict[str, tuple[list[Answer], list[Answer]]] = defaultdict(lambda: ([], []))
    for item in feedback:
        first = _answer(store, item.completion_id, item.choice)
        if item.rating is not None:
            rated[json.dumps(first.prompt)][item.rating < min_rating].append(first)
        elif item.preferred != "tie":
            second = _answer(store, item.other_id, item.other_choice)
            pairs.append((first, second) if item.preferred == "completion" else (second, first))
    for good, bad in rated.values():
        pairs += product(good, bad)
    return [{"messages": messages_of(chosen.prompt), "chosen": chosen.text, "rejected": rejected.text}
            for chosen, rejected in pairs if chosen.text != rejected.text]  # fmt: skip


def feedback_rows(store: FeedbackStore, dataset: str, min_rating: int) -> list[dict]:
    """The rows of `dataset` made from the store's feedback, in the order the feedback arrived, without repeats."""
    make = {"sft": sft_rows, "preference": preference_rows}[dataset]
    rows = make(store, latest(store.feedback()), min_rating)
    return list({json.dumps(row, sort_keys=True): row for row in rows}.values())


def export_feedback(cfg: DictConfig) -> Path:
    """Write cfg.dataset rows from the store at cfg.store to cfg.out (jsonl, replaced whole); return its path."""
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"dataset={cfg.dataset!r}: choose one of {', '.join(DATASETS)}")
    if not 1 <= cfg.min_rating <= 5:
        raise ConfigError(f"min_rating={cfg.min_rating}: ratings are 1 to 5")
    if not Path(cfg.store).is_file():
        raise DataError(f"store={cfg.store}: no such file (llmexp-serve writes it at serve.feedback_path)")
    store = FeedbackStore(cfg.store)
    try:
        feedback = store.feedback()
        rows = feedback_rows(store, cfg.dataset, cfg.min_rating)
    finally:
        store.close()
    if not rows:
        raise DataError(
            f"store={cfg.store}: none of its {len(feedback)} pieces of feedback makes a {cfg.dataset} row "
            f"(sft: ratings >= min_rating={cfg.min_rating}; preference: a preferred answer, or a rating on each side "
            "of min_rating for one prompt)"
        )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(partial, out)
    print(f"llmexp-feedback: {len(rows)} {cfg.dataset} rows from {len(feedback)} pieces of feedback -> {out}")
    return out
