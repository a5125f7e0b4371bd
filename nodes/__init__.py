"""The pack's graph nodes: thin wrappers over animate/, motion_module/, image_model/, sparsectrl/, sampling/
and training/ (imported when used).

Type ids start with ``AnimDiff`` and never change: shared workflows depend on them.
"""

from . import animatelcm_i2v, context, context_extras, folders, keyframe, lora, motion, noise, pia, prompt, sparsectrl, train

folders.register()

MODULES = [motion, context, context_extras, lora, train, prompt, keyframe, sparsectrl, noise, pia, animatelcm_i2v]
NODE_CLASS_MAPPINGS = {node.__name__: node for module in MODULES for node in module.NODES}
NODE_DISPLAY_NAME_MAPPINGS = {key: name for module in MODULES for key, name in module.DISPLAY_NAMES.items()}
