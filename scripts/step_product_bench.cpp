// GFLOP/s of the fast path's per-step product (src/lstmvision/nn/csrc/step_product.h) alone, for
// 1-8 and 16 rows (the rows one thread runs), one LSTM step's [x_t, h_(t-1)] times [W_ih; W_hh]^T:
//
//   g++ -O3 -march=native -fno-trapping-math -std=c++17 -I src/lstmvision/nn/csrc \
//       scripts/step_product_bench.cpp -o /tmp/step_product_bench
//   /tmp/step_product_bench [inputs (64)] [hidden (128)]
//
// Add -mno-avx512f (or build on a CPU without AVX-512) for the 32-byte-vector build.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "step_product.h"

int main(int argc, char** argv) {
  const int I = argc > 1 ? std::atoi(argv[1]) : 64;
  const int H = argc > 2 ? std::atoi(argv[2]) : 128;
  const int N = 4 * H;
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(rng);
    return v;
  };
  const std::vector<float> w_ih = random(N * I), w_hh = random(N * H), bias = random(N);
  // W (N x K) row-major: B(k, n) = W[n * K + k]
  const step_product::StepWeight<float> w(w_ih.data(), 1, I, I, w_hh.data(), 1, H, H, N,
                                          bias.data());
  for (int M : {1, 2, 3, 4, 5, 6, 7, 8, 16}) {
    std::vector<float> x = random(M * I), h = random(M * H), c(M * N);
    const int calls = 20000;
    for (int i = 0; i < calls / 10; ++i) w.times(x.data(), I, h.data(), H, M, c.data(), N, false);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) {
      w.times(x.data(), I, h.data(), H, M, c.data(), N, false);
      h[0] = c[i % N] * 1e-3f;  // each call reads the last one's output, as a step does
    }
    const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
    const double us = took.count() / calls;
    std::printf("%2d rows: %6.2f us  %6.1f GFLOP/s\n", M, us, 2.0 * M * (I + H) * N / us / 1e3);
  }
}
