#!/bin/bash
# Side by side in ONE xbench run of the team's harness (../shared/bench):
# Prosody, ejabberd, xmppd at a baseline commit and xmppd from a checkout,
# scenarios msg, presence and muc, three repetitions with the server order
# alternating, full scale.  Absolute times drift on a shared machine; one
# run with every server in it is what makes a before/after comparable.
#
#   BASE_TREE=DIR BASE_COMMIT=REV bash benchmarks/xbench/side-by-side.sh CHECKOUT [NAME] [-- EXTRA xbench.run ARGS]
#
#   BASE_TREE the baseline's work tree (git worktree add DIR REV), installed
#             once into /tmp/xmppd-base-venv
#   CHECKOUT  an xmppd checkout (e.g. this one, after a change); it is
#             copied (without .git, venvs, build output) and installed,
#             non-editable, into a fresh /tmp/xmppd-new-venv
#   NAME      results go to /tmp/xbench-results/NAME (default side-YYYYmmdd-HHMMSS)
#   EXTRA     appended to the xbench.run command line; later options win, e.g.
#             -- --scale quick --repeat 1    (the smoke test: 1.5 minutes measured)
#
# Full run (the default): about 15 minutes on the 2-core machine (up to ~20
# when it is busy): ~15 s installing the new venv, ~45 s provisioning 11,050
# accounts into the four servers, ~4.2 min per repetition (per server: msg
# ~27 s, presence ~6-11 s, muc ~30 s, from the run logs of the earlier
# full runs).  The table is /tmp/xbench-results/NAME/summary.md.
#
# Needs root (the harness runs Prosody and ejabberd as their own users and
# resets VmHWM through /proc), Debian's prosody and ejabberd packages, and
# the baseline venv; it creates what is missing of the generator venv
# (/tmp/xbench-venv with uvloop) and of the baseline venv
# (/tmp/xmppd-base-venv from BASE_TREE).  It never
# starts the system services: the harness runs every server from its own
# workdir under /tmp/xbench/servers and stops it after each scenario.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH:-$REPO/../shared/bench}
BASE_TREE=${BASE_TREE:?set BASE_TREE to the baseline work tree (git worktree add DIR REV)}
BASE_COMMIT=${BASE_COMMIT:-$(git -C "$BASE_TREE" rev-parse --short HEAD 2>/dev/null || echo '?')}
BASE_VENV=/tmp/xmppd-base-venv
NEW_VENV=/tmp/xmppd-new-venv
GEN_VENV=/tmp/xbench-venv
PY=${PYTHON:-python3}

die() { echo "bench-side-by-side: $*" >&2; exit 1; }
say() { echo "== $(date -u +%H:%M:%S) $*"; }

