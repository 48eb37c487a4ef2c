#include "sim/modem.hpp"

#include <cctype>

namespace mts::sim {

const char* call_end_name(call_end e) {
  switch (e) {
  case call_end::hangup: return "hangup";
  case call_end::meter_closed: return "meterClosed";
  case call_end::dropped: return "dropped";
  case call_end::dte_gone: return "linkClosed";
  }
  return "?";
}

namespace {
constexpr std::size_t max_command_line = 256;
} // namespace

modem_line::modem_line(modem_config config, number_plan plan) : config_(config), plan_(std::move(plan)) {}

std::string modem_line::in_dte_format(std::string_view text) const {
  return drivers::parity_codec(dte_format_).encode(text);
}

void modem_line::respond(modem_actions& out, const char* verbose, const char* numeric) {
  out.push_back(
    to_dte{in_dte_format(verbose_ ? std::string("\r\n") + verbose + "\r\n" : std::string(numeric) + "\r")});
}

void modem_line::detect_format(char previous_raw, char raw) {
  const auto a = static_cast<unsigned char>(previous_raw);
  const auto t = static_cast<unsigned char>(raw);
  const unsigned a7 = a & 0x7Fu, t7 = t & 0x7Fu;
  if (!((a7 == 'A' && t7 == 'T') || (a7 == 'a' && t7 == 't')))
    return;
  const int a_bit = a >> 7, t_bit = t >> 7;
  if (a_bit == drivers::parity_bit(a7, 'E') && t_bit == drivers::parity_bit(t7, 'E') && (a_bit | t_bit))
    dte_format_ = {9600, 7, 'E', 1};
  else if (a_bit == drivers::parity_bit(a7, 'O') && t_bit == drivers::parity_bit(t7, 'O'))
    dte_format_ = {9600, 7, 'O', 1};
  else
    dte_format_ = {9600, 8, 'N', 1};
}

void modem_line::arm(modem_actions& out, std::chrono::milliseconds after) {
  ++timer_;
  out.push_back(arm_modem_timer{after, timer_});
}

void modem_line::hang_up(modem_actions& out, call_end cause) {
  state_ = state::command;
  pluses_ = 0;
  ++timer_; // forget a pending escape
  if (!call_up_)
    return;
  call_up_ = false;
  out.push_back(call_ended{cause});
}

void modem_line::data_to_meter(modem_actions& out, std::string_view dte_bytes) {
  if (dte_bytes.empty())
    return;
  drivers::parity_codec meter_uart(target_.format);
  out.push_back(to_meter{meter_uart.decode(dte_bytes)});
}

modem_actions modem_line::on_dte_bytes(std::string_view bytes, drivers::unix_ms now) {
  modem_actions out;
  std::string echo;
  std::string data;
  auto flush_echo = [&] {
    if (!echo.empty())
      out.push_back(to_dte{std::move(echo)});
    echo.clear();
  };
  for (char raw : bytes) {
    const char c = static_cast<char>(raw & 0x7F); // commands are 7-bit whatever the format
    switch (state_) {
    case state::command:
    case state::online_command:
      if (echo_)
        echo += raw; // in the DTE's own format
      detect_format(previous_raw_, raw);
      if (c == '\r') {
        flush_echo();
        std::string line;
        line.swap(command_line_);
        execute(out, line, now);
      } else if (c == '\b') {
        if (!command_line_.empty())
          command_line_.pop_back();
      } else if (c != '\n' && command_line_.size() < max_command_line) {
        command_line_ += c;
      }
      break;
    case state::dialling:
      if (c == '\n')
        break;
      flush_echo();
      state_ = state::command; // any character aborts the dialling
      ++timer_;
      respond(out, "NO CARRIER", "3");
      break;
    case state::online: {
      const bool guarded = !any_dte_byte_ || now - last_dte_byte_ >= config_.guard_time.count();
      if (raw == '+' && pluses_ < 3 && (pluses_ > 0 || guarded)) {
        ++pluses_;
      } else {
        if (pluses_ > 0) { // they were data after all
          data.append(static_cast<std::size_t>(pluses_), '+');
          pluses_ = 0;
          ++timer_;
        }
        data += raw;
      }
      last_dte_byte_ = now;
      any_dte_byte_ = true;
      break;
    }
    }
    previous_raw_ = raw;
  }
  flush_echo();
  if (state_ == state::online) {
    data_to_meter(out, data);
    if (pluses_ == 3)
      arm(out, config_.guard_time);
  }
  return out;
}

void modem_line::execute(modem_actions& out, const std::string& line, drivers::unix_ms now) {
  std::string cmd;
  for (char c : line)
    cmd += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto at = cmd.find("AT");
  if (at == std::string::npos)
    return;
  cmd.erase(0, at + 2);
  std::size_t i = 0;
  auto digit_value = [&](int fallback) {
    if (i < cmd.size() && std::isdigit(static_cast<unsigned char>(cmd[i])))
      return cmd[i++] - '0';
    return fallback;
  };
  auto skip_digits = [&] {
    while (i < cmd.size() && std::isdigit(static_cast<unsigned char>(cmd[i])))
      ++i;
  };
  while (i < cmd.size()) {
    const char c = cmd[i++];
    switch (c) {
    case ' ':
      break;
    case 'Z':
      skip_digits();
      hang_up(out, call_end::hangup);
      echo_ = true;
      verbose_ = true;
      break;
    case 'E':
      echo_ = digit_value(0) != 0;
      break;
    case 'V':
      verbose_ = digit_value(0) != 0;
      break;
    case 'H':
      skip_digits();
      hang_up(out, call_end::hangup);
      break;
    case 'O':
      skip_digits();
      if (!call_up_) {
        respond(out, "NO CARRIER", "3");
        return;
      }
      respond(out, "CONNECT 9600", "1");
      state_ = state::online;
      last_dte_byte_ = now;
      any_dte_byte_ = true;
      return;
    case 'I':
      skip_digits();
      out.push_back(to_dte{in_dte_format("\r\nMTS-SIM MODEM\r\n")});
      break;
    case 'Q': case 'X': case 'L': case 'M':
      skip_digits();
      break;
    case '&':
      if (i < cmd.size())
        ++i;
      skip_digits();
      break;
    case 'S':
      skip_digits();
      if (i < cmd.size() && cmd[i] == '=') {
        ++i;
        skip_digits();
      } else if (i < cmd.size() && cmd[i] == '?') {
        ++i;
        out.push_back(to_dte{in_dte_format("\r\n000\r\n")});
      }
      break;
    case '+': // extended command (+CBST=7,0,1 ...): accepted as a whole
      while (i < cmd.size() && cmd[i] != ';')
        ++i;
      if (i < cmd.size())
        ++i;
      break;
    case 'D':
      if (call_up_) {
        respond(out, "ERROR", "4");
        return;
      }
      dial(out, cmd.substr(i));
      return;
    default:
      respond(out, "ERROR", "4");
      return;
    }
  }
  respond(out, "OK", "0");
}

void modem_line::dial(modem_actions& out, const std::string& dial_string) {
  if (!dial_string.empty() && dial_string.back() == ';') { // a voice call: nothing to say
    respond(out, "NO CARRIER", "3");
    return;
  }
  std::string number;
  for (char c : dial_string)
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '*' || c == '#')
      number += c;
  if (number.empty()) {
    respond(out, "ERROR", "4");
    return;
  }
  dialled_ = number;
  target_ = plan_ ? plan_(number) : dial_target{};
  state_ = state::dialling;
  arm(out, config_.connect_delay);
}

