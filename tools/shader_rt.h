/* shader_rt: run-time GLSL compilation for `nibble profile --shaders DIR` (see shader_rt.c). */
#ifndef NB_SHADER_RT_H
#define NB_SHADER_RT_H

#include <stddef.h>

/* Compiles every variant of DIR/CMakeLists.txt's table from DIR's GLSL and installs them as the
 * SPIR-V of the pipelines built from now on. 0, or -1 with one line in err (a compile error, a
 * missing file, or a build without libshaderc). */
int nb_shaders_from_dir(const char *dir, int *n_compiled, char *err, size_t errlen);

#endif
