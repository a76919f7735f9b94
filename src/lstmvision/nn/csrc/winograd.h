// Winograd F(2x2, 3x3): a stride-1 3x3 convolution with padding 1 (a ConvLSTM's "same"
// convolution; lstmvision.nn.convlstm_fast) as 16 matrix products on transformed 4x4 tiles,
// each tile giving 2x2 outputs: 16 multiplications per tile and channel pair where the direct
// convolution takes 36. The products are torch's (bmm); here are the transforms that go around
// them, over maps lying channels last (NHWC): per tile two passes (along its rows into a small
// scratch, then down its columns), each a loop over the channels that the compiler vectorises
// (`omp simd`; one loop over all 16 values per channel was not vectorised and ran 10x slower),
// the tiles split between threads. The weight gradient is the transpose of the forward: per
// offset, the input's tiles V^T times the output gradient's tiles A g A^T.
//
//   input  V = B^T d B   (d: a 4x4 tile of the zero-padded input, tiles 2 apart)
//   weight U = G g G^T   (done once per sequence in Python: winograd_weight)
//   output Y = A^T M A   (M: the 4x4 products of a tile) + bias
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1]
//
// V is (16, tiles, C): tile t of image b at tile row r, column s is t = (b * th + r) * tw + s,
// th = ceil(H / 2), tw = ceil(W / 2); M is (16, tiles, O). The transforms compute in float (in
// double for double); bfloat16 is read and written by its bits (round to nearest even), which
// the compiler vectorises.

#pragma once

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "buffer_cache.h"

#include <cstdint>
#include <cstring>
#include <vector>

namespace winograd {

template <typename T>
struct Io {  // float, double: as they are
  using acc = T;
  static inline acc load(T v) { return v; }
  static inline T store(acc v) { return v; }
};

template <>
struct Io<at::BFloat16> {
  using acc = float;
  static inline float load(at::BFloat16 v) {
    uint16_t bits;
    std::memcpy(&bits, &v, 2);
    uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float out;
    std::memcpy(&out, &wide, 4);
    return out;
  }
  static inline at::BFloat16 store(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);  // to nearest, ties to even
    rounded = (bits & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC00000u : rounded;  // NaN stays NaN
    uint16_t half = static_cast<uint16_t>(rounded >> 16);
    at::BFloat16 out;
    std::memcpy(&out, &half, 2);
    return out;
  }
};

inline int64_t tiles_of(int64_t n) { return (n + 1) / 2; }

// body(t, b, r, s, scratch) for every tile t (image b, tile row r, column s) of maps (B, H, W, n),
// the tiles split between threads, each thread with a scratch of `scratch` values.
template <typename acc, typename Body>
void over_tiles(int64_t B, int64_t H, int64_t W, int64_t n, int64_t scratch, const Body& body) {
  const int64_t th = tiles_of(H), tw = tiles_of(W);
  at::parallel_for(0, B * th * tw, std::max<int64_t>(1, 8192 / std::max<int64_t>(n, 1)),
                   [&](int64_t t0, int64_t t1) {
    std::vector<acc> u(scratch);
    for (int64_t t = t0; t < t1; ++t) body(t, t / (th * tw), (t / tw) % th, t % tw, u.data());
  });
}

// The n values at (y, x) of image b of maps (B, H, W, n), or `outside` past the map's edges.
template <typename T>
inline T* at_position(T* maps, int64_t b, int64_t y, int64_t x, int64_t H, int64_t W, int64_t n,
                      T* outside) {
  return y >= 0 && y < H && x >= 0 && x < W ? maps + ((b * H + y) * W + x) * n : outside;
}

// One row of four vectors of n channels: (p0 - p2, p1 + p2, p2 - p1, p1 - p3), the input
// transform's B^T (or B) applied along the four.
template <typename in_t, typename out_t>
inline void b_transform(const in_t* __restrict__ p0, const in_t* __restrict__ p1,
                        const in_t* __restrict__ p2, const in_t* __restrict__ p3,
                        out_t* __restrict__ q0, out_t* __restrict__ q1, out_t* __restrict__ q2,
                        out_t* __restrict__ q3, int64_t n) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const auto x0 = Io<in_t>::load(p0[c]), x1 = Io<in_t>::load(p1[c]);
    const auto x2 = Io<in_t>::load(p2[c]), x3 = Io<in_t>::load(p3[c]);
    q0[c] = Io<out_t>::store(x0 - x2);
    q1[c] = Io<out_t>::store(x1 + x2);
    q2[c] = Io<out_t>::store(x2 - x1);
    q3[c] = Io<out_t>::store(x1 - x3);
  }
}

