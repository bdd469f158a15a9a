"""AWS-style access keys and Signature Version 4 verification, for the AWS IoT compatible
control plane (``lantern.awsapi``) and the iot-data routes.

* :mod:`.keys`: ``lantern access-keys`` (create/list/disable/delete) and the lookup SigV4 needs;
* :mod:`.secretbox`: the AES-GCM box the secrets are sealed with (key file in the data
  directory, or a key from the cluster's shared material);
* :mod:`.sigv4`: parsing and verifying a signed request (Authorization header or presigned
  query string), exactly as botocore signs;
* :mod:`.errors`: refusals shaped as AWS answers them (exception name + status).
"""

from __future__ import annotations
