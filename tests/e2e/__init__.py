"""End-to-end tests: ``syncd run`` as a real process, editors on real sockets."""
