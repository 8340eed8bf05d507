// Opaque declarations of the Gloo types that libtorch's ProcessGroupGloo.hpp names.
//
// libtorch ships ProcessGroupGloo.hpp but not Gloo's headers. Every Gloo type the header uses is
// held through a pointer (std::shared_ptr / std::unique_ptr), so the class layout does not depend
// on these types' definitions; only the rendezvous store's interface (a base class in the header)
// and the one inline call on a context need declaring. The shim (../../dist.cpp) never
// constructs any of these types: libtorch's compiled code does.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {

class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport

namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(
      const std::vector<std::string>& keys,
      const std::chrono::milliseconds& timeout) = 0;
};
} // namespace rendezvous

} // namespace gloo
