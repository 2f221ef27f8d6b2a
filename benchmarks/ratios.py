"""Print each benchmark's speed relative to the slowest in its group.

Usage: python benchmarks/ratios.py RESULTS.json [RESULTS.json ...]
where each file comes from pytest --benchmark-json.  Ratios use the median
time, so one disturbed round does not move them.
"""

import json
import sys
from collections import defaultdict


def load(paths):
    groups = defaultdict(list)
    for path in paths:
        with open(path) as f:
            for bench in json.load(f)["benchmarks"]:
                groups[bench["group"] or ""].append(
                    (bench["name"], bench["stats"]["median"])
                )
    return groups


def main(paths):
    for group, rows in sorted(load(paths).items()):
        slowest = max(median for _, median in rows)
        print(f"\n{group}")
        print(f"  {'benchmark':50} {'median':>12} {'speed-up':>9}")
        for name, median in sorted(rows, key=lambda row: row[1]):
            print(f"  {name:50} {median * 1e3:10.2f}ms {slowest / median:8.1f}x")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
