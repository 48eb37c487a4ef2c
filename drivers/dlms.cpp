#include "drivers/dlms.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace mts::drivers {
namespace {

using dlms::authentication;
using dlms::obis;
using dlms_data = dlms::data;

// Short names of the Association SN object (base name 0xFA00): attribute 2, the object list,
// and method 8, reply_to_HLS_authentication (first method at +0x20, then 8 per method).
constexpr std::uint16_t sn_object_list = 0xFA08;
constexpr std::uint16_t sn_reply_to_hls = 0xFA58;
// A block transfer that joins more than this is refused, so a hostile meter cannot exhaust
// memory: decoded, a byte of A-XDR can become one value node (about 100 bytes), so 4 MiB bound
// a session's decoded reply to about 400 MB in the worst case. A 90-day half-hourly profile of
// six channels is about 0.2 MiB; a 30-day one-minute profile about 2 MiB.
constexpr std::size_t max_joined = std::size_t{4} << 20;

std::uint8_t first_byte(std::string_view apdu) { return apdu.empty() ? 0 : static_cast<std::uint8_t>(apdu[0]); }

std::string hex_byte(std::uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02X", b);
  return buf;
}

// 10^n as a double; exact for the n a scaler gives (|n| <= 22).
double power_of_ten(int n) {
  double p = 1;
  for (int i = 0; i < n; ++i)
    p *= 10;
  return p;
}

// raw x 10^exponent; a negative exponent divides by the exact power of ten, so 12345 x 10^-3
// is the double nearest 12.345 (multiplying by 0.001 is not).
double scaled(double raw, int exponent) {
  return exponent < 0 ? raw / power_of_ten(-exponent) : raw * power_of_ten(exponent);
}

// Energy units reported in k-units: the exponent they add (Wh 30, VAh 31, varh 32).
int kilo_exponent(int unit) { return unit == 30 || unit == 31 || unit == 32 ? -3 : 0; }

std::string trimmed(std::string_view s, std::string_view chars) {
  const auto b = s.find_first_not_of(chars);
  if (b == std::string_view::npos)
    return {};
  const auto e = s.find_last_not_of(chars);
  return std::string(s.substr(b, e - b + 1));
}

// The serial number's Data as text: strings without surrounding spaces and NULs, integers
// as their decimal digits.
std::optional<std::string> serial_text(const dlms_data& d) {
  using dlms::tag;
  if (d.type == tag::octet_string || d.type == tag::visible_string || d.type == tag::utf8_string)
    return trimmed(d.bytes, std::string_view(" \0", 2));
  if (d.type == tag::long64_unsigned)
    return std::to_string(d.uint_value);
  if (d.type == tag::float32 || d.type == tag::float64 || d.type == tag::boolean)
    return std::nullopt;
  if (const auto n = d.integer())
    return std::to_string(*n);
  return std::nullopt;
}

// A numeric value as a double (integers exactly up to 2^53).
std::optional<double> number_of(const dlms_data& d) {
  if (d.type == dlms::tag::boolean)
    return std::nullopt;
  return d.number();
}

// scaler_unit = structure{integer scaler, enum unit}.
std::optional<std::pair<int, int>> scaler_unit_of(const dlms_data& d) {
  if (d.type != dlms::tag::structure || d.items.size() != 2)
    return std::nullopt;
  const auto s = d.items[0].integer(), u = d.items[1].integer();
  if (!s || !u || *s < -128 || *s > 127 || *u < 0 || *u > 255)
    return std::nullopt;
  return std::make_pair(static_cast<int>(*s), static_cast<int>(*u));
}

// A profile's capture objects: structure{class_id, logical_name, attribute_index, data_index}.
struct capture_object {
  std::uint16_t class_id = 0;
  obis code{};
  int attribute = 0;
};
std::optional<std::vector<capture_object>> capture_objects_of(const dlms_data& d) {
  if (d.type != dlms::tag::array)
    return std::nullopt;
  std::vector<capture_object> out;
  for (const auto& item : d.items) {
    if (item.type != dlms::tag::structure || item.items.size() < 3)
      return std::nullopt;
    const auto cls = item.items[0].integer(), attr = item.items[2].integer();
    const auto& ln = item.items[1];
    if (!cls || !attr || *cls < 0 || *cls > 0xFFFF || ln.type != dlms::tag::octet_string || ln.bytes.size() != 6)
      return std::nullopt;
    capture_object c;
    c.class_id = static_cast<std::uint16_t>(*cls);
    for (std::size_t i = 0; i < 6; ++i)
      c.code[i] = static_cast<std::uint8_t>(ln.bytes[i]);
    c.attribute = static_cast<int>(*attr);
    out.push_back(c);
  }
  return out;
}

bool is_clock_column(const capture_object& c) { return c.class_id == 8 && c.attribute == 2; }
// The AMR profile status: class 1, 0.0.96.10.x.255.
bool is_status_column(const capture_object& c) {
  return c.class_id == 1 && c.attribute == 2 && c.code[2] == 96 && c.code[3] == 10;
}
// A value column and the attribute holding its scaler_unit (0: not a value column).
int scaler_attribute_of(const capture_object& c) {
  if ((c.class_id == 3 || c.class_id == 4) && c.attribute == 2)
    return 3;
  if (c.class_id == 5 && (c.attribute == 2 || c.attribute == 3))
    return 4;
  return 0;
}

// The standard event log codes (IDIS / DSMR; docs/dlms.md).
const char* event_text(std::int64_t code) {
  switch (code) {
  case 1: return "power down";
  case 2: return "power up";
  case 3: return "daylight saving time enabled or disabled";
  case 4: return "clock adjusted (old date/time)";
  case 5: return "clock adjusted (new date/time)";
  case 6: return "clock invalid";
  case 7: return "replace battery";
  case 8: return "battery voltage low";
  case 9: return "TOU activated";
  case 10: return "error register cleared";
  case 11: return "alarm register cleared";
  case 12: return "program memory error";
  case 13: return "RAM error";
  case 14: return "NV memory error";
  case 15: return "watchdog error";
  case 16: return "measurement system error";
  case 17: return "firmware ready for activation";
  case 18: return "firmware activated";
  case 19: return "passive TOU programmed";
  case 47: return "one or more parameters changed";
  case 48: return "global keys changed";
  case 51: return "firmware verification failed";
  case 254: return "load profile cleared";
  case 255: return "event log cleared";
  default: return nullptr;
  }
}

// Profile status bits, bit 7 first.
constexpr std::pair<std::uint8_t, const char*> status_bits[] = {
    {0x80, "Power down in interval starting "},   {0x20, "Clock adjusted in interval starting "},
    {0x04, "Data not valid in interval starting "}, {0x02, "Clock invalid in interval starting "},
    {0x01, "Critical error in interval starting "}};

// "0" .. "max" in decimal, nothing else.
std::optional<std::uint32_t> decimal_in_range(const std::string& text, std::uint32_t max) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const auto v = std::stoul(text);
  if (v > max)
    return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

class dlms_driver final : public meter_driver {
public:
  dlms_driver(session_request request, dlms_config config, std::string challenge)
      : request_(std::move(request)), config_(std::move(config)), challenge_(std::move(challenge)),
        hdlc_(request_.over_modem || config_.transport == dlms_transport::hdlc),
        sn_(config_.referencing == dlms_referencing::sn) {}

