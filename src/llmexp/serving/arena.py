"""The side-by-side rating page (/arena): two contestants (checkpoints, or one checkpoint with two sampling settings)
answer the same prompt unnamed, a person picks the better answer (stored as feedback), and an Elo table ranks them.

Routes: GET /arena (the page), POST /v1/arena/battle {prompt} (two answers, in random order, each with the id that
POST /v1/feedback takes), GET /v1/arena/leaderboard.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmexp.errors import ConfigError
from llmexp.serving.app import ApiError, Server, read_json, validate
from llmexp.serving.feedback import CompletionHook, add_feedback, also_run, completion_recorder
from llmexp.serving.feedback_store import FeedbackStore, latest
from llmexp.serving.schemas import ChatCompletionRequest, describe

PAGE = Path(__file__).with_name("static") / "arena.html"
START_RATING, K_FACTOR = 1000.0, 32.0


@dataclass(frozen=True)
class ContestantEntry:
    """One item of serve.arena.contestants: ckpt_path null is the served checkpoint; name null is made from it and
    the sampling settings."""

    ckpt_path: str | None = None
    name: str | None = None
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int | None = None

    def label(self, model: str) -> str:
        extra = (f" top_p={self.top_p:g}" if self.top_p < 1 else "") + (f" top_k={self.top_k}" if self.top_k else "")
        return self.name or f"{model} t={self.temperature:g}{extra}"

    def request(self, prompt: str, max_tokens: int) -> ChatCompletionRequest:
        """`prompt` as a user message, sampled with this contestant's settings (checked as a request's are)."""
        sampling = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        messages = [{"role": "user", "content": prompt}]
        return ChatCompletionRequest.model_validate({"messages": messages, "max_tokens": max_tokens, **sampling})


@dataclass
class Contestant:
    name: str
    server: Server
    entry: ContestantEntry
    record: CompletionHook


def contestant_entries(arena: DictConfig) -> list[ContestantEntry]:
    entries = []
    for index, item in enumerate(OmegaConf.to_container(arena.contestants, resolve=True)):
        where = f"serve.arena.contestants[{index}]"
        try:
            entry = ContestantEntry(**item)
            entry.request("check", 1)
        except TypeError as err:
            raise ConfigError(f"{where}: {err} (keys: ckpt_path, name, temperature, top_p, top_k)") from None
        except ValidationError as err:
            raise ConfigError(f"{where}: {describe(err)[0]}") from None
        entries.append(entry)
    return entries


def contestants(
    arena: DictConfig, main: Server, main_path: str, load: Callable[[str], Server], store: FeedbackStore
) -> list[Contestant]:
    """The contestants of serve.arena, each checkpoint loaded once (the served one is not loaded again)."""
    entries = contestant_entries(arena)
    servers = {str(Path(main_path).resolve()): main}
    players = []
    for entry in entries:
        key = str(Path(entry.ckpt_path or main_path).resolve())
        if key not in servers:
            servers[key] = load(entry.ckpt_path)
        name = entry.label(servers[key].settings.model_name)
        players.append(Contestant(name, servers[key], entry, completion_recorder(store, name)))
    names = [p.name for p in players]
    if len(players) < 2 or len(set(names)) < len(names):
        raise ConfigError(f"serve.arena.contestants: give at least two, with different names (got {names})")
    return players


class BattleRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000)


async def answer(player: Contestant, prompt: str, max_tokens: int) -> dict:
    """`player`'s answer to `prompt` as a user message (kept in the store like any chat completion)."""
    server = player.server
    rendered = server.chat.render_prompt([{"role": "user", "content": prompt}])
    room = server.engine.room(len(server.tokenizer.encode(rendered) or [0]))
    body = player.entry.request(prompt, max(1, min(max_tokens, room)))
    choices = server.plan(body, [rendered], list(server.chat.stop))
    async for _ in server.pieces(choices, server.start(body, choices), time.perf_counter()):
        pass
    if choices[0].error:
        raise ApiError(500, f"generation failed: {choices[0].error}", kind="server_error")
    ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    await player.record(ident, body, choices)
    return {"completion_id": ident, "content": choices[0].text.text}


