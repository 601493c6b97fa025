# The library an app installs and links (`cmake --install BUILD --prefix P`):
#   P/lib/libnibble.so.0 (SONAME libnibble.so.0, VERSION the project version), libnibble.so
#   P/lib/libnibble.a    (one relocatable object: everything but nibble_* made local)
#   P/include/nibble.h, P/lib/pkgconfig/nibble.pc and nibble-static.pc,
#   P/lib/cmake/nibble/nibbleConfig.cmake + version file (targets nibble::nibble, nibble::static)
# Both export only the nibble_* functions of nibble.h: volk's vk* function-pointer variables,
# gguf_*/ggml_* and every other global stay inside, so an app that also calls Vulkan through the
# loader (or links llama.cpp) sees its own symbols. The SPIR-V is embedded at build time
# (shaders/embed.cmake), so the installed library works from any directory.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Shared: the objects of nibble_obj/volk_obj, exports limited by a version script.
add_library(nibble_shared SHARED $<TARGET_OBJECTS:nibble_obj> $<TARGET_OBJECTS:volk_obj>)
set_target_properties(nibble_shared PROPERTIES OUTPUT_NAME nibble EXPORT_NAME nibble
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  LINK_DEPENDS ${CMAKE_SOURCE_DIR}/cmake/nibble.map)
target_link_options(nibble_shared PRIVATE -Wl,--version-script=${CMAKE_SOURCE_DIR}/cmake/nibble.map
                    -Wl,--no-undefined)
target_link_libraries(nibble_shared PRIVATE ${CMAKE_DL_LIBS} Threads::Threads m)
target_include_directories(nibble_shared INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

# Static: `ld -r` joins the objects into one, objcopy makes every defined symbol but nibble_*
# local (references inside the object stay bound to them), ar puts it in the archive.
set(NB_PUB_DIR ${CMAKE_BINARY_DIR}/pub)
set(NB_PUB_A ${NB_PUB_DIR}/libnibble.a)
file(MAKE_DIRECTORY ${NB_PUB_DIR})
add_custom_command(OUTPUT ${NB_PUB_A}
  COMMAND ${CMAKE_LINKER} -r -o ${NB_PUB_DIR}/nibble.o $<TARGET_OBJECTS:nibble_obj>
          $<TARGET_OBJECTS:volk_obj>
  COMMAND ${CMAKE_OBJCOPY} --wildcard --keep-global-symbol=nibble_* ${NB_PUB_DIR}/nibble.o
  COMMAND ${CMAKE_COMMAND} -E rm -f ${NB_PUB_A}
  COMMAND ${CMAKE_AR} rcs ${NB_PUB_A} ${NB_PUB_DIR}/nibble.o
  DEPENDS nibble_obj volk_obj $<TARGET_OBJECTS:nibble_obj> $<TARGET_OBJECTS:volk_obj>
  COMMAND_EXPAND_LISTS VERBATIM
  COMMENT "libnibble.a for installation (only nibble_* global)")
add_custom_target(nibble_static_pub ALL DEPENDS ${NB_PUB_A})

# pkg-config: prefix relative to the .pc file, so `cmake --install --prefix` anywhere works.
file(RELATIVE_PATH NB_PC_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
configure_file(${CMAKE_SOURCE_DIR}/cmake/nibble.pc.in ${NB_PUB_DIR}/nibble.pc @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/cmake/nibble-static.pc.in ${NB_PUB_DIR}/nibble-static.pc @ONLY)

install(TARGETS nibble_shared EXPORT nibbleTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${NB_PUB_A} DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/engine/nibble.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${NB_PUB_DIR}/nibble.pc ${NB_PUB_DIR}/nibble-static.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(EXPORT nibbleTargets NAMESPACE nibble:: FILE nibbleTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nibble)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/nibbleConfig.cmake.in
  ${NB_PUB_DIR}/nibbleConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nibble)
write_basic_package_version_file(${NB_PUB_DIR}/nibbleConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${NB_PUB_DIR}/nibbleConfig.cmake ${NB_PUB_DIR}/nibbleConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nibble)
