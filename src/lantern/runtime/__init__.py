"""The composition root: builds every layer from settings and runs them in one event loop.

``lantern serve`` calls :func:`lantern.runtime.server.run`. Each domain contributes a
:class:`~lantern.runtime.component.Component` listed in :mod:`lantern.runtime.components`.
"""
