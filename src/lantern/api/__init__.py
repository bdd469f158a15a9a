"""The HTTP app: thin FastAPI routes over the services. One router module per domain."""
