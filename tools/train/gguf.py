"""Minimal GGUF v3 reader and writer (metadata, tensor table, F32 and Q4_0 data) for the training tools."""
import struct

import numpy as np

# GGUF metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
           T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
_NP = {T_U8: "<u1", T_I8: "<i1", T_U16: "<u2", T_I16: "<i2", T_U32: "<u4", T_I32: "<i4",
       T_F32: "<f4", T_BOOL: "<u1", T_U64: "<u8", T_I64: "<i8", T_F64: "<f8"}

# ggml tensor types used here: (id, block size, bytes per block)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8
TYPE_SIZE = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q8_0: (32, 34)}
ALIGN = 32


class Reader:
    """Parses a whole GGUF file: self.kv (key -> (type, value)), self.tensors (name -> info dict)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic, version = struct.unpack_from("<II", self.buf, 0)
        if magic != 0x46554747 or version != 3:
            raise ValueError(f"{path}: not a GGUF v3 file")
        self.pos = 8
        n_tensors, n_kv = self._u("<QQ")
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            (vt,) = self._u("<I")
            self.kv[key] = (vt, self._value(vt))
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._str()
            (nd,) = self._u("<I")
            ne = list(self._u("<" + "Q" * nd))
            ttype, off = self._u("<IQ")
            self.tensors[name] = {"ne": ne, "type": ttype, "offset": off}
        align = self.kv.get("general.alignment", (T_U32, ALIGN))[1]
        self.data_start = (self.pos + align - 1) // align * align

    def _u(self, fmt):
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals

    def _str(self):
        (n,) = self._u("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _value(self, vt):
        if vt == T_STR:
            return self._str()
        if vt == T_ARR:
            et, n = self._u("<IQ")
            if et == T_STR:
                return [self._str() for _ in range(n)]
            a = np.frombuffer(self.buf, dtype=_NP[et], count=n, offset=self.pos)
            self.pos += a.nbytes
            return a.tolist()
        (v,) = self._u(_SCALAR[vt])
        return v

    def tensor_bytes(self, name):
        t = self.tensors[name]
        blk, bsz = TYPE_SIZE[t["type"]]
        n = int(np.prod(t["ne"]))
        start = self.data_start + t["offset"]
        return self.buf[start:start + n // blk * bsz]


class Writer:
    """Collects metadata and tensors, then writes a GGUF v3 file in one go."""

    def __init__(self):
        self.kv = []       # (key, type, value, elem type for arrays)
        self.tensors = []  # (name, ne list, ggml type, raw bytes)

    def add(self, key, vtype, value, etype=None):
        self.kv.append((key, vtype, value, etype))

    def add_tensor(self, name, ne, ttype, data):
        blk, bsz = TYPE_SIZE[ttype]
        n = int(np.prod(ne))
        if ne[0] % blk or len(data) != n // blk * bsz:
            raise ValueError(f"{name}: {len(data)} bytes do not fit ne={ne} type={ttype}")
        self.tensors.append((name, list(ne), ttype, bytes(data)))

    @staticmethod
    def _s(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _val(self, vt, v, et):
        if vt == T_STR:
            return self._s(v)
        if vt == T_ARR:
            out = struct.pack("<IQ", et, len(v))
            if et == T_STR:
                return out + b"".join(self._s(x) for x in v)
            return out + np.asarray(v, dtype=_NP[et]).tobytes()
        return struct.pack(_SCALAR[vt], v)

    def write(self, path):
        head = [struct.pack("<IIQQ", 0x46554747, 3, len(self.tensors), len(self.kv))]
        for key, vt, v, et in self.kv:
            head.append(self._s(key) + struct.pack("<I", vt) + self._val(vt, v, et))
        off = 0
        offsets = []
        for name, ne, tt, data in self.tensors:
            offsets.append(off)
            head.append(self._s(name) + struct.pack("<I", len(ne)) + struct.pack("<" + "Q" * len(ne), *ne)
                        + struct.pack("<IQ", tt, off))
            off = (off + len(data) + ALIGN - 1) // ALIGN * ALIGN
        h = b"".join(head)
        with open(path, "wb") as f:
            f.write(h)
            f.write(b"\0" * ((-len(h)) % ALIGN))
            for (name, ne, tt, data), o in zip(self.tensors, offsets):
                f.write(data)
                f.write(b"\0" * ((-len(data)) % ALIGN))


def quantize_q4_0(x):
    """ggml reference Q4_0 of a float32 array whose last dim is a multiple of 32 -> bytes."""
    b = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    idx = np.argmax(np.abs(b), axis=1)
    mx = b[np.arange(len(b)), idx]
    d = mx / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), 0.0).astype(np.float32)
    q = np.minimum(15, (b * inv[:, None] + 8.5).astype(np.int8)).astype(np.uint8)
    qs = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    out = np.zeros(len(b), dtype=[("d", "<f2"), ("qs", "u1", 16)])
    out["d"] = d.astype(np.float16)
    out["qs"] = qs
    return out.tobytes()


def dequantize_q4_0(raw, n):
    """Inverse of quantize_q4_0 (uses the stored fp16 scale) -> float32 array of n values."""
    blk = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "u1", 16)], count=n // 32)
    d = blk["d"].astype(np.float32)[:, None]
    lo = (blk["qs"] & 15).astype(np.float32) - 8
    hi = (blk["qs"] >> 4).astype(np.float32) - 8
    return (np.concatenate([lo, hi], axis=1) * d).reshape(-1)


if __name__ == "__main__":
    import sys
    r = Reader(sys.argv[1])
    for k, (vt, v) in r.kv.items():
        if isinstance(v, list):
            print(f"{k}: type {vt} array[{len(v)}] first {v[:8]!r}")
        else:
            print(f"{k}: type {vt} = {v!r}")
    for name, t in r.tensors.items():
        print(f"tensor {name} ne={t['ne']} type={t['type']}")
