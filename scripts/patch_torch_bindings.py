#!/usr/bin/env python3
"""Replaces the body of every torch-sys binding that failed to compile against another
libtorch with a throw (used by scripts/build-for-device.sh).

Usage: patch_torch_bindings.py torch_api_generated.cpp compiler-errors.txt VERSION
"""
import re
import sys


def main():
    source_path, errors_path, version = sys.argv[1:4]
    lines = open(source_path).read().split("\n")
    error_lines = {
        int(m.group(1)) - 1
        for m in re.finditer(r"torch_api_generated\.cpp:(\d+):\d+: error", open(errors_path).read())
    }
    if not error_lines:
        sys.exit(f"no binding errors in {errors_path}; the failure is elsewhere")
    patched = []
    for line in sorted(error_lines):
        start = line
        while start > 0 and not re.match(r"^\w.*\batg_\w+\(.*\{$", lines[start]):
            start -= 1
        name = re.search(r"\b(atg_\w+)\(", lines[start]).group(1)
        if name in patched:
            continue
        open_at = next(i for i in range(start, len(lines)) if lines[i] == "  PROTECT(")
        close_at = next(i for i in range(open_at, len(lines)) if lines[i] == "  )")
        lines[open_at + 1:close_at] = [
            f'    throw std::runtime_error("{name} is not available in libtorch {version}");'
        ]
        patched.append(name)
    open(source_path, "w").write("\n".join(lines))
    print(f"patched {len(patched)} bindings: {' '.join(patched)}")


if __name__ == "__main__":
    main()
