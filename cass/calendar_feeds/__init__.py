"""Calendar feeds: the secret .ics URL of a user's site visits and the page that manages it."""
