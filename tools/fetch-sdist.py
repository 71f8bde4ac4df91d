#!/usr/bin/env python3
"""Download a package's sdist from a PEP 503 simple index and check its sha256.

    fetch-sdist.py NAME VERSION DEST_DIR   -> prints the path of the .tar.gz

The index is $PIP_INDEX_URL or https://pypi.org/simple. The sha256 comes from the
index link (#sha256=...); a download that does not match it is refused. Used by
tools/setup-env.sh to patch NEST's sdist before building it (pip download would
prepare the package's metadata, which for NEST takes minutes)."""
import hashlib
import os
import re
import sys
import urllib.request
from html import unescape
from urllib.parse import urljoin


def main(name: str, version: str, dest: str) -> str:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/"
    page_url = urljoin(index, name.lower().replace("_", "-") + "/")
    html = urllib.request.urlopen(urllib.request.Request(page_url, headers={"Accept": "text/html"}), timeout=60).read()
    fname = f"{name.replace('-', '_')}-{version}.tar.gz"
    links = [unescape(h) for h in re.findall(r'href="([^"]+)"', html.decode())]
    hits = [h for h in links if h.split("#")[0].endswith("/" + fname)]
    if not hits:
        sys.exit(f"fetch-sdist: {fname} not listed at {page_url}")
    url, _, frag = hits[0].partition("#")
    url = urljoin(page_url, url)
    want = dict(p.split("=", 1) for p in frag.split("&") if "=" in p).get("sha256")
    if not want:
        sys.exit(f"fetch-sdist: the index gives no sha256 for {fname}; refusing an unchecked download")
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, fname)
    if os.path.exists(path) and hashlib.sha256(open(path, "rb").read()).hexdigest() == want:
        return path
    tmp = path + ".part"
    with urllib.request.urlopen(url, timeout=300) as r, open(tmp, "wb") as f:
        while chunk := r.read(1 << 20):
            f.write(chunk)
    got = hashlib.sha256(open(tmp, "rb").read()).hexdigest()
    if got != want:
        os.unlink(tmp)
        sys.exit(f"fetch-sdist: sha256 of {fname} is {got}, the index says {want}")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(main(*sys.argv[1:]))
