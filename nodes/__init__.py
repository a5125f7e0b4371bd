"""The pack's graph nodes: thin wrappers over motion_module/, image_model/, sampling/ and training/ (imported when used).

Type ids start with ``AnimDiff`` and never change: shared workflows depend on them.
"""

from . import context, folders, lora, motion, train

folders.register()

NODE_CLASS_MAPPINGS = {node.__name__: node for node in [*motion.NODES, *context.NODES, *lora.NODES, *train.NODES]}
NODE_DISPLAY_NAME_MAPPINGS = {**motion.DISPLAY_NAMES, **context.DISPLAY_NAMES, **lora.DISPLAY_NAMES, **train.DISPLAY_NAMES}
