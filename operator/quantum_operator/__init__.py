"""Quantum Trader kopf operator."""
