"""Creating a home (`anamnesis init`) and telling whether one exists.

Idempotent: running init again on a complete home changes nothing and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from anamnesis.config import Layout, clean_machine_id
from anamnesis.configedit import edit_config
from anamnesis.errors import ConfigError, HomeNotInitializedError
from anamnesis.gitrepo import GitRepo
from anamnesis.layout import GITATTRIBUTES_TEXT
from anamnesis.notes import NOTE_TYPES

_REPO_README = """# Anamnesis memory

Each file under `procedural/`, `semantic/` and `episodic/` is one note: YAML front-matter, then
markdown. Edit them freely; Anamnesis notices changes on its next search. This repository is
synced by `anamnesis sync` to your own hub.
"""


@dataclass(slots=True)
class InitReport:
    """What `init_home` created; empty `created` means the home was already complete."""

    home: str
    machine_id: str
    created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


async def init_home(layout: Layout, machine_id: str) -> InitReport:
    """Create whatever part of the home is missing: directories, config.json, the git repo."""
    report = InitReport(home=str(layout.home), machine_id=machine_id)

    def make_dirs() -> None:
        for directory in (layout.home, layout.state_dir, layout.memory_dir, layout.local_dir):
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                report.created.append(f"{directory}/")
        for root in (layout.memory_dir, layout.local_dir):
            for note_type in NOTE_TYPES:
                (root / note_type).mkdir(exist_ok=True)
        layout.home.chmod(0o700)

        def name_machine(document: dict[str, Any]) -> tuple[str, bool]:
            if "machine_id" in document:
                return str(document["machine_id"]), False
            document["machine_id"] = machine_id
            return machine_id, True

        report.machine_id, named = edit_config(layout.home, name_machine)
        if named:
            report.created.append(str(layout.config_path))
        elif layout.config_path.stat().st_mode & 0o077:
            layout.config_path.chmod(0o600)
            report.created.append(f"{layout.config_path} (mode set to 0600)")

    await anyio.to_thread.run_sync(make_dirs)
    repo = GitRepo(layout.memory_dir, report.machine_id)
    if await repo.init():
        report.created.append(f"{layout.memory_dir}/.git (branch main)")

        def seed_repo() -> None:
            (layout.memory_dir / ".gitattributes").write_text(GITATTRIBUTES_TEXT, encoding="utf-8")
            readme = layout.memory_dir / "README.md"
            if not readme.exists():
                readme.write_text(_REPO_README, encoding="utf-8")

        await anyio.to_thread.run_sync(seed_repo)
        await repo.commit_all(f"anamnesis: new memory on {report.machine_id}")
    return report


def rename_machine(layout: Layout, new_name: str) -> str:
    """Give this machine a new name in config.json; the old name. Blocking.

    Notes keep the name they were written under (it is their history); the fleet file of the
    old name is the sync's to retire (`anamnesis.sync.fleet.retire_fleet_file`).
    """
    name = clean_machine_id(new_name)
    if not name:
        raise ConfigError("a machine name needs letters or digits")

    def rename(document: dict[str, Any]) -> str:
        old = str(document.get("machine_id", ""))
        document["machine_id"] = name
        return old

    return edit_config(layout.home, rename)


def require_home(layout: Layout) -> None:
    """`HomeNotInitializedError` with the fix, unless `init` has created this home."""
    if not layout.memory_dir.is_dir() or not layout.config_path.is_file():
        raise HomeNotInitializedError(
            f"no Anamnesis home at {layout.home}; run `anamnesis init` first "
            "(or set ANAMNESIS_HOME to the home you meant)"
        )
