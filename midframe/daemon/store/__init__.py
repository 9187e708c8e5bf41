"""The job store: the job record and the store interface (``records``), the SQLite table (``sqlite``)
and its in-memory twin (``memory``)."""
