"""Device shadows: AWS IoT classic and named shadows over MQTT and HTTP (docs/shadows.md).

* :mod:`.errors`: :class:`ShadowError` with AWS's codes and messages;
* :mod:`.document`: the document semantics as pure functions (parse, merge, delta, metadata,
  limits);
* :mod:`.messages`: the JSON payloads of replies and broadcasts;
* :mod:`.service`: :class:`ShadowService`, reads and group-committed changes over the store port;
* :mod:`.device_api`: the ``$aws/things/<thing>/shadow/...`` handlers of the gateway router.
"""
