"""`translate`: text through the DeepL API (POST /v2/translate), Routex's settings.

    tools:
      - name: translate
        api_key: env:DEEPL_API_KEY     # a key ending in ':fx' is a free-plan key: api-free.deepl.com

The model passes `text`, `target_lang` (EN-GB, FR, DE...) and optionally `source_lang`.
"""

from __future__ import annotations

from typing import Any

from crewq.config.errors import ToolError

from .base import ToolContext
from .nettool import NetTool

FREE, PRO = "https://api-free.deepl.com", "https://api.deepl.com"


class Translate(NetTool):
    name = "translate"
    description = "Translate text with DeepL into target_lang (e.g. FR, DE, ES, EN-GB); source_lang is detected."
    timeout = 30.0
    parameters = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "target_lang": {"type": "string", "minLength": 2, "description": "e.g. FR, DE, EN-GB, PT-BR"},
            "source_lang": {"type": "string", "description": "optional; DeepL detects it"},
        },
        "required": ["text", "target_lang"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        key = str(self.setting(self.spec.api_key, context, "api_key") or "")
        if not key:
            raise ToolError("translate needs api_key (a DeepL key, e.g. env:DEEPL_API_KEY)")
        base = str(self.option("base_url", context, FREE if key.endswith(":fx") else PRO)).rstrip("/")
        body = {"text": [arguments["text"]], "target_lang": arguments["target_lang"].upper()}
        if arguments.get("source_lang"):
            body["source_lang"] = arguments["source_lang"].upper()
        data = self.fetch_json("POST", f"{base}/v2/translate", context, json=body,
                               headers={"Authorization": f"DeepL-Auth-Key {key}"})
        translations = data.get("translations") if isinstance(data, dict) else None
        if not translations:
            raise ToolError("DeepL answered without translations")
        first = translations[0]
        return {"text": first.get("text", ""), "detected_source_lang": first.get("detected_source_language", ""),
                "target_lang": body["target_lang"]}
