"""The hooks' semantic side: a stdlib WordPiece that agrees with the model's tokenizer, the
static table distilled into the index, and the prompt hook's gate on task-phrased prompts."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from anamnesis.embedding import load_embedder
from anamnesis.memory import Memory, NoteDraft
from anamnesis.queries import run_sync, search_plan
from anamnesis.search import SearchFilters
from anamnesis.static_recall import basic_tokens, static_rank_plan, wordpiece

PROJECT = "github.com/acme/quotes-api"
TRICKY = [
    "Why did the invoices job fail?",
    "Café crème: naïve façade, résumé & coöperate",
    "snake_case CamelCase kebab-case 3.14 v2.0.1 #42 @user e-mail",
    "日本語のテキスト mixed with English",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "path/to/file.py:120 -> KeyError('x') {json: [1, 2]}",
    "tabs\tand\nnewlines   and  spaces",
]


def test_stdlib_wordpiece_splits_text_as_the_models_tokenizer_does() -> None:
    embedder = load_embedder()
    vocabulary = set(embedder.vocabulary())
    for text in TRICKY:
        expected = [p for p in embedder._tokenizer.encode(text).tokens if p not in ("[CLS]", "[SEP]", "[UNK]")]
        assert wordpiece(basic_tokens(text), vocabulary) == expected, text


def hook(payload: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "anamnesis", "hook", "user-prompt-submit"],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == ""
    return str(json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]) if result.stdout else ""


def repo(tmp_path: Path) -> str:
    path = tmp_path / "quotes-api"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "remote", "add", "origin", f"https://{PROJECT}.git"], check=True)
    return str(path)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_hooks_rerank_by_meaning_and_speak_up_on_task_prompts(memory: Memory, tmp_path: Path) -> None:
    billing = await memory.write(
        NoteDraft(
            type="semantic",
            title="Nightly export outage",
            project=PROJECT,
            body="The nightly billing job died because the S3 credentials expired.",
        )
    )
    careers = await memory.write(
        NoteDraft(
            type="semantic",
            title="Careers page",
            project=PROJECT,
            body="Each job opening lists its salary band; job titles follow the ladder.",
        )
    )
    release = await memory.write(
        NoteDraft(
            type="procedural",
            title="Release process",
            project=PROJECT,
            body="Run make deploy; it wraps helm upgrade for quotes and waits for the rollout.",
        )
    )
    await memory.embed_pending()  # dense and static vectors, the static table distilled first
    connection = sqlite3.connect(memory.config.layout.index_path)
    try:
        question = "job crashed overnight"
        lexical = [hit.id for hit in run_sync(connection, search_plan(question, SearchFilters(), 8))]
        ranked = run_sync(connection, static_rank_plan(question, SearchFilters()))
        ids = dict(connection.execute("SELECT pk, id FROM notes").fetchall())
    finally:
        connection.close()
    assert {ids[c.pk] for c in ranked} == {billing.id, careers.id}  # a rerank: the same candidates
    assert set(lexical) == {billing.id, careers.id}
    cosine = {ids[c.pk]: c.cosine or 0.0 for c in ranked}
    assert cosine[billing.id] > cosine[careers.id] + 0.1  # a job that crashed is not a job opening

    cwd = repo(tmp_path)
    # A task, not a question, and its words stand in the body, not the title: shown.
    shown = hook({"cwd": cwd, "session_id": "t1", "prompt": "bump the helm deploy of quotes to two replicas"})
    assert release.id in shown
    # Something the memory knows nothing of: silence.
    assert hook({"cwd": cwd, "session_id": "t1", "prompt": "train a small classifier for bird songs"}) == ""


def test_the_hook_path_never_loads_the_model_or_its_runtime(anamnesis_home: Path) -> None:
    from tests.hookprobe import probe_hook

    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    for event in ("session-start", "user-prompt-submit"):
        _, loaded = probe_hook(event, {"cwd": "/tmp", "session_id": "s", "prompt": "why did the invoices job fail"})
        assert sorted(loaded & {"numpy", "onnxruntime", "tokenizers", "anamnesis.embedding"}) == [], event
