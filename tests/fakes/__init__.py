"""Local stand-ins for outside services, for the tests: nothing here reaches a public host."""
