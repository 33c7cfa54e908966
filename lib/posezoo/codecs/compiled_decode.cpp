// posezoo's compiled CPU decode kernels (codecs/compiled.py builds this file with inductor's C++ toolchain).
//
// Each kernel reads a map once: the argmax (or the blurred argmax) and what the refinement needs come from the
// same pass, one map per OpenMP iteration, while the map is in L1/L2. Every kernel marks in `redo` the maps whose
// result it cannot vouch for (NaN maps, steps the rounding bound cannot trust, near ties of a blurred maximum);
// compiled.py decodes those maps with the plain path. MAX_SHIFT (heatmap pixels) is defined by compiled.py.
#include <cstdint>
#include <cmath>
#include <cfloat>
#include <vector>
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

// One vector type for the three builds: AVX-512 (16 lanes), AVX2 (8) or scalar (1); POSEZOO_VECTOR_BITS 256 or 32
// picks a narrower one on a wider machine (the tests compare the three). A load or store of the
// last, partial vector of a row takes `n` < L lanes (masked; masked-off lanes are never read or written). Every
// multiply-add is a fused one in all three, so a blurred value is the same whatever the build.
#ifndef POSEZOO_VECTOR_BITS
#define POSEZOO_VECTOR_BITS 512
#endif
namespace vec {
#if defined(__AVX512F__) && POSEZOO_VECTOR_BITS >= 512
constexpr int64_t L = 16;
using F = __m512;
static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }
static inline F load(const float* p, int64_t n) { return n >= L ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lanes(n), p); }
static inline F load_or(const float* p, int64_t n, float fill) {
  return n >= L ? _mm512_loadu_ps(p) : _mm512_mask_loadu_ps(_mm512_set1_ps(fill), lanes(n), p);
}
static inline void store(float* p, F v, int64_t n) { if (n >= L) _mm512_storeu_ps(p, v); else _mm512_mask_storeu_ps(p, lanes(n), v); }
static inline F keep(F v, int64_t n, float fill) { return n >= L ? v : _mm512_mask_blend_ps(lanes(n), _mm512_set1_ps(fill), v); }
static inline F set(float a) { return _mm512_set1_ps(a); }
static inline F mul(F a, F b) { return _mm512_mul_ps(a, b); }
static inline F add(F a, F b) { return _mm512_add_ps(a, b); }
static inline bool all_finite(F a) {  // a - a is 0 for a finite lane, NaN for an infinite or NaN one
  return _mm512_cmp_ps_mask(_mm512_sub_ps(a, a), _mm512_setzero_ps(), _CMP_EQ_OQ) == (__mmask16)0xFFFF;
}
static inline F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
static inline F min(F a, F b) { return _mm512_min_ps(a, b); }
static inline F max(F a, F b) { return _mm512_max_ps(a, b); }
static inline bool any_nan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) != 0; }
static inline bool any_at_least(F a, float x) { return _mm512_cmp_ps_mask(a, _mm512_set1_ps(x), _CMP_GE_OQ) != 0; }
static inline float hmin(F a) { return _mm512_reduce_min_ps(a); }
static inline float hmax(F a) { return _mm512_reduce_max_ps(a); }
static inline int64_t first_equal(F a, float x, int64_t n) {  // first lane < n equal to x, else -1
  const unsigned m = _mm512_cmp_ps_mask(a, _mm512_set1_ps(x), _CMP_EQ_OQ) & lanes(n);
  return m ? __builtin_ctz(m) : -1;
}
#elif defined(__AVX2__) && POSEZOO_VECTOR_BITS >= 256
constexpr int64_t L = 8;
using F = __m256;
static inline __m256i lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline F load(const float* p, int64_t n) { return n >= L ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(n)); }
static inline F load_or(const float* p, int64_t n, float fill) {
  return n >= L ? _mm256_loadu_ps(p)
                : _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, lanes(n)), _mm256_castsi256_ps(lanes(n)));
}
static inline void store(float* p, F v, int64_t n) { if (n >= L) _mm256_storeu_ps(p, v); else _mm256_maskstore_ps(p, lanes(n), v); }
static inline F keep(F v, int64_t n, float fill) {
  return n >= L ? v : _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(lanes(n)));
}
static inline F set(float a) { return _mm256_set1_ps(a); }
static inline F mul(F a, F b) { return _mm256_mul_ps(a, b); }
static inline F add(F a, F b) { return _mm256_add_ps(a, b); }
static inline bool all_finite(F a) {
  return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(a, a), _mm256_setzero_ps(), _CMP_EQ_OQ)) == 0xFF;
}
static inline F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
static inline F min(F a, F b) { return _mm256_min_ps(a, b); }
static inline F max(F a, F b) { return _mm256_max_ps(a, b); }
static inline bool any_nan(F a) { return _mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)) != 0; }
static inline bool any_at_least(F a, float x) { return _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(x), _CMP_GE_OQ)) != 0; }
static inline float hmin(F a) {
  alignas(32) float t[8]; _mm256_store_ps(t, a);
  float m = t[0]; for (int i = 1; i < 8; ++i) m = t[i] < m ? t[i] : m;
  return m;
}
static inline float hmax(F a) {
  alignas(32) float t[8]; _mm256_store_ps(t, a);
  float m = t[0]; for (int i = 1; i < 8; ++i) m = t[i] > m ? t[i] : m;
  return m;
}
static inline int64_t first_equal(F a, float x, int64_t n) {
  const unsigned m = _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(x), _CMP_EQ_OQ)) & ((1u << (n >= L ? L : n)) - 1);
  return m ? __builtin_ctz(m) : -1;
}
#else
constexpr int64_t L = 1;
using F = float;
static inline F load(const float* p, int64_t) { return *p; }
static inline F load_or(const float* p, int64_t, float) { return *p; }
static inline void store(float* p, F v, int64_t) { *p = v; }
static inline F keep(F v, int64_t, float) { return v; }
static inline F set(float a) { return a; }
static inline F mul(F a, F b) { return a * b; }
static inline F add(F a, F b) { return a + b; }
static inline bool all_finite(F a) { return std::isfinite(a); }
static inline F fma(F a, F b, F c) { return std::fma(a, b, c); }
static inline F min(F a, F b) { return b < a ? b : a; }
static inline F max(F a, F b) { return b > a ? b : a; }
static inline bool any_nan(F a) { return a != a; }
static inline bool any_at_least(F a, float x) { return a >= x; }
static inline float hmin(F a) { return a; }
static inline float hmax(F a) { return a; }
static inline int64_t first_equal(F a, float x, int64_t) { return a == x ? 0 : -1; }
#endif
}  // namespace vec

