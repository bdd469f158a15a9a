"""The ``lantern`` command line: thin commands over the services, one module per domain."""
