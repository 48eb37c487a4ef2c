#include "actors/transcript.hpp"

#include "common/json.hpp"
#include "common/time.hpp"
#include "drivers/iec_frames.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace mts {

namespace iec = drivers::iec;

std::string mask_secrets(std::string_view bytes, const std::vector<std::string>& secrets) {
  // Matching is on the 7-bit characters: over a modem call with software parity (7E1 on an
  // 8-bit link) every byte may carry its parity bit, and a password must not slip through
  // because of it. Masking a little too much in binary data is the safe side.
  std::string seven(bytes);
  for (auto& c : seven)
    c = static_cast<char>(c & 0x7F);
  struct hidden {
    std::size_t from, to; // [from, to) of bytes
    const char* with;
  };
  std::vector<hidden> hide;
  // Rule 1: SOH 'P' digit STX '(' operand ')' ... ETX BCC: the operand and the BCC.
  for (std::size_t i = 0; i + 4 < seven.size(); ++i) {
    if (seven[i] != iec::soh || seven[i + 1] != 'P' || (seven[i + 2] != '1' && seven[i + 2] != '2') ||
        seven[i + 3] != iec::stx || seven[i + 4] != '(')
      continue;
    const std::size_t operand = i + 5;
    const auto close = seven.find(')', operand);
    const auto end = close == std::string::npos ? seven.size() : close;
    if (end > operand)
      hide.push_back({operand, end, transcript_mask_text});
    const auto etx = seven.find(iec::etx, end);
    if (etx == std::string::npos || etx + 1 >= seven.size()) {
      i = end;
      continue;
    }
    hide.push_back({etx + 1, etx + 2, "*"});
    i = etx + 1;
  }
  // Rule 2: the secrets' text wherever it is.
  for (const auto& secret : secrets) {
    if (secret.empty())
      continue;
    for (auto at = seven.find(secret); at != std::string::npos; at = seven.find(secret, at + secret.size()))
      hide.push_back({at, at + secret.size(), transcript_mask_text});
  }
  std::sort(hide.begin(), hide.end(), [](const hidden& a, const hidden& b) { return a.from < b.from; });
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  for (const auto& h : hide) {
    if (h.to <= pos)
      continue; // inside what an earlier range hid
    if (h.from >= pos) {
      out.append(bytes.substr(pos, h.from - pos));
      out += h.with;
    }
    pos = h.to;
  }
  out.append(bytes.substr(std::min(pos, bytes.size())));
  return out;
}

std::string printable_bytes(std::string_view bytes) {
  static const char* const names[32] = {"NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL",
                                         "BS",  "HT",  "LF",  "VT",  "FF",  "CR",  "SO",  "SI",
                                         "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
                                         "CAN", "EM",  "SUB", "ESC", "FS",  "GS",  "RS",  "US"};
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() + 8);
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 32) {
      out += '<';
      out += names[c];
      out += '>';
    } else if (c < 127) {
      out += static_cast<char>(c);
    } else {
      out += "<x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
      out += '>';
    }
  }
  return out;
}

attempt_transcript::attempt_transcript(std::int64_t attempt, drivers::unix_ms start, std::size_t max_bytes,
                                       std::vector<std::string> secrets)
    : attempt_(attempt), start_(start), max_bytes_(max_bytes), secrets_(std::move(secrets)) {}

// Once full, a further event (but the end) is dropped before it is masked and rendered.
bool attempt_transcript::drop_if_full() {
  if (full_)
    ++dropped_events_;
  return full_;
}

void attempt_transcript::data(drivers::unix_ms now, const char* event, std::string_view bytes) {
  if (!drop_if_full())
    add({now - start_, event, printable_bytes(mask_secrets(bytes, secrets_)), true}, false);
}

void attempt_transcript::event(drivers::unix_ms now, std::string event, std::string detail) {
  if (!drop_if_full())
    add({now - start_, std::move(event), mask_secrets(detail, secrets_), false}, false);
}

void attempt_transcript::end(drivers::unix_ms now, std::string reason) {
  if (ended_)
    return;
  ended_ = true;
  add({now - start_, "end", mask_secrets(reason, secrets_), false}, true);
}

void attempt_transcript::add(entry e, bool always) {
  const std::size_t cost = e.text.size() + e.event.size() + event_overhead;
  if (!always && (full_ || used_ + cost > max_bytes_)) {
    full_ = true;
    ++dropped_events_;
    return;
  }
  used_ += cost;
  entries_.push_back(std::move(e));
}

boost::json::object attempt_transcript::to_json() const {
  namespace bj = boost::json;
  bj::array events;
  for (const auto& e : entries_) {
    bj::object o{{"ms", e.ms}, {"event", e.event}};
    if (e.is_data)
      o["data"] = e.text;
    else if (!e.text.empty())
      o["detail"] = e.text;
    events.push_back(std::move(o));
  }
  return bj::object{{"attempt", attempt_},
                    {"startTime", format_utc(floor_div(start_, 1000))},
                    {"events", std::move(events)},
                    {"droppedEvents", dropped_events_}};
}

std::string transcripts_json(const std::vector<attempt_transcript>& attempts) {
  if (attempts.empty())
    return {};
  boost::json::array out;
  for (const auto& a : attempts)
    out.push_back(a.to_json());
  return json::serialize(out);
}

} // namespace mts
