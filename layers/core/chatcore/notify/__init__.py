"""Push notifications to the user's phones through Amazon SNS mobile push: ``devices`` (the routes'
registrations), ``sns`` (boto3 only: platform endpoints and publishing, short timeouts, one attempt),
``pushes`` (when one is sent, what it says, and the claim that sends each one once)."""