  actions on_link_up(unix_ms now) override;
  actions on_bytes(std::string_view data, unix_ms now) override;
  actions on_timer(std::uint64_t id, unix_ms now) override;
  actions on_link_down(unix_ms now) override;
  const meter_readings& readings() const override { return readings_; }

private:
  // What the session awaits.
  enum class stage { idle, link_setup, association, authentication, reading, release, disconnect, done };
  // Which read is outstanding (stage::reading).
  enum class step {
    object_list,
    serial,
    clock,
    register_value,
    register_scaler,
    profile_columns,
    profile_period,
    column_scaler,
    profile_range,
    profile_entries,
    profile_by_entry,
    log_columns,
    log_range,
    log_by_entry
  };
  enum class item { object_list, serial, clock, registers, profile, event_log };

  // The answer to a read: a value, or why there is none (refused: the meter answered with a
  // data-access-result, an ExceptionResponse or a ConfirmedServiceError).
  struct answer {
    std::optional<dlms_data> value;
    std::string refusal;
    int access_error = -1;
  };
  struct column {
    capture_object object;
    int scaler_attribute = 0; // value columns: where the scaler_unit is; 0 otherwise
    std::optional<std::pair<int, int>> scaler_unit;
  };

  // ---- plumbing ----
  bool start_link(actions& out);
  void emit(actions& out, dlms::link_output o, unix_ms now);
  void send_apdu(actions& out, const std::string& apdu, unix_ms now);
  void on_apdu(actions& out, const std::string& apdu, unix_ms now);
  void fail(actions& out, failure_kind kind, std::string reason);
  void malformed(actions& out, const std::string& what);
  void release(actions& out);
  void disconnect(actions& out);
  void finish_now(actions& out);
  std::string stage_name() const;

  // ---- association ----
  authentication mechanism() const;
  void send_aarq(actions& out, unix_ms now);
  void on_aare(actions& out, const std::string& apdu, unix_ms now);
  void on_hls_reply(actions& out, const std::string& apdu, unix_ms now);
  void start_reading(actions& out, unix_ms now);

  // ---- reads ----
  bool read(actions& out, step s, const dlms::attribute_ref& attr, std::optional<dlms::selective_access> access,
            unix_ms now);
  void read_short_name(actions& out, step s, std::uint16_t name, std::optional<dlms::selective_access> access,
                       unix_ms now);
  void on_read_reply(actions& out, const std::string& apdu, unix_ms now);
  void on_answer(actions& out, answer a, unix_ms now);
  void item_failed(const std::string& item, const std::string& reason);

  void start_item(actions& out, unix_ms now);
  void next_item(actions& out, unix_ms now);
  void on_object_list(actions& out, answer& a, unix_ms now);
  void on_serial(actions& out, answer& a, unix_ms now);
  void on_clock(actions& out, answer& a, unix_ms now);
  void start_register(actions& out, unix_ms now);
  void on_register(actions& out, answer& a, unix_ms now);
  void start_profile(actions& out, unix_ms now);
  std::optional<std::vector<capture_object>> columns_with_clock(const answer& a, const char* item);
  void on_profile(actions& out, answer& a, unix_ms now);
  void next_column_scaler(actions& out, unix_ms now);
  void read_range(actions& out, step s, const obis& code, unix_ms now);
  void store_profile(const dlms_data& buffer);
  void on_event_log(actions& out, answer& a, unix_ms now);
  void store_event_log(const dlms_data& buffer);
  std::optional<unix_seconds> cell_time(const dlms_data& cell) const;

  session_request request_;
  dlms_config config_;
  std::string challenge_;
  bool hdlc_;
  bool sn_;
  meter_readings readings_;
  finish end_; // the result, sent when release and disconnect are done

  std::unique_ptr<dlms::client_link> link_;
  stage stage_ = stage::idle;
  std::uint64_t timer_id_ = 0;
  int repeats_ = 0;
  bool link_open_ = false;  // HDLC: UA received (DISC due at the end)
  bool associated_ = false; // AARE accepted (RLRQ due at the end)
  std::uint16_t server_max_pdu_ = 0;
  std::string stoc_;        // HLS: the meter's challenge
  std::string server_title_;
  std::string expected_ctos_; // HLS: f(CtoS) the meter must answer

  // the read in progress
  step step_ = step::serial;
  std::string blocks_; // raw block-transfer parts joined
  bool in_block_ = false;

  std::vector<item> plan_;
  std::size_t pos_ = 0;
  std::map<obis, std::pair<std::uint16_t, std::uint16_t>> short_names_; // SN: LN -> base name, class

  int offset_minutes_ = 0;             // the meter's local time offset learnt from its clock
  std::optional<unix_seconds> meter_now_; // the meter's clock (UTC) when read

  std::size_t register_ = 0;
  std::uint16_t register_class_ = 3;
  double register_raw_ = 0;
  unix_seconds register_time_ = 0;

