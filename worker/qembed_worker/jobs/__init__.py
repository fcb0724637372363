"""The job loop that runs the jobs queued through the API: training jobs and transform fits."""
