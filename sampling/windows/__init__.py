"""Context windows: the plan (:mod:`.plan`: which frames, fused with which weights), the frames a UNet call computes as
other packs read them (:mod:`.params`), and the ComfyUI wrappers evaluating a model in windows (:mod:`.evaluation`)."""
