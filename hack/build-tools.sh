#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes), etcd (go.etcd.io),
# helm and (target eso, for the benchmark) the External Secrets Operator from their official Go
# modules into a cache folder, once. kube-controller-manager is only for
# tests that need namespace deletion (namespace controller, garbage collector) to finish. Prints the folder (use it as KUBEBUILDER_ASSETS).
# Nothing is downloaded but Go modules from the module proxy.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"   # the etcd that k8s.io/kubernetes ${K8S_VERSION} requires
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
ESO_VERSION="${ESO_VERSION:-v0.16.2}"   # External Secrets Operator, the benchmark's peer (docs/benchmarks.md)
CACHE="${CREDSYNC_CACHE:-$HOME/.cache/credsync}"
BIN="$CACHE/bin/k8s-${K8S_VERSION}"
SRC="$CACHE/src"

command -v go >/dev/null || { echo "build-tools: Go is required (https://go.dev) and was not found" >&2; exit 1; }
mkdir -p "$BIN" "$SRC"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

log() { echo "build-tools: $*" >&2; }

build_kube() {
  [[ -x "$BIN/kube-apiserver" && -x "$BIN/kubectl" ]] && return
  local dir="$SRC/kube-$K8S_VERSION"
  mkdir -p "$dir"
  log "building kube-apiserver and kubectl $K8S_VERSION (first run only, several minutes)"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >"$dir/download.json"
  local gomod staging
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' "$dir/download.json")
  # k8s.io/kubernetes points its staging modules at ./staging; outside its tree they must be the
  # published k8s.io/<name> v0.x release of the same minor/patch.
  staging=$(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$gomod")
  local v0="v0.${K8S_VERSION#v1.}"
  {
    echo "module credsync.local/kube-tools"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $v0"; done
    echo ")"
  } >"$dir/go.mod"
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' >"$dir/tools.go"
  sed -i 's|_ "k8s.io/kubernetes/cmd/kubectl"|_ "k8s.io/kubectl/pkg/cmd"|' "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   cd "$dir" && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
   cd "$dir" && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl)
}

# Same module, staging replacements and ldflags as build_kube; a separate step so that caches
# built before it existed only gain the one binary.
build_controller_manager() {
  [[ -x "$BIN/kube-controller-manager" ]] && return
  build_kube
  local dir="$SRC/kube-$K8S_VERSION"
  log "building kube-controller-manager $K8S_VERSION (first run only, several minutes)"
  grep -q 'cmd/kube-controller-manager/app' "$dir/tools.go" ||
    sed -i 's|^)$|\t_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"\n)|' "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   # Built beside the target and renamed, so a concurrent reader never sees half a binary.
   cd "$dir" && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" -o "$BIN/.kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager
   mv "$BIN/.kube-controller-manager.tmp" "$BIN/kube-controller-manager")
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return
  local dir="$SRC/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  log "building etcd $ETCD_VERSION"
  printf 'module credsync.local/etcd-tools\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$dir/go.mod"
  printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' >"$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  [[ -x "$BIN/helm" ]] && return
  local dir="$SRC/helm-$HELM_VERSION"
  mkdir -p "$dir"
  log "building helm $HELM_VERSION"
  printf 'module credsync.local/helm-tools\n\ngo 1.26\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" >"$dir/go.mod"
  printf 'package tools\n\nimport _ "helm.sh/helm/v3/pkg/action"\n' >"$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   cd "$dir" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$BIN/helm" helm.sh/helm/v3/cmd/helm)
}

# The External Secrets Operator controller from its official module (its root package is the
# controller's main), for the benchmark's peer phase. The binary and the module's CRD folder are
# both cached: the benchmark installs the CRDs from "$CACHE/bin/eso-$ESO_VERSION-crds".
build_eso() {
  local bin="$CACHE/bin/eso-$ESO_VERSION" crds="$CACHE/bin/eso-$ESO_VERSION-crds"
  [[ -x "$bin" && -d "$crds" ]] && return
  local dir="$SRC/eso-$ESO_VERSION" here
  here="$(cd "$(dirname "$0")" && pwd)"
  mkdir -p "$dir"
  log "building external-secrets $ESO_VERSION (first run only, 10-20 minutes)"
  # hack/eso holds the go.mod (require + the module's own replace lines, which a dependent
  # module must repeat) and a tools.go naming the main package.
  sed "s/@ESO_VERSION@/$ESO_VERSION/" "$here/eso/go.mod.in" >"$dir/go.mod"
  cp "$here/eso/tools.go" "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" github.com/external-secrets/external-secrets
   mv "$bin.tmp" "$bin")
  local moddir
  moddir=$(cd "$dir" && go list -m -f '{{.Dir}}' github.com/external-secrets/external-secrets)
  rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
  # All of them: its controllers watch generators and cluster stores too, and fail without them.
  cp "$moddir"/config/crds/bases/*.yaml "$crds.tmp/" && rm -f "$crds.tmp/kustomization.yaml"
  chmod -R u+w "$crds.tmp" && mv "$crds.tmp" "$crds"
}

what="${1:-all}"
case "$what" in
  all) build_etcd; build_kube; build_controller_manager; build_helm ;;
  control-plane) build_etcd; build_kube; build_controller_manager ;;
  helm) build_helm ;;
  eso) build_eso; echo "$CACHE/bin/eso-$ESO_VERSION"; exit 0 ;;
  *) echo "usage: $0 [all|control-plane|helm|eso]" >&2; exit 2 ;;
esac
echo "$BIN"
