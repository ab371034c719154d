"""MTT: matching training trajectories (Cazenavette et al., 2022)."""
