"""Model folders registered with ComfyUI's ``folder_paths``, and safe name resolution.

``animatediff_models`` (motion modules, domain adapters) and ``animatediff_motion_lora``
live under ComfyUI's models folder and this pack's own ``models/`` and ``motion_lora/``;
``extra_model_paths.yaml`` entries with these names are kept (ComfyUI reads the yaml first).
"""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from ..errors import FileError
from ..weight_files import EXTENSIONS, TEMPORARY

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


def check_name(folder: str, name: str, source: str | None = None) -> None:
    """Refuse names that could leave ``folder``'s directories (absolute, drive-relative, ``..``, or no file name) or
    that no file system takes (NUL)."""
    source = source or shown(name)
    if "\0" in name:
        raise FileError(source, "a file name cannot contain a NUL character")
    pure = Path(name)
    if not name.strip() or name.endswith(("/", "\\")) or pure.is_absolute() or pure.drive or ".." in pure.parts:
        raise FileError(source, f"not a file name inside the {folder} folders")


def output_path(folder: str, name: str, suffix: str, *, input_name: str = "name", beside: tuple[str, ...] = ()
                ) -> tuple[Path, str]:
    """Where a file the pack writes goes: ``name + suffix`` in ``folder``'s first directory (subfolders with ``/``), and
    the name ComfyUI will list it under. ``name`` may end in ``suffix`` (taken off once). Checked before any work, the
    error naming ``input_name``: no NUL or backslash, inside the folder, and every part within the file system's name
    length with the longest suffix the pack adds (``suffix`` or one of the files written ``beside`` it, plus ``.tmp``
    while it is written)."""
    source = f"{input_name} {shown(name)}"
    if "\\" in name:
        raise FileError(source, "backslashes are not allowed in a file name; use / for a subfolder")
    if name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
        name = name[: -len(suffix)]
    check_name(folder, name, source)
    base = Path(folder_paths.get_folder_paths(folder)[0])
    limit = name_max(base)
    longest = max((suffix, *beside), key=len) + TEMPORARY
    parts = name.split("/")
    if any(len(os.fsencode(p)) > limit for p in parts[:-1]) or len(os.fsencode(parts[-1] + longest)) > limit:
        room = limit - len(os.fsencode(longest))
        raise FileError(source, f"too long: with the suffix {longest!r} the pack adds, each part of the name must fit the "
                                f"file system's limit of {limit} bytes; use at most {room} bytes for the file name")
    path = base / f"{name}{suffix}"
    if not path.resolve().is_relative_to(base.resolve()):
        raise FileError(source, f"not a file name inside the {folder} folders")
    return path, path.relative_to(base).as_posix()


def name_max(directory: Path) -> int:
    """The longest file name (bytes) the file system of ``directory`` (or its nearest existing parent) takes."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows): NTFS and most others take 255
        return 255


def shown(name: str, limit: int = 60) -> str:
    """``name`` for a message: NUL written as ``\\0``, long names shortened."""
    name = name.replace("\0", "\\0")
    return name if len(name) <= limit else f"{name[:limit]}… ({len(name)} characters)"
