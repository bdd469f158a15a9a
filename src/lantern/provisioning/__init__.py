"""Fleet provisioning by claim (the AWS IoT Identity API and RegisterThing) and its admin side."""
