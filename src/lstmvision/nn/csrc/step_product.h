// The recurrent product of one step, h_{t-1} W_hh^T (forward) or dL/d(pre-activations) W_hh
// (backward), for the few rows of a batch that a thread runs: a small matrix product whose
// weight stays the same for every step of a sequence.
//
// A general matrix product (at::addmm, MKL's sgemm) repacks the weight into its own layout on
// every call and goes through torch's dispatcher: for a chunk of 16 rows x 128 units that was a
// quarter of each product's time (2-core AMD EPYC: 79-92 GFLOP/s at 16-32 rows, where this
// kernel runs at 108-115). Here the weight is packed once per sequence (`StepWeight`), in panels
// of kCols columns stored k-major, and each tile of kRows rows x kCols columns is accumulated in
// registers over the whole inner dimension, then added to (or written into) the output; the
// last M mod kRows rows are one tile of that many rows.
//
// GCC's vector extensions keep it portable: 64-byte vectors where the compiler targets AVX-512
// (8 x 2 accumulators of the 32 registers), 32-byte ones elsewhere (6 x 2 of 16 on AVX2; NEON
// splits them into pairs).

#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace step_product {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kRows = 8;
#else
constexpr int kVectorBytes = 32;
constexpr int kRows = 6;
#endif

template <typename T>
struct Vector;  // natural alignment: with aligned(4) GCC kept the 32-byte build's accumulators
                // in memory (-mavx2 on a 2-core AMD EPYC: 2-12 GFLOP/s, now 31-110)
template <>
struct Vector<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
};
template <>
struct Vector<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
};

// Keeps v in a register: in tiles of up to 4 rows GCC otherwise folds the load of each weight
// vector into every multiply-add that uses it (one load per row instead of one per tile), which
// halved their speed (2-core AMD EPYC, AVX-512: 52-57 GFLOP/s at 2-4 rows, 90-114 with this).
template <typename V>
__attribute__((always_inline)) inline void in_register(V& v) {
#if defined(__x86_64__) && defined(__AVX512F__)
  asm("" : "+v"(v));
#elif defined(__x86_64__)
  asm("" : "+x"(v));
#else
  (void)v;
#endif
}

// A (K x N) matrix B, packed into panels of kCols columns (two vectors), each panel K rows of
// kCols contiguous values, the last one zero-padded. B may be two matrices stacked, [B_x; B_h]
// (K_x + K_h rows), so that one pass computes a_x B_x + a_h B_h (the input and the recurrent
// part of a step), and may carry a bias row that each product starts from.
template <typename T>
class StepWeight {
 public:
  using V = typename Vector<T>::type;
  static constexpr int kLanes = kVectorBytes / sizeof(T);
  static constexpr int kCols = 2 * kLanes;

  // One matrix: B(k, n) = b[k * k_stride + n * n_stride], and a bias (N values, or nullptr).
  StepWeight(const T* b, int64_t k_stride, int64_t n_stride, int64_t K, int64_t N,
             const T* bias = nullptr)
      : StepWeight(nullptr, 0, 0, 0, b, k_stride, n_stride, K, N, bias) {}

  // [B_x; B_h] and a bias (N values, or nullptr).
  StepWeight(const T* b_x, int64_t x_k_stride, int64_t x_n_stride, int64_t K_x, const T* b_h,
             int64_t h_k_stride, int64_t h_n_stride, int64_t K_h, int64_t N, const T* bias)
      : K_x_(K_x), K_(K_x + K_h), N_(N), panels_((N + kCols - 1) / kCols),
        packed_(panels_ * K_ * kCols, T(0)) {
    for (int64_t p = 0; p < panels_; ++p) {
      const int64_t cols = std::min<int64_t>(kCols, N - p * kCols);
      for (int64_t k = 0; k < K_; ++k) {
        const bool x = k < K_x;
        const T* b = x ? b_x : b_h;
        const int64_t row = x ? k : k - K_x;
        const int64_t k_stride = x ? x_k_stride : h_k_stride;
        const int64_t n_stride = x ? x_n_stride : h_n_stride;
        T* dst = packed_.data() + (p * K_ + k) * kCols;
        for (int64_t j = 0; j < cols; ++j) {
          dst[j] = b[row * k_stride + (p * kCols + j) * n_stride];
        }
      }
    }
    if (bias != nullptr) {
      bias_.assign(panels_ * kCols, T(0));
      std::copy(bias, bias + N, bias_.begin());
    }
  }

