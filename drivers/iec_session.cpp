#include "drivers/iec_session.hpp"

#include <algorithm>
#include <utility>

namespace mts::drivers {

iec_session_driver::iec_session_driver(session_request request, const iec_session_settings& settings)
    : request_(std::move(request)), settings_(settings), parser_(settings_.max_message) {}

void iec_session_driver::arm(actions& out, std::chrono::milliseconds after) {
  out.push_back(arm_timer{after, ++timer_id_});
}

void iec_session_driver::schedule(actions& out, std::string bytes, after_send then) {
  pending_ = std::move(bytes);
  then_ = then;
  switching_ = false;
  arm(out, settings_.reaction_delay);
}

void iec_session_driver::fail(actions& out, failure_kind kind, std::string reason) {
  if (logged_in_)
    out.push_back(send_bytes{iec::break_message()});
  out.push_back(finish{kind, std::move(reason)});
  phase_ = phase::done;
  pending_.reset();
}

bool iec_session_driver::select_option(actions& out, const std::string& identification, char mode) {
  const auto& id = identification;
  const auto meter_baud = id.size() >= 4 ? iec::mode_c_baud(id[3]) : std::nullopt;
  if (!meter_baud) {
    fail(out, failure_kind::permanent, "meter does not support mode C");
    return false;
  }
  const int wanted = std::min(*meter_baud, settings_.max_baud);
  char z = '0';
  for (char c = '6'; c >= '0'; --c)
    if (*iec::mode_c_baud(c) <= wanted) {
      z = c;
      break;
    }
  baud_ = *iec::mode_c_baud(z);
  repeats_ = 0;
  schedule(out, iec::option_select_message('0', z, mode), after_send::baud_switch);
  return true;
}

void iec_session_driver::sign_off(actions& out) {
  phase_ = phase::signoff;
  schedule(out, iec::break_message(), after_send::finish_success);
}

actions iec_session_driver::on_link_up(unix_ms) {
  actions out;
  if (phase_ != phase::idle)
    return out;
  phase_ = phase::running;
  schedule(out, iec::request_message(request_.outstation_address.value_or("")));
  return out;
}

actions iec_session_driver::on_timer(std::uint64_t id, unix_ms) {
  actions out;
  if (phase_ == phase::done || phase_ == phase::idle || id != timer_id_)
    return out;
  if (pending_) {
    std::string bytes = std::move(*pending_);
    pending_.reset();
    if (bytes.size() > 1)
      last_sent_ = bytes; // a command, resent when the meter answers NAK
    out.push_back(send_bytes{std::move(bytes)});
    switch (then_) {
    case after_send::response:
      arm(out, settings_.response_timeout);
      break;
    case after_send::baud_switch:
      out.push_back(change_line{line_settings{baud_, 7, 'E', 1}});
      arm(out, settings_.baud_switch_delay);
      switching_ = true;
      break;
    case after_send::finish_success:
      out.push_back(finish{});
      phase_ = phase::done;
      break;
    }
    return out;
  }
  if (switching_) {
    switching_ = false;
    arm(out, settings_.response_timeout);
    return out;
  }
  fail(out, failure_kind::transient, timeout_reason());
  return out;
}

actions iec_session_driver::on_bytes(std::string_view data, unix_ms now) {
  actions out;
  if (phase_ == phase::done || phase_ == phase::idle)
    return out;
  parser_.feed(data);
  while (phase_ != phase::done) {
    auto m = parser_.next();
    if (!m)
      break;
    if (pending_ || phase_ == phase::signoff)
      continue; // not awaiting anything: unsolicited bytes are dropped
    receive(out, *m, now);
  }
  if (phase_ == phase::running && !pending_ && !switching_ && !data.empty())
    arm(out, settings_.response_timeout);
  return out;
}

actions iec_session_driver::on_link_down(unix_ms) {
  actions out;
  if (phase_ == phase::done)
    return out;
  if (phase_ == phase::signoff)
    out.push_back(finish{}); // everything was read
  else
    out.push_back(finish{failure_kind::transient, "line dropped"});
  phase_ = phase::done;
  pending_.reset();
  return out;
}

void iec_session_driver::receive(actions& out, const iec::message& m, unix_ms now) {
  using k = iec::message_kind;
  if (m.kind == k::oversize) {
    fail(out, failure_kind::transient, "reply too long");
    return;
  }
  if ((m.kind == k::block || m.kind == k::command) && !m.bcc_ok) {
    bad_block(out);
    return;
  }
  // Echoes of what the driver sent (half-duplex links) are never answers.
  if (m.kind == k::request || m.kind == k::option_select)
    return;
  on_message(out, m, now);
}

std::string iec_session_driver::timeout_reason() const {
  switch (stage_) {
  case stage::ident:
    return "no answer to sign-on";
  case stage::p0:
    return "no answer to option select";
  case stage::password:
    return "no answer to password";
  case stage::request:
    return request_timeout_reason();
  }
  return "no answer";
}

void iec_session_driver::bad_block(actions& out) {
  if (repeats_ >= settings_.max_repeats) {
    fail(out, failure_kind::transient, "checksum errors");
    return;
  }
  ++repeats_;
  schedule(out, std::string(1, iec::nak));
}

void iec_session_driver::meter_nak(actions& out) {
  if (repeats_ >= settings_.max_repeats || last_sent_.empty()) {
    fail(out, failure_kind::transient, "checksum errors");
    return;
  }
  ++repeats_;
  schedule(out, last_sent_);
}

bool iec_session_driver::is_sign_off(const iec::message& m) {
  return m.kind == iec::message_kind::command && !m.command.empty() && m.command[0] == 'B';
}

bool iec_session_driver::nak_or_sign_off(actions& out, const iec::message& m) {
  if (m.kind == iec::message_kind::nak) {
    meter_nak(out);
    return true;
  }
  if (is_sign_off(m)) {
    fail(out, failure_kind::transient, "meter signed off");
    return true;
  }
  return false;
}

bool iec_session_driver::is_p0(actions& out, const iec::message& m) {
  using k = iec::message_kind;
  if (m.kind == k::command && m.command == "P0")
    return true;
  if (m.kind != k::identification)
    fail(out, failure_kind::transient, is_sign_off(m) ? "meter signed off" : "unexpected answer to option select");
  return false;
}

bool iec_session_driver::accept_serial(actions& out, std::string serial) {
  readings_.serial_number = std::move(serial);
  if (const auto& want = request_.expected_serial) {
    const auto first = want->find_first_not_of(" \t");
    const std::string trimmed =
        first == std::string::npos ? std::string() : want->substr(first, want->find_last_not_of(" \t") - first + 1);
    if (trimmed == *readings_.serial_number)
      return true;
    fail(out, failure_kind::permanent, "Serial number mismatch");
    return false;
  }
  return true;
}

void iec_session_driver::add_event(std::string text) {
  if (!readings_.status_events)
    readings_.status_events.emplace();
  readings_.status_events->push_back(std::move(text));
}

} // namespace mts::drivers
