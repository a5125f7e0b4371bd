"""Test set-up: the real ComfyUI from the bootstrap, and this pack imported as package ``animdiff``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from pack_import import import_client, import_pack  # noqa: E402

import_pack()
import_client()

import pytest  # noqa: E402
import torch  # noqa: E402
import weights  # noqa: E402
from servers import comfy_test_server  # noqa: E402
from weights import checkpoint_path  # noqa: E402

# Tests that use one of these fixtures (directly or through another fixture) are in the full tier only.
FULL_TIER_FIXTURES = {"server", "cached_server", "sd15", "v3"}


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help="the fast tier: no ComfyUI server and no full-size test models (reduced-width maths, parsing, contracts)")
    parser.addoption("--slow", action="store_true",
                     help="also the slow tests (@pytest.mark.slow: half a minute or more each on two cores); .ci/run runs them")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: needs a ComfyUI server or the full-size test models (left out by --fast)")
    config.addinivalue_line("markers", "slow: half a minute or more on two cores (left out unless --slow; .ci/run runs them)")
    weights.FAST_TIER = config.getoption("--fast")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if FULL_TIER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.full)
    left_out = {"full"} if config.getoption("--fast") else set()
    left_out |= set() if config.getoption("--slow") else {"slow"}
    kept, deselected = [], []
    for item in items:
        (deselected if any(item.get_closest_marker(name) for name in left_out) else kept).append(item)
    if deselected:
        items[:] = kept
        config.hook.pytest_deselected(items=deselected)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real headless ComfyUI with this pack, the random test models and no result cache."""
    with comfy_test_server(tmp_path_factory.mktemp("comfy")) as running:
        RUNNING.append(running)
        yield running
        RUNNING.clear()


@pytest.fixture(scope="module")
def cached_server(tmp_path_factory):
    """A second server with ComfyUI's result cache on, as users run it, for one test module: many prompts that share
    their loaders (cases refused by one node each) load the models once."""
    with comfy_test_server(tmp_path_factory.mktemp("comfy_cached"), cache=True) as running:
        yield running


RUNNING: list = []  # the session's server, once a test has started it


@pytest.fixture(scope="module", autouse=True)
def server_models_unloaded_after_each_module():
    """After each test module, the server unloads its models (ComfyUI's ``/free``): with ``--cache-none`` every prompt
    loads its models anew, and a CPU server otherwise keeps them all until memory runs out (two cores, 24 GiB)."""
    yield
    if RUNNING:
        import json
        import time
        import urllib.request

        request = urllib.request.Request(RUNNING[0].url + "/free", data=json.dumps({"unload_models": True, "free_memory": True}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).close()
        time.sleep(1)  # the prompt worker wakes on the flag and unloads before it takes the next prompt


@pytest.fixture(scope="session")
def sd15():
    """(model, clip, vae) of the random full-size SD1.5 checkpoint, loaded in-process by ComfyUI."""
    import comfy.sd

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(checkpoint_path()), output_vae=True, output_clip=True)[:3]
    return model, clip, vae


@pytest.fixture(scope="session")
def conds(sd15):
    """(positive, negative) conditioning from the random checkpoint's CLIP."""
    import nodes

    clip = sd15[1]
    return nodes.CLIPTextEncode().encode(clip, "a cat walking")[0], nodes.CLIPTextEncode().encode(clip, "blurry")[0]


@pytest.fixture(scope="session")
def v3():
    """The random full-size v3 motion module, loaded through the pack's loader."""
    from animdiff.motion_module import load_motion_module
    from weights import motion_module_path

    return load_motion_module(motion_module_path("mm_v3_random.safetensors"))


@pytest.fixture(scope="module")
def one_thread():
    """One CPU thread: the machine is shared, and two contended threads make these small models several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
