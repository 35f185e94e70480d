"""SLA admin: business calendars, policies, a due-time preview and the job runs."""
