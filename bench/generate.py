"""A realistic synthetic store of N notes, written straight to disk in the note format.

    python bench/generate.py --notes 10000            # build (or reuse) bench/out/store-10000-…
    python bench/generate.py --notes 1000 --force     # build it again
    python bench/generate.py --notes 1000 --git-commit  # and record every note in ONE git commit

Other benchmarks call `ensure_store(n)`, which returns the home of a cached store (built once,
then reused while the generator version and seed are the same) and `make_queries(...)`, which
draws search queries from the same vocabulary.

What a store looks like (shaped on what a developer's Claude Code memory holds):

- ~20 projects with a stack each (language, frameworks, data stores, modules, people), plus
  ~2% of notes in `global`; a long tail of identifiers, paths, versions, error names;
- types procedural 30% (conventions), semantic 40% (facts, decisions), episodic 30% (sessions);
- 1-3 paragraphs of 2-5 sentences each (~0.3-2 KB of body), 0-3 tags;
- ~5% machine-local notes (under local/), ~1% that supersede an older note of their project;
- timestamps spread over two years before 2026-01-01; ids are ULIDs of their creation time.

Text is deterministic for a (seed, N); ULIDs take fresh randomness, as in real use. Files are
written directly (no fsync, no per-note commit): at most one git commit, and only on request.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from anamnesis.config import Layout, load_config  # noqa: E402
from anamnesis.gitrepo import GitRepo  # noqa: E402
from anamnesis.home import init_home  # noqa: E402
from anamnesis.ids import new_ulid  # noqa: E402
from anamnesis.notes import GLOBAL_PROJECT, Note, render_note  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
GENERATOR_VERSION = 1  # bump when the text changes: cached stores of other versions are ignored
DEFAULT_SEED = 20260101
CHUNK = 1000  # notes per work unit; supersedes links stay inside a chunk
END_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPAN_MS = 2 * 365 * 24 * 3600 * 1000
MACHINES = ("desktop", "laptop", "workstation")

# -- vocabulary ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stack:
    key: str
    language: str
    frameworks: tuple[str, ...]
    stores: tuple[str, ...]
    modules: tuple[str, ...]
    entities: tuple[str, ...]
    people: tuple[str, ...]


STACKS: tuple[Stack, ...] = (
    Stack(
        "github.com/acme/quotes-api",
        "python",
        ("fastapi", "pydantic", "alembic", "sqlalchemy"),
        ("postgres", "redis"),
        ("pricing", "quotes", "auth", "webhooks"),
        ("quote", "customer", "premium"),
        ("maria", "tom"),
    ),
    Stack(
        "github.com/acme/billing-service",
        "go",
        ("grpc", "chi", "sqlc"),
        ("postgres", "kafka"),
        ("invoices", "ledger", "payouts", "stripe"),
        ("invoice", "charge", "refund"),
        ("dmitri", "ana"),
    ),
    Stack(
        "github.com/acme/web-dashboard",
        "typescript",
        ("react", "vite", "tailwind", "tanstack"),
        ("graphql",),
        ("charts", "settings", "onboarding", "router"),
        ("widget", "tenant", "session"),
        ("lena", "omar"),
    ),
    Stack(
        "github.com/acme/mobile-app",
        "kotlin",
        ("compose", "retrofit", "room", "hilt"),
        ("sqlite",),
        ("checkout", "push", "offline", "camera"),
        ("cart", "device", "notification"),
        ("yuki", "sam"),
    ),
    Stack(
        "gitlab.com/ops/infra-terraform",
        "hcl",
        ("terraform", "terragrunt", "helm"),
        ("s3", "dynamodb"),
        ("vpc", "eks", "iam", "dns"),
        ("cluster", "bucket", "role"),
        ("pavel", "nina"),
    ),
    Stack(
        "github.com/me/dotfiles",
        "shell",
        ("zsh", "tmux", "neovim", "homebrew"),
        (),
        ("aliases", "keymaps", "prompt", "bootstrap"),
        ("plugin", "keybinding", "theme"),
        ("me",),
    ),
    Stack(
        "github.com/oss/fastjson-rs",
        "rust",
        ("serde", "tokio", "criterion", "simd"),
        (),
        ("parser", "lexer", "arena", "bench"),
        ("token", "buffer", "span"),
        ("ferris", "kat"),
    ),
    Stack(
        "github.com/acme/search-indexer",
        "python",
        ("celery", "elasticsearch", "spacy"),
        ("elasticsearch", "redis", "s3"),
        ("crawler", "tokenizer", "ranking", "dedup"),
        ("document", "shard", "crawl"),
        ("ivan", "priya"),
    ),
    Stack(
        "github.com/acme/auth-gateway",
        "go",
        ("envoy", "oauth2", "jwt"),
        ("redis", "vault"),
        ("tokens", "sessions", "rbac", "saml"),
        ("token", "scope", "tenant"),
        ("chen", "ana"),
    ),
    Stack(
        "github.com/acme/data-pipeline",
        "python",
        ("airflow", "dbt", "pandas", "pyarrow"),
        ("snowflake", "s3", "parquet"),
        ("ingest", "transform", "backfill", "quality"),
        ("dag", "partition", "table"),
        ("fatima", "jonas"),
    ),
    Stack(
        "github.com/acme/ml-models",
        "python",
        ("pytorch", "lightning", "mlflow", "onnx"),
        ("s3", "feast"),
        ("training", "eval", "serving", "features"),
        ("checkpoint", "embedding", "dataset"),
        ("wei", "laura"),
    ),
    Stack(
        "github.com/acme/docs-site",
        "typescript",
        ("astro", "mdx", "algolia"),
        (),
        ("guides", "reference", "changelog", "search"),
        ("page", "sidebar", "snippet"),
        ("kim",),
    ),
    Stack(
        "github.com/acme/notification-worker",
        "node",
        ("bullmq", "express", "nodemailer"),
        ("redis", "postgres"),
        ("email", "sms", "templates", "digest"),
        ("message", "recipient", "template"),
        ("rosa", "tom"),
    ),
    Stack(
        "github.com/acme/game-server",
        "csharp",
        ("dotnet", "signalr", "orleans"),
        ("cosmosdb", "redis"),
        ("matchmaking", "lobby", "physics", "replay"),
        ("player", "match", "grain"),
        ("alex", "bea"),
    ),
    Stack(
        "github.com/acme/firmware",
        "c",
        ("zephyr", "cmake", "freertos"),
        ("flash",),
        ("bootloader", "sensors", "ble", "power"),
        ("register", "interrupt", "packet"),
        ("hans", "ines"),
    ),
    Stack(
        "github.com/acme/cli-tools",
        "rust",
        ("clap", "anyhow", "ratatui"),
        (),
        ("config", "completions", "release", "update"),
        ("subcommand", "flag", "profile"),
        ("ferris", "zoe"),
    ),
    Stack(
        "github.com/acme/analytics-api",
        "java",
        ("spring", "gradle", "flyway", "jackson"),
        ("clickhouse", "postgres"),
        ("reports", "export", "cohorts", "funnels"),
        ("event", "metric", "cohort"),
        ("marco", "sofia"),
    ),
    Stack(
        "github.com/acme/legacy-monolith",
        "php",
        ("laravel", "composer", "phpunit"),
        ("mysql", "memcached"),
        ("orders", "catalog", "admin", "cron"),
        ("order", "product", "sku"),
        ("gary", "ana"),
    ),
    Stack(
        "github.com/acme/k8s-operators",
        "go",
        ("kubebuilder", "controller-runtime", "kustomize"),
        ("etcd",),
        ("reconciler", "webhook", "crd", "leader"),
        ("pod", "deployment", "finalizer"),
        ("nina", "chen"),
    ),
    Stack(
        "github.com/acme/design-system",
        "typescript",
        ("storybook", "radix", "vitest", "playwright"),
        (),
        ("tokens", "buttons", "forms", "a11y"),
        ("component", "variant", "story"),
        ("lena", "kim"),
    ),
)

TOOLS = (
    "pytest",
    "ruff",
    "mypy",
    "docker",
    "kubectl",
    "git",
    "make",
    "uv",
    "pip",
    "npm",
    "pnpm",
    "cargo",
    "clippy",
    "gofmt",
    "golangci-lint",
    "eslint",
    "prettier",
    "pre-commit",
    "gh",
    "jq",
    "curl",
    "ssh",
    "tailscale",
    "grafana",
    "prometheus",
    "sentry",
    "datadog",
    "pgbouncer",
    "nginx",
    "caddy",
    "systemd",
    "github actions",
    "renovate",
    "dependabot",
    "bazel",
    "just",
    "direnv",
    "tox",
    "nox",
    "hypothesis",
)
VERBS = (
    "deploy",
    "migrate",
    "refactor",
    "rollback",
    "retry",
    "cache",
    "lint",
    "format",
    "bump",
    "pin",
    "vendor",
    "profile",
    "benchmark",
    "debug",
    "rebase",
    "squash",
    "tag",
    "release",
    "backfill",
    "shard",
    "index",
    "paginate",
    "validate",
    "serialize",
    "throttle",
    "debounce",
    "batch",
    "stream",
    "mock",
    "stub",
    "seed",
    "rotate",
    "revoke",
    "encrypt",
    "compress",
    "inline",
    "memoize",
    "parallelize",
)
NOUNS = (
    "migration",
    "endpoint",
    "handler",
    "middleware",
    "schema",
    "fixture",
    "pipeline",
    "container",
    "queue",
    "worker",
    "cron job",
    "secret",
    "certificate",
    "timeout",
    "deadlock",
    "race condition",
    "regression",
    "flaky test",
    "coverage",
    "changelog",
    "lockfile",
    "dependency",
    "config file",
    "environment variable",
    "feature flag",
    "rate limit",
    "retry policy",
    "connection pool",
    "index",
    "transaction",
    "healthcheck",
    "log level",
    "trace",
    "span",
    "metric",
    "alert",
    "dashboard",
    "runbook",
    "staging",
    "production",
    "canary",
    "rollout",
    "hotfix",
    "release branch",
    "pull request",
    "code review",
    "commit message",
    "monorepo",
    "submodule",
    "build cache",
    "docker image",
    "base image",
    "memory leak",
    "n+1 query",
    "cold start",
    "p99 latency",
    "error budget",
    "idempotency key",
    "webhook signature",
    "cursor pagination",
    "soft delete",
    "audit log",
    "backpressure",
    "dead letter queue",
)
ADJECTIVES = (
    "slow",
    "flaky",
    "stale",
    "broken",
    "noisy",
    "expensive",
    "brittle",
    "deprecated",
    "experimental",
    "async",
    "idempotent",
    "atomic",
    "lazy",
    "eager",
    "verbose",
    "strict",
    "transient",
    "intermittent",
)
REASONS = (
    "it keeps the diff small",
    "the old way broke on Windows",
    "CI was timing out",
    "the vendor changed their API",
    "it halves the p99 latency",
    "on-call asked for it",
    "it avoids a full table scan",
    "the tests were order dependent",
    "secrets must never hit the logs",
    "we hit the rate limit last quarter",
    "it is what the team agreed in the retro",
    "reviewers kept asking for it",
    "the cache was serving stale data",
    "it survives a restart",
    "the migration locked the table",
    "memory grew without bound",
    "it made onboarding easier",
)
TAGS = (
    "convention",
    "decision",
    "bug",
    "perf",
    "security",
    "testing",
    "ci",
    "deploy",
    "db",
    "api",
    "ui",
    "docs",
    "tooling",
    "session",
    "incident",
    "refactor",
    "preference",
    "gotcha",
    "dependency",
    "infra",
)
ERRORS = (
    "ConnectionResetError",
    "TimeoutError",
    "OOMKilled",
    "ECONNREFUSED",
    "SIGSEGV",
    "deadlock detected",
    "NullPointerException",
    "IntegrityError",
    "KeyError",
    "panic: nil map",
    "429 Too Many Requests",
    "502 Bad Gateway",
    "ModuleNotFoundError",
    "CrashLoopBackOff",
    "EADDRINUSE",
    "certificate has expired",
)
# Words of ordinary prose a developer's notes are made of, beyond the technical terms.
PROSE = (
    "usually",
    "always",
    "never",
    "instead",
    "because",
    "otherwise",
    "carefully",
    "first",
    "then",
    "afterwards",
    "remember",
    "prefer",
    "avoid",
    "check",
    "make sure",
    "note",
    "keep",
    "document",
    "team",
    "reviewer",
    "user",
    "customer",
    "weekend",
    "quarter",
    "sprint",
    "ticket",
    "estimate",
    "tradeoff",
    "simpler",
    "faster",
    "safer",
    "cleaner",
    "readable",
    "consistent",
    "predictable",
    "explicit",
    "surprising",
    "annoying",
    "important",
    "temporary",
    "permanent",
    "workaround",
)
GLOBAL_TOPICS = (
    ("commit messages", "imperative mood and a short subject line"),
    ("code review", "small pull requests that do one thing"),
    ("editor", "neovim with the lsp configured per language"),
    ("shell", "zsh with fzf and direnv"),
    ("testing", "tests next to the code, named after the behaviour"),
    ("naming", "full words over abbreviations"),
    ("dependencies", "pinned versions and a lockfile checked in"),
    ("secrets", "a password manager and never a .env in git"),
    ("formatting", "the formatter's defaults, no bikeshedding"),
    ("documentation", "a README that says how to run it in three commands"),
)

_PROSE_WEIGHTS = [1.0 / (rank + 1) for rank in range(len(PROSE))]


def _long_tail_identifier(rng: random.Random, stack: Stack) -> str:
    """A rare token: a function, file path, version, ticket, host or error name."""
    kind = rng.randrange(7)
    module = rng.choice(stack.modules)
    entity = rng.choice(stack.entities)
    if kind == 0:
        return f"`{rng.choice(VERBS)}_{entity}_{rng.choice(('v2', 'async', 'batch', 'safe', 'impl', 'cached'))}`"
    if kind == 1:
        ext = {
            "python": "py",
            "go": "go",
            "typescript": "ts",
            "rust": "rs",
            "kotlin": "kt",
            "java": "java",
            "c": "c",
            "csharp": "cs",
            "php": "php",
            "node": "js",
            "hcl": "tf",
            "shell": "sh",
        }[stack.language]
        return f"`src/{module}/{entity}_{rng.choice(('service', 'repo', 'model', 'util', 'client'))}.{ext}`"
    if kind == 2:
        return _version(rng)
    if kind == 3:
        return f"{rng.choice(('ACME', 'OPS', 'BUG', 'SEC'))}-{rng.randint(100, 9999)}"
    if kind == 4:
        return f"`{module}-{rng.choice(('prod', 'staging', 'dev'))}-{rng.randint(1, 40):02d}`"
    if kind == 5:
        return f"`{rng.choice(ERRORS)}`"
    return f"`{module.upper()}_{entity.upper()}_{rng.choice(('TIMEOUT', 'URL', 'ENABLED', 'MAX', 'TTL'))}`"


def _version(rng: random.Random) -> str:
    return f"v{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}"


def _tech(rng: random.Random, stack: Stack) -> str:
    pool = stack.frameworks + stack.stores + (stack.language,)
    return rng.choice(pool) if rng.random() < 0.7 else rng.choice(TOOLS)


def _sentence(rng: random.Random, stack: Stack, note_type: str) -> str:
    module = rng.choice(stack.modules)
    entity = rng.choice(stack.entities)
    noun = rng.choice(NOUNS)
    verb = rng.choice(VERBS)
    tech = _tech(rng, stack)
    tail = _long_tail_identifier(rng, stack) if rng.random() < 0.45 else rng.choice(NOUNS)
    prose = rng.choices(PROSE, weights=_PROSE_WEIGHTS, k=2)
    person = rng.choice(stack.people)
    if note_type == "procedural":
        templates = (
            f"{prose[0].capitalize()} {verb} the {noun} in {module} with {tech} before merging.",
            f"Run {rng.choice(TOOLS)} on the {module} module before every {rng.choice(NOUNS)}; {rng.choice(REASONS)}.",
            f"We {prose[1]} {verb} {entity} records through {tail} rather than by hand.",
            f"When the {noun} looks {rng.choice(ADJECTIVES)}, {verb} it and check {tail} first.",
            f"Keep the {module} {noun} {rng.choice(ADJECTIVES)}: {rng.choice(REASONS)}.",
            f"{person.capitalize()} wants every {noun} change in {module} to come with a test using {tech}.",
        )
    elif note_type == "semantic":
        templates = (
            f"The {module} module uses {tech} for the {noun} because {rng.choice(REASONS)}.",
            f"{entity.capitalize()} ids are stored in {rng.choice(stack.stores or ('files',))} and exposed via {tail}.",
            f"Decision: {verb} the {entity} {noun} with {tech}; {person} signed off in {tail}.",
            f"The {noun} for {module} lives in {tail} and is {rng.choice(ADJECTIVES)} by design.",
            f"{tech.capitalize()} is pinned to {_version(rng)} since the {noun} broke, see {tail}.",
            f"Each {entity} has one {noun}; the {module} code assumes it is {rng.choice(ADJECTIVES)}.",
        )
    else:
        templates = (
            f"Fixed a {rng.choice(ADJECTIVES)} {noun} in {module}: {tail} was the cause.",
            f"Spent the session on {module}; {verb} the {entity} {noun} and opened a pull request.",
            f"Investigated {_long_tail_identifier(rng, stack)} with {person}; it came from the {noun}.",
            f"Tried {tech} to {verb} the {noun}, reverted it, {rng.choice(REASONS)}.",
            f"Left a {rng.choice(ADJECTIVES)} note for {person} about the {module} {noun} and {tail}.",
            f"Upgraded {tech} to {_version(rng)}; the {noun} in {module} needed changes.",
        )
    return rng.choice(templates)


def _global_sentence(rng: random.Random) -> str:
    topic, stance = rng.choice(GLOBAL_TOPICS)
    prose = rng.choices(PROSE, weights=_PROSE_WEIGHTS, k=1)[0]
    return rng.choice(
        (
            f"For {topic} I {prose} want {stance}.",
            f"In every project: {topic} means {stance}; {rng.choice(REASONS)}.",
            f"Preference on {topic}: {stance}, and {rng.choice(TOOLS)} set up to enforce it.",
        )
    )


def _title(rng: random.Random, stack: Stack | None, note_type: str) -> str:
    if stack is None:
        topic, stance = rng.choice(GLOBAL_TOPICS)
        return f"{topic.capitalize()}: {stance}"
    module = rng.choice(stack.modules)
    noun = rng.choice(NOUNS)
    tech = _tech(rng, stack)
    if note_type == "procedural":
        return rng.choice(
            (
                f"{rng.choice(VERBS).capitalize()} the {module} {noun} with {tech}",
                f"How we {rng.choice(VERBS)} {rng.choice(stack.entities)} {noun}s",
                f"Always run {rng.choice(TOOLS)} before touching {module}",
            )
        )
    if note_type == "semantic":
        return rng.choice(
            (
                f"{module.capitalize()} uses {tech} for the {noun}",
                f"Why the {rng.choice(stack.entities)} {noun} is {rng.choice(ADJECTIVES)}",
                f"Decision: {tech} for {module}",
            )
        )
    return rng.choice(
        (
            f"Session: {rng.choice(VERBS)} {module} {noun}",
            f"Session: fixed {rng.choice(ADJECTIVES)} {noun} in {module}",
            f"Session: {tech} upgrade in {module}",
        )
    )


def _note(rng: random.Random, index: int, earlier: list[Note]) -> Note:
    roll = rng.random()
    note_type = "procedural" if roll < 0.30 else "semantic" if roll < 0.70 else "episodic"
    is_global = rng.random() < 0.02
    stack = (
        None
        if is_global
        else STACKS[
            min(int(rng.paretovariate(1.2)) - 1, len(STACKS) - 1) if rng.random() < 0.5 else rng.randrange(len(STACKS))
        ]
    )
    paragraphs = []
    for _ in range(rng.choice((1, 1, 2, 2, 2, 3))):
        count = rng.randint(2, 5)
        if stack is None:
            sentences = [_global_sentence(rng) for _ in range(count)]
        else:
            sentences = [_sentence(rng, stack, note_type) for _ in range(count)]
        paragraphs.append(" ".join(sentences))
    created_ms = END_MS - SPAN_MS + int(SPAN_MS * (index + rng.random()) / max(1, _TOTAL_HINT[0]))
    created_ms = min(created_ms, END_MS - 1)
    updated_ms = created_ms if rng.random() < 0.7 else min(END_MS, created_ms + rng.randint(60_000, 30 * 86_400_000))
    project = GLOBAL_PROJECT if stack is None else stack.key
    supersedes: tuple[str, ...] = ()
    if earlier and rng.random() < 0.01:
        same = [n for n in earlier[-200:] if n.project == project and n.type == note_type]
        if same:
            supersedes = (rng.choice(same).id,)
    tags = tuple(dict.fromkeys(rng.choice(TAGS) for _ in range(rng.choice((0, 1, 1, 2, 2, 3)))))
    if note_type == "episodic" and "session" not in tags:
        tags = ("session", *tags)[:3]
    return Note(
        id=new_ulid(created_ms),
        type=note_type,
        title=_title(rng, stack, note_type),
        body="\n\n".join(paragraphs),
        project=project,
        machine_id=rng.choice(MACHINES),
        scope="machine-local" if rng.random() < 0.05 else "portable",
        prov_source=rng.choice(("human", "session-end", "session-end", "reflection")),
        confidence=1.0 if rng.random() < 0.8 else round(rng.uniform(0.5, 0.95), 2),
        prov_session=None if note_type != "episodic" else f"{rng.getrandbits(64):016x}",
        supersedes=supersedes,
        created_at=_iso(created_ms),
        updated_at=_iso(updated_ms),
        tags=tags,
    )


_TOTAL_HINT = [1]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _write_chunk(args: tuple[str, int, int, int, int]) -> tuple[int, int]:
    """Generate and write notes [start, stop) of a store; (notes written, bytes written)."""
    home, seed, start, stop, total = args
    _TOTAL_HINT[0] = total
    rng = random.Random(f"{seed}:{start}")
    layout = Layout(Path(home))
    roots = layout.scope_roots()
    written = size = 0
    earlier: list[Note] = []
    for index in range(start, stop):
        note = _note(rng, index, earlier)
        earlier.append(note)
        text = render_note(note).encode("utf-8")
        path = roots[note.scope] / note.type / f"{note.id}.md"
        with open(path, "wb") as handle:
            handle.write(text)
        written += 1
        size += len(text)
    return written, size


# -- stores -------------------------------------------------------------------------------------


def store_dir(n: int, seed: int = DEFAULT_SEED) -> Path:
    return OUT_DIR / f"store-{n}-s{seed}-v{GENERATOR_VERSION}"


def cached_home(n: int, seed: int = DEFAULT_SEED) -> Path | None:
    """The home of a complete cached store of `n` notes, or None."""
    base = store_dir(n, seed)
    return base / "home" if (base / "manifest.json").is_file() else None


async def build_store(
    n: int, seed: int = DEFAULT_SEED, *, git_commit: bool = False, workers: int | None = None, quiet: bool = False
) -> Path:
    """Generate a fresh store of `n` notes (replacing any cached one); its home."""
    base = store_dir(n, seed)
    if base.exists():
        shutil.rmtree(base)
    home = base / "home"
    started = time.perf_counter()
    layout = load_config(home, {"ANAMNESIS_MACHINE_ID": "desktop"}).layout
    await init_home(layout, "desktop")
    jobs = [(str(home), seed, start, min(n, start + CHUNK), n) for start in range(0, n, CHUNK)]
    workers = workers or min(os.cpu_count() or 1, 4)
    notes = size = 0

    def run_pool() -> tuple[int, int]:
        total_notes = total_size = 0
        if workers == 1 or len(jobs) == 1:
            results: Iterator[tuple[int, int]] = map(_write_chunk, jobs)
            for count, nbytes in results:
                total_notes, total_size = total_notes + count, total_size + nbytes
            return total_notes, total_size
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for count, nbytes in pool.map(_write_chunk, jobs):
                total_notes, total_size = total_notes + count, total_size + nbytes
        return total_notes, total_size

    notes, size = await anyio.to_thread.run_sync(run_pool)
    commit = None
    if git_commit:
        commit = await GitRepo(layout.memory_dir, "desktop").commit_all(f"bench: {n} generated notes")
    elapsed = time.perf_counter() - started
    manifest = {
        "notes": notes,
        "bytes": size,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "git_commit": commit,
        "seconds": round(elapsed, 2),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (base / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if not quiet:
        print(f"generated {notes} notes ({size / 1e6:.1f} MB) in {elapsed:.1f} s at {home}", file=sys.stderr)
    return home


async def ensure_store(n: int, seed: int = DEFAULT_SEED, *, quiet: bool = False) -> Path:
    """The home of a store of `n` notes: the cached one, or a new one built now."""
    home = cached_home(n, seed)
    if home is not None:
        return home
    if not quiet:
        print(f"building a store of {n} notes under {store_dir(n, seed)} (cached for next runs)…", file=sys.stderr)
    return await build_store(n, seed, quiet=quiet)


def note_paths(home: Path) -> list[Path]:
    """Every note file of a home (both scopes, all types), via os.scandir."""
    paths = []
    for root in Layout(home).scope_roots().values():
        for note_type in ("procedural", "semantic", "episodic"):
            with os.scandir(root / note_type) as entries:
                paths.extend(Path(e.path) for e in entries if e.name.endswith(".md"))
    return paths


# -- queries ------------------------------------------------------------------------------------

_STOP_PHRASES = ("how do we", "what is the", "why did we", "where is the", "the", "for", "in")


def make_queries(count: int = 200, seed: int = DEFAULT_SEED) -> list[tuple[str, str | None]]:
    """(query text, project key or None) pairs of 1-4 words drawn from the corpus vocabulary.

    A mix of what people and Claude ask: a single common word, a module plus a noun, a tool
    plus a verb, a rare identifier-like term, occasional natural phrasing with stopwords.
    """
    rng = random.Random(f"queries:{seed}")
    queries: list[tuple[str, str | None]] = []
    while len(queries) < count:
        stack = rng.choice(STACKS)
        size = rng.choice((1, 2, 2, 3, 3, 4))
        pool: list[str] = []
        for _ in range(size):
            kind = rng.randrange(6)
            if kind == 0:
                pool.append(rng.choice(stack.modules))
            elif kind == 1:
                pool.append(rng.choice(NOUNS).split()[0])
            elif kind == 2:
                pool.append(_tech(rng, stack))
            elif kind == 3:
                pool.append(rng.choice(VERBS))
            elif kind == 4:
                pool.append(rng.choice(stack.entities))
            else:
                pool.append(rng.choice(ADJECTIVES + TAGS))
        text = " ".join(dict.fromkeys(pool))
        if rng.random() < 0.15:
            text = f"{rng.choice(_STOP_PHRASES)} {text}"
        queries.append((text, stack.key))
    return queries


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000, help="number of notes (default 10000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    parser.add_argument("--git-commit", action="store_true", help="record all notes in one git commit")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: cores, at most 4)")
    args = parser.parse_args(argv)

    async def run() -> None:
        cached = cached_home(args.notes, args.seed)
        if cached is not None and not args.force and not args.git_commit:
            manifest = json.loads((cached.parent / "manifest.json").read_text())
            print(f"cached: {cached} ({manifest['notes']} notes, {manifest['bytes'] / 1e6:.1f} MB)")
            return
        home = await build_store(args.notes, args.seed, git_commit=args.git_commit, workers=args.workers)
        print(home)

    anyio.run(run, backend="asyncio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