// Four vectors to two: (p0 + p1 + p2 + add, p1 - p2 - p3 + add), the output transform's A^T (or
// A) applied along the four; add is the bias (or none) on the second pass.
template <typename in_t, typename out_t>
inline void a_transform(const in_t* __restrict__ p0, const in_t* __restrict__ p1,
                        const in_t* __restrict__ p2, const in_t* __restrict__ p3,
                        const typename Io<out_t>::acc* __restrict__ add, out_t* __restrict__ q0,
                        out_t* __restrict__ q1, int64_t n) {
  using acc = typename Io<out_t>::acc;
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const acc x0 = Io<in_t>::load(p0[c]), x1 = Io<in_t>::load(p1[c]);
    const acc x2 = Io<in_t>::load(p2[c]), x3 = Io<in_t>::load(p3[c]);
    const acc b = add ? add[c] : acc(0);
    q0[c] = Io<out_t>::store(x0 + x1 + x2 + b);
    q1[c] = Io<out_t>::store(x1 - x2 - x3 + b);
  }
}

// x (B, H, W, C) contiguous -> V (16, tiles, C) of out_t: per tile, B applied along each of the
// tile's rows into a scratch of 16 vectors (in the computing type), then B^T down its columns.
template <typename in_t, typename out_t>
void input_transform(const in_t* x, out_t* v, int64_t B, int64_t H, int64_t W, int64_t C) {
  using acc = typename Io<in_t>::acc;
  const int64_t T = B * tiles_of(H) * tiles_of(W), k = 4 * T * C;  // k: (i, j) to (i + 1, j)
  const std::vector<in_t> zeros(C, in_t(0));
  over_tiles<acc>(B, H, W, C, 16 * C, [&](int64_t t, int64_t b, int64_t r, int64_t s, acc* u) {
    for (int i = 0; i < 4; ++i) {  // d B: row i of the tile (zeros past the map's edges)
      const in_t* p[4];
      for (int j = 0; j < 4; ++j) {
        p[j] = at_position(x, b, 2 * r + i - 1, 2 * s + j - 1, H, W, C, zeros.data());
      }
      acc* q = u + 4 * i * C;
      b_transform(p[0], p[1], p[2], p[3], q, q + C, q + 2 * C, q + 3 * C, C);
    }
    for (int j = 0; j < 4; ++j) {  // B^T (d B): column j
      out_t* o = v + (j * T + t) * C;
      b_transform(u + j * C, u + (4 + j) * C, u + (8 + j) * C, u + (12 + j) * C, o, o + k,
                  o + 2 * k, o + 3 * k, C);
    }
  });
}

// M (16, tiles, O) of in_t, bias (O) in the computing type or absent -> y (B, H, W, O) of out_t:
// per tile, A along each row of its 4x4 products into a scratch of 8 vectors, then A^T and the
// bias down the columns.
template <typename in_t, typename out_t>
void output_transform(const in_t* m, const typename Io<out_t>::acc* bias, out_t* y, int64_t B,
                      int64_t H, int64_t W, int64_t O) {
  using acc = typename Io<out_t>::acc;
  const int64_t T = B * tiles_of(H) * tiles_of(W), k = T * O;  // k: (i, j) to (i, j + 1)
  over_tiles<acc>(B, H, W, O, 8 * O, [&](int64_t t, int64_t b, int64_t r, int64_t s, acc* u) {
    for (int i = 0; i < 4; ++i) {  // M A: row i
      const in_t* p = m + (4 * i * T + t) * O;
      a_transform<in_t, acc>(p, p + k, p + 2 * k, p + 3 * k, nullptr, u + i * O, u + (4 + i) * O,
                             O);
    }
    thread_local std::vector<out_t> spill;  // a tile's outputs past the map's edge (odd H, W)
    spill.resize(2 * O);
    out_t* none = spill.data();
    for (int j = 0; j < 2; ++j) {  // A^T (M A): column j, to rows 2r and 2r + 1
      const acc* q = u + 4 * j * O;
      a_transform<acc, out_t>(q, q + O, q + 2 * O, q + 3 * O, bias,
                              at_position(y, b, 2 * r, 2 * s + j, H, W, O, none),
                              at_position(y, b, 2 * r + 1, 2 * s + j, H, W, O, none + O), O);
    }
  });
}

