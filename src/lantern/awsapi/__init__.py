"""The AWS IoT control plane (botocore's ``iot`` service) and the iot-data operations
(``Publish``, ``GetRetainedMessage``, ``ListRetainedMessages``) on Lantern's HTTP listener,
signed with SigV4 by access keys (:mod:`lantern.iam`).

:mod:`.service` turns botocore's own service model into routes: an operation is implemented by
registering a handler under its name (``@iot.operation("CreateThing")``); its method, path,
where each input member comes from (path, query, header, body) and the error statuses come from
the model, so the REST shapes are exactly botocore's. One module per family of operations
(:mod:`.things`, :mod:`.certificates`, :mod:`.policies`, ...) maps them onto Lantern's services.
"""

from __future__ import annotations
