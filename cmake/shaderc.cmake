# Runtime GLSL compilation (libshaderc) for `nibble profile --shaders DIR`.
# Debian's libshaderc.so cannot be linked (see ../shared/docs/toolchain.md); the static
# libshaderc_combined.a with glslang and SPIRV-Tools in one linker group works.
find_library(SHADERC_COMBINED libshaderc_combined.a)
set(NB_HAVE_SHADERC OFF)
if(SHADERC_COMBINED)
  set(_nb_shaderc_libs "")
  foreach(l glslang MachineIndependent OSDependent GenericCodeGen OGLCompiler SPIRV
            SPIRV-Tools-opt SPIRV-Tools)
    find_library(_lib_${l} lib${l}.a)
    if(_lib_${l})
      list(APPEND _nb_shaderc_libs ${_lib_${l}})
    endif()
  endforeach()
  set(NB_SHADERC_LINK -Wl,--start-group ${SHADERC_COMBINED} ${_nb_shaderc_libs} -Wl,--end-group
      stdc++ pthread m)
  set(NB_HAVE_SHADERC ON)
endif()
