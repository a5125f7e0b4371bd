"""The pack loads as ComfyUI loads it, and ComfyUI's training-only internals are not needed for that."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from pack_import import COMFYUI_DIR, PACK_DIR

# Run in a fresh interpreter: ComfyUI's training internals made unavailable there only, then the pack loaded by
# ComfyUI's own custom-node loader. Prints what it registered and what the import pulled in.
LOAD_WITHOUT_TRAINING_INTERNALS = textwrap.dedent("""
    import asyncio, importlib.abc, json, sys
    sys.path.insert(0, sys.argv[1])

    class NoTrainingInternals(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "comfy_extras.nodes_train":
                raise ImportError(f"{name} is unavailable in this test")
            return None

    sys.meta_path.insert(0, NoTrainingInternals())
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    import comfy.weight_adapter.lora
    del comfy.weight_adapter.lora.LoraDiff  # as if a newer ComfyUI had renamed it
    import nodes

    loaded = asyncio.run(nodes.load_custom_node(sys.argv[2]))
    package = sys.argv[2].replace(".", "_x_")
    imported = sorted(m.removeprefix(package) for m in sys.modules if m.startswith(package + "."))
    ours = {name: cls for name, cls in nodes.NODE_CLASS_MAPPINGS.items() if name.startswith("AnimDiff")}
    listed = {name: sorted(cls.INPUT_TYPES()["required"]) for name, cls in ours.items()}  # what /object_info reads
    print(json.dumps({"loaded": loaded, "imported": imported, "listed": listed,
                      "nodes_train": "comfy_extras.nodes_train" in sys.modules}))
""")


def test_generation_nodes_load_without_comfyuis_training_internals():
    pack = COMFYUI_DIR / "custom_nodes" / PACK_DIR.name
    if not pack.exists():
        pack = PACK_DIR
    run = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TRAINING_INTERNALS, str(COMFYUI_DIR), str(pack)],
                         capture_output=True, text=True, timeout=300, cwd=COMFYUI_DIR)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["loaded"] is True
    assert not [m for m in result["imported"] if m.startswith(".training")]  # training is imported only when used
    assert not result["nodes_train"]
    from animdiff.nodes import NODE_CLASS_MAPPINGS

    assert set(result["listed"]) == set(NODE_CLASS_MAPPINGS)  # every node of the pack, the training node included
    assert "lora_name" in result["listed"]["AnimDiffTrainMotionLoRA"]  # listing it needs no training internals either
