"""The CNN: one model definition, its contract, loading, inference and Grad-CAM.

TensorFlow is imported lazily inside functions so importing this package stays cheap.
"""
