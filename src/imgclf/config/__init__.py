"""The typed schema of params.yaml, presets and search spaces: what a value may be, checked before
any work. Imports only core."""
