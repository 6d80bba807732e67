"""schemas.py writes kubeconform's offline schema folder (scripts/setup.sh runs it once).

Kubernetes' own kinds: the JSON schemas PyPI's kubernetes-validate ships (its
v<kube>-local-strict tree), rewritten the way kubeconform loads them: no "$id",
and "$ref"s to "/api/_definitions.json" made relative ("_definitions.json").
Written as <out>/v<kube>-standalone-strict/<kind>-<group>-<version>.json, kubeconform's
default file names.

CRDs (KEDA's ScaledObject, prometheus-operator's ServiceMonitor): each served version's
openAPIV3Schema, made strict (an object with properties admits no others, unless the CRD
says x-kubernetes-preserve-unknown-fields), as <out>/crds/<group>/<kind>_<version>.json.
"""

import argparse
import glob
import json
import os

import kubernetes_validate
import yaml


def strip_ids(node):
    """Drops "$id" and makes "$ref"s relative, in place."""
    if isinstance(node, dict):
        node.pop("$id", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("/api/_definitions.json"):
            node["$ref"] = ref[len("/api/"):]
        for v in node.values():
            strip_ids(v)
    elif isinstance(node, list):
        for v in node:
            strip_ids(v)


def strict(node):
    """Closes every object schema that lists its properties, in place."""
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)


def kube_schemas(kube, out):
    src = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema",
                       "v%s.0-local-strict" % ".".join(kube.split(".")[:2]))
    if not os.path.isdir(src):
        raise SystemExit("schemas.py: kubernetes-validate has no schemas for Kubernetes %s (%s)" % (kube, src))
    dst = os.path.join(out, "v%s-standalone-strict" % kube)
    os.makedirs(dst)
    n = 0
    for path in glob.glob(os.path.join(src, "*.json")):
        with open(path) as f:
            schema = json.load(f)
        strip_ids(schema)
        with open(os.path.join(dst, os.path.basename(path)), "w") as f:
            json.dump(schema, f)
        n += 1
    return n


def crd_schemas(crds, out):
    n = 0
    for path in sorted(glob.glob(os.path.join(crds, "*.yaml"))):
        with open(path) as f:
            crd = yaml.safe_load(f)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
        for v in crd["spec"]["versions"]:
            schema = v["schema"]["openAPIV3Schema"]
            strict(schema)
            dst = os.path.join(out, "crds", group)
            os.makedirs(dst, exist_ok=True)
            with open(os.path.join(dst, "%s_%s.json" % (kind, v["name"])), "w") as f:
                json.dump(schema, f)
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kube", required=True, help="Kubernetes version, e.g. 1.32.13")
    ap.add_argument("--crds", required=True, help="folder of CRD YAML files")
    ap.add_argument("--out", required=True, help="folder to write")
    a = ap.parse_args()
    k = kube_schemas(a.kube, a.out)
    c = crd_schemas(a.crds, a.out)
    with open(os.path.join(a.out, "done"), "w") as f:
        f.write("%d Kubernetes schemas, %d CRD schemas\n" % (k, c))
    print("schemas.py: %d Kubernetes schemas (v%s), %d CRD schemas in %s" % (k, a.kube, c, a.out))


if __name__ == "__main__":
    main()