  std::vector<column> columns_;
  std::size_t column_ = 0; // the column whose scaler is being read
  unix_seconds period_ = 0;
};

// ---- plumbing ----

bool dlms_driver::start_link(actions& out) {
  // outstationAddress: the physical (lower) HDLC address, or the server wPort.
  std::uint16_t physical = config_.server_physical_address, logical = config_.server_logical_address;
  int size = config_.server_address_size;
  const bool outstation = request_.outstation_address && !request_.outstation_address->empty();
  if (hdlc_) {
    const std::uint32_t max = size == 1 ? 0 : size == 2 ? 127 : 16383;
    if (outstation) {
      const auto v = decimal_in_range(*request_.outstation_address, max);
      if (!v) {
        fail(out, failure_kind::permanent,
             "outstationAddress must be a number from 0 to " + std::to_string(max) + " for this meter type");
        return false;
      }
      physical = static_cast<std::uint16_t>(*v);
    }
    if (size == 0)
      size = physical == 0 ? 1 : logical < 128 && physical < 128 ? 2 : 4;
    dlms::hdlc_settings s;
    s.client_address = static_cast<std::uint8_t>(config_.client_address);
    s.server_logical = logical;
    s.server_physical = physical;
    s.server_address_size = size;
    s.max_info_receive = config_.hdlc_max_info_receive;
    s.max_info_transmit = config_.hdlc_max_info_transmit;
    try {
      if (config_.client_address > 127 || (size == 1 && physical != 0))
        throw std::invalid_argument("address");
      dlms::encode_server_address(logical, physical, size); // throws when they do not fit
      link_ = dlms::make_hdlc_client(s);
    } catch (const std::invalid_argument&) {
      fail(out, failure_kind::permanent,
           "the HDLC address (client " + std::to_string(config_.client_address) + ", server " +
               std::to_string(logical) + "/" + std::to_string(physical) + ") does not fit server_address_size " +
               std::to_string(size));
      return false;
    }
  } else {
    dlms::wrapper_settings s;
    s.client_wport = config_.client_address;
    s.server_wport = logical;
    if (outstation) {
      const auto v = decimal_in_range(*request_.outstation_address, 65535);
      if (!v) {
        fail(out, failure_kind::permanent, "outstationAddress must be a number from 0 to 65535 for this meter type");
        return false;
      }
      s.server_wport = static_cast<std::uint16_t>(*v);
    }
    link_ = dlms::make_wrapper_client(s);
  }
  return true;
}

// Sends what the link produced and reacts to what it reports.
void dlms_driver::emit(actions& out, dlms::link_output o, unix_ms now) {
  if (!o.send.empty())
    out.push_back(send_bytes{std::move(o.send)});
  if (stage_ == stage::done)
    return;
  if (!o.error.empty()) {
    // The link cannot go on: nothing more can be sent.
    link_open_ = false;
    associated_ = false;
    if (stage_ == stage::release || stage_ == stage::disconnect)
      finish_now(out);
    else
      fail(out, failure_kind::transient, "link error: " + o.error);
    return;
  }
  if (o.opened && stage_ == stage::link_setup) {
    link_open_ = true;
    repeats_ = 0;
    send_aarq(out, now);
  }
  for (const auto& apdu : o.apdus) {
    if (stage_ == stage::done || stage_ == stage::disconnect)
      break;
    repeats_ = 0;
    on_apdu(out, apdu, now);
  }
  if (o.closed && stage_ != stage::done) {
    link_open_ = false;
    associated_ = false;
    if (stage_ == stage::disconnect || stage_ == stage::release)
      finish_now(out);
    else
      fail(out, failure_kind::transient, "link error: disconnected by the meter");
  }
}

void dlms_driver::send_apdu(actions& out, const std::string& apdu, unix_ms now) {
  // Never more than the meter said it can receive (AARE max receive PDU size).
  if (server_max_pdu_ != 0 && apdu.size() > server_max_pdu_) {
    fail(out, failure_kind::permanent,
         "a request of " + std::to_string(apdu.size()) + " bytes is longer than the meter's max receive PDU size " +
             std::to_string(server_max_pdu_));
    return;
  }
  emit(out, link_->send_apdu(apdu), now);
}

void dlms_driver::on_apdu(actions& out, const std::string& apdu, unix_ms now) {
  switch (stage_) {
  case stage::association:
    on_aare(out, apdu, now);
    return;
  case stage::authentication:
    on_hls_reply(out, apdu, now);
    return;
  case stage::reading:
    on_read_reply(out, apdu, now);
    return;
  case stage::release:
    disconnect(out); // RLRE (or anything else): the release is over
    return;
  default:
    return;
  }
}

void dlms_driver::fail(actions& out, failure_kind kind, std::string reason) {
  end_ = finish{kind, std::move(reason)};
  release(out);
}

void dlms_driver::malformed(actions& out, const std::string& what) {
  fail(out, failure_kind::transient, "malformed reply to " + stage_name() + ": " + what);
}

// RLRQ once the association is up, then DISC once the HDLC link is up, then finish.
void dlms_driver::release(actions& out) {
  if (associated_ && link_) {
    associated_ = false;
    stage_ = stage::release;
    emit(out, link_->send_apdu(dlms::encode_rlrq()), 0);
    return;
  }
  disconnect(out);
}

void dlms_driver::disconnect(actions& out) {
  if (hdlc_ && link_open_ && link_) {
    link_open_ = false;
    stage_ = stage::disconnect;
    emit(out, link_->close(), 0);
    return;
  }
  finish_now(out);
}

void dlms_driver::finish_now(actions& out) {
  stage_ = stage::done;
  out.push_back(end_);
}

std::string dlms_driver::stage_name() const {
  switch (stage_) {
  case stage::link_setup:
    return "link setup";
  case stage::association:
    return "association";
  case stage::authentication:
    return "authentication";
  default:
    break;
  }
  switch (step_) {
  case step::object_list:
    return "object list read";
  case step::serial:
    return "serial number read";
  case step::clock:
    return "clock read";
  case step::register_value:
  case step::register_scaler:
    return "register read";
  case step::log_columns:
  case step::log_range:
  case step::log_by_entry:
    return "event log read";
  default:
    return "load profile read";
  }
}

actions dlms_driver::on_link_up(unix_ms now) {
  actions out;
  if (stage_ != stage::idle)
    return out;
  const auto mech = mechanism();
  if (mech != authentication::none && (!request_.password || request_.password->empty())) {
    fail(out, failure_kind::permanent,
         "the meter type needs a password (" + dlms::authentication_name(mech) + " authentication)");
    return out;
  }
  if (mech == authentication::high || mech == authentication::high_gmac) {
    fail(out, failure_kind::permanent, dlms::authentication_name(mech) + " authentication is not supported");
    return out;
  }
  if (mech != authentication::none && mech != authentication::low &&
      (challenge_.size() < 8 || challenge_.size() > 64)) {
    fail(out, failure_kind::transient, "no client challenge for high-level authentication");
    return out;
  }
  if (!start_link(out))
    return out;
  if (hdlc_) {
    stage_ = stage::link_setup;
    emit(out, link_->open(), now);
  } else {
    auto o = link_->open();
    o.opened = false; // the wrapper is open at once: the AARQ goes now
    emit(out, std::move(o), now);
    send_aarq(out, now);
  }
  if (stage_ != stage::done)
    out.push_back(arm_timer{config_.response_timeout, ++timer_id_});
  return out;
}

actions dlms_driver::on_bytes(std::string_view data, unix_ms now) {
  actions out;
  if (stage_ == stage::done || stage_ == stage::idle || !link_)
    return out;
  auto o = link_->on_bytes(data);
  // A frame that asks for the next segment is progress: max_repeats bounds the repeats in a
  // row without a frame from the meter, not per APDU (a long reply in many frames may lose
  // several of them on a noisy line).
  if (!o.send.empty() && o.apdus.empty())
    repeats_ = 0;
  emit(out, std::move(o), now);
  // The response timeout bounds the wait for every byte (re-armed while bytes arrive).
  if (stage_ != stage::done && !data.empty())
    out.push_back(arm_timer{config_.response_timeout, ++timer_id_});
  return out;
}

actions dlms_driver::on_timer(std::uint64_t id, unix_ms now) {
  actions out;
  if (stage_ == stage::done || stage_ == stage::idle || id != timer_id_)
    return out;
  switch (stage_) {
  case stage::release:
    disconnect(out); // no RLRE: disconnect anyway
    break;
  case stage::disconnect:
    finish_now(out); // no UA: the result stands
    break;
  default:
    // HDLC sends its last frame again; TCP (the wrapper) does not lose bytes.
    if (hdlc_ && repeats_ < config_.max_repeats) {
      ++repeats_;
      emit(out, link_->repeat_last(), now);
    } else {
      // HDLC, window 1: the unanswered I-frame leaves no room for an RLRQ; DISC only.
      if (hdlc_)
        associated_ = false;
      fail(out, failure_kind::transient, "no answer to " + stage_name());
    }
    break;
  }
  if (stage_ != stage::done)
    out.push_back(arm_timer{config_.response_timeout, ++timer_id_});
  return out;
}

actions dlms_driver::on_link_down(unix_ms) {
  actions out;
  if (stage_ == stage::done)
    return out;
  // During release the result is already known; otherwise the line dropped (what was read is kept).
  if (stage_ != stage::release && stage_ != stage::disconnect)
    end_ = finish{failure_kind::transient, "line dropped"};
  finish_now(out);
  return out;
}

// ---- association ----

authentication dlms_driver::mechanism() const {
  const auto a = config_.authentication.value_or(authentication::none);
  if (a == authentication::none && request_.password && !request_.password->empty())
    return authentication::low;
  return a;
}

void dlms_driver::send_aarq(actions& out, unix_ms now) {
  dlms::aarq a;
  a.logical_names = !sn_;
  a.mechanism = mechanism();
  if (a.mechanism == authentication::low)
    a.calling_authentication = *request_.password;
  else if (a.mechanism != authentication::none)
    a.calling_authentication = challenge_;
  if (a.mechanism == authentication::high_sha256)
    a.calling_ap_title = config_.client_system_title;
  a.proposed_conformance = sn_ ? dlms::conformance::sn_client : dlms::conformance::ln_client;
  a.max_receive_pdu = config_.max_pdu_size;
  stage_ = stage::association;
  emit(out, link_->send_apdu(dlms::encode_aarq(a)), now);
}

void dlms_driver::on_aare(actions& out, const std::string& apdu, unix_ms now) {
  const auto tag = first_byte(apdu);
  try {
    if (tag == dlms::apdu_tag::exception_response) {
      fail(out, failure_kind::transient,
           "association refused: " + dlms::exception_text(dlms::decode_exception_response(apdu)));
      return;
    }
    if (tag == dlms::apdu_tag::confirmed_service_error) {
      fail(out, failure_kind::transient,
           "association refused: " + dlms::confirmed_service_error_text(dlms::decode_confirmed_service_error(apdu)));
      return;
    }
    if (tag != dlms::apdu_tag::aare) {
      malformed(out, "unexpected APDU " + hex_byte(tag));
      return;
    }
    const auto a = dlms::decode_aare(apdu);
    // An InitiateError says more than the ACSE diagnostic that comes with it.
    if (a.initiate_error) {
      fail(out, failure_kind::permanent,
           "association rejected: " + dlms::initiate_error_text(a.initiate_error->first, a.initiate_error->second));
      return;
    }
    if (a.result != 0) {
      fail(out, a.result == 1 ? failure_kind::permanent : failure_kind::transient,
           "association rejected: " + dlms::association_diagnostic_text(a.diagnostic_source, a.diagnostic));
      return;
    }
    if (!a.has_initiate_response) {
      malformed(out, "no InitiateResponse");
      return;
    }
    associated_ = true;
    server_max_pdu_ = a.max_receive_pdu;
    const auto mech = mechanism();
    if (mech == authentication::none || mech == authentication::low) {
      start_reading(out, now);
      return;
    }
    // HLS pass 3: f(StoC) to the meter; it must answer f(CtoS).
    if (a.responding_authentication.empty()) {
      malformed(out, "no challenge from the meter");
      return;
    }
    stoc_ = a.responding_authentication;
    server_title_ = a.responding_ap_title;
    const auto& secret = *request_.password;
    const auto reply =
        dlms::hls_response(mech, secret, stoc_, config_.client_system_title, server_title_, challenge_);
    expected_ctos_ = dlms::hls_response(mech, secret, challenge_, server_title_, config_.client_system_title, stoc_);
    stage_ = stage::authentication;
    if (sn_) {
      dlms::variable_access v;
      v.type = dlms::variable_access::kind::name;
      v.name = sn_reply_to_hls;
      send_apdu(out, dlms::encode_write_request({v}, {dlms_data::octet_string(reply)}), now);
    } else {
      dlms::action_request r;
      r.parameter = dlms_data::octet_string(reply);
      send_apdu(out, dlms::encode_action_request(r), now);
    }
  } catch (const std::exception& e) {
    malformed(out, e.what());
  }
}

void dlms_driver::on_hls_reply(actions& out, const std::string& apdu, unix_ms now) {
  const auto tag = first_byte(apdu);
  std::optional<dlms_data> value;
  bool unverifiable_success = false;
  try {
    if (tag == dlms::apdu_tag::exception_response) {
      fail(out, failure_kind::permanent,
           "authentication failure: " + dlms::exception_text(dlms::decode_exception_response(apdu)));
      return;
    }
    if (tag == dlms::apdu_tag::confirmed_service_error) {
      fail(out, failure_kind::permanent,
           "authentication failure: " +
               dlms::confirmed_service_error_text(dlms::decode_confirmed_service_error(apdu)));
      return;
    }
    if (!sn_ && tag == dlms::apdu_tag::action_response) {
      const auto r = dlms::decode_action_response(apdu);
      if (r.result != 0) {
        fail(out, failure_kind::permanent, "authentication failure: " + dlms::data_access_result_text(r.result));
        return;
      }
      if (r.access_error) {
        fail(out, failure_kind::permanent, "authentication failure: " + dlms::data_access_result_text(*r.access_error));
        return;
      }
      value = r.value;
    } else if (sn_ && tag == dlms::apdu_tag::read_response) {
      const auto r = dlms::decode_read_response(apdu);
      if (r.size() != 1) {
        malformed(out, std::to_string(r.size()) + " results to one request");
        return;
      }
      if (r[0].type == dlms::read_result::kind::access_error) {
        fail(out, failure_kind::permanent, "authentication failure: " + dlms::data_access_result_text(r[0].access_error));
        return;
      }
      if (r[0].type == dlms::read_result::kind::data)
        value = r[0].value;
    } else if (sn_ && tag == dlms::apdu_tag::write_response) {
      const auto r = dlms::decode_write_response(apdu);
      if (r.size() != 1) {
        malformed(out, std::to_string(r.size()) + " results to one request");
        return;
      }
      if (!r[0].success) {
        fail(out, failure_kind::permanent, "authentication failure: " + dlms::data_access_result_text(r[0].access_error));
        return;
      }
      // A WriteResponse has no room for f(CtoS): the meter accepted our f(StoC).
      unverifiable_success = true;
    } else {
      malformed(out, "unexpected APDU " + hex_byte(tag));
      return;
    }
  } catch (const std::exception& e) {
    malformed(out, e.what());
    return;
  }
  if (!unverifiable_success &&
      (!value || value->type != dlms::tag::octet_string || value->bytes != expected_ctos_)) {
    fail(out, failure_kind::permanent, "authentication failure: the meter's reply to the challenge is wrong");
    return;
  }
  start_reading(out, now);
}

// The association is usable: read the items in order.
void dlms_driver::start_reading(actions& out, unix_ms now) {
  stage_ = stage::reading;
  pos_ = 0;
  if (sn_)
    plan_.push_back(item::object_list);
  plan_.insert(plan_.end(), {item::serial, item::clock, item::registers});
  if (request_.survey_from && request_.survey_to && *request_.survey_from < *request_.survey_to) {
    plan_.push_back(item::profile);
    if (config_.event_log_obis)
      plan_.push_back(item::event_log);
  }
  start_item(out, now);
}

// ---- reads ----

// LN: GET attribute; SN: Read of base name + 8 (attribute - 1). False (nothing sent) when
// an SN object is not in the meter's object list.
bool dlms_driver::read(actions& out, step s, const dlms::attribute_ref& attr,
                       std::optional<dlms::selective_access> access, unix_ms now) {
  if (sn_) {
    const auto it = short_names_.find(attr.instance);
    if (it == short_names_.end())
      return false;
    read_short_name(out, s, static_cast<std::uint16_t>(it->second.first + 8 * (attr.attribute - 1)),
                    std::move(access), now);
    return true;
  }
  step_ = s;
  blocks_.clear();
  in_block_ = false;
  dlms::get_request r;
  r.attribute = attr;
  r.access = std::move(access);
  send_apdu(out, dlms::encode_get_request(r), now);
  return true;
}

void dlms_driver::read_short_name(actions& out, step s, std::uint16_t name,
                                  std::optional<dlms::selective_access> access, unix_ms now) {
  step_ = s;
  blocks_.clear();
  in_block_ = false;
  dlms::variable_access v;
  v.name = name;
  if (access) {
    v.type = dlms::variable_access::kind::parameterized;
    v.selector = access->selector;
    v.parameter = std::move(access->parameter);
  }
  send_apdu(out, dlms::encode_read_request({v}), now);
}

void dlms_driver::on_read_reply(actions& out, const std::string& apdu, unix_ms now) {
  const auto tag = first_byte(apdu);
  answer a;
  try {
    if (tag == dlms::apdu_tag::exception_response) {
      a.refusal = dlms::exception_text(dlms::decode_exception_response(apdu));
    } else if (tag == dlms::apdu_tag::confirmed_service_error) {
      a.refusal = dlms::confirmed_service_error_text(dlms::decode_confirmed_service_error(apdu));
    } else if (!sn_ && tag == dlms::apdu_tag::get_response) {
      const auto r = dlms::decode_get_response(apdu);
      if (r.access_error) {
        a.access_error = *r.access_error;
        a.refusal = dlms::data_access_result_text(*r.access_error);
      } else if (r.type == dlms::get_response::kind::normal) {
        if (in_block_) {
          malformed(out, "a normal response within a block transfer");
          return;
        }
        a.value = r.value;
      } else {
        // A block: ask for the next one (GET-Request-Next with the number just received).
        if (blocks_.size() + r.raw.size() > max_joined) {
          malformed(out, "block transfer longer than " + std::to_string(max_joined) + " bytes");
          return;
        }
        blocks_ += r.raw;
        in_block_ = true;
        if (!r.last_block) {
          dlms::get_request next;
          next.type = dlms::get_request::kind::next;
          next.block_number = r.block_number;
          send_apdu(out, dlms::encode_get_request(next), now);
          return;
        }
        a.value = dlms::decode_all(blocks_);
      }
    } else if (sn_ && tag == dlms::apdu_tag::read_response) {
      const auto results = dlms::decode_read_response(apdu);
      if (results.size() != 1) {
        malformed(out, std::to_string(results.size()) + " results to one request");
        return;
      }
      const auto& r = results[0];
      using k = dlms::read_result::kind;
      if (r.type == k::access_error) {
        a.access_error = r.access_error;
        a.refusal = dlms::data_access_result_text(r.access_error);
      } else if (r.type == k::data) {
        if (in_block_) {
          malformed(out, "a data result within a block transfer");
          return;
        }
        a.value = r.value;
      } else if (r.type == k::data_block) {
        if (blocks_.size() + r.raw.size() > max_joined) {
          malformed(out, "block transfer longer than " + std::to_string(max_joined) + " bytes");
          return;
        }
        blocks_ += r.raw;
        in_block_ = true;
        if (!r.last_block) {
          dlms::variable_access next;
          next.type = dlms::variable_access::kind::block_number;
          next.block_number = r.block_number;
          send_apdu(out, dlms::encode_read_request({next}), now);
          return;
        }
        a.value = dlms::decode_all(blocks_);
      } else {
        malformed(out, "unexpected block number result");
        return;
      }
    } else {
      malformed(out, "unexpected APDU " + hex_byte(tag));
      return;
    }
  } catch (const std::exception& e) {
    malformed(out, e.what());
    return;
  }
  blocks_.clear();
  in_block_ = false;
  on_answer(out, std::move(a), now);
}

void dlms_driver::on_answer(actions& out, answer a, unix_ms now) {
  switch (step_) {
  case step::object_list:
    on_object_list(out, a, now);
    return;
  case step::serial:
    on_serial(out, a, now);
    return;
  case step::clock:
    on_clock(out, a, now);
    return;
  case step::register_value:
  case step::register_scaler:
    on_register(out, a, now);
    return;
  case step::log_columns:
  case step::log_range:
  case step::log_by_entry:
    on_event_log(out, a, now);
    return;
  default:
    on_profile(out, a, now);
    return;
  }
}

// Outcome lists item failures under statusEvents: they are only shown when it is set.
void dlms_driver::item_failed(const std::string& item, const std::string& reason) {
  if (!readings_.status_events)
    readings_.status_events.emplace();
  readings_.item_failures.push_back(item + ": " + reason);
}

void dlms_driver::start_item(actions& out, unix_ms now) {
  if (pos_ >= plan_.size()) {
    release(out);
    return;
  }
  const char* missing = nullptr;
  switch (plan_[pos_]) {
  case item::object_list:
    read_short_name(out, step::object_list, sn_object_list, std::nullopt, now);
    return;
  case item::serial:
    if (!read(out, step::serial, {1, config_.serial_number_obis, 2}, std::nullopt, now))
      missing = "serial number";
    break;
  case item::clock:
    if (!read(out, step::clock, {8, config_.clock_obis, 2}, std::nullopt, now))
      missing = "clock";
    break;
  case item::registers:
    register_ = 0;
    start_register(out, now);
    return;
  case item::profile:
    start_profile(out, now);
    return;
  case item::event_log:
    if (!read(out, step::log_columns, {7, *config_.event_log_obis, 3}, std::nullopt, now))
      missing = "event log";
    break;
  }
  if (missing) {
    item_failed(missing, "not in the meter's object list");
    next_item(out, now);
  }
}

void dlms_driver::next_item(actions& out, unix_ms now) {
  ++pos_;
  start_item(out, now);
}

void dlms_driver::on_object_list(actions& out, answer& a, unix_ms now) {
  if (!a.value) {
    fail(out, failure_kind::permanent, "object list not read: " + a.refusal);
    return;
  }
  if (a.value->type != dlms::tag::array) {
    malformed(out, "the object list is not an array");
    return;
  }
  // structure{base_name long, class_id, version, logical_name}
  for (const auto& o : a.value->items) {
    if (o.type != dlms::tag::structure || o.items.size() < 4)
      continue;
    const auto base = o.items[0].integer(), cls = o.items[1].integer();
    const auto& ln = o.items[3];
    if (!base || !cls || ln.type != dlms::tag::octet_string || ln.bytes.size() != 6)
      continue;
    obis code{};
    for (std::size_t i = 0; i < 6; ++i)
      code[i] = static_cast<std::uint8_t>(ln.bytes[i]);
    short_names_.emplace(code, std::make_pair(static_cast<std::uint16_t>(*base & 0xFFFF),
                                              static_cast<std::uint16_t>(*cls & 0xFFFF)));
  }
  next_item(out, now);
}

void dlms_driver::on_serial(actions& out, answer& a, unix_ms now) {
  if (!a.value) {
    item_failed("serial number", a.refusal);
    next_item(out, now);
    return;
  }
  const auto text = serial_text(*a.value);
  if (!text) {
    item_failed("serial number", "not a string or a number");
    next_item(out, now);
    return;
  }
  readings_.serial_number = *text;
  if (request_.expected_serial && trimmed(*request_.expected_serial, " ") != *text) {
    fail(out, failure_kind::permanent, "Serial number mismatch");
    return;
  }
  next_item(out, now);
}

void dlms_driver::on_clock(actions& out, answer& a, unix_ms now) {
  if (!readings_.status_events)
    readings_.status_events.emplace(); // the clock status comes first
  offset_minutes_ = config_.clock_utc_offset_minutes;
  if (!a.value) {
    item_failed("clock", a.refusal);
    next_item(out, now);
    return;
  }
  const auto dt = dlms::datetime_of(*a.value);
  const auto t = dt ? dlms::to_unix(*dt, config_.clock_deviation, config_.clock_utc_offset_minutes) : std::nullopt;
  if (!t) {
    item_failed("clock", "not a valid date and time");
    next_item(out, now);
    return;
  }
  readings_.meter_time = *t;
  readings_.meter_time_taken = now / 1000;
  meter_now_ = *t;
  if (dt->deviation && config_.clock_deviation == dlms::deviation_rule::blue_book)
    offset_minutes_ = -*dt->deviation; // UTC = local + deviation
  else if (dt->deviation && config_.clock_deviation == dlms::deviation_rule::inverted)
    offset_minutes_ = *dt->deviation;
  if (dt->clock_status != 0xFF) {
    if (dt->clock_status & dlms::clock_status_invalid)
      readings_.status_events->push_back("Clock status: invalid");
    if (dt->clock_status & dlms::clock_status_doubtful)
      readings_.status_events->push_back("Clock status: doubtful");
  }
  next_item(out, now);
}

void dlms_driver::start_register(actions& out, unix_ms now) {
  while (register_ < config_.register_obis.size()) {
    register_class_ = 3;
    if (read(out, step::register_value, {3, config_.register_obis[register_], 2}, std::nullopt, now))
      return;
    item_failed("register " + dlms::obis_text(config_.register_obis[register_]), "not in the meter's object list");
    ++register_;
  }
  if (!readings_.registers)
    readings_.registers.emplace();
  next_item(out, now);
}

void dlms_driver::on_register(actions& out, answer& a, unix_ms now) {
  const auto& code = config_.register_obis[register_];
  const auto name = "register " + dlms::obis_text(code);
  if (!a.value) {
    // Class inconsistent for class 3: an extended register (class 4) perhaps.
    if (step_ == step::register_value && !sn_ && register_class_ == 3 && a.access_error == 9) {
      register_class_ = 4;
      read(out, step::register_value, {4, code, 2}, std::nullopt, now);
      return;
    }
    item_failed(name, a.refusal);
  } else if (step_ == step::register_value) {
    const auto raw = number_of(*a.value);
    if (raw) {
      register_raw_ = *raw;
      register_time_ = now / 1000;
      read(out, step::register_scaler, {register_class_, code, 3}, std::nullopt, now);
      return;
    }
    item_failed(name, "the value is not a number");
  } else {
    const auto su = scaler_unit_of(*a.value);
    if (su) {
      const auto q = dlms_quantity_of(code, su->second);
      if (!readings_.registers)
        readings_.registers.emplace();
      readings_.registers->push_back(register_value{
          q.name, scaled(register_raw_, su->first + kilo_exponent(su->second)), q.units, register_time_});
    } else {
      item_failed(name, "the scaler_unit is not {scaler, unit}");
    }
  }
  ++register_;
  start_register(out, now);
}

// ---- survey ----

void dlms_driver::start_profile(actions& out, unix_ms now) {
  if (!config_.load_profile_obis) {
    readings_.survey.emplace(); // no profile configured: an empty survey
    next_item(out, now);
    return;
  }
  columns_.clear();
  if (!read(out, step::profile_columns, {7, *config_.load_profile_obis, 3}, std::nullopt, now)) {
    item_failed("load profile", "not in the meter's object list");
    next_item(out, now);
  }
}

void dlms_driver::read_range(actions& out, step s, const obis& code, unix_ms now) {
  // In the meter's local time, deviation and clock status not specified.
  auto from = dlms::from_unix(*request_.survey_from, offset_minutes_, std::nullopt);
  auto to = dlms::from_unix(*request_.survey_to, offset_minutes_, std::nullopt);
  from.clock_status = to.clock_status = 0xFF;
  read(out, s, {7, code, 2}, dlms::range_access(from, to), now);
}

// The capture objects of a profile (or log) answer, when they are a list of columns with a
// clock column; otherwise the item fails (and nullopt).
std::optional<std::vector<capture_object>> dlms_driver::columns_with_clock(const answer& a, const char* item) {
  auto objects = a.value ? capture_objects_of(*a.value) : std::nullopt;
  if (!objects) {
    item_failed(item, a.value ? "the capture objects are not a list of columns" : a.refusal);
    return std::nullopt;
  }
  if (std::none_of(objects->begin(), objects->end(), is_clock_column)) {
    item_failed(item, "no clock column");
    return std::nullopt;
  }
  return objects;
}

void dlms_driver::on_profile(actions& out, answer& a, unix_ms now) {
  const auto& code = *config_.load_profile_obis;
  switch (step_) {
  case step::profile_columns: {
    const auto objects = columns_with_clock(a, "load profile");
    if (!objects)
      break;
    for (const auto& o : *objects)
      columns_.push_back(column{o, scaler_attribute_of(o), std::nullopt});
    read(out, step::profile_period, {7, code, 4}, std::nullopt, now);
    return;
  }
  case step::profile_period: {
    const auto p = a.value ? a.value->integer() : std::nullopt;
    if (!p || *p <= 0) {
      item_failed("load profile", a.value ? "the capture period is not a positive number" : a.refusal);
      break;
    }
    period_ = *p;
    column_ = 0;
    next_column_scaler(out, now);
    return;
  }
  case step::column_scaler: {
    auto& c = columns_[column_];
    if (a.value)
      c.scaler_unit = scaler_unit_of(*a.value);
    if (!c.scaler_unit)
      item_failed("load profile", "scaler_unit of " + dlms::obis_text(c.object.code) + ": " +
                                      (a.value ? "not {scaler, unit}" : a.refusal));
    ++column_;
    next_column_scaler(out, now);
    return;
  }
  case step::profile_range:
    if (a.value) {
      store_profile(*a.value);
      break;
    }
    // Range reads refused: by entry, the newest entries that can cover the range.
    read(out, step::profile_entries, {7, code, 7}, std::nullopt, now);
    return;
  case step::profile_entries: {
    const auto n = a.value ? a.value->integer() : std::nullopt;
    if (!n || *n < 0) {
      item_failed("load profile", a.value ? "entries_in_use is not a number" : a.refusal);
      break;
    }
    if (*n == 0) {
      store_profile(dlms_data::array({}));
      break;
    }
    const auto meter_now = meter_now_.value_or(now / 1000);
    const auto span = meter_now - *request_.survey_from;
    const std::int64_t wanted = std::max<std::int64_t>(1, (span > 0 ? (span + period_ - 1) / period_ : 0) + 2);
    const std::int64_t first = std::max<std::int64_t>(1, *n - wanted + 1);
    read(out, step::profile_by_entry, {7, code, 2},
         dlms::entry_access(static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(*n)), now);
    return;
  }
  case step::profile_by_entry:
    if (a.value)
      store_profile(*a.value);
    else
      item_failed("load profile", a.refusal);
    break;
  default:
    break;
  }
  next_item(out, now);
}

void dlms_driver::next_column_scaler(actions& out, unix_ms now) {
  for (; column_ < columns_.size(); ++column_) {
    const auto& c = columns_[column_];
    if (c.scaler_attribute == 0)
      continue;
    // One read per register: a column of the same register shares it.
    const auto same = std::find_if(columns_.begin(), columns_.begin() + static_cast<std::ptrdiff_t>(column_),
                                   [&](const column& o) {
                                     return o.scaler_attribute == c.scaler_attribute && o.object.code == c.object.code &&
                                            o.object.class_id == c.object.class_id;
                                   });
    if (same != columns_.begin() + static_cast<std::ptrdiff_t>(column_)) {
      columns_[column_].scaler_unit = same->scaler_unit;
      continue;
    }
    if (read(out, step::column_scaler,
             {c.object.class_id, c.object.code, static_cast<std::int8_t>(c.scaler_attribute)}, std::nullopt, now))
      return;
    item_failed("load profile",
                "scaler_unit of " + dlms::obis_text(c.object.code) + ": not in the meter's object list");
  }
  read_range(out, step::profile_range, *config_.load_profile_obis, now);
}

// A clock cell as UTC; nullopt for null-data or a date-time that is not fully specified.
std::optional<unix_seconds> dlms_driver::cell_time(const dlms_data& cell) const {
  const auto dt = dlms::datetime_of(cell);
  if (!dt)
    return std::nullopt;
  return dlms::to_unix(*dt, config_.clock_deviation, config_.clock_utc_offset_minutes);
}

void dlms_driver::store_profile(const dlms_data& buffer) {
  if (buffer.type != dlms::tag::array) {
    item_failed("load profile", "the buffer is not an array");
    return;
  }
  const unix_seconds from = *request_.survey_from, to = *request_.survey_to;
  std::size_t clock = 0;
  std::optional<std::size_t> status;
  while (!is_clock_column(columns_[clock].object))
    ++clock;
  for (std::size_t i = 0; i < columns_.size(); ++i)
    if (!status && is_status_column(columns_[i].object))
      status = i;

  std::vector<survey_channel> channels;
  std::vector<int> slot(columns_.size(), -1); // column -> channel
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    const auto& c = columns_[i];
    if (c.scaler_attribute == 0 || !c.scaler_unit)
      continue;
    const auto q = dlms_quantity_of(c.object.code, c.scaler_unit->second);
    slot[i] = static_cast<int>(channels.size());
    channels.push_back(survey_channel{q.name, q.units, {}});
  }