// Two vectors to four: (p0, p0 + p1, p0 - p1, -p1), A (or A^T) applied along the two.
template <typename in_t, typename out_t>
inline void a_transposed(const in_t* __restrict__ p0, const in_t* __restrict__ p1,
                         out_t* __restrict__ q0, out_t* __restrict__ q1, out_t* __restrict__ q2,
                         out_t* __restrict__ q3, int64_t n) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const auto x0 = Io<in_t>::load(p0[c]), x1 = Io<in_t>::load(p1[c]);
    q0[c] = Io<out_t>::store(x0);
    q1[c] = Io<out_t>::store(x0 + x1);
    q2[c] = Io<out_t>::store(x0 - x1);
    q3[c] = Io<out_t>::store(-x1);
  }
}

// The output's gradient g (B, H, W, O) -> A g A^T of each 2x2 tile, (16, tiles, O) of out_t:
// with the input's V, the weight gradient's 16 products (the transpose of the output transform).
template <typename in_t, typename out_t>
void grad_transform(const in_t* g, out_t* v, int64_t B, int64_t H, int64_t W, int64_t O) {
  using acc = typename Io<in_t>::acc;
  const int64_t T = B * tiles_of(H) * tiles_of(W), k = 4 * T * O;  // k: (i, j) to (i + 1, j)
  const std::vector<in_t> zeros(O, in_t(0));
  over_tiles<acc>(B, H, W, O, 8 * O, [&](int64_t t, int64_t b, int64_t r, int64_t s, acc* u) {
    for (int i = 0; i < 2; ++i) {  // g A^T: row i (zeros past the map's edges)
      const in_t* p0 = at_position(g, b, 2 * r + i, 2 * s, H, W, O, zeros.data());
      const in_t* p1 = at_position(g, b, 2 * r + i, 2 * s + 1, H, W, O, zeros.data());
      acc* q = u + 4 * i * O;
      a_transposed(p0, p1, q, q + O, q + 2 * O, q + 3 * O, O);
    }
    for (int j = 0; j < 4; ++j) {  // A (g A^T): column j
      out_t* o = v + (j * T + t) * O;
      a_transposed(u + j * O, u + (4 + j) * O, o, o + k, o + 2 * k, o + 3 * k, O);
    }
  });
}

// f(in, out) on the two tensors' data as typed pointers: one floating type for both, bfloat16
// to float (products computed in float on bfloat16 values) or float to bfloat16 (their results
// rounded back).
template <typename F>
void typed(const at::Tensor& in, const at::Tensor& out, const char* name, F&& f) {
  const auto a = in.scalar_type(), b = out.scalar_type();
  if (a == at::kBFloat16 && b == at::kFloat) {
    f(in.data_ptr<at::BFloat16>(), out.data_ptr<float>());
  } else if (a == at::kFloat && b == at::kBFloat16) {
    f(in.data_ptr<float>(), out.data_ptr<at::BFloat16>());
  } else {
    TORCH_CHECK(a == b, name, ": unsupported types");
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, a, "winograd", [&] {
      f(in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
    });
  }
}

