#!/bin/sh
# test_install: `cmake --install` into a temporary prefix, then the README's app (the ```c block
# after "<!-- app.c") built against the installed libnibble.so and libnibble.a with pkg-config
# and with find_package(nibble), each also calling Vulkan through the loader before and after
# nibble (a leaked volk vk* variable would shadow the loader's function: NULL call, segfault),
# run on a test model. nm: both libraries define exactly the nibble_* functions of nibble.h.
# usage: test_install.sh CMAKE CC SOURCE_DIR BUILD_DIR TMP_DIR
set -eu
CMAKE=$1 CC=$2 SRC=$3 BUILD=$4 T=$5
MODEL=$SRC/tests/data/dense.gguf
fail() { echo "test_install: $*" >&2; exit 1; }
for tool in pkg-config nm; do
    command -v $tool >/dev/null || { echo "test_install: skipped, no $tool" >&2; exit 77; }
done
rm -rf "$T" && mkdir -p "$T"
P=$T/prefix
"$CMAKE" --install "$BUILD" --prefix "$P" >"$T/install.log" || fail "cmake --install failed"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
pkg-config --exists nibble nibble-static || fail "no nibble.pc / nibble-static.pc in $P/lib/pkgconfig"
[ "$(readelf -d "$P/lib/libnibble.so" | sed -n 's/.*soname: \[\(.*\)\]/\1/p')" = libnibble.so.0 ] ||
    fail "SONAME is not libnibble.so.0"

# Exports: the header's nibble_* functions, nothing else, in the .so and the archive.
grep -o 'nibble_[a-z_0-9]*(' "$P/include/nibble.h" | tr -d '(' | sort -u >"$T/api.txt"
nm -D --defined-only "$P/lib/libnibble.so" | awk '{print $3}' | sort >"$T/so.txt"
nm -g --defined-only "$P/lib/libnibble.a" | awk 'NF == 3 {print $3}' | sort >"$T/a.txt"
for f in so a; do
    if ! cmp -s "$T/api.txt" "$T/$f.txt"; then
        diff "$T/api.txt" "$T/$f.txt" | head -20 >&2
        fail "libnibble.$f exports other symbols than the nibble_* functions of nibble.h"
    fi
done

# The README's app and its build command, taken verbatim.
awk '/^<!-- app.c/ {on = 1; next} on && /^```c$/ {code = 1; next} code && /^```$/ {exit}
     code {print}' "$SRC/README.md" >"$T/app.c"
[ -s "$T/app.c" ] || fail "no app in README.md"
cmd=$(grep -m1 'cc app.c $(pkg-config' "$SRC/README.md" | sed "s|^ *||; s|PREFIX|$P|g")
[ -n "$cmd" ] || fail "no build command in README.md"
cat >"$T/vk_main.c" <<'EOC'
#include <stdio.h>
#include <vulkan/vulkan.h>
int app_main(int argc, char **argv);
/* The app, with Vulkan called by the app itself (the loader's vkEnumerateInstanceVersion) before
 * and after nibble's model and context live. */
int main(int argc, char **argv)
{
    uint32_t v = 0, w = 0;
    if (vkEnumerateInstanceVersion(&v) != VK_SUCCESS) return fprintf(stderr, "vk failed\n"), 1;
    int r = app_main(argc, argv);
    if (vkEnumerateInstanceVersion(&w) != VK_SUCCESS || w != v) return fprintf(stderr, "vk2\n"), 1;
    fprintf(stderr, "app: Vulkan %u.%u\n", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v));
    return r;
}
EOC
cd "$T"
sh -c "$cmd" || fail "README command failed: $cmd"
VK=$(pkg-config --libs vulkan 2>/dev/null || echo -lvulkan)
$CC -Wall -Wextra -Werror -Dmain=app_main -c app.c $(pkg-config --cflags nibble) -o app.o
$CC vk_main.c app.o $(pkg-config --libs nibble) $VK -Wl,-rpath,"$P/lib" -o app_so
$CC vk_main.c app.o $(pkg-config --libs nibble-static) $VK -o app_a
readelf -d app_so | grep -q 'NEEDED.*libnibble.so.0' || fail "app_so does not load libnibble.so.0"
! readelf -d app_a | grep -q 'NEEDED.*libnibble' || fail "app_a needs libnibble.so"

# CMake package: both targets link (configure + build of a two-file project).
mkdir -p cm && cat >cm/CMakeLists.txt <<EOC
cmake_minimum_required(VERSION 3.20)
project(nbapp C)
find_package(nibble 0 REQUIRED CONFIG)
add_executable(app_cm_so $T/app.c)
target_link_libraries(app_cm_so PRIVATE nibble::nibble)
add_executable(app_cm_a $T/app.c)
target_link_libraries(app_cm_a PRIVATE nibble::static)
EOC
"$CMAKE" -S cm -B cm/build -DCMAKE_C_COMPILER="$CC" -DCMAKE_PREFIX_PATH="$P" >cm.log 2>&1 &&
    "$CMAKE" --build cm/build >>cm.log 2>&1 || { cat cm.log >&2; fail "find_package(nibble) build failed"; }

# Run from another directory: the SPIR-V is inside the library. Same seed -> same text.
cd /
LD_LIBRARY_PATH="$P/lib" "$T/app" "$MODEL" "In the beginning" >"$T/out_readme.txt" 2>"$T/err_readme.txt" ||
    { cat "$T/err_readme.txt" >&2; fail "README app failed"; }
for a in app_so app_a cm/build/app_cm_a; do
    "$T/$a" "$MODEL" "In the beginning" >"$T/out.txt" 2>"$T/err.txt" || { cat "$T/err.txt" >&2; fail "$a failed"; }
    cmp -s "$T/out.txt" "$T/out_readme.txt" || fail "$a printed other text than the README app"
    if grep -q '^vulkan \(error\|warning\|performance\)' "$T/err.txt"; then cat "$T/err.txt" >&2; fail "$a: validation messages"; fi
    cat "$T/err.txt" >&2
done
[ -s "$T/out_readme.txt" ] || fail "the app printed nothing"
echo "test_install: ok ($(wc -c <"$T/out_readme.txt") bytes of text, $(wc -l <"$T/api.txt") functions exported)"
