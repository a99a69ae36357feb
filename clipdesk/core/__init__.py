"""The engine: pure Python + torch, no Qt. The GUI, the CLI and training all drive it."""
