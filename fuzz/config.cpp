// The configuration loader (config/settings.hpp): any TOML text as the configuration file,
// then any "section.key=value" overrides (input: "file text NUL override NUL override ...").
// A bad configuration may only be refused with config_error, which names what is wrong; an
// accepted one prints every key and builds its meter types.
#include "config/settings.hpp"
#include "drivers/registry.hpp"
#include "fuzz_check.hpp"

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  std::string in(reinterpret_cast<const char*>(data), size);
  auto split = in.find('\0');
  std::vector<std::string> overrides;
  for (auto at = split; at != std::string::npos;) {
    auto next = in.find('\0', at + 1);
    overrides.push_back(in.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1));
    at = next;
  }
  // The loader reads a file, as `mts serve --config FILE` does.
  static const std::string path = "/dev/shm/mts-fuzz-config-" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << in.substr(0, split);
  }
  settings loaded;
  try {
    loaded = load_settings(path, overrides);
  } catch (const config_error& e) {
    FUZZ_CHECK(*e.what() != '\0', "a refusal without a reason");
    return 0;
  }
  for (const auto& key : describe_settings())
    (void)setting_value(loaded, key.key);
  meter_type_registry types(loaded.meter_types);
  (void)types.names();
  return 0;
}
