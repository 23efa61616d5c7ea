"""Builders of real models and data sets for rbe_edge's examples and demo."""
