#pragma once
// The meter side of DLMS/COSEM for the simulator (driver "dlms"; docs/dlms.md is binding): a
// pure state machine like sim::iec_meter, over the server links of drivers/dlms_link.hpp
// (HDLC, or the TCP wrapper) and the APDU codecs of drivers/dlms_apdu.hpp. It is configured
// by the meter's type (meter_identity::dlms: transport, referencing, authentication,
// addresses, OBIS codes, clock conventions) and serves the deterministic data of
// sim/meter_data.hpp.
//
// Objects (LN; with SN referencing the same objects, each with a base name):
//   Association LN 0.0.40.0.0.255 class 15 (SN: Association SN class 12, base name 0xFA00):
//     attr 1, attr 2 object list (every object below; SN: {base name, class, version, LN}).
//   serial number    class 1 at the type's serial_number_obis: octet-string of the ASCII serial
//   clock            class 8 at the type's clock_obis: attr 2 time = the meter's local time
//                    (true time + the type's clock_utc_offset_minutes + the identity's drift),
//                    deviation per the type's clock_deviation (blue-book: -offset; inverted:
//                    +offset; ignore: not specified), status 0; attr 3 time zone, attr 4 status
//   registers        class 3: 1.0.1.8.0.255, 2.8.0, 5.8.0..8.8.0 (the six channels) and 9.8.0
//                    (apparent energy): attr 2 double-long-unsigned Wh / varh / VAh, attr 3
//                    scaler_unit {0, 30 Wh | 32 varh | 31 VAh}
//   interval values  class 3: 1.0.1.29.0.255 .. 1.0.8.29.0.255: attr 2 the last complete
//                    interval in tenths of Wh / varh, attr 3 {-1, Wh | varh}
//   profile status   class 1 0.0.96.10.1.255 (the last complete interval's status)
//   event code       class 1 0.0.96.11.0.255 (the last event's code, 0 when none)
//   load profile     class 7 at the type's load_profile_obis (1.0.99.1.0.255 when it has
//                    none): attr 3 capture objects {8,clock,2,0} {1,0.0.96.10.1.255,2,0}
//                    {3,1.0.c.29.0.255,2,0} x 6; attr 4 capture period 1800; attr 5 sort
//                    method 1 (FIFO); attr 6 sort object (the clock column); attr 7 entries in
//                    use; attr 8 profile entries (profile_capacity); attr 2 buffer, whole (the
//                    last max_rows_whole rows), by range (selector 1: the rows whose clock is in
//                    [from, to], from/to in the meter's local time, their deviation read per the
//                    type's convention) or by entry (selector 2: entry 1 = the oldest), selected
//                    columns honoured. A row = {clock, status, six values in tenths}; its clock
//                    is the END of the interval (the type's profile_clock "start": the start),
//                    null-data when the row directly follows the previous row of the same reply;
//                    status 0x80 on a power-failure interval; survey_gaps leave rows out.
//   event log        class 7 at the type's event_log_obis (0.0.99.98.0.255 when it has none):
//                    capture objects {8,clock,2,0} {1,0.0.96.11.0.255,2,0}, capture period 0;
//                    rows {clock, code}: power down (1) at start + 600 s and power up (2) at
//                    start + 900 s of every power-failure interval (the last event_capacity).
// Anything else: data-access-result 4 (object undefined), also for an attribute an object
// does not have.
//
// Decisions:
// - Transport: the type's transport over TCP; a modem call always HDLC. The HDLC server
//   address is the type's server_logical_address and, as the lower address, the identity's
//   outstation address (a number); a frame without a lower address is answered too, as is any
//   lower address when the identity has none. Frames to other addresses are not answered. Over
//   the wrapper the meter answers the destination wPorts "outstation address" and the type's
//   server_logical_address (any wPort when the identity has no address). The link is set up
//   with the address form the client's first frame uses.
// - Limits (faults max_pdu, max_info; 0: default_max_pdu, default_max_info): the AARE's max
//   receive PDU is max_pdu; a response longer than min(client's max receive PDU, max_pdu) goes
//   by block transfer (GET-Response-With-Datablock / SN data-block-result; every block as long
//   as fits); HDLC information fields at most max_info both ways (negotiated with the client's
//   SNRM by the link). A request for another block than the next one answers
//   data-access-result 19 (block number invalid); the last block asked again is sent again.
// - Association: the AARQ's application context must be the type's referencing (otherwise
//   rejected-permanent, diagnostic 2). Mechanism: the type's; a type of authentication none
//   also takes LLS (low). LLS: the password must be the identity's (empty: any), else result 1
//   diagnostic 13. HLS (md5, sha1, sha256): AARE accepted with diagnostic 14, the meter's
//   challenge StoC (16 bytes from seed, serial and session_number) and its system title
//   ("SIM" + 5 bytes of the same hash); secret = the identity's password. Until pass 3
//   succeeds only the association object answers (others: data-access-result 3). Pass 3
//   wrong: ACTION result 3 (read-write denied) / SN ReadResponse data-access-error 3.
//   A mechanism other than the type's: rejected-permanent, diagnostic 11 (mechanism name not
//   recognised); none when the type needs one: diagnostic 14 (authentication required).
// - Conformance offered: LN 00 50 1F, SN 18 12 20 (so the AAREs match the published vectors);
//   negotiated = offered AND proposed.
// - GET-Request-With-List and services the meter lacks: ExceptionResponse (service unknown,
//   service not supported); a GET / read before the association: ExceptionResponse (service
//   not allowed, operation not possible). SN ReadRequest with several items answers them all
//   in one ReadResponse (never by blocks: the items a client asks together are small).
// - Every reply leaves after reaction_delay (0: at once); with no reply pending the timer is
//   the inactivity timeout, whose expiry closes the link. DISC -> UA, then the meter closes the
//   connection; over the wrapper the client closes it (RLRQ -> RLRE only ends the association).
// - Faults (sim/meter_data.hpp meter_faults): silent (reads, never answers), drop_after_bytes
//   (as the other meters), drop_mid_profile (close right after sending the first block of the
//   load profile's buffer; when the buffer needs no block transfer, close instead of
//   answering), corrupt_bcc_every k (HDLC: every k-th new frame sent has a wrong FCS; a frame
//   sent again is good and not counted), garbage_before_reply (before every reply; over the
//   wrapper it breaks the stream), reject_password (every password is wrong), reported_serial,
//   survey_gaps,
//   power_failure_every_days (above), reject_association (rejected-permanent, diagnostic 1,
//   whatever the password), access_error_obis (that object answers data-access-result 4),
//   block_stop_after N (a block transfer answers no request for a block after its N-th),
//   frame_reject (HDLC: FRMR, reason invalid control field, in answer to the first I-frame),
//   refuse_range (the load profile's selective access 1 answers data-access-result 3, so the
//   client reads by entry; the event log still answers by range), max_pdu, max_info.
//   refuse_connection and pace_baud are the server's; error_register and
//   password_timeout_after_reads do not apply.
#include "drivers/dlms.hpp"
#include "drivers/dlms_apdu.hpp"
#include "drivers/dlms_axdr.hpp"
#include "drivers/dlms_link.hpp"
#include "drivers/driver.hpp"
#include "sim/framed_meter.hpp"
#include "sim/meter_data.hpp"
#include "sim/meter_session.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mts::sim {

