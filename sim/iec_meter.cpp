#include "sim/iec_meter.hpp"

#include <cstdio>

namespace mts::sim {

namespace iec = drivers::iec;
using drivers::actions;

namespace {

// "2019-01-02T04:02:10Z" -> pieces without separators.
std::string yymmdd(unix_seconds t) {
  const auto iso = format_utc(t);
  return iso.substr(2, 2) + iso.substr(5, 2) + iso.substr(8, 2);
}
std::string hhmmss(unix_seconds t) {
  const auto iso = format_utc(t);
  return iso.substr(11, 2) + iso.substr(14, 2) + iso.substr(17, 2);
}

// Interval energies: "0.734".
std::string format_short(std::int64_t wh) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(wh / 1000),
                static_cast<long long>(wh % 1000));
  return buf;
}

std::string error_block() { return iec::data_message("(ERROR)"); }

} // namespace

iec_meter::iec_meter(meter_identity identity, meter_faults faults, iec_meter_config config)
    : model_(std::move(identity), std::move(faults)), config_(std::move(config)) {
  if (config_.identification.empty())
    config_.identification =
        std::string("SIM") + iec::mode_c_baud_char(config_.max_baud).value_or('5') + "MTS-SIM";
}

unix_seconds iec_meter::meter_now() const {
  const unix_seconds t =
      config_.pinned_now ? *config_.pinned_now : (now_ >= 0 ? now_ / 1000 : -((-now_ + 999) / 1000));
  return t + model_.identity().clock_offset_seconds;
}

void iec_meter::arm(actions& out, std::chrono::milliseconds after) {
  out.push_back(drivers::arm_timer{after, ++timer_id_});
}

void iec_meter::close(actions& out) {
  if (state_ == state::closed)
    return;
  state_ = state::closed;
  pending_.reset();
  out.push_back(drivers::finish{});
}

void iec_meter::emit(actions& out, std::string bytes) {
  const auto& drop = model_.faults().drop_after_bytes;
  if (drop && sent_ + bytes.size() >= *drop) {
    bytes.resize(*drop > sent_ ? *drop - sent_ : 0);
    sent_ += bytes.size();
    if (!bytes.empty())
      out.push_back(drivers::send_bytes{std::move(bytes)});
    close(out);
    return;
  }
  sent_ += bytes.size();
  out.push_back(drivers::send_bytes{std::move(bytes)});
}

// Queue a reply. block: an STX/SOH message (counted for BCC corruption, remembered for NAK).
void iec_meter::reply(actions& out, std::string message, bool block) {
  std::string wire = message;
  if (block) {
    last_ = message;
    ++blocks_;
    const int k = model_.faults().corrupt_bcc_every;
    if (k > 0 && blocks_ % static_cast<std::size_t>(k) == 0)
      wire.back() = static_cast<char>((wire.back() ^ 0x01) & 0x7F);
  }
  pending_ = model_.faults().garbage_before_reply + wire;
  if (config_.reaction_delay.count() > 0)
    arm(out, config_.reaction_delay);
  else
    flush(out);
}

// Send the pending reply and apply what waits for it (line change, close).
void iec_meter::flush(actions& out) {
  std::string bytes = std::move(*pending_);
  pending_.reset();
  emit(out, std::move(bytes));
  if (state_ == state::closed)
    return;
  if (line_after_pending_) {
    line_ = *line_after_pending_;
    line_after_pending_.reset();
    out.push_back(drivers::change_line{line_});
  }
  if (close_after_pending_)
    close(out);
}

actions iec_meter::on_link_up(drivers::unix_ms now) {
  actions out;
  if (state_ != state::idle)
    return out;
  now_ = now;
  state_ = state::request;
  arm(out, config_.inactivity_timeout);
  return out;
}

actions iec_meter::on_link_down(drivers::unix_ms now) {
  now_ = now;
  state_ = state::closed;
  pending_.reset();
  return {};
}

