"""One widget a module; each takes the pure `Session` (or plain data) it shows."""
