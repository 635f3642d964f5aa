#!/usr/bin/env bash
# Builds the real servers the discovery tests run against (etcd and Consul)
# from the Go module proxy, into a cache directory outside the repository.
# Each binary is rebuilt only when its module's go.sum (or this script's
# build settings) change. They are built without cgo, so they are static and
# also run in images FROM scratch (the container tests use them that way).
# -mod=readonly: a go.sum that no longer matches its go.mod fails the build
# rather than being rewritten in the work tree.
#
#   tools/build.sh [DIR]     default DIR: ${RQLITED_TOOLS:-$HOME/.cache/rqlited-tools}
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-${RQLITED_TOOLS:-$HOME/.cache/rqlited-tools}}"
mkdir -p "$dir"

build() { # name module-dir package
	local name=$1 mod=$2 pkg=$3
	local stamp sum
	sum=$( (cat "$here/$mod/go.sum"; echo "CGO_ENABLED=0") | sha256sum | cut -d' ' -f1)
	stamp="$dir/$name.stamp"
	if [ -x "$dir/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
		echo "tools: $name is up to date in $dir"
		return
	fi
	echo "tools: building $name from $pkg (Consul takes about 8 minutes on 2 cores)"
	local start=$SECONDS
	(cd "$here/$mod" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" nice go build -o "$dir/$name.tmp" "$pkg")
	mv "$dir/$name.tmp" "$dir/$name"
	echo "$sum" > "$stamp"
	echo "tools: built $name in $((SECONDS - start))s"
}

build etcd etcd go.etcd.io/etcd/server/v3
build consul consul github.com/hashicorp/consul
