// The fast path's large buffers (the gates of every step, the saved states, the outputs),
// reused from one call to the next instead of allocated afresh.
//
// A buffer of tens of MB from malloc is often fresh memory from the kernel, which faults in
// every 4 KB page at first touch: on a 2-core AMD EPYC virtual machine a long LSTM's forward and
// backward (784 steps x 32 sequences) faulted in 14,000 pages per call, about a tenth of its
// time, and how many depended on the state of malloc's heap. Training calls a layer with the
// same shapes again and again, so a buffer is kept here once allocated, and handed out again
// once nothing else holds it: no tensor, view or saved variable shares its storage (the
// storage's reference count is this cache's one). A buffer still in use is never handed out.
//
// Buffers under kMinBytes are not kept, nor any under torch.inference_mode (inference calls
// save nothing for a backward), and the buffers nothing holds are released, oldest first,
// beyond a limit of LSTMVISION_BUFFER_CACHE_MB (default 512; 0 keeps none).

#pragma once

#include <torch/extension.h>

#include <c10/core/InferenceMode.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace buffer_cache {

constexpr int64_t kMinBytes = 1 << 20;

class Cache {
 public:
  static Cache& instance() {
    static Cache cache;
    return cache;
  }

  // An uninitialised contiguous tensor of this shape, from a kept buffer where one is free.
  at::Tensor empty(at::IntArrayRef shape, const at::TensorOptions& options) {
    int64_t numel = 1;
    for (const int64_t size : shape) {
      numel *= size;
    }
    const int64_t nbytes = numel * static_cast<int64_t>(options.dtype().itemsize());
    if (limit_ == 0 || nbytes < kMinBytes || c10::InferenceMode::is_enabled()) {
      return at::empty(shape, options);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ++clock_;
    Entry* best = nullptr;
    for (Entry& entry : entries_) {  // the smallest free buffer that fits, at most twice the size
      const int64_t size = static_cast<int64_t>(entry.storage.nbytes());
      if (free(entry) && size >= nbytes && size <= 2 * nbytes &&
          (best == nullptr || size < static_cast<int64_t>(best->storage.nbytes()))) {
        best = &entry;
      }
    }
    if (best != nullptr) {
      best->last_use = clock_;
      std::vector<int64_t> strides(shape.size());
      int64_t stride = 1;
      for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
        strides[d] = stride;
        stride *= shape[d];
      }
      return at::empty({0}, options).set_(best->storage, 0, shape, strides);
    }
    at::Tensor tensor = at::empty(shape, options);
    entries_.push_back({tensor.storage(), clock_});
    trim();
    return tensor;
  }

  at::Tensor zeros(at::IntArrayRef shape, const at::TensorOptions& options) {
    return empty(shape, options).zero_();
  }

  // Bytes kept in all (in use or not), and how many buffers.
  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t bytes = 0;
    for (const Entry& entry : entries_) {
      bytes += static_cast<int64_t>(entry.storage.nbytes());
    }
    return {bytes, static_cast<int64_t>(entries_.size())};
  }

  // Lets go of every buffer (those in use stay with their holders).
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.clear();
  }

  // Sets the limit on the bytes of free buffers kept (MB); returns the one before.
  int64_t set_limit_mb(int64_t mb) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t before = limit_ >> 20;
    limit_ = mb << 20;
    if (limit_ == 0) {
      entries_.clear();
    }
    trim();
    return before;
  }

 private:
  struct Entry {
    c10::Storage storage;
    uint64_t last_use;
  };

  Cache() {
    const char* mb = std::getenv("LSTMVISION_BUFFER_CACHE_MB");
    limit_ = (mb != nullptr ? std::atoll(mb) : 512) << 20;
  }

  static bool free(const Entry& entry) { return entry.storage.use_count() == 1; }

  // Releases the least recently used free buffers beyond the limit.
  void trim() {
    for (;;) {
      int64_t idle = 0;
      Entry* oldest = nullptr;
      for (Entry& entry : entries_) {
        if (free(entry)) {
          idle += static_cast<int64_t>(entry.storage.nbytes());
          if (oldest == nullptr || entry.last_use < oldest->last_use) {
            oldest = &entry;
          }
        }
      }
      if (idle <= limit_ || oldest == nullptr) {
        return;
      }
      entries_.erase(entries_.begin() + (oldest - entries_.data()));
    }
  }

  std::mutex mutex_;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  int64_t limit_;
};

}  // namespace buffer_cache
