"""The benchmark: test sets, systems, the runner, the CLI, configs and tracking."""