actions iec_meter::on_timer(std::uint64_t id, drivers::unix_ms now) {
  actions out;
  if (state_ == state::closed || state_ == state::idle || id != timer_id_)
    return out;
  now_ = now;
  if (!pending_) {
    close(out); // inactivity
    return out;
  }
  flush(out);
  if (state_ == state::closed)
    return out;
  arm(out, config_.inactivity_timeout);
  return out;
}

actions iec_meter::on_bytes(std::string_view data, drivers::unix_ms now) {
  actions out;
  if (state_ == state::closed || state_ == state::idle)
    return out;
  now_ = now;
  if (model_.faults().silent) {
    arm(out, config_.inactivity_timeout);
    return out;
  }
  parser_.feed(data);
  while (state_ != state::closed) {
    auto m = parser_.next();
    if (!m)
      break;
    handle(out, *m);
  }
  if (state_ != state::closed && !pending_ && !data.empty())
    arm(out, config_.inactivity_timeout);
  return out;
}

void iec_meter::handle(actions& out, const iec::message& m) {
  using k = iec::message_kind;
  if (m.kind == k::oversize)
    return;
  if (m.kind == k::request) {
    if (state_ != state::request && state_ != state::option)
      return;
    const auto& want = model_.identity().outstation_address;
    if (!m.text.empty() && !want.empty() && m.text != want)
      return; // not addressed to this meter
    state_ = state::option;
    parser_.expect_option_select(true);
    reply(out, iec::identification_message(config_.identification), false);
    return;
  }
  if (state_ == state::request)
    return;
  if (state_ == state::option) {
    if (m.kind != k::option_select || m.text.size() != 3)
      return;
    const auto baud = iec::mode_c_baud(m.text[1]);
    const char mode = m.text[2];
    if (!baud || *baud > config_.max_baud || (mode != '0' && mode != '1' && mode != '6'))
      return;
    line_.baud = *baud;
    out.push_back(drivers::change_line{line_});
    if (mode == '0') {
      const unix_seconds t = meter_now();
      std::string text = "C.1.0(" + model_.reported_serial() + ")\r\n0.9.1(" + hhmmss(t) +
                         ")\r\n0.9.2(" + yymmdd(t) + ")\r\n";
      const auto regs = model_.registers_at(t);
      for (int c = 0; c < channel_count; ++c)
        text += std::string(info(c).address) + "(" + format_k(regs[c]) + "*" + info(c).units + ")\r\n";
      text += "!\r\n";
      state_ = state::request;
      line_after_pending_ = drivers::line_settings{300, 7, 'E', 1};
      reply(out, iec::data_message(text), true);
      return;
    }
    state_ = state::password;
    reply(out, iec::command_message("P0", "(00000000)"), true);
    return;
  }
  if (m.kind == k::nak) {
    if (!last_.empty())
      reply(out, last_, false);
    return;
  }
  if (m.kind == k::ack) {
    if (state_ == state::profile)
      send_profile_block(out);
    return;
  }
  if (m.kind != k::command)
    return;
  if (!m.bcc_ok) {
    reply(out, std::string(1, iec::nak), false);
    return;
  }
  command(out, m);
}

void iec_meter::command(actions& out, const iec::message& m) {
  if (!m.command.empty() && m.command[0] == 'B') {
    close(out);
    return;
  }
  if (state_ == state::password) {
    if (m.command == "P1") {
      const auto& pw = model_.identity().password;
      const bool ok = !model_.faults().reject_password && (pw.empty() || m.text == "(" + pw + ")");
      if (ok)
        state_ = state::ready;
      reply(out, std::string(1, ok ? iec::ack : iec::nak), false);
    } else if (m.command == "P2") {
      reply(out, std::string(1, iec::nak), false);
    } else {
      reply(out, error_block(), true);
    }
    return;
  }
  state_ = state::ready; // a command ends an unfinished profile transfer
  if (m.command == "R1" || m.command == "R2") {
    reply(out, iec::data_message(read_register(m.text.substr(0, m.text.find('(')))), true);
  } else if (m.command == "R5" || m.command == "R6") {
    start_profile(out, m.text);
  } else {
    reply(out, error_block(), true);
  }
}

