// RoPE angles in double-float arithmetic (hi + lo pairs of f32), shared by rope.comp and
// rmsnorm.comp. theta_i = pos * base^(-2i/n_rot) / factor_i is formed exactly enough that the
// angle reduced to [-pi, pi] is good to ~1e-7 rad for positions up to 2^24, so sin/cos never see
// a large argument. Only correctly rounded f32 add/sub/mul are assumed (Vulkan guarantees them);
// `precise` stops the compiler from contracting or reassociating the error terms.

// a * b = p + e exactly (Dekker, Veltkamp split with 4097 = 2^12 + 1)
vec2 dd_two_prod(float a, float b)
{
    precise float p = a * b;
    precise float ca = 4097.0 * a;
    precise float ah = ca - (ca - a);
    precise float al = a - ah;
    precise float cb = 4097.0 * b;
    precise float bh = cb - (cb - b);
    precise float bl = b - bh;
    precise float e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    return vec2(p, e);
}

// a + b = s + e exactly (Knuth)
vec2 dd_two_sum(float a, float b)
{
    precise float s = a + b;
    precise float bb = s - a;
    precise float e = (a - (s - bb)) + (b - bb);
    return vec2(s, e);
}

vec2 dd_norm(float hi, float lo)
{
    precise float s = hi + lo;
    precise float e = lo - (s - hi);
    return vec2(s, e);
}

vec2 dd_mul(vec2 a, vec2 b)
{
    vec2 p = dd_two_prod(a.x, b.x);
    precise float e = p.y + (a.x * b.y + a.y * b.x);
    return dd_norm(p.x, e);
}

vec2 dd_mul_f(vec2 a, float b)
{
    vec2 p = dd_two_prod(a.x, b);
    precise float e = p.y + a.y * b;
    return dd_norm(p.x, e);
}

// a / f for a plain f32 f (the first quotient's error is corrected, so division need not be exact)
vec2 dd_div_f(vec2 a, float f)
{
    float q = a.x / f;
    vec2 p = dd_two_prod(q, f);
    precise float r = ((a.x - p.x) - p.y) + a.y;
    float q2 = r / f;
    return dd_norm(q, q2);
}

// th^i for th = base^(-2/n_rot) given as a double-float, by binary exponentiation
vec2 dd_pow(vec2 th, uint i)
{
    vec2 r = vec2(1.0, 0.0);
    vec2 b = th;
    while (i != 0u) {
        if ((i & 1u) != 0u) r = dd_mul(r, b);
        b = dd_mul(b, b);
        i >>= 1;
    }
    return r;
}

// cos and sin of pos * freq, freq a double-float, pos an integer < 2^24
vec2 rope_cos_sin(uint pos, vec2 freq)
{
    const vec2 TWO_PI = vec2(6.2831854820251465, -1.7484555314695172e-07);
    vec2 a = dd_mul_f(freq, float(pos));
    float k = floor(a.x * 0.15915493667125702 + 0.5);
    vec2 kp = dd_mul_f(TWO_PI, k);
    vec2 d = dd_two_sum(a.x, -kp.x);
    precise float r = d.x + ((d.y + a.y) - kp.y);
    return vec2(cos(r), sin(r));
}

// frequency of pair i: th^i, divided by factors[i] when given
vec2 rope_freq(vec2 th, uint i, bool use_factor, float factor)
{
    vec2 f = dd_pow(th, i);
    if (use_factor && factor >= 1e20) f = vec2(f.x / factor, 0.0); // "never rotates" marker
    else if (use_factor && factor != 1.0) f = dd_div_f(f, factor);
    return f;
}