// Asks for the cache lines of bytes [from, to) of the next map, so that it streams in while this one is worked on
// (the decoders read each map once: memory bandwidth, not arithmetic, bounds them).
static inline void prefetch(const float* next, int64_t from, int64_t to) {
  if (!next) return;
  const char* base = reinterpret_cast<const char*>(next);
  for (int64_t b = from & ~int64_t(63); b < to; b += 64) __builtin_prefetch(base + b, 0, 2);
}

// np.argmax (first index of the maximum) of n floats, the maximum, and whether any value is NaN; prefetches the
// n floats of `next` (or nothing where it is null).
static inline int64_t first_max(const float* p, int64_t n, float* best, bool* nan, const float* next) {
  using namespace vec;
  F m0 = set(-INFINITY), m1 = m0, total = set(0.0f);  // a NaN makes the sum NaN (see scan_rows)
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    prefetch(next, 4 * i, 4 * (i + 2 * L));
    const F a = load(p + i, L), b = load(p + i + L, L);
    total = add(total, add(a, b));
    m0 = max(m0, a); m1 = max(m1, b);
  }
  prefetch(next, 4 * i, 4 * n);
  float m = hmax(max(m0, m1));
  bool bad = !all_finite(total);
  for (int64_t j = i; j < n; ++j) { m = p[j] > m ? p[j] : m; bad |= !std::isfinite(p[j]); }
  if (bad) {  // an infinite sum or value: NaN only if a value is one
    bad = false;
    for (int64_t j = 0; j < n && !bad; j += L) bad = any_nan(load(p + j, n - j));
  }
  *best = m; *nan = bad;
  for (i = 0; i < n; i += L) {
    const int64_t lane = first_equal(load(p + i, n - i), m, n - i);
    if (lane >= 0) return i + lane;
  }
  return 0;
}

// A map's first maximum, written out as the decoders' starting point: maxval, flat index, the integer peak
// (0, 0) where the maximum is not > 0, and redo for a map holding a NaN. Returns the maximum and the peak.
static inline float start_at_first_max(const float* map, int64_t h, int64_t w, int64_t m, float* maxval,
                                       int64_t* index, double* coords, uint8_t* redo, int64_t* px, int64_t* py,
                                       const float* next) {
  float top;
  bool nan;
  const int64_t at = first_max(map, h * w, &top, &nan, next);
  maxval[m] = top;
  index[m] = at;
  redo[m] = nan ? 1 : 0;
  *px = at % w;
  *py = at / w;
  if (!(top > 0)) { *px = 0; *py = 0; }
  coords[2 * m] = (double)*px;
  coords[2 * m + 1] = (double)*py;
  return top;
}

// OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba) for -n < i < 2n - 1.
static inline int64_t reflect101(int64_t i, int64_t n) {
  if (n == 1) return 0;
  if (i < 0) i = -i;
  if (i >= n) i = 2 * (n - 1) - i;
  return i;
}

// A vector of `n` lanes at p: a whole one (FULL, n >= L) or the last, partial one of a row.
template <bool FULL>
static inline vec::F lanes_at(const float* p, int64_t n) {
  if constexpr (FULL) return vec::load(p, vec::L);
  else return vec::load(p, n);
}
template <bool FULL>
static inline void store_lanes(float* p, vec::F v, int64_t n) {
  if constexpr (FULL) vec::store(p, v, vec::L);
  else vec::store(p, v, n);
}

// Rows y0 .. y1 - 1 of the vertical pass over one strip of `n` columns from x (one vector wide) into `ext`
// (row stride w + 2r, each row starting r floats in): the k source vectors of output row y stay in registers and
// row y + 1 loads one more, one load per k multiply-adds. `next` (or null) is prefetched a row per row.
template <int KN, bool FULL>
static inline void vertical_strip(const float* __restrict map, int64_t h, int64_t w, int64_t kernel,
                                  const float* __restrict taps, float* __restrict ext, int64_t y0, int64_t y1,
                                  int64_t x, int64_t n, const float* next) {
  using namespace vec;
  const int64_t k = KN > 0 ? KN : kernel, r = k / 2, stride = w + 2 * r;
  F window[KN > 0 ? KN : 64];  // window[i]: source row reflect(y + i - r) of output row y
  F tap[KN > 0 ? KN : 64];
  for (int64_t i = 0; i < k; ++i) tap[i] = set(taps[i]);
  for (int64_t i = 1; i < k; ++i) window[i] = lanes_at<FULL>(map + reflect101(y0 + i - 1 - r, h) * w + x, n);
  for (int64_t y = y0; y < y1; ++y) {
    if (x == 0) prefetch(next, 4 * y * w, 4 * (y + 1) * w);
    for (int64_t i = 0; i + 1 < k; ++i) window[i] = window[i + 1];
    window[k - 1] = lanes_at<FULL>(map + reflect101(y + r, h) * w + x, n);
    F acc = mul(tap[0], window[0]);
    for (int64_t i = 1; i < k; ++i) acc = fma(tap[i], window[i], acc);
    store_lanes<FULL>(ext + y * stride + r + x, acc, n);
  }
}

// Rows y0 .. y1 - 1 of the horizontal pass over one strip: `out` = the k taps along the padded `ext` rows; with
// `mn` / `mx` their minimum and maximum folded in.
template <int KN, bool FULL>
static inline void horizontal_strip(const float* __restrict ext, int64_t w, int64_t kernel,
                                    const float* __restrict taps, float* __restrict out, int64_t y0, int64_t y1,
                                    int64_t x, int64_t n, vec::F* mn, vec::F* mx) {
  using namespace vec;
  const int64_t k = KN > 0 ? KN : kernel, stride = w + 2 * (k / 2);
  F tap[KN > 0 ? KN : 64];
  for (int64_t j = 0; j < k; ++j) tap[j] = set(taps[j]);
  for (int64_t y = y0; y < y1; ++y) {
    const float* padded = ext + y * stride + x;
    F acc = mul(tap[0], lanes_at<FULL>(padded, n));
    for (int64_t j = 1; j < k; ++j) acc = fma(tap[j], lanes_at<FULL>(padded + j, n), acc);
    store_lanes<FULL>(out + y * w + x, acc, n);
    if (mn) { *mn = min(*mn, keep(acc, n, INFINITY)); *mx = max(*mx, keep(acc, n, -INFINITY)); }
  }
}

