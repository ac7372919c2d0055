"""One model per machine: the service lends its loaded model to the home's other processes.

Loading the model costs each process about 200 MB of resident memory, and every Claude Code
session runs its own MCP server. Where the service runs, it listens on a Unix socket in the
home's state directory (mode 0600, like the rest of the home) and embeds query texts for the
MCP servers, which then never load a model of their own; it also keeps every note's vector
fresh. Without a service each MCP server loads its own copy.

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

if TYPE_CHECKING:
    from anamnesis.embedding import Embedder

SOCKET_NAME = "embed.sock"
MAX_TEXT_BYTES = 16_384
TIMEOUT = 2.0
DIMENSIONS = 384
_MAX_SOCKET_PATH = 100  # sun_path is 104-108 bytes depending on the platform


def socket_path(layout: Layout) -> Path | None:
    """Where the service lends its model; None when the home's path is too long for a socket."""
    path = layout.state_dir / SOCKET_NAME
    return path if len(os.fsencode(path)) < _MAX_SOCKET_PATH else None


async def lend(embedder: Embedder, path: Path) -> None:
    """Answer query embeddings on `path` until cancelled (the service runs this)."""
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
