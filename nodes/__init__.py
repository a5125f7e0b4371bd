"""The pack's graph nodes: thin wrappers over motion_module/ and sampling/.

Type ids start with ``AnimDiff`` and never change: shared workflows depend on them.
"""

from ..motion_module import folders
from . import context, keyframe, lora, motion, prompt, train

folders.register()

NODE_CLASS_MAPPINGS = {node.__name__: node for node in [*motion.NODES, *context.NODES, *lora.NODES, *train.NODES, *prompt.NODES, *keyframe.NODES]}
NODE_DISPLAY_NAME_MAPPINGS = {**motion.DISPLAY_NAMES, **context.DISPLAY_NAMES, **lora.DISPLAY_NAMES, **train.DISPLAY_NAMES,
                              **prompt.DISPLAY_NAMES, **keyframe.DISPLAY_NAMES}
