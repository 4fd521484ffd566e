"""Configuration: ``load_settings`` builds it, ``validate`` refuses what cannot run."""

from config.settings import DEV_PLACEHOLDERS, load_settings
from config.validation import ConfigError, validate

__all__ = ["DEV_PLACEHOLDERS", "ConfigError", "load_settings", "validate"]
