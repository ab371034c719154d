"""FTD (placeholder until implemented)."""