// Output rows y0 .. y1 - 1 of the k x k float32 blur (the k float taps along both axes, reflect-101 border; vertical
// taps first, then horizontal: OpenCV sums in the other order, a difference of float32 roundings) of an h x w map:
// `ext` holds h * (w + k - 1) floats, `out` h * w (only rows y0 .. y1 - 1 are written); with `lo` and `hi` the
// minimum and maximum of those rows too. Each sum is fused multiply-adds in tap order; `next` (or null) is the map
// to prefetch. Needs k / 2 < h, w.
template <int KN>
static void blur_rows_k(const float* map, int64_t h, int64_t w, int64_t kernel, const float* taps, float* ext,
                        float* out, int64_t y0, int64_t y1, const float* next, float* lo, float* hi) {
  using namespace vec;
  const int64_t r = (KN > 0 ? KN : kernel) / 2, stride = w + 2 * r;
  int64_t x = 0;
  for (; x + L <= w; x += L) vertical_strip<KN, true>(map, h, w, kernel, taps, ext, y0, y1, x, L, next);
  if (x < w) vertical_strip<KN, false>(map, h, w, kernel, taps, ext, y0, y1, x, w - x, next);
  for (int64_t y = y0; y < y1; ++y) {
    float* row = ext + y * stride + r;
    for (int64_t j = 1; j <= r; ++j) { row[-j] = row[j]; row[w - 1 + j] = row[w - 1 - j]; }  // reflect-101, r < w
  }
  F mn = set(INFINITY), mx = set(-INFINITY);
  F* mn_p = lo ? &mn : nullptr;
  for (x = 0; x + L <= w; x += L) horizontal_strip<KN, true>(ext, w, kernel, taps, out, y0, y1, x, L, mn_p, &mx);
  if (x < w) horizontal_strip<KN, false>(ext, w, kernel, taps, out, y0, y1, x, w - x, mn_p, &mx);
  if (lo) { *lo = hmin(mn); *hi = hmax(mx); }
}

static void blur_rows(const float* map, int64_t h, int64_t w, int64_t k, const float* taps, float* ext, float* out,
                      int64_t y0, int64_t y1, const float* next = nullptr, float* lo = nullptr, float* hi = nullptr) {
  if (k == 7) blur_rows_k<7>(map, h, w, k, taps, ext, out, y0, y1, next, lo, hi);
  else if (k == 15) blur_rows_k<15>(map, h, w, k, taps, ext, out, y0, y1, next, lo, hi);
  else blur_rows_k<0>(map, h, w, k, taps, ext, out, y0, y1, next, lo, hi);
}

// The k x k blur (double taps, reflect-101 border) of one map at pixel (y, x), in double: each source row across
// first, then down the rows.
static inline double blur_at(const float* map, int64_t h, int64_t w, int64_t k, const double* taps, int64_t y,
                             int64_t x) {
  const int64_t r = k / 2;
  double acc = 0.0;
  if (y >= r && y + r < h && x >= r && x + r < w) {  // inside the map: no reflection, the same sums
    const float* corner = map + (y - r) * w + (x - r);
    for (int64_t i = 0; i < k; ++i) {
      const float* row = corner + i * w;
      double line = 0.0;
      for (int64_t j = 0; j < k; ++j) line += taps[j] * (double)row[j];
      acc += taps[i] * line;
    }
    return acc;
  }
  for (int64_t i = 0; i < k; ++i) {
    const float* row = map + reflect101(y + i - r, h) * w;
    double line = 0.0;
    for (int64_t j = 0; j < k; ++j) line += taps[j] * (double)row[reflect101(x + j - r, w)];
    acc += taps[i] * line;
  }
  return acc;
}

// blur_at on the 3 x 3 pixels (ys[d], xs[c]), ys and xs each non-decreasing by at most 1: the source rows they share
// are blurred across once (the same sums, in the same order, as blur_at's).
static inline void blur_3x3(const float* map, int64_t h, int64_t w, int64_t k, const double* taps,
                            const int64_t ys[3], const int64_t xs[3], double out[3][3]) {
  const int64_t r = k / 2, first = ys[0] - r, rows = ys[2] - ys[0] + k;
  int64_t cols[3][64];
  for (int c = 0; c < 3; ++c)
    for (int64_t j = 0; j < k; ++j) cols[c][j] = reflect101(xs[c] + j - r, w);
  double line[66][3];
  for (int64_t t = 0; t < rows; ++t) {
    const float* row = map + reflect101(first + t, h) * w;
    for (int c = 0; c < 3; ++c) {
      double acc = 0.0;
      for (int64_t j = 0; j < k; ++j) acc += taps[j] * (double)row[cols[c][j]];
      line[t][c] = acc;
    }
  }
  for (int d = 0; d < 3; ++d)
    for (int c = 0; c < 3; ++c) {
      double acc = 0.0;
      for (int64_t i = 0; i < k; ++i) acc += taps[i] * line[ys[d] - ys[0] + i][c];
      out[d][c] = acc;
    }
}

