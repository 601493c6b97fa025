# Cross build for arm64 Linux with Debian's gcc-aarch64-linux-gnu (tools/arm64.sh sets it up).
# NIBBLE_ARM64_SYSROOT: a folder of arm64 Debian packages unpacked with dpkg-deb -x (cmocka, the
# Vulkan loader, lavapipe, the validation layer). The compiler brings its own libc
# (/usr/aarch64-linux-gnu); the Vulkan headers and volk.c are architecture-independent and come
# from the host; glslc and spirv-val run on the host at build time. Tests run through
# qemu-aarch64-static with the sysroot as its library prefix and arm64 lavapipe as the driver.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

if(NOT NIBBLE_ARM64_SYSROOT)
  set(NIBBLE_ARM64_SYSROOT "$ENV{NIBBLE_ARM64_SYSROOT}")
endif()
if(NOT NIBBLE_ARM64_SYSROOT OR NOT EXISTS "${NIBBLE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "NIBBLE_ARM64_SYSROOT must name the arm64 packages (tools/arm64.sh fetch)")
endif()
# try_compile projects see the variable too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES NIBBLE_ARM64_SYSROOT)

# Libraries (cmocka) from the sysroot first, headers from the sysroot then the host.
set(CMAKE_FIND_ROOT_PATH "${NIBBLE_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# pkg-config sees only the sysroot's arm64 packages (optional dependencies missing there are
# left out of the cross build as on any machine without them).
set(ENV{PKG_CONFIG_LIBDIR}
    "${NIBBLE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${NIBBLE_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${NIBBLE_ARM64_SYSROOT}")
# FindVulkan wants a library; nibble never links it (volk opens the loader at run time).
set(Vulkan_LIBRARY "${NIBBLE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/libvulkan.so.1" CACHE FILEPATH "")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${NIBBLE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")

# Tests and the CLI run under qemu-user with the sysroot as the library prefix; the driver and
# the validation layer are arm64 lavapipe and the arm64 layer of the sysroot (unless set).
find_program(NIBBLE_QEMU qemu-aarch64-static)
if(NIBBLE_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${NIBBLE_QEMU} -L ${NIBBLE_ARM64_SYSROOT})
endif()
# The environment tests/CMakeLists.txt gives the tests (ctest) and the script that runs the CLI
# under the emulator (there a variable already set wins).
set(NIBBLE_EMULATOR_ENV
    "VK_ICD_FILENAMES=${NIBBLE_ARM64_SYSROOT}/usr/share/vulkan/icd.d/lvp_icd.aarch64.json"
    "VK_LAYER_PATH=${NIBBLE_ARM64_SYSROOT}/usr/share/vulkan/explicit_layer.d")
