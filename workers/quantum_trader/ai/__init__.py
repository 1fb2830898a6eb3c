"""AI engine (docs/ai.md): features, walk-forward LightGBM, calibration, registry, signals.

Importing this package imports nothing heavy: LightGBM is loaded only by the functions
that train or load a model (an idle worker stays small).
"""
