"""Control plane: planning, emitting waves, advancing runs, the client API and the CLI."""
