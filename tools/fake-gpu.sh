#!/bin/sh
# fake-gpu.sh: real AMD GPU compilers without a GPU (Mesa's RADV on a no-op DRM shim).
#
#   sh tools/fake-gpu.sh fetch              download and unpack (idempotent; no network when done)
#   sh tools/fake-gpu.sh env GPU            print the environment as export lines (for eval)
#   sh tools/fake-gpu.sh run GPU CMD [ARG..] run CMD on the fake GPU
#   sh tools/fake-gpu.sh check              exit 0 when fetched
#
# GPU is an AMDGPU_GPU_ID the shim knows: navi31, navi21, navi10, polaris10, renoir, vangogh,
# raven, vega10, gfx1150, ... Everything up to and including queue submission is real (device
# probe, memory heaps, staging uploads, pipeline compilation by ACO with the real specialization
# constants, recording); submissions are no-ops, so the numbers a program reads back are garbage.
#
# fetch: bookworm-backports' mesa-vulkan-drivers (Mesa 25.0.x) and mesa-drm-shim with
# backports' libdrm2 and libdrm-amdgpu1 (RADV 25 needs libdrm >= 2.4.121), fetched with
# `apt-get download` through a private apt configuration (nothing is installed, the system Mesa
# stays) and unpacked with `dpkg-deb -x` into $NIBBLE_FAKE_GPU_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/nibble-radv; CI may keep that folder between runs). About
# 12 MB downloaded, 50 MB unpacked. The archive host is the one of the machine's own apt sources
# (NIBBLE_DEBIAN_MIRROR overrides it).
set -eu

DIR=${NIBBLE_FAKE_GPU_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nibble-radv}
ROOT=$DIR/root
LIB=$ROOT/usr/lib/x86_64-linux-gnu
ICD=$DIR/radeon_icd.json
PKGS="mesa-vulkan-drivers mesa-drm-shim libdrm2 libdrm-amdgpu1"

die() {
    echo "fake-gpu: $*" >&2
    exit 1
}

fetched() { [ -f "$DIR/stamp" ] && [ -f "$ICD" ] && [ -f "$LIB/libamdgpu_noop_drm_shim.so" ]; }

# The Debian archive the machine's apt already uses (deb822 or one-line sources), else the
# default mirror.
mirror() {
    if [ -n "${NIBBLE_DEBIAN_MIRROR:-}" ]; then echo "$NIBBLE_DEBIAN_MIRROR"; return; fi
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n 's#^URIs:[[:space:]]*\([^[:space:]]*/debian\)/*$#\1#p' | head -n 1)
    one='s#^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?'  # "deb [options] URI suite ..."
    one=$one'\([^[:space:]]*/debian\)/*[[:space:]].*#\2#p'
    [ -n "$m" ] || m=$(sed -n "$one" /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${m:-http://deb.debian.org/debian}"
}

fetch() {
    if fetched; then
        echo "fake-gpu: $(cat "$DIR/stamp") in $DIR"
        return 0
    fi
    [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || die "fetch needs an amd64 Debian"
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        die "needs apt-get and dpkg-deb"
    fi
    KEY=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$KEY" ] || die "no $KEY (package debian-archive-keyring)"
    T=$DIR/apt
    rm -rf "$T" "$ROOT"
    mkdir -p "$T/lists/partial" "$T/cache/archives/partial" "$T/debs" "$ROOT"
    echo "deb [signed-by=$KEY] $(mirror) bookworm-backports main" >"$T/sources.list"
    : >"$T/status"
    A="-o Dir::Etc::sourcelist=$T/sources.list -o Dir::Etc::sourceparts=- \
       -o Dir::State::lists=$T/lists -o Dir::State::status=$T/status -o Dir::Cache=$T/cache \
       -o APT::Architecture=amd64 -o APT::Sandbox::User=root -o Debug::NoLocking=1"
    # shellcheck disable=SC2086
    apt-get $A -qq update >"$T/log" 2>&1
    # apt-get update succeeds with only warnings when the archive cannot be reached
    ls "$T"/lists/*_Packages* >/dev/null 2>&1 ||
        die "apt-get update of bookworm-backports got no package list ($(tail -n 1 "$T/log"))"
    spec=""
    for p in $PKGS; do spec="$spec $p/bookworm-backports"; done
    # shellcheck disable=SC2086
    (cd "$T/debs" && apt-get $A -qq download $spec) >>"$T/log" 2>&1 ||
        die "apt-get download failed ($(tail -n 1 "$T/log"))"
    for f in "$T"/debs/*.deb; do dpkg-deb -x "$f" "$ROOT"; done
    if [ ! -f "$LIB/libvulkan_radeon.so" ] || [ ! -f "$LIB/libamdgpu_noop_drm_shim.so" ]; then
        die "the packages lack RADV or the amdgpu DRM shim"
    fi
    sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$LIB/libvulkan_radeon.so\"#" \
        "$ROOT/usr/share/vulkan/icd.d/radeon_icd.json" >"$ICD"
    ver=$(dpkg-deb -f "$T"/debs/mesa-vulkan-drivers_*.deb Version)
    rm -rf "$T"
    echo "mesa-vulkan-drivers $ver" >"$DIR/stamp"
    echo "fake-gpu: mesa-vulkan-drivers $ver unpacked in $DIR"
}

# The variables of a run on fake GPU $1, one "NAME=value" per line.
vars() {
    fetched || die "not fetched yet (sh tools/fake-gpu.sh fetch)"
    echo "LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "LD_PRELOAD=$LIB/libamdgpu_noop_drm_shim.so"
    echo "AMDGPU_GPU_ID=$1"
    echo "VK_ICD_FILENAMES=$ICD"
    echo "VK_DRIVER_FILES=$ICD"
    echo "XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}"
    # submissions are no-ops on the shim, so the load-time self-test would see every result wrong
    echo "NIBBLE_SELFTEST=0"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
fetch) fetch ;;
check) fetched ;;
env)
    [ $# -eq 1 ] || die "usage: fake-gpu.sh env GPU"
    vars "$1" | sed "s/^\([A-Z_]*\)=\(.*\)$/export \1='\2'/"
    ;;
run)
    [ $# -ge 2 ] || die "usage: fake-gpu.sh run GPU CMD [ARG...]"
    gpu=$1
    shift
    v=$(vars "$gpu") || exit 1
    IFS='
'
    # shellcheck disable=SC2086
    exec env $v "$@"
    ;;
*)
    echo "usage: sh tools/fake-gpu.sh fetch | check | env GPU | run GPU CMD [ARG...]" >&2
    exit 2
    ;;
esac
