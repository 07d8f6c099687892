"""HTTP gateway: the synchronous API over the event pipeline, and the team's web page."""
