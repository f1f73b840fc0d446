"""mmagent package."""
