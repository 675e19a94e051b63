"""Side panels and docks of the main window; each receives the AppState in ``__init__``."""
