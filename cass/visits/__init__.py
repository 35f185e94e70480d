"""Site visits: the ticket's visits panel, the dispatcher's week and the engineer's day.

The blueprint is in cass.visits.routes (imported by the app factory: the ticket pages import
this package's panel, and the routes import the ticket pages).
"""
