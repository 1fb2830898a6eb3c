"""Quantum Trader workers."""
