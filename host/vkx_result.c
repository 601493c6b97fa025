/* vkx_result.c: VkResult names and the fatal-error exits of the host layer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "vkx_internal.h"

const char *vkx_result_name(VkResult r)
{
    switch (r) {
#define C(x) case x: return #x;
        C(VK_SUCCESS)
        C(VK_NOT_READY)
        C(VK_TIMEOUT)
        C(VK_EVENT_SET)
        C(VK_EVENT_RESET)
        C(VK_INCOMPLETE)
        C(VK_ERROR_OUT_OF_HOST_MEMORY)
        C(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        C(VK_ERROR_INITIALIZATION_FAILED)
        C(VK_ERROR_DEVICE_LOST)
        C(VK_ERROR_MEMORY_MAP_FAILED)
        C(VK_ERROR_LAYER_NOT_PRESENT)
        C(VK_ERROR_EXTENSION_NOT_PRESENT)
        C(VK_ERROR_FEATURE_NOT_PRESENT)
        C(VK_ERROR_INCOMPATIBLE_DRIVER)
        C(VK_ERROR_TOO_MANY_OBJECTS)
        C(VK_ERROR_FORMAT_NOT_SUPPORTED)
        C(VK_ERROR_FRAGMENTED_POOL)
        C(VK_ERROR_UNKNOWN)
        C(VK_ERROR_OUT_OF_POOL_MEMORY)
        C(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        C(VK_ERROR_FRAGMENTATION)
        C(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
        C(VK_PIPELINE_COMPILE_REQUIRED)
        C(VK_ERROR_SURFACE_LOST_KHR)
        C(VK_ERROR_NATIVE_WINDOW_IN_USE_KHR)
        C(VK_SUBOPTIMAL_KHR)
        C(VK_ERROR_OUT_OF_DATE_KHR)
        C(VK_ERROR_INCOMPATIBLE_DISPLAY_KHR)
        C(VK_ERROR_VALIDATION_FAILED_EXT)
        C(VK_ERROR_INVALID_SHADER_NV)
        C(VK_ERROR_NOT_PERMITTED_KHR)
#undef C
    default: return "VK_ERROR_(unknown)";
    }
}

_Noreturn void vkx_fatal(const char *file, int line, const char *call, VkResult r)
{
    fprintf(stderr, "%s:%d: %s failed: %s (%d)\n", file, line, call, vkx_result_name(r), (int)r);
    fflush(stderr);
    abort();
}

_Noreturn void vkx_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vkx: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

void vkx_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