// DARK (DarkPose lib/core/inference.py get_final_preds): per map the raw argmax and maximum, the 13 stencil
// values of the zero-padded blur (double, rounded to float32), the float32 clamp + log, the Taylor step in double
// and its rounding bound, as dark._windowed_steps in its double tier. coords gets the refined (or integer) point.
extern "C" void dark_decode(const float* maps, int64_t count, int64_t h, int64_t w, int64_t kernel,
                            const double* taps, float* maxval, int64_t* index, double* coords, uint8_t* redo,
                            int64_t threads) {
  const int64_t r = kernel / 2, s = kernel + 4;
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t m = 0; m < count; ++m) {
    const float* map = maps + m * h * w;
    int64_t px, py;
    const float top = start_at_first_max(map, h, w, m, maxval, index, coords, redo, &px, &py,
                                         m + 1 < count ? map + h * w : nullptr);
    const bool nan = redo[m];
    if (nan || h < 5 || w < 5 || !(px > 1 && px < w - 2 && py > 1 && py < h - 2)) continue;
    float win[40][40];  // the raw window around the argmax, zero off the map (kernel <= 35)
    const int64_t top_row = py - 2 - r, left = px - 2 - r;
    if (top_row >= 0 && top_row + s <= h && left >= 0 && left + s <= w) {  // inside the map: row copies
      for (int64_t i = 0; i < s; ++i)
        for (int64_t j = 0; j < s; ++j) win[i][j] = map[(top_row + i) * w + left + j];
    } else {
      for (int64_t i = 0; i < s; ++i) {
        const int64_t y = top_row + i;
        for (int64_t j = 0; j < s; ++j) {
          const int64_t x = left + j;
          win[i][j] = (y >= 0 && y < h && x >= 0 && x < w) ? map[y * w + x] : 0.0f;
        }
      }
    }
    double across[40][5];
    for (int64_t i = 0; i < s; ++i) {
      double acc[5] = {0, 0, 0, 0, 0};
      for (int64_t j = 0; j < kernel; ++j)
        for (int c = 0; c < 5; ++c) acc[c] = std::fma(taps[j], (double)win[i][c + j], acc[c]);
      for (int c = 0; c < 5; ++c) across[i][c] = acc[c];
    }
    float b[5][5];
    float smallest = INFINITY;
    for (int dy = 0; dy < 5; ++dy) {
      double acc[5] = {0, 0, 0, 0, 0};
      for (int64_t i = 0; i < kernel; ++i)
        for (int c = 0; c < 5; ++c) acc[c] = std::fma(taps[i], across[dy + i][c], acc[c]);
      for (int dx = 0; dx < 5; ++dx) {
        const int d = (dy > 2 ? dy - 2 : 2 - dy) + (dx > 2 ? dx - 2 : 2 - dx);
        b[dy][dx] = d <= 2 ? (float)acc[dx] : 1.0f;  // the step reads the 13 values within distance 2
        if (d <= 2) smallest = b[dy][dx] < smallest ? b[dy][dx] : smallest;
      }
    }
    float l[5][5];
    for (int dy = 0; dy < 5; ++dy)
      for (int dx = 0; dx < 5; ++dx) l[dy][dx] = std::log(b[dy][dx] > 1e-10f ? b[dy][dx] : 1e-10f);
    // dark.taylor_step: float32 differences in torch's operation order, the solve in double
    const float c0 = l[2][2];
    const float fdx = 0.5f * (l[2][3] - l[2][1]);
    const float fdy = 0.5f * (l[3][2] - l[1][2]);
    const float fdxx = 0.25f * ((l[2][4] - 2 * c0) + l[2][0]);
    const float fdxy = 0.25f * (((l[3][3] - l[1][3]) - l[3][1]) + l[1][1]);
    const float fdyy = 0.25f * ((l[4][2] - 2 * c0) + l[0][2]);
    const float fdet = fdxx * fdyy - fdxy * fdxy;
    if (fdet == 0.0f) { redo[m] = 1; continue; }
    const double dx = fdx, dy = fdy, dxx = fdxx, dxy = fdxy, dyy = fdyy;
    const double det = dxx * dyy - dxy * dxy;
    const double sx = (dxy * dy - dyy * dx) / det, sy = (dxy * dx - dxx * dy) / det;
    const double inv_norm = std::sqrt(dxx * dxx + 2 * dxy * dxy + dyy * dyy) / std::fabs(det);
    const double sensitivity = inv_norm * (std::sqrt(2.0) + 2 * std::sqrt(sx * sx + sy * sy));
    const double low = (double)smallest > 1e-10 ? (double)smallest : 1e-10, high = (double)top;
    const double centre = (double)b[2][2] > 1e-10 ? (double)b[2][2] : 1e-10;
    double log_ratio = std::log(high / centre);
    if (!(log_ratio > 0)) log_ratio = 0;
    const double big = std::fmax(std::fabs(std::log(low)), std::fabs(std::log(high)));
    const double eps = (double)FLT_EPSILON * (1 + 2 * big + log_ratio);
    if (!((double)smallest >= 1e-10 && sensitivity * eps <= MAX_SHIFT) || !std::isfinite(sx) || !std::isfinite(sy)) {
      redo[m] = 1;
      continue;
    }
    coords[2 * m] = px + sx;
    coords[2 * m + 1] = py + sy;
  }
}

