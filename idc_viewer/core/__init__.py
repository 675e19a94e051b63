"""Headless core: slides, geometry, tissue, patches, results, export, jobs.

Imports nothing of Qt or TensorFlow, so it runs on any server.
"""
