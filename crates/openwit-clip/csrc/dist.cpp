// The C++ side of `openwit_clip::dist`: PyTorch's c10d (TCPStore, ProcessGroupGloo and, in CUDA
// builds, ProcessGroupNCCL) behind a small C interface, compiled against the libtorch that tch
// links. Tensors come from Rust as the `at::Tensor*` that tch's `Tensor::as_ptr` returns, so no
// data is copied. Every function that can fail returns a malloc'd message (NULL on success) that
// the caller frees with `owd_free_string`; no C++ exception crosses into Rust.

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

// libtorch ships ProcessGroupGloo.hpp behind USE_C10D_GLOO, without Gloo's own headers: the
// include path has opaque declarations of the Gloo types it names (csrc/gloo_decl).
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#undef USE_C10D_GLOO

#ifdef OPENWIT_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct owd_store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct owd_group {
  c10::intrusive_ptr<c10d::Backend> backend;
};

struct owd_work {
  c10::intrusive_ptr<c10d::Work> work;
};

namespace {

char* message(const std::string& s) {
  return strdup(s.c_str());
}

template <typename F>
char* guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return message(e.what());
  } catch (...) {
    return message("unknown C++ exception");
  }
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 1:
      return c10d::ReduceOp::MAX;
    case 2:
      return c10d::ReduceOp::MIN;
    default:
      return c10d::ReduceOp::SUM;
  }
}

} // namespace

extern "C" {

void owd_free_string(char* s) {
  free(s);
}

// Ends the process now, without running exit handlers or static destructors: a peer is lost and
// the collective threads may be blocked on it, so an ordinary exit could hang.
void owd_exit_now(int code) {
  fflush(stdout);
  fflush(stderr);
  std::_Exit(code);
}

int owd_nccl_compiled() {
#ifdef OPENWIT_NCCL
  return 1;
#else
  return 0;
#endif
}

// A TCPStore client (and on the server rank, the server): `is_server` on the rank that hosts it.
char* owd_store_new(
    const char* host,
    int port,
    int is_server,
    int world,
    int64_t timeout_ms,
    owd_store** out) {
  return guarded([&] {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = is_server != 0;
    o.numWorkers = static_cast<std::size_t>(world);
    o.waitWorkers = false;
    o.timeout = std::chrono::milliseconds(timeout_ms);
    auto s = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
    *out = new owd_store{s};
  });
}

// A second connection to the same store (for another thread).
char* owd_store_clone(owd_store* s, owd_store** out) {
  return guarded([&] { *out = new owd_store{s->store->clone()}; });
}

void owd_store_free(owd_store* s) {
  delete s;
}

char* owd_store_add(owd_store* s, const char* key, int64_t delta, int64_t* out) {
  return guarded([&] { *out = s->store->add(std::string(key), delta); });
}

// The counters `prefix0 .. prefix{n-1}` (written by `add`) in one round trip.
char* owd_store_counters(owd_store* s, const char* prefix, int n, int64_t* out) {
  return guarded([&] {
    std::vector<std::string> keys;
    keys.reserve(n);
    for (int i = 0; i < n; i++) {
      keys.push_back(std::string(prefix) + std::to_string(i));
    }
    auto values = s->store->multiGet(keys);
    for (int i = 0; i < n; i++) {
      std::string v(values[i].begin(), values[i].end());
      out[i] = std::stoll(v);
    }
  });
}

// A process group over `store` (keys under `prefix`). backend 0: Gloo, bound to the network
// interface `iface` if given, else to the address `host` if given, else to the address this
// machine's hostname resolves to; backend 1: NCCL on the current CUDA device.
char* owd_group_new(
    owd_store* store,
    const char* prefix,
    int rank,
    int world,
    int64_t timeout_ms,
    int backend,
    const char* iface,
    const char* host,
    owd_group** out) {
  return guarded([&] {
    auto prefixed =
        c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store->store);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    if (backend == 0) {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      if (iface != nullptr && iface[0] != 0) {
        o->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(std::string(iface)));
      } else if (host != nullptr && host[0] != 0) {
        o->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname(std::string(host)));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      o->threads = 2;
      auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, o);
      *out = new owd_group{pg};
    } else {
#ifdef OPENWIT_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, o);
      *out = new owd_group{pg};
#else
      throw std::runtime_error(
          "this build has no NCCL: build with OPENWIT_CLIP_CUDA=1 against a CUDA libtorch "
          "(crates/openwit-clip/README.md)");
#endif
    }
  });
}

void owd_group_free(owd_group* g) {
  delete g;
}

// In-place all-reduce of `t` (op 0 sum, 1 max, 2 min), started; wait on `out`.
char* owd_all_reduce(owd_group* g, at::Tensor* t, int op, owd_work** out) {
  return guarded([&] {
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = reduce_op(op);
    *out = new owd_work{g->backend->allreduce(ts, o)};
  });
}

// Every rank's `input` (the same shape everywhere) concatenated along dim 0 into `output`
// (world x input's rows), in rank order.
char* owd_all_gather(owd_group* g, at::Tensor* input, at::Tensor* output, owd_work** out) {
  return guarded([&] {
    int world = g->backend->getSize();
    std::vector<std::vector<at::Tensor>> outs{output->chunk(world, 0)};
    std::vector<at::Tensor> ins{*input};
    *out = new owd_work{g->backend->allgather(outs, ins)};
  });
}

char* owd_broadcast(owd_group* g, at::Tensor* t, int root, owd_work** out) {
  return guarded([&] {
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    *out = new owd_work{g->backend->broadcast(ts, o)};
  });
}

char* owd_barrier(owd_group* g, owd_work** out) {
  return guarded([&] { *out = new owd_work{g->backend->barrier()}; });
}

char* owd_work_wait(owd_work* w) {
  return guarded([&] { w->work->wait(); });
}

void owd_work_free(owd_work* w) {
  delete w;
}

} // extern "C"
