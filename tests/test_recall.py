"""Semantic recall: the model's fidelity, vectors as derived data, and hybrid search through Memory."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anamnesis.config import Config, load_config
from anamnesis.configedit import edit_config
from anamnesis.embedding import MODEL_PATH_ENV, load_embedder
from anamnesis.errors import ModelUnavailableError
from anamnesis.index import SearchIndex
from anamnesis.memory import Memory, NoteDraft, open_memory
from anamnesis.queries import Within, ranked_plan, vector_keys_plan
from anamnesis.search import SearchFilters
from anamnesis.store import NoteStore
from tests.conftest import run_cli_env

pytestmark = pytest.mark.anyio

REFERENCE = Path(__file__).parent / "data" / "minilm_fp32_reference.json"
BILLING = NoteDraft(
    type="semantic",
    title="Nightly export outage",
    body="The nightly billing export died because the S3 credentials expired; rotate them in the vault.",
    project="github.com/acme/billing",
)
OTHERS = [
    NoteDraft(type="procedural", title="Pytest fixtures", body="Fixtures live in conftest.py per package."),
    NoteDraft(type="semantic", title="Frontend stack", body="The dashboard is written in Svelte with Vite."),
    NoteDraft(type="procedural", title="Commit style", body="Commit messages use the imperative mood."),
]
QUESTION = "why did the invoices job fail"


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    return load_embedder()


def test_vectors_match_the_original_fp32_model(embedder) -> None:  # type: ignore[no-untyped-def]
    # Reference vectors computed once by a numpy forward pass of the original fp32 weights of
    # sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2 norm). The shipped model computes
    # mostly in int8 (tools/derive_embedding_model.py): each vector stays within cosine 0.99 of
    # the original (0.994-0.997 measured; a wrong file, pooling or tokenizer lands far below),
    # and the similarities between sentences, which ranking uses, within 0.03 (0.018 measured).
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    ours = embedder.embed(reference["sentences"])
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    fidelity = (ours * expected).sum(axis=1)
    assert fidelity.min() >= 0.99, fidelity
    similarity = ours @ ours.T
    assert np.abs(similarity - expected @ expected.T).max() <= 0.03
    # and what that buys: a paraphrase is near, an unrelated sentence is not
    assert similarity[0, 1] > 0.3 > similarity[0, 5] + 0.2
    assert similarity[3, 4] > 0.6


def test_padding_does_not_change_a_vector(embedder) -> None:  # type: ignore[no-untyped-def]
    # Batched with a long text, a short one must get the vector it gets alone (no [PAD] pooled).
    alone = embedder.embed(["A man is playing a guitar."])[0]
    batched = embedder.embed(["A man is playing a guitar.", "word " * 100])[0]
    assert float(alone @ batched) > 0.9999


def test_many_texts_of_mixed_lengths_get_the_vectors_they_get_alone(embedder) -> None:  # type: ignore[no-untyped-def]
    # Batched by length under a token budget (several batches here), each row stays in its place.
    texts = [f"note {n}: " + "the export job retried " * (n * 7 % 40) for n in range(40)]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed_one(text) for text in texts])
    assert (together * alone).sum(axis=1).min() > 0.9999


def test_a_model_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    impostor = tmp_path / "model.onnx"
    impostor.write_bytes(b"not the model" * 1000)
    with pytest.raises(ModelUnavailableError, match="not the pinned file"):
        load_embedder({MODEL_PATH_ENV: str(impostor)})
    with pytest.raises(ModelUnavailableError, match="cannot read"):
        load_embedder({MODEL_PATH_ENV: str(tmp_path / "missing.onnx")})


async def write_all(memory: Memory) -> str:
    billing = await memory.write(BILLING)
    for draft in OTHERS:
        await memory.write(draft)
    return billing.id


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_search_finds_what_was_meant(memory: Memory) -> None:
    billing = await write_all(memory)
    assert await memory.search(QUESTION) == []  # no word in common: lexical search alone finds nothing
    assert await memory.load_model() is None
    assert await memory.embed_pending(static=False) == len(OTHERS) + 1
    hits = await memory.search(QUESTION, SearchFilters(), 3)
    assert hits[0].id == billing
    assert hits[0].match == "semantic"
    assert "billing export" in hits[0].snippet


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_notes_without_a_vector_are_still_found_by_their_words(memory: Memory) -> None:
    await memory.load_model()
    await write_all(memory)
    await memory.embed_pending(static=False)
    late = await memory.write(NoteDraft(type="semantic", title="Kafka retention", body="Topics keep seven days."))
    status = await memory.recall_status()
    assert (status["embedded"], status["notes"]) == (4, 5)
    assert [hit.id for hit in await memory.search("kafka retention")][:1] == [late.id]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_edited_note_gets_a_new_vector(memory: Memory) -> None:
    await memory.load_model()
    billing = await write_all(memory)
    await memory.embed_pending(static=False)
    note = await memory.get(billing)
    await memory.save(note.with_changes(body="Team lunch is on Thursdays at the Thai place."))
    assert (await memory.recall_status())["embedded"] == len(OTHERS)  # the stale vector is gone
    assert await memory.embed_pending(static=False) == 1
    hits = await memory.search("where do we eat together", SearchFilters(), 1)
    assert hits[0].id == billing


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_note_another_process_writes_during_a_pass_gets_its_vector_in_that_call(memory: Memory) -> None:
    # A pass walks the notes without a vector once; what another process indexes meanwhile is
    # picked up by a second walk before embed_pending returns.
    await memory.load_model()
    await write_all(memory)
    wrote: list[str] = []

    def progress(done: int, total: int) -> None:
        if not wrote:  # another process writes (and indexes) a note while the pass runs
            command = [sys.executable, "-m", "anamnesis", "write", "-t", "semantic", "--title", "Late", "-p", "global"]
            result = subprocess.run(
                [*command, "Written mid-pass."], env=run_cli_env(memory.config.home), capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
            wrote.append(result.stdout.strip())

    assert await memory.embed_pending(progress, static=False) == len(OTHERS) + 2
    status = await memory.recall_status()
    assert (status["embedded"], status["notes"]) == (len(OTHERS) + 2, len(OTHERS) + 2)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_config_switch_keeps_search_lexical(config: Config) -> None:
    edit_config(config.home, lambda document: document.update(search={"semantic": False}))
    switched = load_config(config.home, {"ANAMNESIS_MACHINE_ID": config.machine_id})
    async with open_memory(switched) as memory:
        await write_all(memory)
        assert await memory.embed_pending(static=False) == 0
        assert await memory.search(QUESTION) == []
        status = await memory.status()
        assert status["semantic"]["state"] == "off"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_model_that_cannot_load_is_reported_and_search_stays_lexical(
    memory: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_PATH_ENV, str(tmp_path / "gone.onnx"))
    await write_all(memory)
    status = (await memory.status())["semantic"]
    assert status["state"] == "unavailable"
    assert "gone.onnx" in status["problem"]
    assert await memory.load_model() is not None
    assert await memory.embed_pending(static=False) == 0
    assert [hit.title for hit in await memory.search("billing export")] == ["Nightly export outage"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_doctor_says_when_search_is_lexical_only(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anamnesis.doctor import run_doctor

    [ready] = [f for f in await run_doctor(config) if f.check == "semantic"]
    assert (ready.level, ready.message) == ("ok", "model ready; 0 of 0 notes embedded")
    monkeypatch.setenv(MODEL_PATH_ENV, str(tmp_path / "gone.onnx"))
    [missing] = [f for f in await run_doctor(config) if f.check == "semantic"]
    assert missing.level == "warning"
    assert "search is lexical only" in missing.message


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_session_borrows_the_services_model_instead_of_loading_its_own(config: Config) -> None:
    import anyio

    async with open_memory(config) as service, open_memory(config) as session:
        billing = await write_all(service)
        await service.embed_pending(static=False)
        assert not await session.borrow_model()  # no service lends one yet
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.lend_model)
            with anyio.fail_after(30):
                while not await session.borrow_model():
                    await anyio.sleep(0.05)
            assert session.semantic is not None
            assert session.semantic.embedder is None  # nothing loaded in this process
            hits = await session.search(QUESTION, SearchFilters(), 3)
            assert hits[0].id == billing
            assert (await session.recall_status())["lent"] is True
            tasks.cancel_scope.cancel()
        assert await session.search(QUESTION) == []  # the service is gone: lexical again, no error
        assert session.semantic.lender_lost.is_set()  # (an MCP server then loads its own model)
        assert await session.load_model() is None
        assert (await session.search(QUESTION, SearchFilters(), 3))[0].id == billing


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_search_keeps_up_with_vectors_that_come_change_and_go(memory: Memory) -> None:
    # The process keeps the vectors in memory between searches and updates them in place:
    # a note written, edited or deleted after they were loaded is ranked by its new vector.
    await memory.load_model()
    billing = await write_all(memory)
    await memory.embed_pending(static=False)
    assert (await memory.search(QUESTION, SearchFilters(), 1))[0].id == billing  # vectors loaded
    await memory.delete(billing)
    lunch = await memory.write(
        NoteDraft(type="semantic", title="Team lunch", body="Team lunch is on Thursdays at the Thai place.")
    )
    branches = await memory.write(
        NoteDraft(type="procedural", title="Branches", body="Name a branch after its ticket.")
    )
    await memory.embed_pending(static=False)
    assert (await memory.search("where do we eat together", SearchFilters(), 1))[0].id == lunch.id
    assert billing not in [hit.id for hit in await memory.search(QUESTION, SearchFilters(), 8)]
    note = await memory.get(lunch.id)
    await memory.save(note.with_changes(title="Export outage", body=BILLING.body))
    await memory.save((await memory.get(branches.id)).with_changes(title="Thursdays", body=note.body))
    await memory.embed_pending(static=False)
    hits = await memory.search(QUESTION, SearchFilters(), 1)
    assert (hits[0].id, hits[0].match) == (lunch.id, "semantic")
    assert (await memory.search("where do we eat together", SearchFilters(), 1))[0].id == branches.id


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_without_a_service_the_first_session_lends_its_model_to_the_others(config: Config) -> None:
    import anyio

    from anamnesis.model_lending import share_model, socket_path

    async def ready(memory: Memory) -> None:
        with anyio.fail_after(60):
            while not (memory.semantic and memory.semantic.ready):
                await anyio.sleep(0.05)

    async with open_memory(config) as first, open_memory(config) as second:
        billing = await write_all(first)
        await first.embed_pending(static=False)  # (loads the model in the first session)
        assert first.semantic is not None
        assert second.semantic is not None
        async with anyio.create_task_group() as tasks:
            lender, gone = anyio.CancelScope(), anyio.Event()

            async def run_first() -> None:
                with lender:
                    await share_model(first)
                gone.set()

            tasks.start_soon(run_first)
            lending = socket_path(config.layout)
            assert lending is not None
            with anyio.fail_after(60):
                while not lending.exists():
                    await anyio.sleep(0.05)
            tasks.start_soon(share_model, second)
            await ready(second)
            assert first.semantic.embedder is not None  # the first session loaded the model…
            assert second.semantic.embedder is None  # …and the second borrows it
            assert (await second.search(QUESTION, SearchFilters(), 3))[0].id == billing
            lender.cancel()  # that session ends: the next to need the model loads it and lends it
            await gone.wait()
            assert await second.search(QUESTION) == []  # lexical meanwhile, no error
            with anyio.fail_after(60):
                while second.semantic.embedder is None:
                    await anyio.sleep(0.05)
            assert (await second.search(QUESTION, SearchFilters(), 3))[0].id == billing
            tasks.cancel_scope.cancel()


async def test_a_projects_common_words_are_counted_again_once_the_index_changes(memory: Memory) -> None:
    # Words in more than a share of a project's notes are left out of the query's embedding.
    # Their counts are kept between searches (counting is a search's costly step) but only
    # while the index stays the same: notes that make a word common must be seen.
    project = "github.com/acme/ledger"
    for n in range(8):
        body = "The ledger closes nightly." if n == 0 else f"Unrelated note number {n}."
        await memory.write(NoteDraft(type="semantic", title=f"Note {n}", body=body, project=project))
    for n in range(4):  # common elsewhere is not common here
        await memory.write(NoteDraft(type="semantic", title=f"Cron {n}", body="Runs nightly.", project="other"))
    semantic = memory.semantic
    assert semantic is not None
    index = await SearchIndex.open(memory.config.layout.index_path, NoteStore(memory.config.layout))
    try:
        filters = SearchFilters(projects=(project,))
        _, scope = await semantic.scope_rows(index, filters)
        assert await scope.common_terms(index, ("ledger", "nightly"), cap=2) == set()
        for n in range(3):
            await memory.write(
                NoteDraft(type="semantic", title=f"Ledger {n}", body="More ledger work.", project=project)
            )
        _, scope = await semantic.scope_rows(index, filters)
        assert await scope.common_terms(index, ("ledger", "nightly"), cap=2) == {"ledger"}
    finally:
        await index.aclose()


async def test_ranking_within_a_known_scope_gives_the_joins_answer(memory: Memory) -> None:
    # Hybrid search ranks the lexical side in FTS5 alone and keeps what its scope holds; when
    # the best hits are all outside the scope it must still find the scope's own matches.
    mine, other = "github.com/acme/ledger", "github.com/acme/other"
    for n in range(30):  # strong matches, all outside the scope
        await memory.write(NoteDraft(type="semantic", title=f"Ledger ledger {n}", body="ledger ledger", project=other))
    for n in range(3):
        await memory.write(
            NoteDraft(type="semantic", title=f"Close {n}", body=f"The ledger closes at {n}.", project=mine)
        )
    semantic = memory.semantic
    assert semantic is not None
    index = await SearchIndex.open(memory.config.layout.index_path, NoteStore(memory.config.layout))
    try:
        for filters in (SearchFilters(projects=(mine,)), SearchFilters(projects=(other,)), SearchFilters()):
            _, scope = await semantic.scope_rows(index, filters)
            for share in (1.0, scope.size / scope.store_size):  # a fetch too short for the scope, and the usual
                within = Within(scope.admits, share)
                for limit in (2, 5):
                    joined = await index.run(ranked_plan('"ledger"', filters, limit))
                    assert await index.run(ranked_plan('"ledger"', filters, limit, within)) == joined
                    assert len(joined) == min(limit, scope.size)
    finally:
        await index.aclose()
    found = await memory.search("ledger closes", SearchFilters(projects=(mine,)), 5)
    assert {hit.title for hit in found} == {"Close 0", "Close 1", "Close 2"}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_process_keeps_its_static_table_only_while_the_index_has_the_same_one(memory: Memory) -> None:
    # A long-lived process keeps the static table between embedding rounds; when another
    # process distils a new one, notes embedded afterwards must get the new table's vectors.
    from anamnesis.vectorizer import static_table

    assert await memory.load_model() is None
    assert memory.semantic is not None
    assert memory.semantic.embedder is not None
    embedder = memory.semantic.embedder
    vocabulary = embedder.vocabulary()
    index = await SearchIndex.open(memory.config.layout.index_path, NoteStore(memory.config.layout))

    async def distil(seed: int) -> None:  # another process stores a table of its own
        rng = np.random.default_rng(seed)
        vectors = rng.standard_normal((len(vocabulary), 384)).astype(np.float16)
        weights = rng.uniform(0.1, 2.0, len(vocabulary))
        await index.store_static_pieces(
            [(piece, float(weights[i]), vectors[i].tobytes()) for i, piece in enumerate(vocabulary)]
        )

    def static_of(note_id: str) -> bytes:
        with contextlib.closing(sqlite3.connect(memory.config.layout.index_path)) as connection:
            (blob,) = connection.execute(
                "SELECT v.static FROM note_vectors v JOIN notes n ON n.pk = v.note_pk WHERE n.id = ?", (note_id,)
            ).fetchone()
        return bytes(blob)

    try:
        await distil(1)
        await memory.write(BILLING)
        assert await memory.embed_pending() == 1  # reads the table and keeps it
        await distil(2)
        late = await memory.write(NoteDraft(type="semantic", title="Kafka retention", body="Topics keep seven days."))
        assert await memory.embed_pending() == 1
        fresh = await static_table(index, embedder)  # the index's table, read anew
        expected = fresh.note_vectors(embedder.piece_ids(["Kafka retention. Topics keep seven days."]))
        assert static_of(late.id) == expected.astype(np.float16)[0].tobytes()
    finally:
        await index.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_process_that_kept_vectors_sees_a_rebuild_made_elsewhere(memory: Memory) -> None:
    # A long-lived process keeps every vector by pk and reads again only when the index's
    # vector generation moves. A rebuild gives notes new pks; its generation must move on from
    # the old index's, never start again where a kept copy could mistake it for its own.
    assert await memory.load_model() is None
    await write_all(memory)
    await memory.embed_pending(static=False)
    semantic = memory.semantic
    assert semantic is not None
    index = await SearchIndex.open(memory.config.layout.index_path, NoteStore(memory.config.layout))
    try:
        await semantic.scope_rows(index, SearchFilters())
        kept = semantic.vectors.generation
        assert kept is not None
        await index.rebuild()  # as another process would
        generation, _ = await index.run(vector_keys_plan(None))
        assert generation > kept
        vectors, scope = await semantic.scope_rows(index, SearchFilters())
        assert vectors.rows == {}  # the rebuild dropped every vector; none of the old pks is kept
        assert scope.size == len(OTHERS) + 1
    finally:
        await index.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_first_load_reads_every_vector_page_by_page(memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    # A long-lived process reads every vector once, a page at a time (a 100k store's blobs are
    # never held all at once); pages of two must still bring in each vector, exactly.
    import anamnesis.hybrid as hybrid

    assert await memory.load_model() is None
    await write_all(memory)
    await memory.embed_pending(static=False)
    monkeypatch.setattr(hybrid, "VECTOR_PAGE", 2)
    index = await SearchIndex.open(memory.config.layout.index_path, NoteStore(memory.config.layout))
    try:
        fresh = hybrid.Semantic()
        vectors, _ = await fresh.scope_rows(index, SearchFilters())
        with contextlib.closing(sqlite3.connect(memory.config.layout.index_path)) as connection:
            rows = connection.execute("SELECT note_pk, dense FROM note_vectors").fetchall()
        stored = {int(pk): np.frombuffer(blob, dtype=np.float16) for pk, blob in rows}
        assert set(vectors.rows) == set(stored)
        for pk, vector in stored.items():
            assert np.array_equal(vectors.matrix[vectors.rows[pk]], vector.astype(np.float32))
    finally:
        await index.aclose()
