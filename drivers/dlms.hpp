#pragma once
// DLMS/COSEM driver (driver "dlms"; built-in meterTypes "DLMS" and "DLMS-SN"): a pure state
// machine on the drivers/driver.hpp framework, over HDLC or the TCP wrapper
// (drivers/dlms_link.*), speaking xDLMS (drivers/dlms_apdu.*, drivers/dlms_axdr.*). The wire
// contract and every decision are in docs/dlms.md; the essentials:
//
//   link up -> [HDLC: SNRM -> UA] -> AARQ -> AARE [-> HLS pass 3/4]
//   -> [SN: read the object list 0.0.40.0.0.255 attr 2 for the base names]
//   -> serial number -> clock -> registers (value + scaler_unit each)
//   -> [survey: profile capture objects, capture period, then buffer by range
//       (by entry if the meter refuses range reads), event log buffer by range]
//   -> RLRQ -> RLRE -> [HDLC: DISC -> UA/DM] -> finish
//
// Decisions (full list in docs/dlms.md):
// - Every wait has the response timeout; RLRQ and DISC are attempted on every path once the
//   association (or the link) is up, errors included, each with its own short wait.
// - An object the meter does not have (a data-access-result) is an item failure: the rest is
//   still read and the test ends PARTIAL SUCCESS, the failure named in the result.
// - A rejected association is a permanent failure naming the diagnostic.
// - No answer: HDLC sends its last frame again (max_repeats), then DISC only (window 1: the
//   unacknowledged I-frame leaves no room for an RLRQ); the wrapper repeats nothing (TCP).
// - SN pass 4 answered by a WriteResponse (which cannot carry f(CtoS)) is accepted; a
//   ReadResponse's f(CtoS) is checked. An object list the meter refuses: permanent failure.
// - The event log falls back from range to every entry (it has no capture period to size the
//   entries by); rows are filtered by time as for the profile.
#include "drivers/dlms_apdu.hpp"
#include "drivers/dlms_axdr.hpp"
#include "drivers/dlms_link.hpp"
#include "drivers/driver.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mts::drivers {

enum class dlms_transport { wrapper, hdlc };
enum class dlms_referencing { ln, sn };

// Per-meter-type settings (docs/dlms.md "Per-type settings"; keys in drivers/registry.cpp).
struct dlms_config {
  dlms_transport transport = dlms_transport::wrapper; // for TCP addresses; a modem call is always HDLC
  dlms_referencing referencing = dlms_referencing::ln;
  // none unless set; "none" with a password in the request means low (LLS)
  std::optional<dlms::authentication> authentication;
  std::uint16_t client_address = 16;     // HDLC client address / wrapper client wPort
  std::uint16_t server_logical_address = 1;
  std::uint16_t server_physical_address = 0;
  int server_address_size = 0;           // 0: the smallest that holds the address; 1, 2 or 4
  std::uint32_t hdlc_max_info_receive = 2030;
  std::uint32_t hdlc_max_info_transmit = 128;
  std::uint16_t max_pdu_size = 65535;
  dlms::obis serial_number_obis{0, 0, 96, 1, 0, 255};
  dlms::obis clock_obis{0, 0, 1, 0, 0, 255};
  std::vector<dlms::obis> register_obis; // default: 1.8.0, 2.8.0, 5.8.0..8.8.0 of group 1.0
  std::optional<dlms::obis> load_profile_obis = dlms::obis{1, 0, 99, 1, 0, 255};
  std::optional<dlms::obis> event_log_obis;
  dlms::deviation_rule clock_deviation = dlms::deviation_rule::blue_book;
  int clock_utc_offset_minutes = 0; // when the meter's deviation is not specified or ignored
  // A profile row's clock is the END of its interval (capture at the period's end, the usual
  // COSEM practice); false: its start.
  bool profile_clock_is_end = true;
  std::string client_system_title = std::string("MTS\0\0\0\0\1", 8); // calling-AP-title (HLS-SHA256)
  std::chrono::milliseconds response_timeout{5000};
  int max_repeats = 3;
};

dlms_config dlms_ln_config(); // built-in "DLMS"
dlms_config dlms_sn_config(); // built-in "DLMS-SN": SN, HDLC, LLS

// The API name and units of a register or profile column by its OBIS code:
// 1.8.0 "kWh Import", 2.8.0 "kWh Export", 3.8.0 "kvarh Import", 4.8.0 "kvarh Export",
// 5.8.0..8.8.0 "kvarh Q1".."kvarh Q4", 9.8.0 "kVAh" (the same names for D = 29 interval
// values); others: the OBIS text. Energy in Wh/varh/VAh is reported in k-units.
struct dlms_quantity {
  std::string name;
  std::string units;
  double factor = 1; // reported value = raw x 10^scaler x factor
};
dlms_quantity dlms_quantity_of(const dlms::obis& code, int unit);

// client_challenge: the HLS challenge CtoS (8..64 bytes) this session sends; the registry
// passes fresh random bytes per session (the driver itself stays pure), tests fixed ones.
std::unique_ptr<meter_driver> make_dlms_driver(const session_request& request, const dlms_config& config,
                                               std::string client_challenge);

// The line a session starts on (TCP ignores it): 9600 8N1.
line_settings dlms_initial_line();

} // namespace mts::drivers
