"""Curation: turning session notes into durable knowledge and keeping the store clean.

`guard` (the eval guard every `--apply` goes through), `reflect` (episodic → durable notes
by the configured model), `dedup` (identical and near-identical notes), `importer` (Claude
Code's own memory files and anamnesis-memory 0.1.3 stores).
"""
