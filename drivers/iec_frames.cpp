#include "drivers/iec_frames.hpp"

namespace mts::drivers::iec {

std::optional<unix_seconds> parse_vdew_time(std::string_view d) {
  for (char c : d)
    if (c < '0' || c > '9')
      return std::nullopt;
  if (d.size() == 11 || d.size() == 13)
    d.remove_prefix(1); // season digit
  if (d.size() != 10 && d.size() != 12)
    return std::nullopt;
  auto day = parse_date("20" + std::string(d.substr(0, 2)) + "-" + std::string(d.substr(2, 2)) + "-" +
                        std::string(d.substr(4, 2)));
  auto two = [&](std::size_t at) { return (d[at] - '0') * 10 + (d[at + 1] - '0'); };
  const int h = two(6), m = two(8), sec = d.size() == 12 ? two(10) : 0;
  if (!day || h > 23 || m > 59 || sec > 59)
    return std::nullopt;
  return *day + h * 3600 + m * 60 + sec;
}

char bcc(std::string_view body) {
  unsigned char x = 0;
  for (char c : body)
    x ^= static_cast<unsigned char>(c);
  return static_cast<char>(x & 0x7F);
}

std::string request_message(std::string_view address) {
  std::string out = "/?";
  out += address;
  out += "!\r\n";
  return out;
}

std::string identification_message(std::string_view identification) {
  std::string out = "/";
  out += identification;
  out += "\r\n";
  return out;
}

std::string option_select_message(char protocol, char baud_char, char mode) {
  return std::string{ack, protocol, baud_char, mode, '\r', '\n'};
}

std::string command_message(std::string_view command, std::string_view data, bool partial) {
  std::string body(command);
  body += stx;
  body += data;
  body += partial ? eot : etx;
  std::string out(1, soh);
  out += body;
  out += bcc(body);
  return out;
}

std::string break_message() {
  const std::string body = {'B', '0', etx};
  return std::string(1, soh) + body + bcc(body);
}

std::string data_message(std::string_view data, bool partial) {
  std::string body(data);
  body += partial ? eot : etx;
  std::string out(1, stx);
  out += body;
  out += bcc(body);
  return out;
}

std::optional<int> mode_c_baud(char z) {
  static constexpr int rates[] = {300, 600, 1200, 2400, 4800, 9600, 19200};
  if (z < '0' || z > '6')
    return std::nullopt;
  return rates[z - '0'];
}

std::optional<char> mode_c_baud_char(int baud) {
  for (char z = '0'; z <= '6'; ++z)
    if (mode_c_baud(z) == baud)
      return z;
  return std::nullopt;
}

void frame_parser::feed(std::string_view bytes) {
  for (char c : bytes)
    buf_ += static_cast<char>(c & 0x7F);
}

std::optional<message> frame_parser::take(message_kind kind, std::size_t length) {
  message m;
  m.kind = kind;
  m.raw = buf_.substr(0, length);
  buf_.erase(0, length);
  return m;
}

// STX ... ETX|EOT BCC or SOH ... ETX|EOT BCC, starting at buf_[0].
std::optional<message> frame_parser::framed(message_kind kind) {
  const auto end = buf_.find_first_of(std::string_view("\x03\x04", 2), 1);
  if (end == std::string::npos || end + 1 >= buf_.size()) {
    if (buf_.size() > max_) {
      buf_.clear();
      return message{message_kind::oversize, {}, {}, false, true, {}};
    }
    return std::nullopt;
  }
  if (end + 2 > max_) {
    buf_.erase(0, end + 2);
    return message{message_kind::oversize, {}, {}, false, true, {}};
  }
  const std::string_view body = std::string_view(buf_).substr(1, end);
  const bool ok = bcc(body) == buf_[end + 1];
  const bool partial = buf_[end] == eot;
  std::string_view data = body.substr(0, body.size() - 1); // without ETX/EOT
  std::string command;
  if (kind == message_kind::command) {
    command = std::string(data.substr(0, 2));
    data.remove_prefix(command.size());
    if (!data.empty() && data.front() == stx)
      data.remove_prefix(1);
  }
  std::string text(data);
  auto m = take(kind, end + 2);
  m->text = std::move(text);
  m->command = std::move(command);
  m->partial = partial;
  m->bcc_ok = ok;
  return m;
}

std::optional<message> frame_parser::next() {
  // Skip bytes that cannot start a message.
  std::size_t start = 0;
  while (start < buf_.size()) {
    const char c = buf_[start];
    if (c == '/' || c == soh || c == stx || c == ack || c == nak)
      break;
    ++start;
  }
  buf_.erase(0, start);
  if (buf_.empty())
    return std::nullopt;

  switch (buf_[0]) {
  case nak:
    return take(message_kind::nak, 1);
  case ack:
    if (!option_select_)
      return take(message_kind::ack, 1);
    if (buf_.size() >= 2 && (buf_[1] < '0' || buf_[1] > '9'))
      return take(message_kind::ack, 1);
    if (buf_.size() < 6)
      return std::nullopt;
    if (buf_[4] != '\r' || buf_[5] != '\n')
      return take(message_kind::ack, 1);
    {
      auto m = take(message_kind::option_select, 6);
      m->text = m->raw.substr(1, 3);
      option_select_ = false;
      return m;
    }
  case '/': {
    const auto end = buf_.find("\r\n");
    if (end == std::string::npos) {
      if (buf_.size() <= max_)
        return std::nullopt;
      buf_.clear();
      return message{message_kind::oversize, {}, {}, false, true, {}};
    }
    if (end + 2 > max_) {
      buf_.erase(0, end + 2);
      return message{message_kind::oversize, {}, {}, false, true, {}};
    }
    std::string line = buf_.substr(1, end - 1);
    const bool request = line.size() >= 2 && line.front() == '?' && line.back() == '!';
    auto m = take(request ? message_kind::request : message_kind::identification, end + 2);
    m->text = request ? line.substr(1, line.size() - 2) : line;
    return m;
  }
  case stx:
    return framed(message_kind::block);
  default: // soh
    return framed(message_kind::command);
  }
}

} // namespace mts::drivers::iec
