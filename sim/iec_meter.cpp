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
    : framed_meter(std::move(identity), std::move(faults), config), config_(std::move(config)) {
  if (config_.identification.empty())
    config_.identification =
        std::string("SIM") + iec::mode_c_baud_char(config_.max_baud).value_or('5') + "MTS-SIM";
}

void iec_meter::on_option_select(actions& out, const iec::message& m) {
  using k = iec::message_kind;
  if (m.kind != k::option_select || m.text.size() != 3)
    return;
  const auto baud = iec::mode_c_baud(m.text[1]);
  const char mode = m.text[2];
  if (!baud || *baud > config_.max_baud || (mode != '0' && mode != '1' && mode != '6'))
    return;
  switch_baud(out, *baud);
  if (mode == '0') {
    const unix_seconds t = meter_now();
    std::string text = "C.1.0(" + model_.reported_serial() + ")\r\n0.9.1(" + hhmmss(t) +
                       ")\r\n0.9.2(" + yymmdd(t) + ")\r\n";
    const auto regs = model_.registers_at(t);
    for (int c = 0; c < channel_count; ++c)
      text += std::string(info(c).address) + "(" + format_k(regs[c]) + "*" + info(c).units + ")\r\n";
    text += "!\r\n";
    await_request();
    line_after_pending_ = drivers::line_settings{300, 7, 'E', 1};
    reply(out, iec::data_message(text), true);
    return;
  }
  enter_session();
  state_ = state::password;
  reply(out, iec::command_message("P0", "(00000000)"), true);
}

void iec_meter::on_ack(actions& out) {
  if (state_ == state::profile)
    send_profile_block(out);
}

void iec_meter::on_command(actions& out, const iec::message& m) {
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
