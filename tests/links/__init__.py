"""Voice and messages across a vessel's bad link, against the real relay (issue 8)."""
