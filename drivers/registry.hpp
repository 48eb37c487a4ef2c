#pragma once
// The meter types the product supports. Each later driver registers itself here with its line
// settings and channel names; until then the registry lists the types the next issues build.
#include <string>
#include <vector>

namespace mts {

// Exact spellings, in the order error messages list them.
const std::vector<std::string>& supported_meter_types();

bool is_supported_meter_type(const std::string& meter_type);

} // namespace mts
