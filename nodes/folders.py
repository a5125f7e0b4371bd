"""Model folders registered with ComfyUI's ``folder_paths``, and safe name resolution.

``animatediff_models`` (motion modules, domain adapters) and ``animatediff_motion_lora``
live under ComfyUI's models folder and this pack's own ``models/`` and ``motion_lora/``;
``extra_model_paths.yaml`` entries with these names are kept (ComfyUI reads the yaml first).
"""

from __future__ import annotations

from pathlib import Path

import folder_paths

from ..errors import FileError
from ..motion_module.checkpoint import EXTENSIONS

PACK_DIR = Path(__file__).resolve().parent.parent
MOTION_MODELS = "animatediff_models"
MOTION_LORAS = "animatediff_motion_lora"
DEFAULTS = {
    MOTION_MODELS: [Path(folder_paths.models_dir) / MOTION_MODELS, PACK_DIR / "models"],
    MOTION_LORAS: [Path(folder_paths.models_dir) / MOTION_LORAS, PACK_DIR / "motion_lora"],
}


def register() -> None:
    """Add our folders (idempotent) and make sure they list weight files."""
    for name, paths in DEFAULTS.items():
        for path in paths:
            folder_paths.add_model_folder_path(name, str(path))
        folders, extensions = folder_paths.folder_names_and_paths[name]
        folder_paths.folder_names_and_paths[name] = (folders, set(extensions) | EXTENSIONS)


def resolve(folder: str, name: str) -> Path:
    """The file ``name`` inside one of ``folder``'s directories; refuses anything that escapes them."""
    check_name(folder, name)
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise FileError(name, f"not found in the {folder} folders ({searched})")
    return Path(path)


def check_name(folder: str, name: str) -> None:
    """Refuse names that could leave ``folder``'s directories (absolute, drive-relative, ``..``, or no file name)."""
    pure = Path(name)
    if not name.strip() or name.endswith(("/", "\\")) or pure.is_absolute() or pure.drive or ".." in pure.parts:
        raise FileError(name, f"not a file name inside the {folder} folders")


def output_path(folder: str, name: str, suffix: str) -> tuple[Path, str]:
    """Where a file the pack writes goes: ``name + suffix`` in ``folder``'s first directory (subfolders allowed),
    and the name ComfyUI will list it under."""
    check_name(folder, name)
    base = Path(folder_paths.get_folder_paths(folder)[0])
    path = base / f"{name}{suffix}"
    if not path.resolve().is_relative_to(base.resolve()):
        raise FileError(name, f"not a file name inside the {folder} folders")
    return path, path.relative_to(base).as_posix()
