"""Machinery every app shares: user-facing errors, CLI plumbing, data and export helpers."""
