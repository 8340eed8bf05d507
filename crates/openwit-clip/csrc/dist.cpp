// The C++ side of `openwit_clip::dist`: PyTorch's c10d (TCPStore, ProcessGroupGloo and, in CUDA
// builds, ProcessGroupNCCL, and the Reducer that DistributedDataParallel all-reduces gradients
// with during the backward pass) behind a small C interface, compiled against the libtorch that tch
// links. Tensors come from Rust as the `at::Tensor*` that tch's `Tensor::as_ptr` returns, so no
// data is copied. Every function that can fail returns a malloc'd message (NULL on success) that
// the caller frees with `owd_free_string`; no C++ exception crosses into Rust.

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

// libtorch ships ProcessGroupGloo.hpp behind USE_C10D_GLOO, without Gloo's own headers: the
// include path has opaque declarations of the Gloo types it names (csrc/gloo_decl).
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#undef USE_C10D_GLOO

#ifdef OPENWIT_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct owd_store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct owd_group {
  c10::intrusive_ptr<c10d::Backend> backend;
  // The store the backend met through, and which backend it is: the Reducer takes a
  // ProcessGroup, made around the same backend (owd_reducer_new).
  c10::intrusive_ptr<c10d::Store> store;
  bool nccl;
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

// When each bucket's all-reduce started, after the step's backward pass was announced
// (owd_reducer_arm): how far the communication overlapped the backward pass.
struct SyncClock {
  std::mutex mu;
  std::chrono::steady_clock::time_point armed;
  std::vector<int64_t> launches_ns;
};

// The Reducer's communication hook: sums each bucket over the ranks (DDP's default averages;
// `openwit_clip::dist` scales the sum itself), or averages it when `average` (OpenCLIP's
// local_loss), and notes when it started.
class SumHook : public c10d::CppCommHookInterface<c10::intrusive_ptr<c10d::ProcessGroup>> {
 public:
  SumHook(
      const c10::intrusive_ptr<c10d::ProcessGroup>& pg,
      bool average,
      std::shared_ptr<SyncClock> clock)
      : CppCommHookInterface(pg), average_(average), clock_(std::move(clock)) {}

  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    {
      std::lock_guard<std::mutex> lock(clock_->mu);
      clock_->launches_ns.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - clock_->armed)
              .count());
    }
    std::vector<at::Tensor> ts{bucket.getBufferRef()};
    if (average_) {
      ts[0].div_(state_->getSize());
    }
    return state_->allreduce(ts)->getFuture();
  }

 private:
  bool average_;
  std::shared_ptr<SyncClock> clock_;
};

} // namespace

struct owd_reducer {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::shared_ptr<SyncClock> clock;
  std::unique_ptr<c10d::Reducer> reducer;
};

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
      *out = new owd_group{pg, prefixed, false};
    } else {
#ifdef OPENWIT_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, o);
      *out = new owd_group{pg, prefixed, true};
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

// DistributedDataParallel's Reducer over the `n` parameters: autograd hooks on their gradient
// accumulators copy each gradient into its bucket as the backward pass produces it, and a
// bucket's all-reduce starts as soon as all of its gradients are in, while the backward pass goes
// on. Buckets of at most `bucket_bytes` (the first at most 1 MiB, as DDP's), in the reverse order
// of the parameters to begin with, rebuilt in the order the gradients arrived after the first
// step; the gradients become views into the buckets (no second copy). Every rank passes the
// same parameters in the same order (checked here across the ranks, as DDP does).
char* owd_reducer_new(
    owd_group* g,
    at::Tensor** params,
    int n,
    int64_t bucket_bytes,
    int average,
    owd_reducer** out) {
  return guarded([&] {
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(
        g->store, g->backend->getRank(), g->backend->getSize());
    auto type = g->nccl ? c10d::ProcessGroup::BackendType::NCCL
                        : c10d::ProcessGroup::BackendType::GLOO;
    pg->setBackend(g->nccl ? c10::DeviceType::CUDA : c10::DeviceType::CPU, type, g->backend);
    pg->setDefaultBackend(type);
    std::vector<at::Tensor> ps;
    ps.reserve(n);
    for (int i = 0; i < n; i++) {
      ps.push_back(*params[i]);
    }
    c10d::verify_params_across_processes(pg, ps, std::nullopt);
    std::vector<at::Tensor> reversed(ps.rbegin(), ps.rend());
    std::vector<int64_t> order;
    for (int i = n - 1; i >= 0; i--) {
      order.push_back(i);
    }
    auto first = std::min<int64_t>(c10d::kDefaultFirstBucketBytes, bucket_bytes);
    std::vector<size_t> limits{static_cast<size_t>(first), static_cast<size_t>(bucket_bytes)};
    auto buckets = std::get<0>(c10d::compute_bucket_assignment_by_size(
        reversed, limits, std::vector<bool>(n, false), order, std::nullopt));
    auto clock = std::make_shared<SyncClock>();
    auto reducer = std::make_unique<c10d::Reducer>(
        ps,
        buckets,
        pg,
        std::vector<bool>(n, false),
        bucket_bytes,
        /*find_unused_parameters=*/false,
        /*gradient_as_bucket_view=*/true,
        std::unordered_map<size_t, std::string>{},
        first,
        /*skip_all_reduce_unused_params=*/false,
        /*use_python_reducer=*/false,
        std::vector<int64_t>{});
    reducer->register_comm_hook(std::make_unique<SumHook>(pg, average != 0, clock));
    *out = new owd_reducer{pg, clock, std::move(reducer)};
  });
}

// Announces the step's last backward pass (or passes): the hooks fire during it, and the reduced
// gradients are in the parameters when it returns. Before that, after the first step, the
// buckets are rebuilt once in the order the gradients arrived (a collective: every rank calls
// this at the same point).
char* owd_reducer_arm(owd_reducer* r) {
  return guarded([&] {
    r->reducer->rebuild_buckets();
    {
      std::lock_guard<std::mutex> lock(r->clock->mu);
      r->clock->launches_ns.clear();
      r->clock->armed = std::chrono::steady_clock::now();
    }
    r->reducer->prepare_for_backward({});
  });
}

// An error naming the parameters that got no gradient when the armed backward pass did not
// reach every parameter (its reduction never finished).
char* owd_reducer_check(owd_reducer* r) {
  return guarded([&] { r->reducer->check_finalized(); });
}

// The last armed step: when each bucket's all-reduce started (ns after arming, at most `max`,
// the count in `*n`), and when the last gradient was ready (ns after arming).
void owd_reducer_timing(owd_reducer* r, int64_t* launches, int max, int* n, int64_t* last_grad) {
  {
    std::lock_guard<std::mutex> lock(r->clock->mu);
    int k = std::min<int>(max, static_cast<int>(r->clock->launches_ns.size()));
    std::copy(r->clock->launches_ns.begin(), r->clock->launches_ns.begin() + k, launches);
    *n = static_cast<int>(r->clock->launches_ns.size());
  }
  auto stats = r->reducer->get_backward_stats();
  *last_grad = stats.empty() ? 0 : *std::max_element(stats.begin(), stats.end());
}

// Removes the hooks from the parameters (no backward pass may be running).
void owd_reducer_free(owd_reducer* r) {
  delete r;
}

} // extern "C"