// The minimum and maximum of the blurred rows y0 .. y1 - 1 in `out` (h x w).
static inline void rows_min_max(const float* out, int64_t w, int64_t y0, int64_t y1, float* lo, float* hi) {
  using namespace vec;
  F mn = set(INFINITY), mx = set(-INFINITY);
  const int64_t n = (y1 - y0) * w;
  const float* p = out + y0 * w;
  for (int64_t i = 0; i < n; i += L) {
    mn = min(mn, load_or(p + i, n - i, INFINITY));
    mx = max(mx, load_or(p + i, n - i, -INFINITY));
  }
  *lo = hmin(mn); *hi = hmax(mx);
}

// UDP-Pose master's Gaussian decode (deep-high-resolution-net.pytorch/lib/core/inference.py get_max_preds + post):
// the raw argmax and maximum; the whole k x k float32 blur for its minimum and maximum (the rescale subtracts the
// minimum inside the log, so no window can stand in for the whole map: udp.py's module docstring); the nine
// blurred values around the point in double (neighbours off the map repeat the edge pixel), rescaled to
// (b - min) / (max - min) * raw max, clipped to [0.001, 50], log; one Newton step, none where it is singular.
extern "C" void udp_gaussian_decode(const float* maps, int64_t count, int64_t h, int64_t w, int64_t kernel,
                                    const float* taps32, const double* taps, float* maxval, int64_t* index,
                                    double* coords, uint8_t* redo, int64_t threads) {
  #pragma omp parallel num_threads(threads)
  {
    std::vector<float> ext(h * (w + kernel)), out(h * w);
    #pragma omp for schedule(static)
    for (int64_t m = 0; m < count; ++m) {
      const float* map = maps + m * h * w;
      int64_t px, py;
      const float top = start_at_first_max(map, h, w, m, maxval, index, coords, redo, &px, &py, nullptr);
      if (redo[m]) continue;
      float lo, hi;
      blur_rows(map, h, w, kernel, taps32, ext.data(), out.data(), 0, h, m + 1 < count ? map + h * w : nullptr, &lo, &hi);
      const double bmin = lo, range = (double)hi - (double)lo, raw = top;
      const int64_t ys[3] = {py > 0 ? py - 1 : 0, py, py + 1 < h ? py + 1 : h - 1};
      const int64_t xs[3] = {px > 0 ? px - 1 : 0, px, px + 1 < w ? px + 1 : w - 1};
      double p[3][3];
      blur_3x3(map, h, w, kernel, taps, ys, xs, p);
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx) {
          double v = (p[dy][dx] - bmin) / range * raw;
          v = v < 0.001 ? 0.001 : (v > 50 ? 50 : v);  // NaN stays NaN, as torch.clamp
          p[dy][dx] = std::log(v);
        }
      const double i0 = p[1][1];
      const double dx = 0.5 * (p[1][2] - p[1][0]);
      const double dy = 0.5 * (p[2][1] - p[0][1]);
      const double dxx = p[1][2] - 2 * i0 + p[1][0];
      const double dyy = p[2][1] - 2 * i0 + p[0][1];
      const double dxy = 0.5 * (p[2][2] - p[1][2] - p[2][1] + 2 * i0 - p[1][0] - p[0][1] + p[0][0]);
      const double det = dxx * dyy - dxy * dxy;
      if (!(det != 0)) continue;
      const double sx = (dyy * dx - dxy * dy) / det, sy = (dxx * dy - dxy * dx) / det;
      if (!std::isfinite(sx) || !std::isfinite(sy)) continue;
      coords[2 * m] = px - sx;
      coords[2 * m + 1] = py - sy;
    }
  }
}

