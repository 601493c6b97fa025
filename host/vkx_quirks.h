/* vkx_quirks: the driver workaround table, in one place. Each entry names the drivers it applies
 * to (vendor id, driver id, a driver version range and, for CPU devices, the CPU the driver runs
 * on), the symptom, where it was found, and the features (enum vkx_feature, the names of
 * NIBBLE_DISABLE) it turns off. vkx_create turns them off before it creates the device, so every
 * caller sees them through vkx_has; `nibble info` lists the entries that apply.
 *   NIBBLE_QUIRKS=0              ignore the table (to check whether a driver still needs it)
 *   NIBBLE_FAKE_DRIVER=FIELDS    match the table as if the driver were another one (tests):
 *                                comma-separated vendor=0x5143, device=0x060108ff,
 *                                driver=8 (VkDriverId), version=22.3.6, arch=aarch64;
 *                                fields not given stay the real
 *                                driver's. NIBBLE_DISABLE still turns off any feature. */
#ifndef VKX_QUIRKS_H
#define VKX_QUIRKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <volk.h>

/* A driver version for the table: major.minor.patch packed as VK_MAKE_API_VERSION(0, ...). */
#define VKX_VER(major, minor, patch) ((uint32_t)(major) << 22 | (uint32_t)(minor) << 12 | (patch))

struct vkx_quirk {
    const char *id;           /* short name, shown by nibble info */
    uint32_t vendor_id;       /* 0: any */
    VkDriverId driver_id;     /* 0: any */
    uint32_t ver_min, ver_max; /* driver versions [ver_min, ver_max) (VKX_VER); 0, 0: all */
    uint32_t dev_min, dev_max; /* device ids [dev_min, dev_max); 0, 0: all (for GPUs whose
                                  limits are the same as their siblings') */
    const char *arch;         /* CPU running the driver ("aarch64", "x86_64"); NULL: any */
    unsigned features;        /* enum vkx_feature bits it turns off */
    const char *symptom;
    const char *source;
};

/* The driver as the table sees it. */
struct vkx_driver_key {
    uint32_t vendor_id;
    uint32_t device_id;
    VkDriverId driver_id;
    uint32_t version; /* VKX_VER: Mesa's version from the driver info ("Mesa 22.3.6"), else
                         driverVersion read as a Vulkan version */
    char arch[16];
};

struct vkx_caps;
#define VKX_MAX_QUIRKS 8

/* The key of the device in caps, with the fields of `fake` (NIBBLE_FAKE_DRIVER, may be NULL)
 * over it. Returns 0, or -1 with a message for a malformed `fake`. */
int vkx_quirk_key(const struct vkx_caps *caps, const char *fake, struct vkx_driver_key *key,
                  char *err, size_t errlen);
/* The entries that match key (at most max, in table order) in hits; returns their count. */
unsigned vkx_quirks_match(const struct vkx_driver_key *key, const struct vkx_quirk **hits,
                          unsigned max);
/* The whole table. */
const struct vkx_quirk *vkx_quirk_table(unsigned *n);
/* Name of one enum vkx_feature bit ("fp16", ..., "halfcvt"), or NULL. */
const char *vkx_feature_name(unsigned bit);
/* "fp16,texel": the names of the bits, comma-separated ("" for none). */
void vkx_feature_names(unsigned bits, char *buf, size_t n);
/* One line per entry in hits: "driver workaround: ID: SYMPTOM; off: FEATURES; source: SOURCE". */
void vkx_quirks_print(const struct vkx_quirk *const *hits, unsigned n, FILE *out);

#endif