  if (!readings_.status_events)
    readings_.status_events.emplace();
  std::optional<unix_seconds> clock_time; // the previous row's clock
  std::optional<unix_seconds> last;       // the last reported interval start
  for (const auto& row : buffer.items) {
    if (row.type != dlms::tag::structure || row.items.size() < columns_.size())
      continue;
    const auto t = cell_time(row.items[clock]);
    if (t)
      clock_time = *t;
    else if (clock_time)
      *clock_time += period_; // a null clock: the previous row's + the capture period
    else
      continue; // before the first clock
    const unix_seconds start = config_.profile_clock_is_end ? *clock_time - period_ : *clock_time;
    if (start < from || start + period_ > to || (last && start <= *last))
      continue;
    last = start;
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      if (slot[i] < 0)
        continue;
      const auto raw = number_of(row.items[i]);
      if (!raw)
        continue;
      const auto& su = *columns_[i].scaler_unit;
      channels[static_cast<std::size_t>(slot[i])].readings.push_back(
          survey_reading{start, scaled(*raw, su.first + kilo_exponent(su.second))});
    }
    if (status) {
      const auto bits = row.items[*status].integer();
      if (bits)
        for (const auto& [mask, text] : status_bits)
          if (*bits & mask)
            readings_.status_events->push_back(text + format_utc(start));
    }
  }
  readings_.survey = std::move(channels);
}

