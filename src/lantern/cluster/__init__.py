"""Clustering: several ``lantern serve`` nodes acting as one platform (docs/cluster.md)."""
