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

// np.argmax (first index of the maximum) of n floats, the maximum, and whether any value is NaN.
static inline int64_t first_max(const float* p, int64_t n, float* best, bool* nan) {
  int64_t i = 0;
  float m = -INFINITY;
  bool bad = false;
#if defined(__AVX2__)
  if (n >= 32) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    __m256 u = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
      const __m256 a = _mm256_loadu_ps(p + i), b = _mm256_loadu_ps(p + i + 8);
      const __m256 c = _mm256_loadu_ps(p + i + 16), d = _mm256_loadu_ps(p + i + 24);
      m0 = _mm256_max_ps(m0, a); m1 = _mm256_max_ps(m1, b); m2 = _mm256_max_ps(m2, c); m3 = _mm256_max_ps(m3, d);
      u = _mm256_or_ps(u, _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q), _mm256_cmp_ps(c, d, _CMP_UNORD_Q)));
    }
    m0 = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m0);
    for (int k = 0; k < 8; ++k) m = lanes[k] > m ? lanes[k] : m;
    bad = _mm256_movemask_ps(u) != 0;
  }
#endif
  for (int64_t j = i; j < n; ++j) { m = p[j] > m ? p[j] : m; bad |= (p[j] != p[j]); }
  *best = m; *nan = bad;
  i = 0;
#if defined(__AVX2__)
  const __m256 target = _mm256_set1_ps(m);
  for (; i + 8 <= n; i += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + i), target, _CMP_EQ_OQ));
    if (mask) return i + __builtin_ctz(mask);
  }
#endif
  for (; i < n; ++i) if (p[i] == m) return i;
  return 0;
}

// OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba) for -n < i < 2n - 1.
// A map's first maximum, written out as the decoders' starting point: maxval, flat index, the integer peak
// (0, 0) where the maximum is not > 0, and redo for a map holding a NaN. Returns the maximum and the peak.
static inline float start_at_first_max(const float* map, int64_t h, int64_t w, int64_t m, float* maxval,
                                       int64_t* index, double* coords, uint8_t* redo, int64_t* px, int64_t* py) {
  float top;
  bool nan;
  const int64_t at = first_max(map, h * w, &top, &nan);
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

static inline int64_t reflect101(int64_t i, int64_t n) {
  if (n == 1) return 0;
  if (i < 0) i = -i;
  if (i >= n) i = 2 * (n - 1) - i;
  return i;
}

// The blur of an h x w float map with the k float taps along both axes, reflect-101 border, in float32
// (vertical taps first, then horizontal; OpenCV sums in the other order, a difference of float32 roundings):
// `ext` holds h * (w + k - 1) floats, `out` h * w. The minimum and maximum of the blurred map, and the first index of
// its maximum when `at` is given. Needs k / 2 < h and k / 2 < w.
// KN > 0 fixes k at compile time (the loops over the taps unroll); KN == 0 reads it from `kernel`.
template <int KN>
static void blur_map_k(const float* __restrict map, int64_t h, int64_t w, int64_t kernel,
                       const float* __restrict taps, float* __restrict ext, float* __restrict out, float* lo,
                       float* hi, int64_t* at) {
  const int64_t k = KN > 0 ? KN : kernel;
  const int64_t r = k / 2;
  float mn = INFINITY, mx = -INFINITY;
  int64_t best = 0;
  const int64_t stride = w + 2 * r;  // ext: the vertically blurred map, each row padded by r on both sides
  for (int64_t y = 0; y < h; ++y) {
    const float* src[64];  // the k source rows of output row y (k <= 63)
    for (int64_t i = 0; i < k; ++i) src[i] = map + reflect101(y + i - r, h) * w;
    float* __restrict row = ext + y * stride + r;
    int64_t x = 0;
#if defined(__AVX512F__)
    for (; x + 16 <= w; x += 16) {  // taps accumulated in a register
      __m512 acc = _mm512_mul_ps(_mm512_set1_ps(taps[0]), _mm512_loadu_ps(src[0] + x));
      for (int64_t i = 1; i < k; ++i) acc = _mm512_fmadd_ps(_mm512_set1_ps(taps[i]), _mm512_loadu_ps(src[i] + x), acc);
      _mm512_storeu_ps(row + x, acc);
    }
#endif
#if defined(__AVX2__)
    for (; x + 8 <= w; x += 8) {
      __m256 acc = _mm256_mul_ps(_mm256_set1_ps(taps[0]), _mm256_loadu_ps(src[0] + x));
      for (int64_t i = 1; i < k; ++i) acc = _mm256_fmadd_ps(_mm256_set1_ps(taps[i]), _mm256_loadu_ps(src[i] + x), acc);
      _mm256_storeu_ps(row + x, acc);
    }
#endif
    for (; x < w; ++x) {
      float acc = taps[0] * src[0][x];
      for (int64_t i = 1; i < k; ++i) acc = std::fma(taps[i], src[i][x], acc);
      row[x] = acc;
    }
    for (int64_t j = 1; j <= r; ++j) { row[-j] = row[j]; row[w - 1 + j] = row[w - 1 - j]; }
  }
  // the horizontal pass reads rows written a whole map earlier (no store-to-load forwarding stalls)
  for (int64_t y = 0; y < h; ++y) {
    const float* __restrict padded = ext + y * stride;
    float* __restrict dst = out + y * w;
    int64_t x = 0;
#if defined(__AVX512F__)
    for (; x + 16 <= w; x += 16) {
      __m512 acc = _mm512_mul_ps(_mm512_set1_ps(taps[0]), _mm512_loadu_ps(padded + x));
      for (int64_t j = 1; j < k; ++j) acc = _mm512_fmadd_ps(_mm512_set1_ps(taps[j]), _mm512_loadu_ps(padded + x + j), acc);
      _mm512_storeu_ps(dst + x, acc);
    }
#endif
#if defined(__AVX2__)
    for (; x + 8 <= w; x += 8) {
      __m256 acc = _mm256_mul_ps(_mm256_set1_ps(taps[0]), _mm256_loadu_ps(padded + x));
      for (int64_t j = 1; j < k; ++j) acc = _mm256_fmadd_ps(_mm256_set1_ps(taps[j]), _mm256_loadu_ps(padded + x + j), acc);
      _mm256_storeu_ps(dst + x, acc);
    }
#endif
    for (; x < w; ++x) {
      float acc = taps[0] * padded[x];
      for (int64_t j = 1; j < k; ++j) acc = std::fma(taps[j], padded[x + j], acc);
      dst[x] = acc;
    }
    float rmn = INFINITY, rmx = -INFINITY;
    #pragma omp simd reduction(min:rmn) reduction(max:rmx)
    for (int64_t x = 0; x < w; ++x) { rmn = dst[x] < rmn ? dst[x] : rmn; rmx = dst[x] > rmx ? dst[x] : rmx; }
    mn = rmn < mn ? rmn : mn;
    if (rmx > mx) {
      mx = rmx;
      if (at) for (int64_t x = 0; x < w; ++x) if (dst[x] == rmx) { best = y * w + x; break; }
    }
  }
  *lo = mn; *hi = mx;
  if (at) *at = best;
}

static void blur_map(const float* map, int64_t h, int64_t w, int64_t k, const float* taps, float* ext, float* out,
                     float* lo, float* hi, int64_t* at) {
  if (k == 7) blur_map_k<7>(map, h, w, k, taps, ext, out, lo, hi, at);
  else if (k == 15) blur_map_k<15>(map, h, w, k, taps, ext, out, lo, hi, at);
  else blur_map_k<0>(map, h, w, k, taps, ext, out, lo, hi, at);
}

// The k x k blur (double taps, reflect-101 border) of one map at pixel (y, x), in double.
static inline double blur_at(const float* map, int64_t h, int64_t w, int64_t k, const double* taps, int64_t y,
                             int64_t x) {
  const int64_t r = k / 2;
  double acc = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    const float* row = map + reflect101(y + i - r, h) * w;
    double line = 0.0;
    for (int64_t j = 0; j < k; ++j) line += taps[j] * (double)row[reflect101(x + j - r, w)];
    acc += taps[i] * line;
  }
  return acc;
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
    const float top = start_at_first_max(map, h, w, m, maxval, index, coords, redo, &px, &py);
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

// UDP-Pose master's Gaussian decode (deep-high-resolution-net.pytorch/lib/core/inference.py get_max_preds + post):
// the raw argmax and maximum; the whole k x k float32 blur for its minimum and maximum; the nine blurred values
// around the point in double (neighbours off the map repeat the edge pixel), rescaled to
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
      const float top = start_at_first_max(map, h, w, m, maxval, index, coords, redo, &px, &py);
      if (redo[m]) continue;
      float lo, hi;
      blur_map(map, h, w, kernel, taps32, ext.data(), out.data(), &lo, &hi, nullptr);
      const double bmin = lo, range = (double)hi - (double)lo, raw = top;
      double p[3][3];
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx) {
          int64_t y = py + dy - 1, x = px + dx - 1;
          y = y < 0 ? 0 : (y >= h ? h - 1 : y);
          x = x < 0 ? 0 : (x >= w ? w - 1 : x);
          double v = (blur_at(map, h, w, kernel, taps, y, x) - bmin) / range * raw;
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

// UDP-Pose master's offset decode (lib/core/inference.py get_final_preds, TARGET_TYPE offset): per joint of an
// (N, 3K, H, W) output the argmax and maximum of the float32 k x k blurred classification map, then the x and y
// offset maps blurred ok x ok (double) at that pixel times kpd. A map where another blurred value, or zero, comes
// within rtol of the largest |blurred value| of its maximum is marked: rounding may decide its argmax.
extern "C" void udp_offset_decode(const float* output, int64_t crops, int64_t joints, int64_t h, int64_t w,
                                  int64_t kernel, const float* taps32, int64_t offset_kernel, const double* taps,
                                  double kpd, double rtol, float* maxval, double* coords, uint8_t* redo,
                                  int64_t threads) {
  const int64_t count = crops * joints, plane = h * w;
  #pragma omp parallel num_threads(threads)
  {
    std::vector<float> ext(h * (w + kernel)), out(plane);
    #pragma omp for schedule(static)
    for (int64_t m = 0; m < count; ++m) {
      const float* cls = output + 3 * m * plane;
      float top, lo;
      int64_t at;
      bool nan = false;
      for (int64_t i = 0; i < plane; ++i) nan |= cls[i] != cls[i];
      redo[m] = nan ? 1 : 0;
      maxval[m] = 0.0f;
      coords[2 * m] = coords[2 * m + 1] = 0.0;
      if (nan) continue;
      blur_map(cls, h, w, kernel, taps32, ext.data(), out.data(), &lo, &top, &at);
      const float tol = (float)rtol * std::fmax(std::fabs(top), std::fabs(lo));
      const float near = top - tol;
      int64_t close = 0;
      for (int64_t i = 0; i < plane; ++i) close += out[i] >= near;
      if (close > 1 || std::fabs(top) <= tol) { redo[m] = 1; continue; }
      maxval[m] = top;
      int64_t px = at % w, py = at / w;
      if (!(top > 0)) { px = 0; py = 0; }
      const double ox = blur_at(cls + plane, h, w, offset_kernel, taps, py, px);
      const double oy = blur_at(cls + 2 * plane, h, w, offset_kernel, taps, py, px);
      coords[2 * m] = px + ox * kpd;
      coords[2 * m + 1] = py + oy * kpd;
    }
  }
}
