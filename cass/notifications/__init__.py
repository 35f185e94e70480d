"""In-app notifications: the bell and the inbox."""
