#!/usr/bin/env bash
# arm64 without an arm64 machine: a cross build with Debian's gcc-aarch64-linux-gnu, run under
# qemu-aarch64-static on arm64 lavapipe with the arm64 validation layer.
#
#   tools/arm64.sh fetch     arm64 Debian packages (Vulkan loader, lavapipe, validation layer,
#                            cmocka and their run-time dependencies) downloaded with a private apt
#                            configuration and unpacked with dpkg-deb -x into $NIBBLE_ARM64_CACHE
#                            (default ${XDG_CACHE_HOME:-~/.cache}/nibble-arm64; about 50 MB
#                            downloaded, 250 MB unpacked); nothing is installed for arm64. The
#                            archive is NIBBLE_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#   tools/arm64.sh build     configure and build $NIBBLE_ARM64_BUILD (default build-arm64) with
#                            cmake/aarch64-linux-gnu.cmake
#   tools/arm64.sh test [R]  the CI subset of the tests (or the ctest regex R) under the emulator
#   tools/arm64.sh nibble ARGS...   the arm64 CLI under the emulator (e.g. `nibble run -p "..."`)
#   tools/arm64.sh portable  checks that engine/, host/ (but platform.c) and tools/ include only
#                            ISO C11 and Vulkan headers, so they build for Android (the optional
#                            serve and shader_rt files are left out of Android builds)
#   tools/arm64.sh adreno    fake Adreno GPUs: bookworm-backports' arm64 Mesa (turnip, Adreno's
#                            real compiler ir3) on freedreno's no-op DRM shim, FD_GPU_ID in
#                            $NIBBLE_ADRENO_IDS (default 618 740 750): `nibble info --pipelines`
#                            on the default model (every pipeline built, with its statistics) and
#                            `nibble run` (on the first id) with validation on, failing on a
#                            validation message, a pipeline that does not build or one that
#                            spills registers (turnip's "STP Count"); the submissions do nothing,
#                            so the text means nothing and the self-test is off. Fetches its own
#                            sysroot ($CACHE/sysroot-bp, about 55 MB) on first use
#                            Then panvk (Mali) the same way (`tools/arm64.sh panvk`)
#   tools/arm64.sh panvk     fake Mali GPUs: the same Mesa's panvk on panfrost's no-op DRM shim,
#                            PAN_GPU_ID in $NIBBLE_PANVK_IDS (default 0xa867, Mali-G610; panvk
#                            wants PAN_I_WANT_A_BROKEN_VULKAN_DRIVER=1): `nibble run` on the
#                            default model with validation on and an empty pipeline cache, every
#                            pipeline compiled by Mali's compiler (its BIFROST_MESA_DEBUG=shaderdb
#                            line counted), failing on a validation message, a pipeline that does
#                            not build or more spilling pipelines than $NIBBLE_PANVK_KNOWN_SPILLS
#                            (panvk offers no pipeline statistics, so spills are told by count)
#   tools/arm64.sh ci        portable, fetch, build, test (.ci/arm64 adds the text comparison)
#
# The host needs gcc-aarch64-linux-gnu and qemu-user-static (.ci/setup installs them) besides the
# usual build packages (glslc runs on the host). Bookworm's own arm64 Mesa is 22.3 (LLVM 15): its
# lavapipe cannot compile some shader constructs, which host/vkx_quirks.c turns off on it.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${NIBBLE_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nibble-arm64}
MIRROR=${NIBBLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILD=${NIBBLE_ARM64_BUILD:-build-arm64}
SYSROOT=$CACHE/sysroot
SYSROOT_BP=$CACHE/sysroot-bp
ADRENO_IDS=${NIBBLE_ADRENO_IDS:-618 740 750}
# Spills found and not yet mended (ID:PIPELINE): reported, not failed. None: Adreno 618's 2-, 4-
# and 8-token Q4_0 decode matvecs spilled (8, 97 and 394 private stores; 740 and 750, with the
# same Vulkan limits, none) until the quirk adreno618-matvec-regs (host/vkx_quirks.c) gave it
# 1-row matvecs of at most 2 tokens.
ADRENO_KNOWN_SPILLS=${NIBBLE_ADRENO_KNOWN_SPILLS-}
PANVK_IDS=${NIBBLE_PANVK_IDS:-0xa867}
# How many pipelines may spill on panvk before the stage fails. Mali-G610 (Mesa 25.0.7; the quirk
# panvk-subgroup-reduce turns subgroups and "wide" matvecs off), spill stores in shaderdb's
# "spills:fills": the 2-token Q4_0 decode matvec (9; 12 with "wide", and the 4- and 8-token ones
# 35 and 39) and both attention pipelines of head_dim <= 128 (116 each); the other 14 of the
# run's 17 none. Mali has 64 registers a thread.
PANVK_KNOWN_SPILLS=${NIBBLE_PANVK_KNOWN_SPILLS:-3}
SUITE=${NIBBLE_ARM64_SUITE:-bookworm}
# What the tests need at run time; apt resolves the rest. mesa-vulkan-drivers' python3 dependency
# (for a script nibble never runs) and what only python needs are left out.
PKGS=(libc6 libvulkan1 libcmocka0 libcmocka-dev mesa-vulkan-drivers vulkan-validationlayers)
SKIP='^(python3.*|libpython3.*|dpkg|tar|media-types|readline-common|libreadline8|libsqlite3-0|libdb5\.3|libncursesw6|libkrb5-3|libkrb5support0|libk5crypto3|libgssapi-krb5-2|libkeyutils1|libcom-err2|libtirpc.*|libnsl2|libssl3|libcrypt1|libuuid1)$'
# The tests the CI stage runs under the emulator, besides test_forward's goldens (README: cost).
CI_TESTS=${NIBBLE_ARM64_TESTS:-'^(test_host|test_cli_info|test_quirks|test_op_misc|test_op_sample|test_op_attn)$'}

# fetch [bp]: the Debian 12 sysroot, or (bp) bookworm-backports' Mesa with the DRM shims in
# $CACHE/sysroot-bp (its own apt state in $CACHE/apt-bp).
fetch() {
    local apt=$CACHE/apt suite=$SUITE target=() pkgs=("${PKGS[@]}") sysroot=$SYSROOT
    if [ "${1:-}" = bp ]; then
        apt=$CACHE/apt-bp suite=bookworm target=(-t bookworm-backports) sysroot=$SYSROOT_BP
        pkgs=(libc6 libvulkan1 mesa-vulkan-drivers mesa-drm-shim vulkan-validationlayers)
    fi
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc/apt.conf.d" \
             "$apt/etc/preferences.d" "$CACHE/debs"
    [ -f "$apt/status" ] || : > "$apt/status"
    local key=/usr/share/keyrings/debian-archive-keyring.gpg
    {
        echo "deb [arch=arm64 signed-by=$key] $MIRROR $suite main"
        if [ "$suite" = bookworm ]; then
            echo "deb [arch=arm64 signed-by=$key] $MIRROR bookworm-updates main"
            echo "deb [arch=arm64 signed-by=$key] ${MIRROR%/debian}/debian-security bookworm-security main"
        fi
        if [ ${#target[@]} -gt 0 ]; then
            echo "deb [arch=arm64 signed-by=$key] $MIRROR bookworm-backports main"
        fi
    } > "$apt/sources.list"
    cat > "$apt/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
Acquire::Languages "none";
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt/cache";
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/none";
Dir::Etc::Parts "$apt/etc/apt.conf.d";
Dir::Etc::Preferences "$apt/etc/preferences";
Dir::Etc::PreferencesParts "$apt/etc/preferences.d";
EOF
    export APT_CONFIG=$apt/apt.conf
    apt-get update -qq
    # The closure of PKGS as apt would install it on an empty arm64 system, name=version.
    local want
    want=$(apt-get install -s -qq "${target[@]}" "${pkgs[@]}" | awk '/^Inst /{v=$3; gsub(/[()\[\]]/,"",v); print $2"="v}' |
           awk -F= -v skip="$SKIP" '$1 !~ skip' | sort)
    if [ -f "$sysroot/.packages" ] && [ "$(cat "$sysroot/.packages")" = "$want" ]; then
        echo "arm64: sysroot up to date ($(echo "$want" | wc -l) packages in $sysroot)"
        return
    fi
    (cd "$CACHE/debs" && apt-get download -qq $want)
    rm -rf "$sysroot.new"
    mkdir -p "$sysroot.new"
    local n v f
    for nv in $want; do
        n=${nv%%=*}; v=${nv#*=}; v=${v/:/%3a}
        f=$(ls "$CACHE/debs/${n}_${v}_"*.deb)
        dpkg-deb -x "$f" "$sysroot.new"
    done
    echo "$want" > "$sysroot.new/.packages"
    rm -rf "$sysroot"
    mv "$sysroot.new" "$sysroot"
    echo "arm64: $(echo "$want" | wc -l) packages unpacked in $sysroot"
}

build() {
    [ -f "$SYSROOT/.packages" ] || fetch
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DNIBBLE_ARM64_SYSROOT="$SYSROOT"
    cmake --build "$BUILD" -j"$(nproc)"
}

portable() {
    local ok='^(assert|ctype|errno|float|inttypes|limits|math|stdarg|stdatomic|stdbool|stddef'
    ok+='|stdint|stdio|stdlib|string|time|volk)\.h$'
    local bad=0 f h inc='s/^[[:space:]]*#[[:space:]]*include[[:space:]]*<\([^>]*\)>.*/\1/p'
    for f in engine/*.[ch] host/*.[ch] tools/*.[ch]; do
        case "$f" in
            host/platform.c | tools/serve* | tools/cmd_serve.c | tools/shader_rt.c) continue ;;
        esac
        for h in $(sed -n "$inc" "$f"); do
            if ! [[ "$h" =~ $ok ]]; then
                echo "arm64: not portable: $f includes <$h> (OS calls go in host/platform.c)"
                bad=1
            fi
        done
    done
    if [ $bad -eq 0 ]; then
        echo "arm64: engine/, host/, tools/: only ISO C and Vulkan headers outside platform.c"
    fi
    return $bad
}

runtests() {
    if [ $# -gt 0 ]; then
        ctest --test-dir "$BUILD" --output-on-failure -R "$1"
        return
    fi
    local rc=0
    ctest --test-dir "$BUILD" --output-on-failure -R "$CI_TESTS" || rc=1
    # the forward pass: the golden logits of the quantized dense, MoE and PLE models in the
    # device's configuration (all its goldens under qemu take over 10 minutes of CPU; the x86 run
    # has the rest)
    NIBBLE_TEST_FILTER=test_golden NIBBLE_TEST_GOLDEN=${NIBBLE_ARM64_GOLDEN:-dense,moe,ple} \
        ctest --test-dir "$BUILD" --output-on-failure -R '^test_forward$' || rc=1
    return $rc
}

adreno() {
    [ -f "$SYSROOT_BP/.packages" ] || fetch bp
    local lib=$SYSROOT_BP/usr/lib/aarch64-linux-gnu tmp=${TMPDIR:-/tmp}/nibble-adreno.$$ rc=0
    local id first=1 t0 spills
    for id in $ADRENO_IDS; do
        t0=$(date +%s)
        local env=(env FD_GPU_ID="$id" NIBBLE_SELFTEST=0 NIBBLE_VALIDATE=1
                   NIBBLE_CACHE_DIR="$CACHE/pcache-adreno$id"
                   VK_ICD_FILENAMES="$SYSROOT_BP/usr/share/vulkan/icd.d/freedreno_icd.json"
                   VK_LAYER_PATH="$SYSROOT_BP/usr/share/vulkan/explicit_layer.d"
                   QEMU_SET_ENV="LD_PRELOAD=$lib/libfreedreno_noop_drm_shim.so")
        local nb=("${env[@]}" qemu-aarch64-static -L "$SYSROOT_BP" "$BUILD/nibble")
        if ! "${nb[@]}" info --pipelines --csv -m models/default.gguf > "$tmp.csv" 2> "$tmp.err"; then
            echo "arm64: FAIL: Adreno $id: nibble info --pipelines: $(grep -v DRM_IOCTL "$tmp.err" | tail -n 3)"
            rc=1
            continue
        fi
        # spilled_vgprs is column 7 (turnip: STP Count); "-" where the driver gives none
        spills=$(awk -F, -v id="$id" -v known=" $ADRENO_KNOWN_SPILLS " \
            'NR > 1 && $7 != "-" && $7 > 0 && index(known, " " id ":" $1 " ") == 0 {
                 print $1 " (" $7 " spill stores)" }' "$tmp.csv")
        awk -F, -v id="$id" -v known=" $ADRENO_KNOWN_SPILLS " \
            'NR > 1 && $7 != "-" && $7 > 0 && index(known, " " id ":" $1 " ") > 0 {
                 print "arm64: Adreno " id ": known spill: " $1 " (" $7 " spill stores)" }' "$tmp.csv"
        if [ -n "$spills" ] || grep -q '^vulkan ' "$tmp.err"; then
            echo "arm64: FAIL: Adreno $id: $spills $(grep '^vulkan ' "$tmp.err" | head -n 3)"
            rc=1
        fi
        local line
        line="$(($(wc -l < "$tmp.csv") - 1)) pipelines built, no new spill"
        if [ $first -eq 1 ]; then
            if ! "${nb[@]}" run -p "And God said" -n 8 --temp 0 > /dev/null 2> "$tmp.err" ||
                grep -q '^vulkan ' "$tmp.err"; then
                echo "arm64: FAIL: Adreno $id: nibble run: $(grep -v DRM_IOCTL "$tmp.err" | tail -n 3)"
                rc=1
            fi
            line+=", nibble run completes"
        fi
        first=0
        echo "arm64: Adreno $id: $line, validation silent, $(($(date +%s) - t0)) s"
    done
    rm -f "$tmp.csv" "$tmp.err"
    panvk || rc=1
    return $rc
}

# panvk (Mali) on panfrost's no-op shim: `nibble run` with an empty pipeline cache and Mesa's
# shader cache off, so every pipeline the run uses is compiled, each printing one shaderdb line
# ("... N:M spills:fills"); submissions do nothing (text meaningless, self-test off).
panvk() {
    [ -f "$SYSROOT_BP/.packages" ] || fetch bp
    local lib=$SYSROOT_BP/usr/lib/aarch64-linux-gnu tmp=${TMPDIR:-/tmp}/nibble-panvk.$$ rc=0
    local id t0 n spilling
    for id in $PANVK_IDS; do
        t0=$(date +%s)
        rm -rf "$tmp.pc"
        mkdir -p "$tmp.pc"
        local ok=1
        if ! env PAN_GPU_ID="$id" PAN_I_WANT_A_BROKEN_VULKAN_DRIVER=1 BIFROST_MESA_DEBUG=shaderdb \
                MESA_SHADER_CACHE_DISABLE=true NIBBLE_SELFTEST=0 NIBBLE_VALIDATE=1 \
                NIBBLE_CACHE_DIR="$tmp.pc" \
                VK_ICD_FILENAMES="$SYSROOT_BP/usr/share/vulkan/icd.d/panfrost_icd.json" \
                VK_LAYER_PATH="$SYSROOT_BP/usr/share/vulkan/explicit_layer.d" \
                QEMU_SET_ENV="LD_PRELOAD=$lib/libpanfrost_noop_drm_shim.so" \
                qemu-aarch64-static -L "$SYSROOT_BP" "$BUILD/nibble" run -p "And God said" -n 8 \
                --temp 0 > /dev/null 2> "$tmp.err" || grep -q '^vulkan ' "$tmp.err"; then
            echo "arm64: FAIL: Mali $id (panvk): nibble run:" \
                 "$(grep -v 'DRM_IOCTL\|^SHADER-DB' "$tmp.err" | tail -n 3)"
            ok=0
        fi
        n=$(grep -c '^SHADER-DB' "$tmp.err" || true)
        # "..., 116:374 spills:fills": the pipelines with spill stores, and the most of them
        spilling=$(awk '/^SHADER-DB/ { split($(NF-1), a, ":"); if (a[1] > 0) { k++; if (a[1] > m) m = a[1] } }
                        END { printf "%d (at most %d spill stores)", k, m }' "$tmp.err")
        if [ "$n" -eq 0 ] || [ "${spilling%% *}" -gt "$PANVK_KNOWN_SPILLS" ]; then
            echo "arm64: FAIL: Mali $id (panvk): $n pipelines compiled, $spilling spill" \
                 "(known: $PANVK_KNOWN_SPILLS)"
            ok=0
        fi
        if [ $ok -eq 1 ]; then
            echo "arm64: Mali $id (panvk): $n pipelines compiled, $spilling spill (known)," \
                 "nibble run completes, validation silent, $(($(date +%s) - t0)) s"
        fi
        [ $ok -eq 1 ] || rc=1
    done
    rm -rf "$tmp.err" "$tmp.pc"
    return $rc
}

case "${1:-}" in
    fetch) shift; fetch "$@" ;;
    adreno) adreno ;;
    panvk) panvk ;;
    build) build ;;
    test) shift; runtests "$@" ;;
    nibble) shift; exec "$BUILD/tests/nibble-emu" "$@" ;;
    portable) portable ;;
    ci) portable; fetch; build; runtests ;;
    *) sed -n '2,39p' "$0" >&2; exit 2 ;;
esac
