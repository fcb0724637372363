"""The job loop that runs training jobs queued through the API."""
