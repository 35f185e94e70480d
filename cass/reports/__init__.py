"""Reports: the report pages, their CSV and PDF downloads, and scheduled exports."""
