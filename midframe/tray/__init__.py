"""The system tray icon: a client of the control API."""