// ---- event log ----

void dlms_driver::on_event_log(actions& out, answer& a, unix_ms now) {
  const auto& code = *config_.event_log_obis;
  switch (step_) {
  case step::log_columns: {
    const auto objects = columns_with_clock(a, "event log");
    if (!objects)
      break;
    columns_.clear();
    for (const auto& o : *objects)
      columns_.push_back(column{o, 0, std::nullopt});
    read_range(out, step::log_range, code, now);
    return;
  }
  case step::log_range:
    if (a.value) {
      store_event_log(*a.value);
      break;
    }
    // Range reads refused: every entry (an event log is short), filtered by time.
    read(out, step::log_by_entry, {7, code, 2}, dlms::entry_access(1, 0), now);
    return;
  case step::log_by_entry:
    if (a.value)
      store_event_log(*a.value);
    else
      item_failed("event log", a.refusal);
    break;
  default:
    break;
  }
  next_item(out, now);
}

void dlms_driver::store_event_log(const dlms_data& buffer) {
  if (buffer.type != dlms::tag::array) {
    item_failed("event log", "the buffer is not an array");
    return;
  }
  const unix_seconds from = *request_.survey_from, to = *request_.survey_to;
  std::size_t clock = 0;
  while (!is_clock_column(columns_[clock].object))
    ++clock;
  if (!readings_.status_events)
    readings_.status_events.emplace();
  for (const auto& row : buffer.items) {
    if (row.type != dlms::tag::structure || row.items.size() < columns_.size())
      continue;
    const auto t = cell_time(row.items[clock]);
    if (!t || *t < from || *t >= to)
      continue;
    // The event code: the first integer column that is not the clock.
    std::optional<std::int64_t> code;
    for (std::size_t i = 0; i < row.items.size() && !code; ++i) {
      const auto& cell = row.items[i];
      if (i != clock && cell.type != dlms::tag::float32 && cell.type != dlms::tag::float64 &&
          cell.type != dlms::tag::boolean)
        code = cell.integer();
    }
    if (!code)
      continue;
    const char* text = event_text(*code);
    readings_.status_events->push_back("Event " + std::to_string(*code) + (text ? std::string(" (") + text + ")" : "") +
                                       " at " + format_utc(*t));
  }
}

} // namespace

