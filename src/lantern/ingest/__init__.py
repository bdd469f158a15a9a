"""Device data: FHIR observations (``$aws/rules/FHIRIngest``, group commit), file upload links
(``$aws/rules/CreateFileUploadLink``), FHIR read tokens and forwarding to an external FHIR server.

Services register handlers on the gateway's ``ReservedTopicRouter`` and never see sockets.
"""

from __future__ import annotations
