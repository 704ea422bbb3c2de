"""Alert notifications: Block Kit rendering (``messages``) and delivery to Slack (``slack``)."""
