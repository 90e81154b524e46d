"""Vendor the browser assets GraphiQL and the console need from the npm registry into
``identity/api/static/vendor/`` (no CDN at run time): ``make vendor``.

The files and their versions are those strawberry's GraphiQL page names (its ``unpkg.com``
URLs, each with a Subresource Integrity hash): each package's tarball is fetched from
registry.npmjs.org, the file and the package's licence extracted, and the file's SHA-384
checked against the page's integrity hash, so the page loads the same bytes from here.

The console's libraries (:data:`CONSOLE`) are pinned here; their tarballs are checked against
the SHA-512 integrity the npm registry publishes for that version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

import strawberry

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "identity" / "api" / "static" / "vendor"
PAGE = Path(strawberry.__file__).parent / "static" / "graphiql.html"
ASSET = re.compile(
    r'(?:src|href)="https://unpkg\.com/(?P<package>(?:@[^/]+/)?[^@/]+)@(?P<version>[^/]+)/'
    r'(?P<file>[^"]+)"\s+integrity="(?P<integrity>sha384-[^"]+)"'
)

# the console's libraries: package, version, files (an ES module each, loaded by the console)
CONSOLE = (("cytoscape", "3.35.0", ("dist/cytoscape.esm.min.mjs",)),)


def tarball(package: str, version: str, integrity: str | None = None) -> tarfile.TarFile:
    """The package's tarball; with ``integrity`` (``sha512-...``), checked against it."""
    name = package.split("/")[-1]
    url = f"https://registry.npmjs.org/{package}/-/{name}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    if integrity is not None:
        digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != integrity:
            raise SystemExit(f"{package}@{version}: tarball {digest} != registry's {integrity}")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")


def registry_integrity(package: str, version: str) -> str:
    url = f"https://registry.npmjs.org/{package}/{version}"
    with urllib.request.urlopen(url, timeout=60) as response:
        return str(json.load(response)["dist"]["integrity"])


def vendor_console() -> None:
    for package, version, files in CONSOLE:
        archive = tarball(package, version, registry_integrity(package, version))
        target = VENDOR / f"{package}@{version}"
        for file in files:
            content = archive.extractfile(f"package/{file}")
            if content is None:
                raise SystemExit(f"{package}@{version}: no {file}")
            data = content.read()
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            (target / file).write_bytes(data)
            print(f"{package}@{version}/{file}: {len(data):,} bytes, tarball integrity checked")
        (target / "LICENSE").write_bytes(licence_of(archive, package, version))


def licence_of(archive: tarfile.TarFile, package: str, version: str) -> bytes:
    """The package's licence file; when it ships none, what its package.json declares."""
    for member in archive.getmembers():
        if re.fullmatch(r"package/(LICEN[CS]E|COPYING)(\.\w+)?", member.name, re.IGNORECASE):
            found = archive.extractfile(member)
            if found is not None:
                return found.read()
    manifest = archive.extractfile("package/package.json")
    meta = json.loads(manifest.read()) if manifest is not None else {}
    repository = meta.get("repository")
    if isinstance(repository, dict):
        repository = repository.get("url")
    return (
        f"{package}@{version} ships no licence file; its package.json declares the licence "
        f"{meta.get('license', 'unknown')!r}.\nAuthor: {meta.get('author', 'unknown')}\n"
        f"Repository: {repository or 'unknown'}\n"
    ).encode()


def main() -> int:
    assets = list(ASSET.finditer(PAGE.read_text(encoding="utf-8")))
    if not assets:
        print(f"no unpkg.com asset found in {PAGE}", file=sys.stderr)
        return 1
    for asset in assets:
        package, version, file = asset["package"], asset["version"], asset["file"]
        archive = tarball(package, version)
        content = archive.extractfile(f"package/{file}")
        if content is None:
            print(f"{package}@{version}: no {file}", file=sys.stderr)
            return 1
        data = content.read()
        digest = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
        if digest != asset["integrity"]:
            print(f"{package}@{version}/{file}: {digest} != {asset['integrity']}", file=sys.stderr)
            return 1
        target = VENDOR / f"{package}@{version}"
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        (target / file).write_bytes(data)
        (target / "LICENSE").write_bytes(licence_of(archive, package, version))
        print(f"{package}@{version}/{file}: {len(data):,} bytes, integrity checked")
    vendor_console()
    return 0


if __name__ == "__main__":
    sys.exit(main())
