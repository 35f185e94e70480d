"""API tokens: a user's page to make and revoke their bearer tokens, and the admin's view."""