// x (B, H, W, C) -> V (16, tiles, C) in dtype (x's own, or float for bfloat16 computed in
// float where the CPU has no bfloat16 products).
inline at::Tensor input(at::Tensor x, at::ScalarType dtype) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(), "winograd input: (B, H, W, C) contiguous");
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  at::Tensor v = buffer_cache::Cache::instance().empty({16, B * tiles_of(H) * tiles_of(W), C},
                                                         x.options().dtype(dtype));
  typed(x, v, "winograd input",
        [&](auto* src, auto* dst) { input_transform(src, dst, B, H, W, C); });
  return v;
}

// M (16, tiles, O), bias (O) or absent -> y (B, H, W, O) in dtype.
inline at::Tensor output(at::Tensor m, c10::optional<at::Tensor> bias, int64_t B, int64_t H,
                         int64_t W, at::ScalarType dtype) {
  TORCH_CHECK(m.dim() == 3 && m.size(0) == 16 && m.is_contiguous(), "winograd output: (16, T, O)");
  TORCH_CHECK(m.size(1) == B * tiles_of(H) * tiles_of(W), "winograd output: tiles");
  const int64_t O = m.size(2);
  at::Tensor y = buffer_cache::Cache::instance().empty({B, H, W, O}, m.options().dtype(dtype));
  const auto in = m.scalar_type();
  at::Tensor bias_acc;  // in the transform's computing type: double for double, else float
  if (bias.has_value()) {
    bias_acc = bias->to(in == at::kDouble ? at::kDouble : at::kFloat).contiguous();
    TORCH_CHECK(bias_acc.numel() == O, "winograd output: bias");
  }
  typed(m, y, "winograd output", [&](auto* src, auto* dst) {
    using acc = typename Io<std::remove_pointer_t<decltype(src)>>::acc;
    const acc* b = bias_acc.defined() ? bias_acc.data_ptr<acc>() : nullptr;
    output_transform(src, b, dst, B, H, W, O);
  });
  return y;
}

// The convolution: x (B, H, W, C) contiguous, u (16, C, O) the transformed weight in the
// computing type (rows may be a slice: the steps that convolve some of their input's parts),
// bias (O) or absent -> y (B, H, W, O) in dtype. The tiles and products are kept buffers
// (buffer_cache.h), handed out again at the next call.
inline at::Tensor conv(at::Tensor x, at::Tensor u, c10::optional<at::Tensor> bias,
                       at::ScalarType dtype) {
  TORCH_CHECK(u.dim() == 3 && u.size(0) == 16 && u.size(1) == x.size(3), "winograd: weight");
  at::Tensor v = input(x, u.scalar_type());
  at::Tensor m = buffer_cache::Cache::instance().empty({16, v.size(1), u.size(2)}, v.options());
  at::bmm_out(m, v, u);
  return output(m, bias, x.size(0), x.size(1), x.size(2), dtype);
}

// The weight gradient summed over the maps: x (B, H, W, C) the input, g (B, H, W, O) the
// output's gradient -> dL/dU (16, C, O) in dtype, each offset's product V^T (A g A^T) over all
// tiles (the weight's own gradient is G^T dU G: _winograd_weight_grad in Python), and the
// bias's gradient (O) in float (double for double).
inline std::vector<at::Tensor> weight_grad(at::Tensor x, at::Tensor g, at::ScalarType dtype) {
  TORCH_CHECK(g.dim() == 4 && g.is_contiguous() && g.size(0) == x.size(0) &&
                  g.size(1) == x.size(1) && g.size(2) == x.size(2),
              "winograd weight gradient: g (B, H, W, O) contiguous");
  at::Tensor v = input(x, dtype);
  const int64_t B = g.size(0), H = g.size(1), W = g.size(2), O = g.size(3);
  at::Tensor gt = buffer_cache::Cache::instance().empty({16, v.size(1), O}, v.options());
  typed(g, gt, "winograd weight gradient",
        [&](auto* src, auto* dst) { grad_transform(src, dst, B, H, W, O); });
  // the bias's gradient: the sum of g over all positions, each tile's sum being its (1, 1) entry
  const auto exact = dtype == at::kDouble ? at::kDouble : at::kFloat;
  return {at::bmm(v.transpose(1, 2), gt), gt.select(0, 5).sum(0, false, exact)};
}

}  // namespace winograd
