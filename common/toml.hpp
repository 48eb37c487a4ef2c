#pragma once
// toml++ as Debian ships it: a compiled shared library, so the declarations must match its
// build, or the header compiles its own inline copy of the parser. CMake's
// tomlplusplus::tomlplusplus target passes the same two macros; the guards keep a manual g++
// build equivalent.
#ifndef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 0
#endif
#ifndef TOML_SHARED_LIB
#define TOML_SHARED_LIB 1
#endif
#include <toml++/toml.h>
