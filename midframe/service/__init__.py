"""Running midframe as a systemd or Windows service."""
