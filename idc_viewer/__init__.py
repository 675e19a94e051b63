"""IDC Viewer: an invasive ductal carcinoma heatmap over breast whole-slide images."""

__version__ = "0.1.0"
