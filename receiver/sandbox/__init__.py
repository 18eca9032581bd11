"""The sandbox platform: an in-memory local stand-in for the Genesys Cloud API pipedial calls."""

from .app import create_sandbox_app
from .seed import DEFAULT_CONFIG_PATH, SandboxConfigError, default_config, load_config, parse_config
from .server import SandboxServer, serve

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SandboxConfigError",
    "SandboxServer",
    "create_sandbox_app",
    "default_config",
    "load_config",
    "parse_config",
    "serve",
]
