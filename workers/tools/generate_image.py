"""`generate_image`: an image from the OpenAI Images API (POST /v1/images/generations), saved under
`base_dir`; the model gets the file's path. Routex's settings.

    tools:
      - name: generate_image
        api_key: env:OPENAI_API_KEY
        base_dir: ./outputs/images          # the image is written here, never outside (.. is refused)
        extra: {model: dall-e-3, size: 1024x1024}

The model passes `prompt`, and optionally `filename` (a .png inside base_dir) and `size`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from typing import Any

from crewq.config.errors import ToolError

from .base import ToolContext
from .files import FileTool, open_file
from .nettool import NetTool

SIZES = ["256x256", "512x512", "1024x1024", "1024x1536", "1536x1024", "1792x1024", "1024x1792"]
MAX_IMAGE_BYTES = 20_000_000


class GenerateImage(NetTool, FileTool):
    name = "generate_image"
    description = "Generate an image from a text prompt and save it as a PNG file; returns the file's path."
    default_base_url = "https://api.openai.com"
    timeout = 120.0  # image models take a while
    parameters = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "maxLength": 4000},
            "filename": {"type": "string", "pattern": r"^[\w][\w .-]*\.png$", "description": "e.g. cover.png"},
            "size": {"type": "string", "enum": SIZES},
        },
        "required": ["prompt"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        key = self.setting(self.spec.api_key, context, "api_key")
        if not key:
            raise ToolError("generate_image needs api_key (an OpenAI key, e.g. env:OPENAI_API_KEY)")
        model = str(self.option("model", context, "dall-e-3"))
        body = {"model": model, "prompt": arguments["prompt"], "n": 1,
                "size": arguments.get("size") or str(self.option("size", context, "1024x1024"))}
        if not model.startswith("gpt-image"):
            body["response_format"] = "b64_json"  # gpt-image models always answer in base64
        data = self.fetch_json("POST", f"{self.base_url(context)}/v1/images/generations", context, json=body,
                               headers={"Authorization": f"Bearer {key}"}, max_bytes=MAX_IMAGE_BYTES)
        try:
            image = base64.b64decode(data["data"][0]["b64_json"], validate=True)
        except (KeyError, IndexError, TypeError, binascii.Error):
            raise ToolError("the Images API answered without a base64 image") from None
        name = arguments.get("filename") or f"image-{int(time.time())}-{_slug(arguments['prompt'])}.png"
        # Written as write_file writes: walked inside base_dir by the kernel (O_NOFOLLOW), no symlink out.
        self.base_dir(context).mkdir(parents=True, exist_ok=True)
        with self.folder(name, context, create=True) as (dir_fd, leaf):
            fd = open_file(leaf, dir_fd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(image)
        target = self.base_dir(context) / name
        revised = data["data"][0].get("revised_prompt")
        return {"path": str(target), "bytes": len(image), "model": model, **({"revised_prompt": revised} if revised else {})}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower())[:30].strip("-") or "image"
