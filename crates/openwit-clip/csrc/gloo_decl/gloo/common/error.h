// See decl.h: opaque declarations for libtorch's ProcessGroupGloo.hpp.
#pragma once
#include "../decl.h"
