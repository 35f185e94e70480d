"""gunicorn settings for `gunicorn wsgi:app`: gthread workers, because each live-update stream
(Server-Sent Events) holds a thread for as long as a page is open."""

worker_class = "gthread"
threads = 32
graceful_timeout = 5
