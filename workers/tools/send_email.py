"""`send_email`: one email through SendGrid (v3 mail/send) or Resend (POST /emails), Routex's settings.

    tools:
      - name: send_email
        api_key: env:RESEND_API_KEY
        extra: {provider: resend, from_email: agent@example.com, from_name: Crew}   # sendgrid by default

The model passes `to`, `subject`, `body` and `is_html`. The key goes only to the provider's API host
(or the crew's `extra.base_url`). A redelivered call carries the same Idempotency-Key (Resend honours
it), so an email is not sent twice when a worker dies after sending.
"""

from __future__ import annotations

import json
from typing import Any

from crewq.config.errors import ConfigError, ToolError

from .base import ToolContext
from .nettool import NetTool

PROVIDERS = {"sendgrid": "https://api.sendgrid.com", "resend": "https://api.resend.com"}


class SendEmail(NetTool):
    name = "send_email"
    description = "Send an email (plain text, or HTML with is_html) to one recipient."
    timeout = 30.0
    parameters = {
        "type": "object",
        "properties": {
            "to": {"type": "string", "minLength": 3, "description": "the recipient's address"},
            "subject": {"type": "string", "minLength": 1},
            "body": {"type": "string", "minLength": 1},
            "is_html": {"type": "boolean", "default": False},
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    }

    def __init__(self, spec=None):
        super().__init__(spec)
        key = f"tools.{self.spec.name}.extra"
        if self.provider not in PROVIDERS:
            raise ConfigError(f"unknown send_email provider {self.provider!r} (sendgrid or resend)", key=f"{key}.provider")
        if not self.spec.extra.get("from_email"):
            raise ConfigError("send_email needs extra.from_email (the sender's address)", key=f"{key}.from_email")

    @property
    def provider(self) -> str:
        return str(self.spec.extra.get("provider") or "sendgrid").lower()

    @property
    def default_base_url(self) -> str:  # type: ignore[override]
        return PROVIDERS[self.provider]

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        key = self.setting(self.spec.api_key, context, "api_key")
        if not key:
            raise ToolError(f"send_email ({self.provider}) needs api_key")
        sender, name = str(self.option("from_email", context)), self.option("from_name", context)
        kind = "text/html" if arguments.get("is_html") else "text/plain"
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": context.idempotency_key}
        if self.provider == "sendgrid":
            body = {"personalizations": [{"to": [{"email": arguments["to"]}]}],
                    "from": {"email": sender, **({"name": name} if name else {})},
                    "subject": arguments["subject"], "content": [{"type": kind, "value": arguments["body"]}]}
            got = self.fetch("POST", f"{self.base_url(context)}/v3/mail/send", context, headers=headers, json=body)
            message_id = got.headers.get("x-message-id", "")
        else:
            body = {"from": f"{name} <{sender}>" if name else sender, "to": [arguments["to"]],
                    "subject": arguments["subject"], ("html" if arguments.get("is_html") else "text"): arguments["body"]}
            got = self.fetch("POST", f"{self.base_url(context)}/emails", context, headers=headers, json=body)
            message_id = ""
            if got.status < 300:
                try:
                    message_id = str(json.loads(got.body).get("id") or "")
                except (ValueError, AttributeError):  # sent; the id is only information
                    pass
        if got.status >= 300:
            raise ToolError(f"{self.provider} refused the email: HTTP {got.status}: {got.text()[:300]}")
        return {"success": True, "provider": self.provider, "message_id": message_id,
                "to": arguments["to"], "subject": arguments["subject"]}
