#include "drivers/at_modem.hpp"

#include <algorithm>

namespace mts::drivers {
namespace {

enum class result_code { none, ok, connect, ring, no_carrier, error, no_dialtone, busy, no_answer };

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string trimmed(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return std::string(s);
}

// Verbose (ATV1) or numeric (ATV0) result codes; anything else is not a result.
result_code classify(const std::string& line) {
  if (line == "OK" || line == "0")
    return result_code::ok;
  if (starts_with(line, "CONNECT") || line == "1")
    return result_code::connect;
  if (line == "RING" || line == "2")
    return result_code::ring;
  if (line == "NO CARRIER" || line == "3")
    return result_code::no_carrier;
  if (line == "ERROR" || line == "4" || starts_with(line, "+CME ERROR") || starts_with(line, "+CMS ERROR"))
    return result_code::error;
  if (line == "NO DIALTONE" || line == "NO DIAL TONE" || line == "6")
    return result_code::no_dialtone;
  if (line == "BUSY" || line == "7")
    return result_code::busy;
  if (line == "NO ANSWER" || line == "8")
    return result_code::no_answer;
  return result_code::none;
}

bool is_final(result_code c) { return c != result_code::none && c != result_code::ring; }

const std::string carrier_lost = "\r\nNO CARRIER\r";

} // namespace

at_modem_driver::at_modem_driver(std::unique_ptr<meter_driver> inner, at_modem_config config)
    : inner_(std::move(inner)), config_(std::move(config)), codec_(config_.call_format) {}

std::unique_ptr<at_modem_driver> make_at_modem_driver(std::unique_ptr<meter_driver> inner, at_modem_config config) {
  return std::make_unique<at_modem_driver>(std::move(inner), std::move(config));
}

void at_modem_driver::arm_own(actions& out, std::chrono::milliseconds after) {
  own_timer_ += 2; // odd ids are ours
  armed_own_ = own_timer_;
  out.push_back(arm_timer{after, own_timer_});
}

void at_modem_driver::send_command(actions& out, const std::string& command, std::chrono::milliseconds timeout) {
  last_command_ = command;
  line_buffer_.clear();
  out.push_back(send_bytes{command + "\r"});
  arm_own(out, timeout);
}

void at_modem_driver::end(actions& out, finish result) {
  stage_ = stage::done;
  armed_own_.reset();
  out.push_back(cancel_timer{});
  out.push_back(std::move(result));
}

void at_modem_driver::modem_failed(actions& out, std::string reason) {
  fault_ = reason;
  end(out, {failure_kind::transient, std::move(reason)});
}

actions at_modem_driver::on_link_up(unix_ms) {
  actions out;
  if (stage_ != stage::idle)
    return out;
  if (auto why = parity_codec::unsupported(config_.call_format)) {
    end(out, {failure_kind::permanent, *why});
    return out;
  }
  commands_.assign(1, "ATZ");
  commands_.insert(commands_.end(), config_.init_strings.begin(), config_.init_strings.end());
  stage_ = stage::reset_guard_before;
  arm_own(out, config_.guard_time);
  return out;
}

void at_modem_driver::next_command(actions& out, unix_ms) {
  if (next_command_ < commands_.size()) {
    stage_ = stage::command;
    send_command(out, commands_[next_command_++], config_.command_timeout);
    return;
  }
  stage_ = stage::dialling;
  send_command(out, "ATD" + config_.dial_prefix + config_.number, config_.connect_timeout);
}

actions at_modem_driver::on_timer(std::uint64_t id, unix_ms now) {
  actions out;
  if (id % 2 == 0) { // the inner driver's
    if (stage_ == stage::online)
      feed_inner(out, inner_->on_timer(id / 2, now), now);
    return out;
  }
  if (armed_own_ != id)
    return out;
  armed_own_.reset();
  switch (stage_) {
  case stage::reset_guard_before:
    // A modem still online from an earlier call answers OK once the guard time after the
    // escape has passed; twice the guard time lets that OK arrive (and be ignored) before ATH.
    out.push_back(send_bytes{"+++"});
    stage_ = stage::reset_guard_after;
    arm_own(out, 2 * config_.guard_time);
    break;
  case stage::hangup_guard_before:
    // The modem confirms the escape with OK after the guard time; ATH follows the OK, or the
    // timeout when none comes (the call may already be gone).
    out.push_back(send_bytes{"+++"});
    stage_ = stage::hangup_guard_after;
    line_buffer_.clear();
    last_command_.clear();
    arm_own(out, config_.guard_time + config_.command_timeout);
    break;
  case stage::reset_guard_after:
    stage_ = stage::reset_hangup;
    send_command(out, "ATH", config_.command_timeout);
    break;
  case stage::hangup_guard_after:
    send_ath(out);
    break;
  case stage::reset_hangup:
  case stage::command:
    modem_failed(out, "modem does not answer AT commands");
    break;
  case stage::dialling:
    abort_dialling(out, {failure_kind::transient,
                         "no CONNECT within " + std::to_string(config_.connect_timeout.count() / 1000) + " s"});
    break;
  case stage::abort_dial:
    send_ath(out);
    break;
  case stage::hangup:
    end(out, result_); // the modem did not confirm; closing the link drops DTR anyway
    break;
  case stage::idle:
  case stage::online:
  case stage::done:
    break;
  }
  return out;
}

actions at_modem_driver::on_bytes(std::string_view data, unix_ms now) {
  actions out;
  switch (stage_) {
  case stage::online:
    online_bytes(out, data, now);
    return out;
  case stage::reset_hangup:
  case stage::command:
  case stage::dialling:
  case stage::abort_dial:
  case stage::hangup_guard_before:
  case stage::hangup_guard_after:
  case stage::hangup:
    break;
  default:
    return out; // noise while waiting out a guard time, or after the end
  }
  line_buffer_.append(data);
  while (true) {
    const auto pos = line_buffer_.find_first_of("\r\n");
    if (pos == std::string::npos)
      break;
    const bool cr = line_buffer_[pos] == '\r';
    std::string line = trimmed(std::string_view(line_buffer_).substr(0, pos));
    std::size_t consumed = pos + 1;
    if (cr && consumed < line_buffer_.size() && line_buffer_[consumed] == '\n')
      ++consumed;
    line_buffer_.erase(0, consumed);
    if (line.empty() || line == last_command_)
      continue;
    handle_line(out, line, now);
    if (stage_ == stage::online || stage_ == stage::done)
      break;
  }
  if (stage_ == stage::online && !line_buffer_.empty()) {
    std::string rest = std::move(line_buffer_);
    line_buffer_.clear();
    online_bytes(out, rest, now);
  }
  return out;
}

void at_modem_driver::handle_line(actions& out, const std::string& line, unix_ms now) {
  const auto code = classify(line);
  if (!is_final(code))
    return;
  switch (stage_) {
  case stage::reset_hangup: // any answer: the modem is there and in command state
    next_command(out, now);
    break;
  case stage::command:
    if (code == result_code::ok)
      next_command(out, now);
    else if (code == result_code::error)
      modem_failed(out, "modem refused " + last_command_ + ": " + line);
    break;
  case stage::dialling:
    switch (code) {
    case result_code::connect:
      go_online(out, now);
      break;
    case result_code::busy:
      end(out, {failure_kind::transient, "line busy"});
      break;
    case result_code::no_answer:
      end(out, {failure_kind::transient, "no answer"});
      break;
    case result_code::no_carrier:
      end(out, {failure_kind::transient, "no carrier"});
      break;
    case result_code::no_dialtone:
      modem_failed(out, "modem reports no dial tone");
      break;
    case result_code::error:
      end(out, {failure_kind::permanent, "modem refused to dial " + config_.dial_prefix + config_.number});
      break;
    default:
      break;
    }
    break;
  case stage::abort_dial:
    if (code == result_code::connect) { // the call came up just as we gave up
      call_started_ = now;
      start_hangup(out, result_, true, now);
    } else {
      send_ath(out);
    }
    break;
  case stage::hangup_guard_before: // the meter ended the call itself: no escape needed
    if (code == result_code::no_carrier) {
      send_ath(out);
    }
    break;
  case stage::hangup_guard_after: // the escape's OK (meter bytes in between are not results)
    if (code == result_code::ok || code == result_code::no_carrier) {
      send_ath(out);
    }
    break;
  case stage::hangup:
    end(out, result_);
    break;
  default:
    break;
  }
}

void at_modem_driver::go_online(actions& out, unix_ms now) {
  stage_ = stage::online;
  armed_own_.reset();
  call_started_ = now;
  online_tail_.clear();
  out.push_back(cancel_timer{});
  feed_inner(out, inner_->on_link_up(now), now);
}

void at_modem_driver::feed_inner(actions& out, actions inner, unix_ms now) {
  for (auto& act : inner) {
    if (stage_ != stage::online)
      return;
    if (auto* send = std::get_if<send_bytes>(&act)) {
      out.push_back(send_bytes{codec_.encode(send->data)});
    } else if (auto* arm = std::get_if<arm_timer>(&act)) {
      out.push_back(arm_timer{arm->after, arm->id * 2});
    } else if (std::holds_alternative<cancel_timer>(act)) {
      out.push_back(cancel_timer{});
    } else if (std::holds_alternative<change_line>(act)) {
      ++dropped_line_changes_;
    } else if (auto* fin = std::get_if<finish>(&act)) {
      start_hangup(out, std::move(*fin), !call_dropped_, now);
      return;
    }
  }
}

void at_modem_driver::online_bytes(actions& out, std::string_view data, unix_ms now) {
  std::string seen = online_tail_ + std::string(data);
  const auto drop = seen.find(carrier_lost);
  if (drop == std::string::npos) {
    online_tail_ = seen.substr(seen.size() - std::min(seen.size(), carrier_lost.size()));
    feed_inner(out, inner_->on_bytes(codec_.decode(data), now), now);
    return;
  }
  // The call dropped: what came before the result is still the meter's.
  const std::size_t before = drop > online_tail_.size() ? drop - online_tail_.size() : 0;
  if (before > 0)
    feed_inner(out, inner_->on_bytes(codec_.decode(data.substr(0, before)), now), now);
  if (stage_ != stage::online)
    return;
  call_dropped_ = true;
  call_ended_ = now;
  feed_inner(out, inner_->on_link_down(now), now);
  if (stage_ == stage::online) // a driver always finishes on link down; make sure anyway
    start_hangup(out, {failure_kind::transient, "line dropped"}, false, now);
}

// The hang-up command after a call (or a stopped dialling).
void at_modem_driver::send_ath(actions& out) {
  stage_ = stage::hangup;
  send_command(out, "ATH", config_.command_timeout);
}

// Any character aborts the dialling; the modem answers with a result, then ATH.
void at_modem_driver::abort_dialling(actions& out, finish result) {
  result_ = std::move(result);
  stage_ = stage::abort_dial;
  line_buffer_.clear();
  out.push_back(send_bytes{"\r"});
  arm_own(out, config_.command_timeout);
}

actions at_modem_driver::abort(finish result, unix_ms now) {
  actions out;
  switch (stage_) {
  case stage::online: // the meter session is cut where it is (its readings stay)
    start_hangup(out, std::move(result), true, now);
    break;
  case stage::dialling:
    abort_dialling(out, std::move(result));
    break;
  case stage::abort_dial:
  case stage::hangup_guard_before:
  case stage::hangup_guard_after:
  case stage::hangup:
    result_ = std::move(result); // already hanging up: it goes on, and reports the cut-off
    break;
  case stage::done:
    break;
  default: // idle, reset, init: no call to hang up
    end(out, std::move(result));
    break;
  }
  return out;
}

std::chrono::milliseconds at_modem_driver::longest_hangup() const {
  // The escape: guard, "+++", guard + command timeout for its OK, ATH with its timeout. The
  // worst case stops a dialling first (CR, a command timeout) and CONNECT arrives just then.
  return 2 * config_.guard_time + 3 * config_.command_timeout;
}

void at_modem_driver::start_hangup(actions& out, finish result, bool escape, unix_ms now) {
  result_ = std::move(result);
  if (!call_ended_)
    call_ended_ = now;
  if (link_gone_) {
    end(out, result_);
    return;
  }
  if (escape) {
    stage_ = stage::hangup_guard_before;
    arm_own(out, config_.guard_time);
  } else {
    send_ath(out);
  }
}

actions at_modem_driver::on_link_down(unix_ms now) {
  actions out;
  link_gone_ = true;
  switch (stage_) {
  case stage::online:
    call_ended_ = now;
    feed_inner(out, inner_->on_link_down(now), now);
    if (stage_ == stage::online)
      end(out, {failure_kind::transient, "line dropped"});
    break;
  case stage::hangup_guard_before:
  case stage::hangup_guard_after:
  case stage::hangup:
  case stage::abort_dial:
    end(out, result_);
    break;
  case stage::idle:
  case stage::done:
    break;
  default:
    modem_failed(out, "link to the modem lost");
    break;
  }
  return out;
}

} // namespace mts::drivers
