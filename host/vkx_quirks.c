/* vkx_quirks: the driver workaround table (see vkx_quirks.h). An entry needs evidence: a driver
 * failure reproduced here, or a workaround another engine ships with its reason; each names its
 * source. Features off cost speed, never correctness: every one has a plain fallback. */
#include "vkx_quirks.h"

#include <stdlib.h>
#include <string.h>

#include "vkx.h"

#if defined(__aarch64__) || defined(_M_ARM64)
#define VKX_ARCH "aarch64"
#elif defined(__x86_64__) || defined(_M_X64)
#define VKX_ARCH "x86_64"
#elif defined(__arm__)
#define VKX_ARCH "arm"
#elif defined(__i386__)
#define VKX_ARCH "x86"
#else
#define VKX_ARCH "other"
#endif

static const struct vkx_quirk table[] = {
    {.id = "llvmpipe-aarch64-f16",
     .driver_id = VK_DRIVER_ID_MESA_LLVMPIPE,
     .ver_min = 0,
     .ver_max = VKX_VER(25, 0, 0),
     .arch = "aarch64",
     .features = VKX_FEAT_HALFCVT,
     .symptom = "LLVM aborts the process compiling unpackHalf2x16 (\"Cannot select: v4f32 = "
                "AArch64ISD::VLSHR\") at the first dispatch of any pipeline that converts f16 "
                "(every quantized matrix, the f16 KV cache)",
     .source = "nibble: Debian 12's arm64 Mesa 22.3.6 with LLVM 15 under qemu-aarch64 "
               "(tools/arm64.sh); bookworm-backports' Mesa 25.0.7 compiles it; versions between "
               "untested"},
    {.id = "panvk-subgroup-reduce",
     .driver_id = VK_DRIVER_ID_MESA_PANVK,
     .features = VKX_FEAT_SUBGROUP | VKX_FEAT_WIDE,
     .symptom = "subgroup reductions (subgroupAdd/Max) are lowered to loops of per-lane reads "
                "(a one-row matvec_q4_0's NIR: 369 ballots, 348 read_invocations): matvec_q4_0 "
                "1985 instructions with 36 spill stores, matvec2_q4_0 3907 with 265; each such "
                "pipeline takes minutes to build and would run slowly, where the shared-memory "
                "reductions build in seconds (matvec_q4_0: 548 instructions, 1 spill store); "
                "those of 2, 4 and 8 tokens still spill (12, 35, 39 spill stores; 64 registers "
                "a thread), 1-row ones of at most 2 tokens (\"wide\" off) 0 and 9",
     .source = "nibble: bookworm-backports' Mesa 25.0.7 panvk, Mali-G610 (PAN_GPU_ID=0xa867) on "
               "panfrost's no-op DRM shim under qemu-aarch64, BIFROST_MESA_DEBUG=shaders,shaderdb "
               "(tools/arm64.sh panvk); other versions untested"},
    {.id = "adreno618-matvec-regs",
     .vendor_id = 0x5143,
     .driver_id = VK_DRIVER_ID_MESA_TURNIP,
     .dev_min = 0x06010800, /* chip id 6.1.8.x: Adreno 618 */
     .dev_max = 0x06010900,
     .features = VKX_FEAT_WIDE,
     .symptom = "the decode matvecs of 2, 4 and 8 tokens spill registers (Q4_0: 8, 97 and 394 "
                "private stores, turnip's STP Count); Adreno 740 and 750, whose Vulkan limits "
                "are the same, spill nowhere",
     .source = "nibble: bookworm-backports' Mesa 25.0.7 turnip, FD_GPU_ID=618 on freedreno's "
               "no-op DRM shim under qemu-aarch64 (tools/arm64.sh adreno)"},
    {.id = "imagination-subgroup-matvec",
     .driver_id = VK_DRIVER_ID_IMAGINATION_PROPRIETARY,
     .features = VKX_FEAT_SUBGROUP,
     .symptom = "the proprietary compiler rejects subgroup-reduction matrix-vector shaders",
     .source = "llama.cpp ggml-vulkan.cpp (is_imagination_proprietary: subgroup-only dequant "
               "mul_mat_vec falls back to shared-memory reduction)"},
};

const struct vkx_quirk *vkx_quirk_table(unsigned *n)
{
    *n = sizeof table / sizeof table[0];
    return table;
}

static const struct {
    const char *name;
    unsigned bit;
} feature_names[] = {{"fp16", VKX_FEAT_FP16},         {"int8", VKX_FEAT_INT8},
                     {"subgroup", VKX_FEAT_SUBGROUP}, {"pushdesc", VKX_FEAT_PUSHDESC},
                     {"uma", VKX_FEAT_UMA},           {"texel", VKX_FEAT_TEXEL},
                     {"fuse", VKX_FEAT_FUSE},         {"replay", VKX_FEAT_REPLAY},
                     {"sgsize", VKX_FEAT_SGSIZE},     {"halfcvt", VKX_FEAT_HALFCVT},
                     {"wide", VKX_FEAT_WIDE}};

const char *vkx_feature_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (feature_names[i].bit == bit) return feature_names[i].name;
    return NULL;
}

