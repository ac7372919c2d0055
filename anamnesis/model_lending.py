"""One model per machine: one process lends its loaded model to the home's other processes.

Loading the model costs each process about 200 MB of resident memory, and every Claude Code
session runs its own MCP server. One process of the home holds the lender lock and listens on a
Unix socket in the home's state directory (mode 0600, like the rest of the home), embedding
query texts for the others, which then never load a model of their own: the service where it
runs (it also keeps every note's vector fresh), else the first MCP server that needed a model
(`share_model`); when the lender goes, the next session to notice loads the model and lends it.

The protocol is as small as it gets: a 4-byte big-endian length and that many bytes of UTF-8
text in; 384 little-endian float32 out; one query per connection (0.2 ms on loopback).
"""

from __future__ import annotations

import contextlib
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from anamnesis.config import Layout
from anamnesis.locks import release_file_lock, try_file_lock

if TYPE_CHECKING:
    from anamnesis.embedding import Embedder
    from anamnesis.memory import Memory

SOCKET_NAME = "embed.sock"
LOCK_NAME = "embed.lock"  # held by the one process that lends (or is loading a model to lend)
RETRY = 1.0
MAX_TEXT_BYTES = 16_384
TIMEOUT = 2.0
DIMENSIONS = 384
_MAX_SOCKET_PATH = 100  # sun_path is 104-108 bytes depending on the platform


def socket_path(layout: Layout) -> Path | None:
    """Where the service lends its model; None when the home's path is too long for a socket."""
    path = layout.state_dir / SOCKET_NAME
    return path if len(os.fsencode(path)) < _MAX_SOCKET_PATH else None


async def lend(embedder: Embedder, path: Path) -> None:
    """Answer query embeddings on `path` until cancelled (the service runs this), once no other
    process lends: a session lending when the service starts keeps lending until it ends."""
    fd = None
    while fd is None:
        fd = await anyio.to_thread.run_sync(try_file_lock, path.with_name(LOCK_NAME))
        if fd is None:
            await anyio.sleep(RETRY)
    try:
        await _serve(embedder, path)
    finally:
        release_file_lock(fd)


async def share_model(memory: Memory) -> None:
    """Run for the life of an MCP server: borrow the model some process of the home lends, for
    as long as it answers; when none does, load it here, lend it, and keep vectors fresh.

    The lender lock makes the first session to need a model the one that loads it; the others
    borrow it as soon as it answers (search is lexical meanwhile, never waiting).
    """
    semantic = memory.semantic
    path = socket_path(memory.config.layout)
    if semantic is None:
        return
    if path is None:  # no socket possible: a copy of its own
        await memory.keep_vectors_fresh()
        return
    while True:
        if await memory.borrow_model():
            await semantic.lender_lost.wait()
            continue
        fd = await anyio.to_thread.run_sync(try_file_lock, path.with_name(LOCK_NAME))
        if fd is None:  # another process is loading a model to lend: borrow it once it answers
            await anyio.sleep(RETRY)
            continue
        try:
            if await memory.load_model() is not None or semantic.embedder is None:
                return
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(memory.keep_vectors_fresh)
                await _serve(semantic.embedder, path)
        finally:
            release_file_lock(fd)


async def _serve(embedder: Embedder, path: Path) -> None:
    os.makedirs(path.parent, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a service that was killed
    listener = await anyio.create_unix_listener(path)
    os.chmod(path, 0o600)
    try:
        await listener.serve(partial(_answer, embedder))
    finally:
        await listener.aclose()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def _answer(embedder: Embedder, stream: SocketStream) -> None:
    async with stream:
        with anyio.move_on_after(TIMEOUT):
            reader = BufferedByteReceiveStream(stream)
            size = int.from_bytes(await reader.receive_exactly(4), "big")
            if size > MAX_TEXT_BYTES:
                return
            text = (await reader.receive_exactly(size)).decode("utf-8", "replace")
            vector = await anyio.to_thread.run_sync(embedder.embed_one, text)
            await stream.send(vector.astype("<f4").tobytes())


async def borrowed_vector(path: Path, text: str) -> Any | None:
    """The lent model's vector of `text` (numpy float32), or None when no service answers."""
    import numpy as np

    data = text.encode("utf-8")[:MAX_TEXT_BYTES]
    try:
        with anyio.fail_after(TIMEOUT):
            async with await anyio.connect_unix(path) as stream:
                await stream.send(len(data).to_bytes(4, "big") + data)
                reply = await BufferedByteReceiveStream(stream).receive_exactly(DIMENSIONS * 4)
    except (OSError, TimeoutError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
        return None
    return np.frombuffer(reply, dtype="<f4").astype(np.float32)
