"""DATM (placeholder until implemented)."""
