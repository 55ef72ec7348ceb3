"""Apply: a plan's changes made in HubSpot inside its rate limits, crash-safe (`executor`), and
the rejects file (`rejects`)."""
