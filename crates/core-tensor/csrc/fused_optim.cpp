// Fused optimizer steps through libtorch's own kernels (the ones PyTorch uses with
// `fused=True`): one call updates every parameter of a group, instead of several small
// operations per parameter. Parameters whose gradient is undefined are skipped, as in PyTorch.
//
// Every function returns NULL on success or a malloc'd error message (freed by the caller with
// tl_free_error); no C++ exception crosses into Rust.

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>
#include <ATen/ops/stack.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

typedef at::Tensor *tensor;

static char *error_copy(const char *msg) {
  size_t n = std::strlen(msg);
  char *out = static_cast<char *>(std::malloc(n + 1));
  if (out != nullptr) std::memcpy(out, msg, n + 1);
  return out;
}

#define GUARDED(...)                                   \
  try {                                                 \
    __VA_ARGS__;                                        \
    return nullptr;                                     \
  } catch (const std::exception &e) {                   \
    return error_copy(e.what());                        \
  } catch (...) {                                       \
    return error_copy("unknown C++ exception");         \
  }

extern "C" {

void tl_free_error(char *msg) { std::free(msg); }

// Adam (decoupled = 0) or AdamW (decoupled = 1) over one parameter group. `steps` are float32
// scalar tensors on the parameters' device, incremented here before the update (as PyTorch does).
char *tl_adam_step(tensor *params, tensor *exp_avgs, tensor *exp_avg_sqs, tensor *steps,
                   int64_t n, double lr, double beta1, double beta2, double weight_decay,
                   double eps, int decoupled) {
  GUARDED({
    std::vector<at::Tensor> p, g, m, v, s;
    p.reserve(n); g.reserve(n); m.reserve(n); v.reserve(n); s.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor &grad = params[i]->grad();
      if (!grad.defined()) continue;
      p.push_back(*params[i]);
      g.push_back(grad);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      s.push_back(*steps[i]);
    }
    if (p.empty()) return nullptr;
    at::NoGradGuard no_grad;
    at::_foreach_add_(s, 1);
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, {}, s, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, {}, s, lr, beta1, beta2, weight_decay, eps, false, false);
    }
  })
}

// SGD with optional momentum and Nesterov over one parameter group. With momentum == 0 no
// buffers are used (`bufs` may be NULL). `first_step` initialises the buffers from the gradients.
char *tl_sgd_step(tensor *params, tensor *bufs, int64_t n, double lr, double momentum,
                  double dampening, double weight_decay, int nesterov, int first_step) {
  GUARDED({
    std::vector<at::Tensor> p, g, b;
    p.reserve(n); g.reserve(n); b.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor &grad = params[i]->grad();
      if (!grad.defined()) continue;
      p.push_back(*params[i]);
      g.push_back(grad);
      if (momentum != 0.0) b.push_back(*bufs[i]);
    }
    if (p.empty()) return nullptr;
    at::NoGradGuard no_grad;
    at::_fused_sgd_(p, g, b, weight_decay, momentum, lr, dampening, nesterov != 0, false,
                    first_step != 0);
  })
}

// Sets every gradient to undefined (PyTorch's zero_grad(set_to_none=True)).
char *tl_zero_grad(tensor *params, int64_t n) {
  GUARDED({
    for (int64_t i = 0; i < n; ++i) params[i]->mutable_grad().reset();
  })
}

// Total L2 norm of all defined gradients, written to *total_norm; when max_norm > 0 and the
// norm exceeds it, the gradients are scaled by max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_).
char *tl_clip_grad_norm(tensor *params, int64_t n, double max_norm, double *total_norm) {
  GUARDED({
    std::vector<at::Tensor> g;
    g.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor &grad = params[i]->grad();
      if (grad.defined()) g.push_back(grad);
    }
    *total_norm = 0.0;
    if (g.empty()) return nullptr;
    at::NoGradGuard no_grad;
    auto norms = at::_foreach_norm(g, 2);
    double total = at::stack(norms).norm().item<double>();
    *total_norm = total;
    if (max_norm > 0.0 && total > max_norm) {
      at::_foreach_mul_(g, max_norm / (total + 1e-6));
    }
  })
}

// Reproducible CUDA numerics (on != 0): deterministic cuDNN algorithms, no autotuning, and
// no TF32 in cuDNN convolutions or cuBLAS matrix products (Ampere and later use TF32 by
// default for convolutions: ~1e-3 relative differences from the CPU). Writes the flags now in
// force to *state (bit 0 deterministic, bit 1 benchmark, bit 2 TF32 cuDNN, bit 3 TF32 cuBLAS).
char *tl_cuda_reproducible(int on, int *state) {
  GUARDED({
    auto &c = at::globalContext();
    c.setDeterministicCuDNN(on != 0);
    if (on != 0) c.setBenchmarkCuDNN(false);
    c.setAllowTF32CuDNN(on == 0);
    c.setAllowTF32CuBLAS(on == 0);
    *state = (c.deterministicCuDNN() ? 1 : 0) | (c.benchmarkCuDNN() ? 2 : 0) |
             (c.allowTF32CuDNN() ? 4 : 0) | (c.allowTF32CuBLAS() ? 8 : 0);
  })
}

}  // extern "C"
