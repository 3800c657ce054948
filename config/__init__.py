"""Typed settings: TOML file plus ``MSSANTE_*`` environment overrides, embedded defaults."""

from config.loader import ConfigError, load_settings, resolve_config_file, resolve_data_dir
from config.settings import SECTIONS, Settings
from config.template import render_template, write_template

__all__ = [
    "SECTIONS",
    "ConfigError",
    "Settings",
    "load_settings",
    "render_template",
    "resolve_config_file",
    "resolve_data_dir",
    "write_template",
]
