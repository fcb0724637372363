"""The command line: python -m qembed_worker <command> --help."""
