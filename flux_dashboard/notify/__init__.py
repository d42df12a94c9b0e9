"""Notifications: the morning digest, finding alerts and sensor silence, pushed to
chat and e-mail through Apprise, each message sent exactly once.

``routes``: who receives what (``FLUX_NOTIFY_FILE``); ``content``: the messages, one
template rendered as text, Markdown and HTML; ``ledger``: every delivery recorded in
the findings database before it is sent; ``notifier``: the scheduler that the sync
worker runs in a thread, and the sending with retries.
"""
