"""Lists the test binaries that scripts/test runs a second time on PostgreSQL.

Reads `cargo test --message-format=json --no-run` on stdin and prints one line per wanted
test target: its package directory, a tab, its executable. Why not `cargo test -p ... --test
...` again: selecting fewer targets changes cargo's feature unification (dev-dependencies
count only for the targets built), so that rebuilt much of the dependency tree a second
time, ~10 minutes and ~1.5 GB of target/; a CI run once ran out of disk there. The binaries
built by the workspace run are the very ones wanted, so they are run directly.
"""

import json
import os
import sys

WANTED = {
    "peerchat-server": {"auth", "friends", "hostile", "robustness", "traversal"},
    "peerchat-conformance": {"suite"},
}

found = []
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    target = msg["target"]
    if "test" not in target["kind"]:
        continue
    package_dir = os.path.dirname(msg["manifest_path"])
    # `path+file:///dir#name@version`, or `path+file:///name#version` when the directory
    # has the package's name.
    fragment = msg["package_id"].rpartition("#")[2]
    package = fragment.split("@")[0] if "@" in fragment else os.path.basename(package_dir)
    if target["name"] in WANTED.get(package, ()):
        found.append((package_dir, msg["executable"], f"{package}/{target['name']}"))

want = sum(len(t) for t in WANTED.values())
if len(found) != want:
    names = sorted(f for _, _, f in found)
    sys.exit(f"pg-phase-binaries: expected {want} test binaries, found {names}")
for package_dir, exe, _ in found:
    print(f"{package_dir}\t{exe}")