  // c (M x N, rows c_stride apart) = [c +] a B, a (M x K, rows a_stride apart); one matrix
  void times(const T* a, int64_t a_stride, int64_t M, T* c, int64_t c_stride,
             bool accumulate) const {
    times(nullptr, 0, a, a_stride, M, c, c_stride, accumulate);
  }

  // c = [c +] [bias +] a_x B_x + a_h B_h, a_x (M x K_x) and a_h (M x K_h)
  void times(const T* a_x, int64_t x_stride, const T* a_h, int64_t h_stride, int64_t M, T* c,
             int64_t c_stride, bool accumulate) const {
    const Rows a{a_x, x_stride, a_h, h_stride};
    for (int64_t p = 0; p < panels_; ++p) {  // panel outer: it stays in L1 for all the rows
      const T* panel = packed_.data() + p * K_ * kCols;
      const T* bias = bias_.empty() ? nullptr : bias_.data() + p * kCols;
      const int64_t cols = std::min<int64_t>(kCols, N_ - p * kCols);
      T* cp = c + p * kCols;
      int64_t r = 0;
      for (; r + kRows <= M; r += kRows) {
        tile<kRows>(a.at(r), panel, bias, cp + r * c_stride, c_stride, cols, accumulate);
      }
      rest<kRows - 1>(M - r, a.at(r), panel, bias, cp + r * c_stride, c_stride, cols,
                      accumulate);  // the last rows, one tile of that many
    }
  }

 private:
  struct Rows {  // the left operand's two parts, from row r on
    const T* x;
    int64_t x_stride;
    const T* h;
    int64_t h_stride;
    Rows at(int64_t r) const {
      return {x == nullptr ? x : x + r * x_stride, x_stride, h + r * h_stride, h_stride};
    }
  };

  // A tile of `rows` rows (0 to R; none for 0).
  template <int R>
  void rest(int64_t rows, const Rows& a, const T* panel, const T* bias, T* c, int64_t c_stride,
            int64_t cols, bool accumulate) const {
    if constexpr (R > 0) {
      if (rows == R) {
        tile<R>(a, panel, bias, c, c_stride, cols, accumulate);
      } else {
        rest<R - 1>(rows, a, panel, bias, c, c_stride, cols, accumulate);
      }
    }
  }

  template <int R>
  __attribute__((always_inline)) static inline void add_products(V* s0, V* s1,
                                                                 const T* __restrict__ a,
                                                                 int64_t a_stride,
                                                                 const T* __restrict__ panel,
                                                                 int64_t K) {
    for (int64_t k = 0; k < K; ++k) {
      V b0, b1;
      std::memcpy(&b0, panel + k * kCols, sizeof(V));
      std::memcpy(&b1, panel + k * kCols + kLanes, sizeof(V));
      in_register(b0);
      in_register(b1);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const T x = a[r * a_stride + k];
        s0[r] += x * b0;
        s1[r] += x * b1;
      }
    }
  }

  template <int R>
  void tile(const Rows& a, const T* __restrict__ panel, const T* bias, T* __restrict__ c,
            int64_t c_stride, int64_t cols, bool accumulate) const {
    V s0[R], s1[R];
    V init0{}, init1{};
    if (bias != nullptr) {
      std::memcpy(&init0, bias, sizeof(V));
      std::memcpy(&init1, bias + kLanes, sizeof(V));
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      s0[r] = init0;
      s1[r] = init1;
    }
    if (K_x_ > 0) {
      add_products<R>(s0, s1, a.x, a.x_stride, panel, K_x_);
    }
    add_products<R>(s0, s1, a.h, a.h_stride, panel + K_x_ * kCols, K_ - K_x_);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      T* cr = c + r * c_stride;
      if (cols == kCols) {
        if (accumulate) {
          V c0, c1;
          std::memcpy(&c0, cr, sizeof(V));
          std::memcpy(&c1, cr + kLanes, sizeof(V));
          s0[r] += c0;
          s1[r] += c1;
        }
        std::memcpy(cr, &s0[r], sizeof(V));
        std::memcpy(cr + kLanes, &s1[r], sizeof(V));
      } else {  // the last panel's valid columns
        T sum[kCols];
        std::memcpy(sum, &s0[r], sizeof(V));
        std::memcpy(sum + kLanes, &s1[r], sizeof(V));
        for (int64_t j = 0; j < cols; ++j) {
          cr[j] = accumulate ? cr[j] + sum[j] : sum[j];
        }
      }
    }
  }

  int64_t K_x_, K_, N_, panels_;
  std::vector<T> packed_, bias_;
};

}  // namespace step_product
