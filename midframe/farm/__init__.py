"""The render farm: one inbox, many machines, on Dask distributed.

The daemon stays the coordinator (it watches, queues, plans, joins and publishes); each planned
segment of a running job is a Dask task that a worker machine makes straight into the job's work
folder on the shared folder. Only paths travel, never video. ``distributed`` is imported only by
the modules that need it, so a daemon without ``farm.scheduler`` never loads it.

- ``paths``: pure mapping of the coordinator's paths to a worker's (``farm.path_map``)
- ``slots``: pure: which devices a worker offers and the resources it advertises
- ``remote``: errors as they cross from a worker to the coordinator
- ``task``: the segment task a worker runs, and its plugin (engine loaded once, kept warm)
- ``coordinator``: the daemon's Dask client kept connected, the farm's state, ``convert`` with the farm
- ``renderer``: one job's segments: kept, submitted, collected into the manifest, resubmitted, cancelled
- ``processes``: ``midframe farm scheduler`` and ``midframe farm worker``
"""
