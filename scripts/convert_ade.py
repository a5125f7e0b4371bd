"""Convert AnimateDiff-Evolved workflows (UI or API format) into AnimDiff ones.

    python3 scripts/convert_ade.py IN.json... --out DIR [--report FILE.json]

Each converted file goes to DIR under its own name; a summary per file is printed, and ``--report`` writes the
JSON report (a list, one object per input: converted / approximated / unsupported nodes). Exit status: 0 every ADE
node converted, 3 some are unsupported (the files are still written, those nodes left as they were), 2 an input
could not be read (neither format, a cycle, a link to a missing node, not JSON).
Needs only Python 3.10+: no ComfyUI, no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_import import PACK_DIR, load_package  # noqa: E402

load_package("ade_convert", PACK_DIR / "ade_convert")
from ade_convert import ConvertError, convert_file, write_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="ADE workflow files (.json, UI or API format)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the converted files (created if missing)")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    reports, status = [], 0
    for source in args.inputs:
        try:
            report = convert_file(source, args.out)
        except ConvertError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
            continue
        reports.append(report.to_json())
        print(report.summary())
        if not report.complete and status == 0:
            status = 3
    if args.report:
        write_atomic(args.report, json.dumps(reports, indent=2, ensure_ascii=False) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