void vkx_feature_names(unsigned bits, char *buf, size_t n)
{
    size_t used = 0;
    if (n) buf[0] = 0;
    for (unsigned b = 1; b && used < n; b <<= 1) {
        const char *name = (bits & b) ? vkx_feature_name(b) : NULL;
        if (!name) continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? "," : "", name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* "Mesa 22.3.6 (LLVM 15.0.6)" -> VKX_VER(22, 3, 6); 0 when the text holds no Mesa version. */
static uint32_t mesa_version(const char *info)
{
    const char *s = strstr(info, "Mesa ");
    if (!s) return 0;
    unsigned v[3] = {0, 0, 0};
    s += 5;
    for (int i = 0; i < 3; i++) {
        char *end;
        unsigned long x = strtoul(s, &end, 10);
        if (end == s || x > 1023) return i ? VKX_VER(v[0], v[1], v[2]) : 0;
        v[i] = (unsigned)x;
        if (*end != '.') break;
        s = end + 1;
    }
    return VKX_VER(v[0], v[1], v[2] > 4095 ? 4095 : v[2]);
}

/* "22.3.6" (one to three numbers) -> VKX_VER; -1 when malformed. */
static int parse_version(const char *s, size_t len, uint32_t *out)
{
    unsigned v[3] = {0, 0, 0};
    size_t i = 0;
    for (int k = 0; k < 3; k++) {
        if (i >= len || s[i] < '0' || s[i] > '9') return -1;
        unsigned long x = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            x = x * 10 + (unsigned long)(s[i++] - '0');
            if (x > 4095) return -1;
        }
        v[k] = (unsigned)x;
        if (i == len) break;
        if (s[i++] != '.' || k == 2) return -1;
    }
    if (v[0] > 1023 || v[1] > 1023) return -1;
    *out = VKX_VER(v[0], v[1], v[2]);
    return 0;
}

static int parse_u32(const char *s, size_t len, uint32_t *out)
{
    char buf[24];
    if (!len || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    unsigned long long x = strtoull(buf, &end, 0);
    if (*end || buf[0] == '-' || x > UINT32_MAX) return -1;
    *out = (uint32_t)x;
    return 0;
}

int vkx_quirk_key(const struct vkx_caps *caps, const char *fake, struct vkx_driver_key *key,
                  char *err, size_t errlen)
{
    memset(key, 0, sizeof *key);
    key->vendor_id = caps->vendor_id;
    key->device_id = caps->device_id;
    key->driver_id = caps->driver_id;
    key->version = mesa_version(caps->driver_info);
    if (!key->version) key->version = caps->driver_version & 0xFFFFFFFu; /* no variant bits */
    snprintf(key->arch, sizeof key->arch, "%s", VKX_ARCH);
    for (const char *s = fake; s && *s;) {
        size_t n = strcspn(s, ",");
        const char *eq = memchr(s, '=', n);
        size_t klen = eq ? (size_t)(eq - s) : n, vlen = eq ? n - klen - 1 : 0;
        const char *v = eq ? eq + 1 : s + n;
        uint32_t x = 0;
        int bad = !eq;
        if (!bad && klen == 6 && !strncmp(s, "vendor", 6)) {
            bad = parse_u32(v, vlen, &key->vendor_id);
        } else if (!bad && klen == 6 && !strncmp(s, "device", 6)) {
            bad = parse_u32(v, vlen, &key->device_id);
        } else if (!bad && klen == 6 && !strncmp(s, "driver", 6)) {
            bad = parse_u32(v, vlen, &x);
            key->driver_id = (VkDriverId)x;
        } else if (!bad && klen == 7 && !strncmp(s, "version", 7)) {
            bad = parse_version(v, vlen, &key->version);
        } else if (!bad && klen == 4 && !strncmp(s, "arch", 4)) {
            bad = !vlen || vlen >= sizeof key->arch;
            if (!bad) snprintf(key->arch, sizeof key->arch, "%.*s", (int)vlen, v);
        } else {
            bad = 1;
        }
        if (bad) {
            snprintf(err, errlen,
                     "NIBBLE_FAKE_DRIVER: bad field '%.*s' (expected vendor=0x5143, "
                     "device=0x060108ff, driver=8, version=22.3.6, arch=aarch64, comma-separated)",
                     (int)n, s);
            return -1;
        }
        s += n;
        if (*s == ',') s++;
    }
    return 0;
}

unsigned vkx_quirks_match(const struct vkx_driver_key *key, const struct vkx_quirk **hits,
                          unsigned max)
{
    unsigned n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct vkx_quirk *q = &table[i];
        if (q->vendor_id && q->vendor_id != key->vendor_id) continue;
        if (q->driver_id && q->driver_id != key->driver_id) continue;
        if ((q->dev_min || q->dev_max) &&
            (key->device_id < q->dev_min || key->device_id >= q->dev_max))
            continue;
        if ((q->ver_min || q->ver_max) && (key->version < q->ver_min || key->version >= q->ver_max))
            continue;
        if (q->arch && strcmp(q->arch, key->arch) != 0) continue;
        if (n < max) hits[n++] = q;
    }
    return n;
}

void vkx_quirks_print(const struct vkx_quirk *const *hits, unsigned n, FILE *out)
{
    if (!n) fprintf(out, "driver workarounds: none\n");
    for (unsigned i = 0; i < n; i++) {
        char off[128];
        vkx_feature_names(hits[i]->features, off, sizeof off);
        fprintf(out, "driver workaround: %s: %s; off: %s; source: %s\n", hits[i]->id,
                hits[i]->symptom, off, hits[i]->source);
    }
}