// One pass over a map: the maximum of each row, the map's maximum and minimum, whether a value is NaN, and the
// row of the first maximum; prefetches `next`.
static inline int64_t scan_rows(const float* map, int64_t h, int64_t w, float* rowmax, float* top, float* bottom,
                                bool* nan, const float* next) {
  using namespace vec;
  F mn = set(INFINITY);
  float best = -INFINITY;
  int64_t best_row = 0;
  F total = set(0.0f);  // NaN anywhere makes the sum NaN (an overflow makes it infinite: then a NaN scan decides)
  for (int64_t y = 0; y < h; ++y) {
    const float* row = map + y * w;
    prefetch(next, 4 * y * w, 4 * (y + 1) * w);
    F mx = set(-INFINITY);
    for (int64_t x = 0; x < w; x += L) {
      const F a = load_or(row + x, w - x, row[0]);
      total = add(total, a);
      mx = max(mx, a); mn = min(mn, a);
    }
    rowmax[y] = hmax(mx);
    if (rowmax[y] > best) { best = rowmax[y]; best_row = y; }
  }
  bool bad = false;
  if (!all_finite(total))
    for (int64_t i = 0; i < h * w && !bad; i += L) bad = any_nan(load(map + i, h * w - i));
  *top = best; *bottom = hmin(mn); *nan = bad;
  return best_row;
}

// UDP-Pose master's offset decode (lib/core/inference.py get_final_preds, TARGET_TYPE offset): per joint of an
// (N, 3K, H, W) output the argmax and maximum of the float32 k x k blurred classification map, then the x and y
// offset maps blurred ok x ok (double) at that pixel times kpd.
//
// Only the blurred rows that can hold the maximum are computed. The blur is a convex combination of map pixels
// (positive taps summing to S ~ 1, reflect-101 folds into the weights), so every blurred value in output row y is
// at most bound(y) = S * sum_i taps[i] * rowmax[reflect(y + i - r)]. The row of the raw maximum is blurred first;
// then every row whose bound comes within 2 tol of the best value so far, tol = rtol * max |raw value|, which is
// far above the float32 rounding of either this blur or OpenCV's (2 k eps of the largest |value|). The rows left
// out therefore hold no value within tol of the maximum in either rounding, and the argmax is the first maximum
// of the computed rows. A map whose maximum has another computed value, or zero, within tol is marked: rounding
// may decide its argmax (compiled.py hands it to the plain path), as are NaN maps.
extern "C" void udp_offset_decode(const float* output, int64_t crops, int64_t joints, int64_t h, int64_t w,
                                  int64_t kernel, const float* taps32, int64_t offset_kernel, const double* taps,
                                  double kpd, double rtol, float* maxval, double* coords, uint8_t* redo,
                                  int64_t threads) {
  const int64_t count = crops * joints, plane = h * w, r = kernel / 2;
  double tap_sum = 0.0;
  for (int64_t i = 0; i < kernel; ++i) tap_sum += (double)taps32[i];
  // joint m's offsets are read one joint later: their rows (in planes the scan never touches) are prefetched when
  // its argmax is known and have arrived by then
  const int64_t reach = offset_kernel / 2;
  auto finish = [&](int64_t m, int64_t px, int64_t py) {
    const float* cls = output + 3 * m * plane;
    const double ox = blur_at(cls + plane, h, w, offset_kernel, taps, py, px);
    const double oy = blur_at(cls + 2 * plane, h, w, offset_kernel, taps, py, px);
    coords[2 * m] = px + ox * kpd;
    coords[2 * m + 1] = py + oy * kpd;
  };
  #pragma omp parallel num_threads(threads)
  {
    std::vector<float> ext(h * (w + kernel)), out(plane), rowmax(h), blurred_max(h);
    std::vector<double> padded(h + 2 * r), bound(h);
    std::vector<uint8_t> done(h);
    int64_t pending = -1, pending_x = 0, pending_y = 0;
    #pragma omp for schedule(static) nowait
    for (int64_t m = 0; m < count; ++m) {
      if (pending >= 0) { finish(pending, pending_x, pending_y); pending = -1; }
      const float* cls = output + 3 * m * plane;
      maxval[m] = 0.0f;
      coords[2 * m] = coords[2 * m + 1] = 0.0;
      float raw_top, raw_bottom;
      bool nan;
      const int64_t peak_row = scan_rows(cls, h, w, rowmax.data(), &raw_top, &raw_bottom, &nan,
                                         m + 1 < count ? cls + 3 * plane : nullptr);
      const double scale = std::fmax(std::fabs((double)raw_top), std::fabs((double)raw_bottom));
      redo[m] = nan || !std::isfinite(scale) ? 1 : 0;
      if (redo[m]) continue;
      const double tol = rtol * scale;
      double* __restrict pad = padded.data();
      double* __restrict row_bound = bound.data();
      for (int64_t i = 0; i < r; ++i) {
        pad[i] = tap_sum * (double)rowmax[reflect101(i - r, h)];
        pad[h + r + i] = tap_sum * (double)rowmax[reflect101(h + i, h)];
      }
      for (int64_t y = 0; y < h; ++y) pad[r + y] = tap_sum * (double)rowmax[y];
      std::fill(bound.begin(), bound.end(), 0.0);
      for (int64_t i = 0; i < kernel; ++i)  // bound(y) for every row at once (independent sums: vectorised)
        for (int64_t y = 0; y < h; ++y) row_bound[y] += (double)taps32[i] * pad[y + i];
      std::fill(done.begin(), done.end(), 0);
      float lo, best;
      blur_rows(cls, h, w, kernel, taps32, ext.data(), out.data(), peak_row, peak_row + 1);
      rows_min_max(out.data(), w, peak_row, peak_row + 1, &lo, &best);
      done[peak_row] = 1;
      blurred_max[peak_row] = best;
      for (int64_t y = 0; y < h;) {  // the runs of rows whose bound reaches best - 2 tol, a run at a time
        const double reach = (double)best - 2 * tol;
        int64_t end = y;
        while (end < h && !done[end] && bound[end] >= reach) ++end;
        if (end == y) { ++y; continue; }
        blur_rows(cls, h, w, kernel, taps32, ext.data(), out.data(), y, end);
        for (int64_t row = y; row < end; ++row) {
          done[row] = 1;
          rows_min_max(out.data(), w, row, row + 1, &lo, &blurred_max[row]);
          best = blurred_max[row] > best ? blurred_max[row] : best;
        }
        y = end;
      }
      // the first maximum, and how many computed values come within tol of it
      const float near = (float)((double)best - tol);
      int64_t at = -1, close = 0;
      for (int64_t y = 0; y < h; ++y) {
        if (!done[y] || !(blurred_max[y] >= near)) continue;
        for (int64_t x = 0; x < w; ++x) {
          const float v = out[y * w + x];
          if (at < 0 && v == best) at = y * w + x;
          close += v >= near;
        }
      }
      if (close > 1 || std::fabs((double)best) <= tol || at < 0) { redo[m] = 1; continue; }
      maxval[m] = best;
      int64_t px = at % w, py = at / w;
      if (!(best > 0)) { px = 0; py = 0; }
      for (int64_t i = -reach; i <= reach; ++i) {
        const int64_t row = reflect101(py + i, h) * w;
        const int64_t from = px > reach ? px - reach : 0, to = px + reach < w ? px + reach + 1 : w;
        prefetch(cls + plane, 4 * (row + from), 4 * (row + to));
        prefetch(cls + 2 * plane, 4 * (row + from), 4 * (row + to));
      }
      pending = m; pending_x = px; pending_y = py;
    }
    if (pending >= 0) finish(pending, pending_x, pending_y);
  }
}

