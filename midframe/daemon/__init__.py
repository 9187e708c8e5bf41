"""The daemon: watcher, job store, worker, control API, notifications."""
