#!/usr/bin/env python3
"""Print a Markdown field table for one kind from crds/credsync.yaml (the generated CRDs).

Used to write the field sections of docs/resources/*.md; tests/docs.rs checks that every field
of every kind is named on its page, so a new field without docs fails the tests.
    python3 hack/crd-fields.py CrmUserCredential
"""
import sys

import yaml


def rows(schema, path, required):
    for name, sub in (schema.get("properties") or {}).items():
        p = f"{path}.{name}" if path else name
        typ = sub.get("type", "object")
        if typ == "array":
            item = sub.get("items", {})
            typ = f"[]{item.get('type', 'object')}"
        if "enum" in sub:
            typ = " \\| ".join(str(e) for e in sub["enum"])
        desc = " ".join((sub.get("description") or "").split()).replace("|", "\\|")
        yield p, typ, "yes" if name in required else "", desc
        if sub.get("type") == "array":
            sub = sub.get("items", {})
        yield from rows(sub, p, set(sub.get("required") or []))


def main():
    kind = sys.argv[1]
    for doc in yaml.safe_load_all(open("crds/credsync.yaml")):
        if doc["spec"]["names"]["kind"] != kind:
            continue
        schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for top in ("spec", "status"):
            sub = schema["properties"].get(top)
            if not sub:
                continue
            print(f"\n### `{top}`\n")
            print("| field | type | required | meaning |")
            print("|---|---|---|---|")
            for p, typ, req, desc in rows(sub, top, set(sub.get("required") or [])):
                print(f"| `{p}` | {typ} | {req} | {desc} |")


main()
