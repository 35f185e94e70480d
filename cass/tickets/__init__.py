"""The ticket desk: list, board, detail, create, lifecycle, worklogs, attachments."""
