"""What the load-time checks cost on a full-size motion module: the non-finite check and the content hash, beside
the whole ``load_motion_module`` (median of ``--repeat`` runs, the file in the page cache).

    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/load_checks.py \\
        .cache/test-models/animatediff_models/mm_v2_random.safetensors --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))


def median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from pack_import import import_pack

    import_pack()
    import safetensors.torch
    import torch
    from animdiff.motion_module import load_motion_module
    from animdiff.weight_files import check_finite, content_hash

    torch.set_num_threads(args.threads)
    tensors = {k: v.clone() for k, v in safetensors.torch.load_file(args.file).items()}  # in memory, as after reading
    values = sum(t.numel() for t in tensors.values())
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})
    print(f"{args.file.name}: {len(tensors)} tensors, {values / 1e6:.0f}M values ({', '.join(dtypes)}), {args.threads} thread(s)")
    print(f"  non-finite check   {median_ms(lambda: check_finite(tensors, args.file.name), args.repeat):7.0f} ms")
    print(f"  content hash       {median_ms(lambda: content_hash(tensors), args.repeat):7.0f} ms")
    print(f"  load_motion_module {median_ms(lambda: load_motion_module(args.file), args.repeat):7.0f} ms (both included)")


if __name__ == "__main__":
    main()