modem_actions modem_line::on_timer(std::uint64_t id, drivers::unix_ms now) {
  modem_actions out;
  if (id != timer_)
    return out;
  if (state_ == state::dialling) {
    switch (target_.what) {
    case dial_target::kind::meter:
      state_ = state::online;
      call_up_ = true;
      meter_bytes_ = 0;
      pluses_ = 0;
      last_dte_byte_ = now;
      any_dte_byte_ = true;
      respond(out, "CONNECT 9600", "1");
      out.push_back(start_call{target_.meter});
      break;
    case dial_target::kind::busy:
      state_ = state::command;
      respond(out, "BUSY", "7");
      break;
    case dial_target::kind::no_answer:
      state_ = state::command;
      respond(out, "NO ANSWER", "8");
      break;
    case dial_target::kind::no_carrier:
    case dial_target::kind::unknown:
      state_ = state::command;
      respond(out, "NO CARRIER", "3");
      break;
    }
  } else if (state_ == state::online && pluses_ == 3) {
    state_ = state::online_command;
    pluses_ = 0;
    respond(out, "OK", "0");
  }
  return out;
}

modem_actions modem_line::on_meter_characters(std::string_view characters, drivers::unix_ms) {
  modem_actions out;
  if (state_ != state::online || !call_up_)
    return out; // nobody listens in command state
  std::string_view send = characters;
  bool drop = false;
  if (target_.drop_mid_call && meter_bytes_ + characters.size() >= config_.drop_after_bytes) {
    send = characters.substr(0, config_.drop_after_bytes - meter_bytes_);
    drop = true;
  }
  meter_bytes_ += send.size();
  drivers::parity_codec meter_uart(target_.format);
  if (!send.empty())
    out.push_back(to_dte{meter_uart.encode(send)});
  if (drop) {
    hang_up(out, call_end::dropped);
    respond(out, "NO CARRIER", "3");
  }
  return out;
}

modem_actions modem_line::on_meter_closed(drivers::unix_ms) {
  modem_actions out;
  if (!call_up_)
    return out;
  hang_up(out, call_end::meter_closed);
  respond(out, "NO CARRIER", "3");
  return out;
}

modem_actions modem_line::on_dte_gone(drivers::unix_ms) {
  modem_actions out;
  hang_up(out, call_end::dte_gone);
  command_line_.clear();
  return out;
}

} // namespace mts::sim