std::string iec_meter::read_register(const std::string& address) const {
  const unix_seconds t = meter_now();
  if (address == "C.1.0" || address == "0.0.0")
    return address + "(" + model_.reported_serial() + ")";
  if (address == "0.9.1")
    return address + "(" + hhmmss(t) + ")";
  if (address == "0.9.2")
    return address + "(" + yymmdd(t) + ")";
  if (address == "F.F") {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08X", static_cast<unsigned>(model_.faults().error_register));
    return address + "(" + buf + ")";
  }
  for (int c = 0; c < channel_count; ++c)
    if (address == info(c).address)
      return address + "(" + format_k(model_.register_wh(static_cast<channel>(c), t)) + "*" +
             info(c).units + ")";
  return "(ERROR)";
}

std::string iec_meter::profile_text(unix_seconds from, unix_seconds to, unix_seconds now) const {
  const auto entries = model_.survey(from, to, now);
  if (entries.empty())
    return "(ERROR)";
  std::string columns = "(30)(" + std::to_string(channel_count) + ")";
  for (int c = 0; c < channel_count; ++c)
    columns += std::string("(") + info(c).profile + ")(" + info(c).units + ")";
  std::string text;
  const profile_entry* prev = nullptr;
  for (const auto& e : entries) {
    const bool header = !prev || prev->start + half_hour != e.start || prev->status != 0 || e.status != 0;
    if (header) {
      const unix_seconds end = e.start + half_hour;
      char status[8];
      std::snprintf(status, sizeof status, "%02X", static_cast<unsigned>(e.status));
      text += "P.01(0" + yymmdd(end) + hhmmss(end) + ")(" + status + ")" + columns + "\r\n";
    }
    for (int c = 0; c < channel_count; ++c)
      text += "(" + format_short(e.wh[c]) + ")";
    text += "\r\n";
    prev = &e;
  }
  return text;
}

void iec_meter::start_profile(actions& out, const std::string& data) {
  const auto open = data.find('(');
  const auto close_at = data.find(')', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close_at == std::string::npos || data.substr(0, open) != "P.01") {
    reply(out, error_block(), true);
    return;
  }
  const std::string args = data.substr(open + 1, close_at - open - 1);
  const auto semi = args.find(';');
  const std::string from_text = args.substr(0, semi);
  std::string to_text = semi == std::string::npos ? std::string() : args.substr(semi + 1);
  to_text = to_text.substr(0, to_text.find(';'));
  const unix_seconds now = meter_now();
  const auto from = iec::parse_vdew_time(from_text);
  const auto to = to_text.empty() ? std::optional<unix_seconds>(now) : iec::parse_vdew_time(to_text);
  if (!from || !to) {
    reply(out, error_block(), true);
    return;
  }
  const std::string text = profile_text(*from, *to, now);
  profile_blocks_.clear();
  profile_pos_ = 0;
  const std::size_t size = config_.max_block > 0 ? config_.max_block : 1024;
  for (std::size_t at = 0; at < text.size(); at += size)
    profile_blocks_.push_back(iec::data_message(text.substr(at, size), at + size < text.size()));
  if (model_.faults().drop_mid_profile) {
    if (profile_blocks_.size() < 2) {
      close(out);
      return;
    }
    close_after_pending_ = true;
  }
  state_ = state::profile;
  send_profile_block(out);
}

void iec_meter::send_profile_block(actions& out) {
  if (profile_pos_ >= profile_blocks_.size())
    return;
  const bool last = profile_pos_ + 1 == profile_blocks_.size();
  std::string block = profile_blocks_[profile_pos_++];
  if (last)
    state_ = state::ready;
  reply(out, std::move(block), true);
}

} // namespace mts::sim