def _standing(name: str) -> dict:
    return {"model": name, "rating": START_RATING, "wins": 0, "losses": 0, "ties": 0}


def elo_table(games: list[tuple[str, str, float]], names: list[str]) -> list[dict]:
    """Elo ratings after `games` (first, second, the first's score: 1 won, 0.5 tie, 0 lost), in the order played."""
    table = {name: _standing(name) for name in names}
    outcomes = {1.0: ("wins", "losses"), 0.0: ("losses", "wins"), 0.5: ("ties", "ties")}
    for first, second, score in games:
        a, b = (table.setdefault(name, _standing(name)) for name in (first, second))
        expected = 1.0 / (1.0 + 10 ** ((b["rating"] - a["rating"]) / 400.0))
        change = K_FACTOR * (score - expected)
        a["rating"], b["rating"] = a["rating"] + change, b["rating"] - change
        a[outcomes[score][0]] += 1
        b[outcomes[score][1]] += 1
    rows = sorted(table.values(), key=lambda row: (-row["rating"], row["model"]))
    return [{**r, "rating": round(r["rating"], 1), "games": r["wins"] + r["losses"] + r["ties"]} for r in rows]


def games_of(store: FeedbackStore) -> list[tuple[str, str, float]]:
    """Each preference between answers of two different models (the last word on each pair)."""
    preferences = store.preferences()
    models = {item.seq: pair for item, pair in preferences}
    scores = {"completion": 1.0, "other": 0.0, "tie": 0.5}
    kept = latest([item for item, _ in preferences])
    return [(*models[i.seq], scores[i.preferred]) for i in kept if len(set(models[i.seq])) == 2]


def add_arena(app: FastAPI, main: Server, players: list[Contestant], store: FeedbackStore, max_tokens: int) -> None:
    """The rating page and its two routes; the contestants' own engines run while the app does."""
    others = list({id(p.server): p.server for p in players if p.server is not main}.values())

    @app.get("/arena", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text()

    @app.post("/v1/arena/battle")
    async def battle(request: Request) -> dict:
        request.state.started = time.perf_counter()
        body = validate(BattleRequest, await read_json(request, main.settings.max_body_bytes))
        pair = random.sample(players, 2)
        answers = await asyncio.gather(*(answer(player, body.prompt, max_tokens) for player in pair))
        main.metrics.observe_request(request.url.path, 200, time.perf_counter() - request.state.started)
        return {"object": "arena.battle", "prompt": body.prompt, "answers": list(answers)}

    @app.get("/v1/arena/leaderboard")
    async def leaderboard() -> dict:
        games = await asyncio.to_thread(games_of, store)
        return {"object": "list", "data": elo_table(games, [p.name for p in players])}

    def start() -> None:
        for other in others:
            other.engine.start()

    def stop() -> None:
        for other in others:
            other.engine.stop()

    also_run(app, start, stop)


def add_feedback_and_arena(app: FastAPI, server: Server, cfg: DictConfig, load: Callable[[str], Server]) -> None:
    """POST /v1/feedback, and the rating page when serve.arena names contestants."""
    try:
        store = FeedbackStore(cfg.serve.feedback_path)
    except (OSError, sqlite3.Error) as err:
        raise ConfigError(f"serve.feedback_path={cfg.serve.feedback_path}: not usable as the store ({err})") from None
    add_feedback(app, server, store)
    arena = cfg.serve.get("arena")
    if arena and arena.get("contestants"):
        if arena.max_tokens < 1:
            raise ConfigError(f"serve.arena.max_tokens={arena.max_tokens}: must be >= 1")
        max_tokens = min(arena.max_tokens, cfg.serve.max_tokens_limit)
        add_arena(app, server, contestants(arena, server, cfg.ckpt_path, load, store), store, max_tokens)
    also_run(app, lambda: None, store.close)  # outermost: closed after every engine has stopped