[ $# -ge 1 ] || die "usage: $0 CHECKOUT [NAME] [-- EXTRA xbench.run ARGS]"
CHECKOUT=$(cd "$1" && pwd) || die "no such checkout: $1"
shift
NAME="side-$(date -u +%Y%m%d-%H%M%S)"
if [ $# -ge 1 ] && [ "$1" != "--" ]; then NAME=$1; shift; fi
if [ $# -ge 1 ] && [ "$1" = "--" ]; then shift; fi
EXTRA=("$@")
OUT=/tmp/xbench-results/$NAME

[ "$(id -u)" = 0 ] || die "must run as root (see $BENCH/README.md)"
[ -f "$CHECKOUT/setup.cfg" ] && [ -d "$CHECKOUT/xmppd" ] || die "$CHECKOUT is not an xmppd checkout"
[ -f "$CHECKOUT/benchmarks/xbench/adapter.toml" ] || die "$CHECKOUT has no benchmarks/xbench/adapter.toml"
[ -d "$BENCH/xbench" ] || die "no harness at $BENCH"
command -v prosody >/dev/null && command -v ejabberdctl >/dev/null \
    || die "Debian's prosody and ejabberd are needed: apt-get install -y prosody ejabberd"
command -v taskset >/dev/null || die "taskset (util-linux) is needed"
[ ! -e "$OUT/summary.json" ] || die "$OUT already holds a run; give another NAME"

# The generator's interpreter: uvloop makes it cheaper than the servers by 3-10x.
if ! "$GEN_VENV/bin/python" -c 'import uvloop' 2>/dev/null; then
    say "creating $GEN_VENV (uvloop)"
    "$PY" -m venv "$GEN_VENV"
    "$GEN_VENV/bin/pip" install -q uvloop
fi

# Installs a copy of tree $1 (a plain, non-editable install) into a fresh venv
# $2 and checks that every module of the tree's xmppd package imports from
# there, so a package missing from setup.cfg fails here, not in the middle
# of the run.
installTree() {
    local tree=$1 venv=$2 copy
    copy=$(mktemp -d /tmp/xmppd-bench-src.XXXXXX)
    tar -C "$tree" --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=dropin.cache --exclude=./data -cf - . | tar -C "$copy" -xf -
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    (cd /tmp && "$venv/bin/pip" install -q "$copy")
    rm -rf "$copy"
    (cd /tmp && "$venv/bin/python" - "$tree" <<'EOF'
import importlib, os, pkgutil, sys
tree = sys.argv[1]
import xmppd
assert not xmppd.__file__.startswith(tree), "xmppd imported from the checkout, not the venv"
bad = []
for info in pkgutil.walk_packages([os.path.join(tree, "xmppd")], "xmppd."):
    try:
        importlib.import_module(info.name)
    except Exception as e:  # noqa: BLE001 - report every module that is missing
        bad.append("%s: %s" % (info.name, e))
if bad:
    sys.exit("not importable from the installed copy (setup.cfg packages?):\n  " + "\n  ".join(bad))
print("xmppd %s from %s" % (xmppd.__version__, os.path.dirname(xmppd.__file__)))
EOF
    )
    [ -x "$venv/bin/twistd" ] && [ -x "$venv/bin/xmppctl" ] || die "$venv lacks twistd or xmppctl"
    "$venv/bin/twistd" --help | grep -q '^ *xmppd ' || die "$venv: twistd has no xmppd plugin"
}

if ! "$BASE_VENV/bin/python" -c 'import xmppd' 2>/dev/null; then
    [ -d "$BASE_TREE" ] || die "baseline tree $BASE_TREE missing: git worktree add $BASE_TREE REV"
    say "installing the baseline ($BASE_COMMIT) into $BASE_VENV"
    installTree "$BASE_TREE" "$BASE_VENV"
fi
say "installing $CHECKOUT ($(git -C "$CHECKOUT" describe --always --dirty 2>/dev/null || echo '?')) into $NEW_VENV"
installTree "$CHECKOUT" "$NEW_VENV"

# Two xmppd adapters with names of their own: each a copy of its tree's
# benchmarks/xbench adapter and config template, with its own name, port,
# workdir and venv.
ADAPTERS=/tmp/xbench-adapters/$NAME
rm -rf "$ADAPTERS"
makeAdapter() {
    local name=$1 tree=$2 venv=$3 port=$4 dir=$ADAPTERS/$1
    mkdir -p "$dir"
    cp "$tree"/benchmarks/xbench/*.toml "$dir/"
    sed -i -e "s|^name = .*|name = \"$name\"|" \
           -e "s|^description = .*|description = \"$name: xmppd from $tree\"|" \
           -e "s|^port = .*|port = $port|" \
           -e "s|^workdir = .*|workdir = \"/tmp/xbench/servers/$name\"|" \
           -e "s|^xmppd_bin = .*|xmppd_bin = \"$venv/bin\"|" "$dir/adapter.toml"
    "$PY" - "$dir/adapter.toml" "$name" "$venv/bin" <<'EOF'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
assert cfg["name"] == sys.argv[2] and cfg["xmppd_bin"] == sys.argv[3], cfg
EOF
    echo "$dir/adapter.toml"
}
BASE_ADAPTER=$(makeAdapter xmppd-base "$BASE_TREE" "$BASE_VENV" 17222)
NEW_ADAPTER=$(makeAdapter xmppd-new "$CHECKOUT" "$NEW_VENV" 17223)

mkdir -p "$OUT"
say "xbench run -> $OUT"
cd "$BENCH"
set -x
"$PY" -m xbench.run --scale full --repeat 3 \
    --servers "prosody,ejabberd,$BASE_ADAPTER,$NEW_ADAPTER" \
    --scenarios msg,presence,muc \
    --gen-python "$GEN_VENV/bin/python" --out "$OUT" "${EXTRA[@]}"