// Whether a meter of this driver is a DLMS/COSEM meter ("dlms").
bool is_dlms_driver(const std::string& driver);
// The DLMS settings of a meter: the identity's, or the built-in "DLMS" type's.
drivers::dlms_config dlms_settings_of(const meter_identity& identity);

// The object model and encoding pieces, public for the tests and for expect.
namespace cosem {

namespace dl = drivers::dlms;

inline constexpr std::uint32_t default_max_pdu = 1024;
inline constexpr std::uint32_t default_max_info = 512;
inline constexpr std::size_t profile_capacity = 9600; // rows (200 days of half hours)
inline constexpr std::size_t event_capacity = 1000;   // event log rows
inline constexpr std::size_t max_rows_whole = 96;     // the buffer read without selective access
inline constexpr std::uint16_t association_sn_base = 0xFA00;
inline constexpr std::uint32_t ln_conformance = 0x00501F, sn_conformance = 0x181220;
inline constexpr unix_seconds power_down_after = 600, power_up_after = 900;
inline constexpr std::uint8_t event_power_down = 1, event_power_up = 2;

inline constexpr dl::obis association_ln{0, 0, 40, 0, 0, 255};
inline constexpr dl::obis profile_status_obis{0, 0, 96, 10, 1, 255};
inline constexpr dl::obis event_code_obis{0, 0, 96, 11, 0, 255};
inline constexpr dl::obis default_profile_obis{1, 0, 99, 1, 0, 255};
inline constexpr dl::obis default_event_log_obis{0, 0, 99, 98, 0, 255};

enum class object_kind { association, serial, clock, reg, interval, profile_status, event_code, profile, event_log };

struct object {
  object_kind kind = object_kind::association;
  std::uint16_t class_id = 0;
  std::uint8_t version = 0;
  dl::obis ln{};
  std::uint16_t base_name = 0; // SN
  int channel = -1;            // reg / interval: the sim channel (reg: 6 = apparent energy)
};

// The meter's objects in object-list order. SN base names: the association 0xFA00, the others
// 0x1000 + 0x80 * position (position 0 = the first after the association).
std::vector<object> objects(const drivers::dlms_config& config);

// Per session: the HLS challenge (16 bytes) and the meter's system title (8 bytes).
std::string server_challenge(const meter_identity& identity, std::uint64_t session_number);
std::string server_system_title(const meter_identity& identity);

// The wire deviation of the meter's date-times for the type's convention and offset.
std::optional<int> wire_deviation(const drivers::dlms_config& config);

// A load-profile row (meter time) and an event-log row.
struct profile_row {
  unix_seconds start = 0;
  std::uint8_t status = 0;
  std::array<std::int64_t, channel_count> wh{};
};
struct event_row {
  unix_seconds time = 0; // meter time
  std::uint8_t code = 0;
};
// The buffers at meter time meter_now, oldest first: the last profile_capacity complete
// intervals without the gaps, the last event_capacity events not after meter_now.
std::vector<unix_seconds> profile_starts(const meter_model& model, unix_seconds meter_now);
profile_row profile_row_at(const meter_model& model, unix_seconds start);
std::vector<event_row> events(const meter_model& model, unix_seconds meter_now);

// What one attribute read answers: a Data value or a data-access-result.
using read_result = std::variant<dl::data, int>;

// The meter's data at one instant: the answers to attribute reads. `authenticated` false:
// only the association answers. Used by the meter for every read and by expect to size the
// replies.
class object_model {
public:
  object_model(const meter_model& model, const drivers::dlms_config& config, unix_seconds meter_now);
  read_result read(const dl::attribute_ref& ref, const std::optional<dl::selective_access>& access) const;
  // SN: the object of a short name and the attribute it denotes (nullopt: no such name).
  std::optional<dl::attribute_ref> sn_attribute(std::uint16_t short_name) const;
  const std::vector<object>& list() const { return objects_; }
  const object* find(const dl::obis& ln) const;

private:
  read_result buffer(const object& o, const std::optional<dl::selective_access>& access) const;
  dl::data clock_cell(unix_seconds meter_time) const;