// LPN's beta-soft-argmax (lpn-pytorch lib/core/inference.py get_final_preds_using_softargmax): the expected
// (x, y) under softmax(beta * map) over each map. A pixel more than `cutoff` / beta below the map's maximum weighs
// under e^-cutoff of the maximum's weight; all of them together move the point by less than
// max(h, w) * h * w * e^-cutoff pixels (8e-13 for 64 x 48 at cutoff 40), so only the pixels above that line are
// summed (in double; a peaked map has a few dozen), in the pass that finds them while the map is in L1.
extern "C" void soft_argmax_decode(const float* maps, int64_t count, int64_t h, int64_t w, double beta,
                                   double cutoff, double* coords, uint8_t* redo, int64_t threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t m = 0; m < count; ++m) {
    const float* map = maps + m * h * w;
    float top;
    bool nan;
    first_max(map, h * w, &top, &nan, m + 1 < count ? map + h * w : nullptr);
    redo[m] = nan || !std::isfinite(top) ? 1 : 0;
    if (redo[m]) continue;
    const double line = (double)top - cutoff / beta;
    const float below = std::nextafter((float)line, -INFINITY);  // no pixel >= line (in double) is < below
    double sum = 0.0, sx = 0.0, sy = 0.0;
    const int64_t n = h * w;
    for (int64_t i = 0; i < n; i += vec::L) {  // the vectors holding a pixel above the line
      if (!vec::any_at_least(vec::load_or(map + i, n - i, -INFINITY), below)) continue;
      for (int64_t j = i; j < i + vec::L && j < n; ++j) {
        if (!((double)map[j] >= line)) continue;
        const double weight = std::exp(beta * ((double)map[j] - (double)top));
        sum += weight;
        sx += weight * (double)(j % w);
        sy += weight * (double)(j / w);
      }
    }
    coords[2 * m] = sx / sum;
    coords[2 * m + 1] = sy / sum;
  }
}
