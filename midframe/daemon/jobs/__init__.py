"""One job's life: the worker that claims jobs, the flow of one job, the outcome table and the routes that
apply it, finishing (publish, move aside), pauses, progress and the job events."""
