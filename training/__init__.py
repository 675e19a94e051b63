"""Builds and evaluates IDC models with idc_viewer.ml's one model definition."""
