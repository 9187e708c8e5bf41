"""The control API: the loopback HTTP server, its messages, the control routes, the client the CLI and
tray use, the control files and how clients find the daemon."""
