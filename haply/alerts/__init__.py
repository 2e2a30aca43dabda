"""E-mail alerts (`mailers` sections, `email-alert`): server state changes
mailed as HAProxy 2.6 mails them.

smtp.py     the SMTP dialogue of one mail, without I/O
message.py  the text of a mail and the level of each change
sender.py   one queue per mailer, an asyncio protocol carrying the dialogue
"""

from haply.alerts.sender import EmailAlerts

__all__ = ["EmailAlerts"]