dlms_config dlms_ln_config() {
  dlms_config c;
  c.register_obis = {{1, 0, 1, 8, 0, 255}, {1, 0, 2, 8, 0, 255}, {1, 0, 5, 8, 0, 255},
                     {1, 0, 6, 8, 0, 255}, {1, 0, 7, 8, 0, 255}, {1, 0, 8, 8, 0, 255}};
  return c;
}

dlms_config dlms_sn_config() {
  auto c = dlms_ln_config();
  c.transport = dlms_transport::hdlc;
  c.referencing = dlms_referencing::sn;
  c.authentication = dlms::authentication::low;
  return c;
}

dlms_quantity dlms_quantity_of(const dlms::obis& code, int unit) {
  dlms_quantity q;
  static const char* const names[] = {"kWh Import", "kWh Export", "kvarh Import", "kvarh Export", "kvarh Q1",
                                      "kvarh Q2",   "kvarh Q3",   "kvarh Q4",     "kVAh"};
  if (code[2] >= 1 && code[2] <= 9 && (code[3] == 8 || code[3] == 29) && code[4] == 0)
    q.name = names[code[2] - 1];
  else
    q.name = dlms::obis_text(code);
  switch (unit) {
  case 30:
    q.units = "kWh";
    break;
  case 31:
    q.units = "kVAh";
    break;
  case 32:
    q.units = "kvarh";
    break;
  default:
    q.units = dlms::unit_text(unit);
    break;
  }
  q.factor = kilo_exponent(unit) < 0 ? 0.001 : 1;
  return q;
}

std::unique_ptr<meter_driver> make_dlms_driver(const session_request& request, const dlms_config& config,
                                               std::string client_challenge) {
  return std::make_unique<dlms_driver>(request, config, std::move(client_challenge));
}

line_settings dlms_initial_line() { return line_settings{9600, 8, 'N', 1}; }

} // namespace mts::drivers
