"""The running service: the agent loop, its config, preflight checks, logs, health readings and systemd."""
