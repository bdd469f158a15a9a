"""The app gateway: API keys and scopes, providers (APNs, FCM, e-mail, SMS, Slack), dispatch and
the delivery log."""
