"""Run one hook in a fresh interpreter and see which packages it loaded to answer."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = (
    "import io, json, sys\n"
    "from anamnesis.cli import main\n"
    "sys.stdin = io.StringIO(sys.argv[2])\n"
    "main(['hook', sys.argv[1]])\n"
    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
)


def probe_hook(event: str, payload: object) -> tuple[str, set[str]]:
    """(what `anamnesis hook EVENT` printed, the top-level packages the process had loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, event, json.dumps(payload)], capture_output=True, text=True, check=True
    )
    return result.stdout, set(json.loads(result.stderr.strip().splitlines()[-1]))
