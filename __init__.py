"""ComfyUI-AnimDiff: AnimateDiff motion modules for any Stable Diffusion checkpoint in ComfyUI."""

from . import routes
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"  # the frontend's AnimateDiff-Evolved converter (web/ade_convert.js)
routes.register()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
