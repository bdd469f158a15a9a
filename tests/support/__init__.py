"""Helpers shared by the tests: free ports, a Lantern process, local stand-ins."""
