"""Run directories and (later) declarative sweeps."""
