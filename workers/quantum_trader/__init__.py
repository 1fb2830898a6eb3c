"""Quantum Trader workers: universe, ai, router, snapshot, gate, executor."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("quantum-trader")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+src"