  const meter_model& model_;
  drivers::dlms_config config_;
  unix_seconds now_;
  std::vector<object> objects_;
  std::optional<dl::obis> access_error_;
};

// The raw bytes a block of a block transfer carries at most, for a response limit `pdu`
// (LN: GET-Response-With-Datablock, SN: ReadResponse data-block-result).
std::size_t block_capacity(std::size_t pdu, bool logical_names);

} // namespace cosem

struct dlms_meter_config : framed_meter_timing {
  std::uint64_t session_number = 0; // makes the HLS challenge
  bool over_modem = false;          // HDLC whatever the type's transport
};

class dlms_meter : public meter_session {
public:
  dlms_meter(meter_identity identity, meter_faults faults, dlms_meter_config config = {});
  ~dlms_meter() override;

  drivers::actions on_link_up(drivers::unix_ms now) override;
  drivers::actions on_bytes(std::string_view data, drivers::unix_ms now) override;
  drivers::actions on_timer(std::uint64_t id, drivers::unix_ms now) override;
  drivers::actions on_link_down(drivers::unix_ms now) override;
  const drivers::line_settings& line() const override { return line_; }
  bool closed() const override { return closed_; }

  const meter_model& model() const { return model_; }
  const std::string& challenge() const { return challenge_; }
  const std::string& system_title() const { return system_title_; }

private:
  struct transfer {
    std::string raw;          // the whole Data
    std::size_t per_block = 0;
    std::uint32_t sent = 0;   // blocks sent (the last one's number)
    bool profile = false;     // the load profile's buffer (drop_mid_profile)
  };

