"""Anamnesis: a memory for Claude Code that follows one person across their machines."""

__version__ = "0.2.0"
