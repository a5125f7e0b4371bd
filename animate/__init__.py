"""The assembly of an animated model: a ComfyUI MODEL with a motion module in it, its strength over frames, regions
and sampling progress, and the context windows it samples in.

This layer joins the two below it: :mod:`..motion_module` (the network, its files, putting it into a UNet for one
call) and :mod:`..sampling` (windows, noise, prompts). Neither of those imports it; nodes and training do.
"""
