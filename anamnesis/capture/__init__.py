"""Session capture: turn a Claude Code transcript into one redacted episodic note per session.

`transcript` reads the JSONL transcript incrementally into a `SessionDigest`; `summary` makes
the heuristic note (and decides when a session is too trivial to keep); `llm` asks an optional
OpenAI-compatible model instead; `session` ties them to a `Memory` and the per-session cursor;
`redact` keeps secrets out of all of it. Nothing here imports an adapter or a heavy library, so
the hook path can use it within Claude Code's time budget.
"""