  unix_seconds meter_now() const;
  void arm(drivers::actions& out, std::chrono::milliseconds after);
  void close(drivers::actions& out);
  void emit(drivers::actions& out, std::string bytes);
  void queue(drivers::actions& out, std::string bytes);
  void flush(drivers::actions& out);
  // Bytes from the client to the link (address filter, frame_reject), and its output.
  void feed(drivers::actions& out, std::string_view data);
  void feed_link(drivers::actions& out, std::string_view bytes);
  void take(drivers::actions& out, drivers::dlms::link_output&& lo);
  bool make_link_for(const drivers::dlms::hdlc_frame& f);
  void send_apdu(drivers::actions& out, const std::string& apdu);
  // One APDU from the client.
  void on_apdu(drivers::actions& out, const std::string& apdu);
  void on_aarq(drivers::actions& out, const std::string& apdu);
  void on_get(drivers::actions& out, const std::string& apdu);
  void on_action(drivers::actions& out, const std::string& apdu);
  void on_read(drivers::actions& out, const std::string& apdu);
  void on_write(drivers::actions& out, const std::string& apdu);
  std::optional<std::string> hls_reply(const drivers::dlms::data& f_stoc);
  cosem::read_result read(const drivers::dlms::attribute_ref& ref,
                          const std::optional<drivers::dlms::selective_access>& access);
  // A response too long for one PDU starts a block transfer; returns the first block's APDU.
  std::string first_block(std::string raw, bool profile);
  std::optional<std::string> next_block(std::uint32_t asked);
  std::string block_apdu(std::uint32_t number, bool last, std::string_view raw, std::optional<int> error = {}) const;
  // A complete response, or its first block when it is too long (drop_mid_profile too).
  void respond(drivers::actions& out, const std::string& normal_apdu, const drivers::dlms::data& value, bool profile);

  meter_model model_;
  drivers::dlms_config config_;
  dlms_meter_config timing_;
  drivers::line_settings line_;
  bool hdlc_ = false;
  std::unique_ptr<drivers::dlms::server_link> link_;
  drivers::dlms::hdlc_frame_parser parser_; // HDLC: frames before the link sees them
  std::string wrapper_head_;                // wrapper: bytes before the first header decided
  bool ignore_all_ = false;                 // wrapper: the first PDU was to another wPort
  bool rejected_frame_ = false;             // frame_reject done
  std::string challenge_, system_title_;
  std::string client_challenge_, client_title_;
  drivers::dlms::authentication mechanism_ = drivers::dlms::authentication::none;
  bool associated_ = false, authenticated_ = false;
  std::size_t pdu_ = cosem::default_max_pdu; // the responses' limit
  std::optional<transfer> transfer_;
  std::string last_block_apdu_;
  std::uint8_t invoke_id_ = drivers::dlms::default_invoke_id; // of the GET being answered
  std::optional<drivers::dlms::obis> access_error_;

  bool closed_ = false, started_ = false, close_after_pending_ = false;
  drivers::unix_ms now_ = 0;
  std::uint64_t timer_id_ = 0;
  std::optional<std::string> pending_;
  std::size_t sent_ = 0, frames_ = 0;
  std::string last_good_frame_;
};

// What the DLMS driver (configured as the meter's type) reports for `request` at true time
// `now`, and how its session ends (docs/dlms.md texts). Faults it cannot predict
// (drop_after_bytes) are refused by expect before.
struct dlms_expectation {
  drivers::meter_readings readings;
  drivers::finish end;
};
dlms_expectation expected_dlms(const meter_identity& identity, const meter_faults& faults,
                               const drivers::session_request& request, unix_seconds now);

} // namespace mts::sim
