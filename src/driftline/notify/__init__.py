"""Alert notifications: Block Kit rendering (``messages``) and delivery to Slack (``slack``);
the routes beyond Slack (``routing``: who hears which change) with their receivers' settings
(``receivers``) and senders (``webhook``, ``teams``, ``email``)."""
