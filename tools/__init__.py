"""Agent-facing tools and the registry that exposes them."""
