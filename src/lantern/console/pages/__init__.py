"""The console's pages, one module per area; each adds its routes with ``add_routes``."""
