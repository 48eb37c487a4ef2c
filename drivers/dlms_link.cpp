#include "drivers/dlms_link.hpp"

#include <algorithm>
#include <deque>
#include <stdexcept>

namespace mts::drivers::dlms {
namespace {

constexpr char flag = 0x7E;
constexpr std::size_t max_frame_length = 0x7FF; // the 11-bit length field
const std::string llc_request("\xE6\xE6\x00", 3);
const std::string llc_response("\xE6\xE7\x00", 3);
constexpr int max_resends = 3; // an unacknowledged I-frame is sent again at most this often

std::uint8_t u8(char c) { return static_cast<std::uint8_t>(c); }

// The P/F bit does not change what a U-frame is: compare with it set, as the constants are.
bool is_u(std::uint8_t c, std::uint8_t u) { return (c & 3) == 3 && (c | 0x10) == u; }

// Bytes a frame took on the wire (both flags), for the dropped-bytes count.
std::size_t wire_size(const hdlc_frame& f) {
  return 2 + 2 + f.destination.size() + f.source.size() + 1 + (f.information.empty() ? 0 : 2 + f.information.size()) + 2;
}

// A raw HDLC address part of 1, 2 or 4 bytes starting at `at`: its size, 0 when more bytes
// are needed, -1 when it cannot be an address (no end bit within 4 bytes, or 3 bytes).
int address_size(const std::string& b, std::size_t at) {
  for (std::size_t i = 0; i < 4; ++i) {
    if (at + i >= b.size())
      return 0;
    if (u8(b[at + i]) & 1)
      return i == 2 ? -1 : static_cast<int>(i + 1);
  }
  return -1;
}

void append_crc(std::string& out, std::string_view covered) {
  const auto crc = crc16_x25(covered);
  out += static_cast<char>(crc & 0xFF);
  out += static_cast<char>(crc >> 8);
}

bool crc_ok(std::string_view covered, char lo, char hi) {
  const auto crc = crc16_x25(covered);
  return u8(lo) == (crc & 0xFF) && u8(hi) == (crc >> 8);
}

void put_value(std::string& out, std::uint8_t id, std::uint32_t v, int size) {
  out += static_cast<char>(id);
  out += static_cast<char>(size);
  for (int i = size - 1; i >= 0; --i)
    out += static_cast<char>(v >> (8 * i) & 0xFF);
}

// Pieces of at most `limit` bytes (at least one piece, even for an empty payload).
std::deque<std::string> split(const std::string& payload, std::size_t limit) {
  limit = std::max<std::size_t>(limit, 1);
  std::deque<std::string> out;
  for (std::size_t at = 0; at < payload.size(); at += limit)
    out.push_back(payload.substr(at, limit));
  if (out.empty())
    out.emplace_back();
  return out;
}

// FRMR information: rejected control, V(S)/V(R), reason bits W X Y Z (higher bits are the
// vendor's and are not named).
std::string frmr_reason(std::string_view info) {
  static const char* const names[] = {"invalid control field", "invalid frame or state",
                                      "information field too long", "invalid N(R)"};
  std::string out;
  if (info.size() >= 3)
    for (int bit = 0; bit < 4; ++bit)
      if (u8(info[2]) & 1 << bit) {
        if (!out.empty())
          out += ", ";
        out += names[bit];
      }
  return "frame rejected: " + (out.empty() ? std::string("reason not given") : out);
}

// The parameters one side uses after SNRM/UA: the minimum of what it may and what the peer
// states from its own point of view (the peer's receive bounds our transmit).
hdlc_parameters agree(std::uint32_t own_transmit, std::uint32_t own_receive, const hdlc_parameters& peer) {
  hdlc_parameters p;
  p.max_info_transmit = std::max<std::uint32_t>(1, std::min(own_transmit, peer.max_info_receive));
  p.max_info_receive = std::max<std::uint32_t>(1, std::min(own_receive, peer.max_info_transmit));
  p.window_transmit = std::min<std::uint32_t>(1, peer.window_receive);
  p.window_receive = std::min<std::uint32_t>(1, peer.window_transmit);
  return p;
}

std::string too_long(std::size_t size, std::size_t limit) {
  return "APDU of " + std::to_string(size) + " bytes is longer than the limit of " + std::to_string(limit);
}

// Joins the information fields of one APDU's I-frames (the LLC header only in the first).
class apdu_joiner {
public:
  // Adds a frame's information; "" or the problem (the APDU would pass `max`: it is dropped).
  std::string add(std::string_view info, std::string_view llc, std::size_t max) {
    if (!active_ && info.substr(0, 3) == llc)
      info.remove_prefix(3);
    active_ = true;
    if (apdu_.size() + info.size() > max) {
      auto problem = "received " + too_long(apdu_.size() + info.size(), max);
      clear();
      return problem;
    }
    apdu_ += info;
    return "";
  }
  std::string take() {
    auto out = std::move(apdu_);
    clear();
    return out;
  }
  void clear() {
    apdu_.clear();
    active_ = false;
  }

private:
  std::string apdu_;
  bool active_ = false;
};

// ---- wrapper stream ----
struct wrapper_step {
  std::optional<wrapper_pdu> pdu; // a whole PDU
  std::string error;              // the stream cannot go on
};
// The next PDU of the stream in `buffer` (removed from it), or neither when more bytes are needed.
wrapper_step next_wrapper(std::string& buffer, std::size_t max_apdu) {
  wrapper_step step;
  if (buffer.size() < wrapper_header_size)
    return step;
  auto be16 = [&](std::size_t at) { return static_cast<std::uint16_t>(u8(buffer[at]) << 8 | u8(buffer[at + 1])); };
  if (const auto version = be16(0); version != 1) {
    step.error = "wrapper version " + std::to_string(version);
    return step;
  }
  const std::size_t length = be16(6);
  if (length > max_apdu) {
    step.error = "wrapper length " + std::to_string(length) + " above the limit of " + std::to_string(max_apdu);
    return step;
  }
  if (buffer.size() < wrapper_header_size + length)
    return step;
  step.pdu = wrapper_pdu{be16(2), be16(4), buffer.substr(wrapper_header_size, length)};
  buffer.erase(0, wrapper_header_size + length);
  return step;
}

// ---- HDLC client ----
class hdlc_client final : public client_link {
public:
  explicit hdlc_client(const hdlc_settings& s)
      : settings_(s), own_(encode_client_address(s.client_address)),
        peer_(encode_server_address(s.server_logical, s.server_physical, s.server_address_size)) {}

  link_output open() override {
    link_output out;
    if (state_ == state::connected || state_ == state::connecting)
      return out;
    reset();
    std::string info;
    // The defaults are not stated: the SNRM of a default client has no information field.
    if (settings_.max_info_receive != 128 || settings_.max_info_transmit != 128)
      info = encode_hdlc_parameters({settings_.max_info_transmit, settings_.max_info_receive, 1, 1});
    send(out, frame(control::snrm, info));
    state_ = state::connecting;
    return out;
  }

  link_output send_apdu(std::string_view apdu) override {
    link_output out;
    if (state_ != state::connected)
      return fail(out, "link not open");
    // An APDU whose answer never came may be followed by another (the driver's release after
    // a timeout); one still being segmented may not.
    if (!segments_.empty())
      return fail(out, "an APDU is still being sent");
    if (apdu.size() > settings_.max_apdu)
      return fail(out, too_long(apdu.size(), settings_.max_apdu));
    segments_ = split(llc_request + std::string(apdu), negotiated_.max_info_transmit);
    send_segment(out);
    return out;
  }

  link_output on_bytes(std::string_view bytes) override {
    link_output out;
    parser_.feed(bytes);
    while (auto f = parser_.next()) {
      handle(*f, out);
      if (!out.error.empty())
        break;
    }
    return out;
  }

  link_output repeat_last() override {
    link_output out;
    if (state_ != state::failed && state_ != state::closed)
      out.send = last_;
    return out;
  }

  link_output close() override {
    link_output out;
    if (state_ == state::idle || state_ == state::closed) {
      state_ = state::closed;
      out.closed = true;
      return out;
    }
    if (state_ != state::disconnecting)
      send(out, frame(control::disc));
    state_ = state::disconnecting;
    return out;
  }

  hdlc_parameters negotiated() const override { return negotiated_; }
  std::size_t dropped_bytes() const override { return parser_.dropped_bytes() + other_; }

private:
  enum class state { idle, connecting, connected, disconnecting, closed, failed };

  void reset() {
    vs_ = vr_ = 0;
    unacked_ = false;
    resends_ = 0;
    segments_.clear();
    rx_.clear();
    negotiated_ = {};
  }

  std::string frame(std::uint8_t control, std::string info = {}, bool segmented = false) const {
    return encode_frame(hdlc_frame{segmented, peer_, own_, control, std::move(info)});
  }
  void send(link_output& out, std::string bytes) {
    out.send += bytes;
    last_ = std::move(bytes);
  }
  link_output& fail(link_output& out, std::string why) {
    state_ = state::failed;
    out.error = std::move(why);
    return out;
  }

  void send_segment(link_output& out) {
    std::string info = std::move(segments_.front());
    segments_.pop_front();
    send(out, frame(control::i_frame(vs_, vr_), std::move(info), !segments_.empty()));
    vs_ = (vs_ + 1) & 7;
    unacked_ = true;
    resends_ = 0;
  }

  // The peer's N(R) did not take our last I-frame: send it again, a few times.
  void resend(link_output& out) {
    if (resends_ >= max_resends) {
      fail(out, "frame not acknowledged after " + std::to_string(max_resends) + " repeats");
      return;
    }
    ++resends_;
    out.send += last_;
  }

  void handle(const hdlc_frame& f, link_output& out) {
    if (f.destination != own_ || f.source != peer_) {
      other_ += wire_size(f);
      return;
    }
    const auto c = f.control;
    if (state_ == state::idle || state_ == state::closed || state_ == state::failed)
      return;
    if (is_u(c, control::frmr)) {
      fail(out, frmr_reason(f.information));
      return;
    }
    switch (state_) {
    case state::connecting:
      if (is_u(c, control::ua))
        on_ua(f, out);
      else if (is_u(c, control::dm))
        fail(out, "disconnected mode");
      break;
    case state::connected:
      if (control::is_i_frame(c))
        on_i_frame(f, out);
      else if (control::is_rr(c))
        on_rr(control::nr(c), out);
      else if (is_u(c, control::dm))
        fail(out, "disconnected mode");
      else if (is_u(c, control::disc)) {
        send(out, frame(control::ua));
        state_ = state::closed;
        out.closed = true;
      }
      break; // RNR: the peer is busy; the driver's timer repeats our last frame
    case state::disconnecting:
      if (is_u(c, control::ua) || is_u(c, control::dm)) {
        state_ = state::closed;
        out.closed = true;
      }
      break;
    default:
      break;
    }
  }

  void on_ua(const hdlc_frame& f, link_output& out) {
    const auto peer = decode_hdlc_parameters(f.information);
    if (!peer) {
      fail(out, "malformed UA parameters");
      return;
    }
    negotiated_ = agree(settings_.max_info_transmit, settings_.max_info_receive, *peer);
    state_ = state::connected;
    out.opened = true;
  }

  void on_rr(int nr, link_output& out) {
    if (!unacked_)
      return; // an answer to our poll with nothing in it
    if (nr != vs_) {
      resend(out);
      return;
    }
    unacked_ = false;
    if (!segments_.empty())
      send_segment(out);
  }

  void on_i_frame(const hdlc_frame& f, link_output& out) {
    if (control::ns(f.control) != vr_) {
      // A repeat: the peer missed what we sent after taking it; our last frame says it again.
      out.send += last_;
      return;
    }
    if (unacked_) {
      if (control::nr(f.control) != vs_) {
        resend(out);
        return;
      }
      unacked_ = false;
      segments_.clear();
    }
    vr_ = (vr_ + 1) & 7;
    if (auto problem = rx_.add(f.information, llc_response, settings_.max_apdu); !problem.empty()) {
      fail(out, problem);
      return;
    }
    if (f.segmented) {
      if (control::poll(f.control))
        send(out, frame(control::rr(vr_)));
      return;
    }
    out.apdus.push_back(rx_.take());
  }

  hdlc_settings settings_;
  std::string own_, peer_;
  hdlc_frame_parser parser_;
  state state_ = state::idle;
  hdlc_parameters negotiated_;
  int vs_ = 0, vr_ = 0;          // V(S), V(R)
  bool unacked_ = false;         // an I-frame of ours not yet acknowledged by an N(R)
  int resends_ = 0;
  std::deque<std::string> segments_; // the rest of the APDU being sent
  apdu_joiner rx_; // the APDU being received
  std::string last_; // the last frame sent, for repeat_last and repeats
  std::size_t other_ = 0;
};

// ---- HDLC server ----
class hdlc_server final : public server_link {
public:
  explicit hdlc_server(const hdlc_settings& s)
      : settings_(s), own_(encode_server_address(s.server_logical, s.server_physical, s.server_address_size)) {}

  link_output on_bytes(std::string_view bytes) override {
    link_output out;
    parser_.feed(bytes);
    while (auto f = parser_.next()) {
      handle(*f, out);
      if (!out.error.empty())
        break;
    }
    return out;
  }

  link_output send_apdu(std::string_view apdu) override {
    link_output out;
    if (!connected_) {
      out.error = "link not open";
      return out;
    }
    if (apdu.size() > settings_.max_apdu) {
      out.error = too_long(apdu.size(), settings_.max_apdu);
      return out;
    }
    segments_ = split(llc_response + std::string(apdu), negotiated_.max_info_transmit);
    send_segment(out);
    return out;
  }

  hdlc_parameters negotiated() const override { return negotiated_; }

private:
  std::string frame(std::uint8_t control, std::string info = {}, bool segmented = false) const {
    return encode_frame(hdlc_frame{segmented, client_, own_, control, std::move(info)});
  }
  void send(link_output& out, std::string bytes) {
    out.send += bytes;
    last_ = std::move(bytes);
    answered_ = true;
  }
  void send_segment(link_output& out) {
    std::string info = std::move(segments_.front());
    segments_.pop_front();
    send(out, frame(control::i_frame(vs_, vr_), std::move(info), !segments_.empty()));
    vs_ = (vs_ + 1) & 7;
  }
  void reject(std::uint8_t rejected, std::uint8_t reason, link_output& out) {
    std::string info{static_cast<char>(rejected), static_cast<char>(vr_ << 5 | vs_ << 1), static_cast<char>(reason)};
    send(out, frame(control::frmr, std::move(info)));
  }

  void handle(const hdlc_frame& f, link_output& out) {
    // Silence to frames for another server: on a shared line that meter answers them.
    if (f.destination != own_ || f.source.size() != 1) {
      return;
    }
    const auto c = f.control;
    if (is_u(c, control::snrm)) {
      on_snrm(f, out);
      return;
    }
    if (!connected_) {
      // Disconnected mode: whatever asks for an answer gets DM.
      if (control::is_i_frame(c) || control::is_rr(c) || control::is_rnr(c) || is_u(c, control::disc)) {
        client_ = f.source;
        send(out, frame(control::dm));
      }
      return;
    }
    if (f.source != client_)
      return;
    just_opened_ = false;
    if (is_u(c, control::disc)) {
      send(out, frame(control::ua));
      connected_ = false;
      out.closed = true;
    } else if (control::is_i_frame(c)) {
      on_i_frame(f, out);
    } else if (control::is_rr(c)) {
      on_rr(control::nr(c), out);
    } else if (control::is_rnr(c) || is_u(c, control::ua) || is_u(c, control::dm) || is_u(c, control::ui) ||
               is_u(c, control::frmr)) {
      // nothing to answer
    } else {
      reject(c, 0x01, out);
    }
  }

  void on_snrm(const hdlc_frame& f, link_output& out) {
    if (connected_ && just_opened_ && f.source == client_) {
      out.send += last_; // our UA was lost: the same UA again, the link stays as it is
      return;
    }
    const auto proposed = decode_hdlc_parameters(f.information);
    client_ = f.source;
    if (!proposed) {
      reject(f.control, 0x02, out);
      return;
    }
    negotiated_ = agree(settings_.server_max_info_transmit, settings_.server_max_info_receive, *proposed);
    vs_ = vr_ = 0;
    segments_.clear();
    rx_.clear();
    connected_ = true;
    just_opened_ = true;
    send(out, frame(control::ua, encode_hdlc_parameters(negotiated_)));
    out.opened = true;
  }

  void on_i_frame(const hdlc_frame& f, link_output& out) {
    if (control::ns(f.control) != vr_) {
      // A repeat of what we took: the client missed our answer, if there was one yet.
      if (answered_)
        out.send += last_;
      return;
    }
    if (f.information.size() > negotiated_.max_info_receive) {
      reject(f.control, 0x04, out);
      return;
    }
    vr_ = (vr_ + 1) & 7;
    answered_ = false;
    segments_.clear(); // a new request: whatever we were still sending is abandoned
    if (auto problem = rx_.add(f.information, llc_request, settings_.max_apdu); !problem.empty()) {
      out.error = problem;
      return;
    }
    if (f.segmented) {
      if (control::poll(f.control))
        send(out, frame(control::rr(vr_)));
      return;
    }
    out.apdus.push_back(rx_.take());
  }

  void on_rr(int nr, link_output& out) {
    if (nr != vs_) {
      // The client did not get our last I-frame (its RR is a repeat): send it again.
      if (!last_.empty())
        out.send += last_;
      return;
    }
    if (!segments_.empty())
      send_segment(out);
    else
      send(out, frame(control::rr(vr_))); // polled with nothing to send
  }

  hdlc_settings settings_;
  std::string own_;
  std::string client_ = encode_client_address(0x10);
  hdlc_frame_parser parser_;
  bool connected_ = false;
  bool just_opened_ = false; // no frame since our UA: an SNRM now is a repeat
  hdlc_parameters negotiated_;
  int vs_ = 0, vr_ = 0;
  std::deque<std::string> segments_;
  apdu_joiner rx_; // the APDU being received
  std::string last_;
  bool answered_ = false; // something sent since the last I-frame taken
};

// ---- wrapper ----
// The longest APDU one wrapper PDU carries: its length field is 16 bits.
std::size_t wrapper_apdu_limit(const wrapper_settings& s) { return std::min<std::size_t>(s.max_apdu, 0xFFFF); }

// The incoming byte stream of wrapper PDUs, split as it arrives (both sides). A framing
// error ends it for good: the stream cannot be resynchronised.
class wrapper_stream {
public:
  // Feeds bytes; each complete PDU goes to on_pdu, a framing error to out.error.
  template <class OnPdu>
  void feed(std::string_view bytes, std::size_t max_apdu, link_output& out, OnPdu&& on_pdu) {
    if (failed_)
      return;
    buffer_ += bytes;
    for (;;) {
      auto step = next_wrapper(buffer_, max_apdu);
      if (!step.error.empty()) {
        failed_ = true;
        out.error = std::move(step.error);
        return;
      }
      if (!step.pdu)
        return;
      on_pdu(*step.pdu);
    }
  }
  bool failed() const { return failed_; }
  void fail() { failed_ = true; }
  void reset() {
    buffer_.clear();
    failed_ = false;
  }

private:
  std::string buffer_;
  bool failed_ = false;
};

class wrapper_client final : public client_link {
public:
  explicit wrapper_client(const wrapper_settings& s) : settings_(s) {}

  link_output open() override {
    link_output out;
    open_ = true;
    stream_.reset();
    out.opened = true;
    return out;
  }
  link_output send_apdu(std::string_view apdu) override {
    link_output out;
    if (!open_ || stream_.failed())
      out.error = "link not open";
    else if (apdu.size() > wrapper_apdu_limit(settings_))
      out.error = too_long(apdu.size(), wrapper_apdu_limit(settings_));
    else
      out.send = encode_wrapper(settings_.client_wport, settings_.server_wport, apdu);
    if (!out.error.empty())
      stream_.fail();
    return out;
  }
  link_output on_bytes(std::string_view bytes) override {
    link_output out;
    if (!open_)
      return out;
    stream_.feed(bytes, settings_.max_apdu, out, [&](wrapper_pdu& pdu) {
      if (pdu.source == settings_.server_wport && pdu.destination == settings_.client_wport)
        out.apdus.push_back(std::move(pdu.apdu));
      else
        other_ += wrapper_header_size + pdu.apdu.size();
    });
    return out;
  }
  link_output repeat_last() override { return {}; } // TCP does not lose bytes
  link_output close() override {
    link_output out;
    open_ = false;
    out.closed = true;
    return out;
  }
  hdlc_parameters negotiated() const override { return {}; }
  std::size_t dropped_bytes() const override { return other_; }

private:
  wrapper_settings settings_;
  bool open_ = false;
  wrapper_stream stream_;
  std::size_t other_ = 0;
};

class wrapper_server final : public server_link {
public:
  explicit wrapper_server(const wrapper_settings& s) : settings_(s), reply_to_(s.client_wport) {}

  link_output on_bytes(std::string_view bytes) override {
    link_output out;
    stream_.feed(bytes, settings_.max_apdu, out, [&](wrapper_pdu& pdu) {
      if (pdu.destination != settings_.server_wport)
        return; // for another logical device
      // Answers go to the wPort that asked (any client may).
      reply_to_ = pdu.source;
      out.opened = !seen_;
      seen_ = true;
      out.apdus.push_back(std::move(pdu.apdu));
    });
    return out;
  }
  link_output send_apdu(std::string_view apdu) override {
    link_output out;
    const auto limit = wrapper_apdu_limit(settings_);
    if (apdu.size() > limit)
      out.error = too_long(apdu.size(), limit);
    else
      out.send = encode_wrapper(settings_.server_wport, reply_to_, apdu);
    return out;
  }
  hdlc_parameters negotiated() const override { return {}; }

private:
  wrapper_settings settings_;
  std::uint16_t reply_to_;
  bool seen_ = false;
  wrapper_stream stream_;
};

} // namespace

std::uint16_t crc16_x25(std::string_view bytes) {
  std::uint16_t crc = 0xFFFF;
  for (char c : bytes) {
    crc ^= u8(c);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1) ? static_cast<std::uint16_t>(crc >> 1 ^ 0x8408) : static_cast<std::uint16_t>(crc >> 1);
  }
  return static_cast<std::uint16_t>(~crc);
}

std::string encode_client_address(std::uint8_t client) {
  if (client > 0x7F)
    throw std::invalid_argument("HDLC client address " + std::to_string(client) + " does not fit one byte");
  return std::string(1, static_cast<char>(client << 1 | 1));
}

std::string encode_server_address(std::uint16_t logical, std::uint16_t physical, int size) {
  auto no_fit = [&] {
    return std::invalid_argument("HDLC server address " + std::to_string(logical) + "/" + std::to_string(physical) +
                                 " does not fit " + std::to_string(size) + " byte(s)");
  };
  auto byte = [](unsigned v) { return static_cast<char>(v << 1 & 0xFE); };
  std::string out;
  switch (size) {
  case 1:
    if (logical > 0x7F || physical != 0)
      throw no_fit();
    out = {byte(logical)};
    break;
  case 2:
    if (logical > 0x7F || physical > 0x7F)
      throw no_fit();
    out = {byte(logical), byte(physical)};
    break;
  case 4:
    if (logical > 0x3FFF || physical > 0x3FFF)
      throw no_fit();
    out = {byte(logical >> 7), byte(logical & 0x7F), byte(physical >> 7), byte(physical & 0x7F)};
    break;
  default:
    throw std::invalid_argument("HDLC server address size " + std::to_string(size) + " is not 1, 2 or 4");
  }
  out.back() = static_cast<char>(out.back() | 1);
  return out;
}

std::optional<server_address> decode_server_address(std::string_view raw) {
  const auto n = raw.size();
  if (n != 1 && n != 2 && n != 4)
    return std::nullopt;
  for (std::size_t i = 0; i < n; ++i)
    if (((u8(raw[i]) & 1) != 0) != (i + 1 == n))
      return std::nullopt;
  auto v = [&](std::size_t i) { return static_cast<std::uint16_t>(u8(raw[i]) >> 1); };
  server_address a;
  a.size = static_cast<int>(n);
  if (n == 1) {
    a.logical = v(0);
  } else if (n == 2) {
    a.logical = v(0);
    a.physical = v(1);
  } else {
    a.logical = static_cast<std::uint16_t>(v(0) << 7 | v(1));
    a.physical = static_cast<std::uint16_t>(v(2) << 7 | v(3));
  }
  return a;
}

std::string encode_frame(const hdlc_frame& f) {
  if (f.destination.empty() || f.source.empty())
    throw std::invalid_argument("HDLC frame without an address");
  const std::size_t length = 2 + f.destination.size() + f.source.size() + 1 +
                             (f.information.empty() ? 0 : 2 + f.information.size()) + 2;
  if (length > max_frame_length)
    throw std::length_error("HDLC frame of " + std::to_string(length) + " bytes is too long");
  std::string out(1, flag);
  out += static_cast<char>(0xA0 | (f.segmented ? 0x08 : 0) | length >> 8);
  out += static_cast<char>(length & 0xFF);
  out += f.destination;
  out += f.source;
  out += static_cast<char>(f.control);
  if (!f.information.empty()) {
    append_crc(out, std::string_view(out).substr(1));
    out += f.information;
  }
  append_crc(out, std::string_view(out).substr(1));
  out += flag;
  return out;
}

void hdlc_frame_parser::feed(std::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }

std::optional<hdlc_frame> hdlc_frame_parser::next() {
  std::size_t pos = 0;
  // Where a closing flag was kept (it may open the next frame; it is not garbage when not).
  std::size_t kept = kept_flag_ ? 0 : std::string::npos;
  std::optional<hdlc_frame> result;
  auto skip = [&](std::size_t n) { // steps over n bytes that are no frame
    dropped_ += n - (n > 0 && pos == kept ? 1 : 0);
    pos += n;
  };
  while (pos < buffer_.size()) {
    const auto at = buffer_.find(flag, pos);
    if (at == std::string::npos) {
      skip(buffer_.size() - pos);
      break;
    }
    skip(at - pos);
    if (buffer_.size() - pos < 2)
      break;
    const auto format = u8(buffer_[pos + 1]);
    if (format == u8(flag)) {
      ++pos; // two flags in a row: the first closed something or fills the line
      continue;
    }
    if ((format & 0xF0) != 0xA0) {
      skip(1);
      continue;
    }
    if (buffer_.size() - pos < 3)
      break;
    const std::size_t length = (format & 0x07u) << 8 | u8(buffer_[pos + 2]);
    const int dest = length < 7 ? -1 : address_size(buffer_, pos + 3);
    const int src = dest > 0 ? address_size(buffer_, pos + 3 + dest) : dest;
    if (dest < 0 || src < 0) {
      skip(1);
      continue;
    }
    if (dest == 0 || src == 0)
      break; // the addresses are not complete yet
    const std::size_t header = 2 + dest + src + 1; // format .. control
    const bool has_info = length > header + 2;
    if (length < header + 2 || (has_info && length < header + 4)) {
      skip(1);
      continue;
    }
    if (has_info) {
      // The HCS settles whether this flag opened a frame before the whole length arrives.
      if (buffer_.size() < pos + 1 + header + 2)
        break;
      if (!crc_ok(std::string_view(buffer_).substr(pos + 1, header), buffer_[pos + 1 + header],
                  buffer_[pos + 2 + header])) {
        ++bad_frames_;
        skip(1);
        continue;
      }
    }
    if (buffer_.size() < pos + length + 2)
      break;
    if (buffer_[pos + length + 1] != flag) {
      skip(1);
      continue;
    }
    const std::string_view body = std::string_view(buffer_).substr(pos + 1, length);
    if (!crc_ok(body.substr(0, length - 2), body[length - 2], body[length - 1])) {
      ++bad_frames_;
      skip(length + 1);
      kept = pos;
      continue;
    }
    hdlc_frame f;
    f.segmented = (format & 0x08) != 0;
    f.destination = std::string(body.substr(2, dest));
    f.source = std::string(body.substr(2 + dest, src));
    f.control = u8(body[header - 1]);
    if (has_info)
      f.information = std::string(body.substr(header + 2, length - header - 4));
    result = std::move(f);
    pos += length + 1;
    kept = pos;
    break;
  }
  kept_flag_ = kept == pos && pos < buffer_.size();
  buffer_.erase(0, pos);
  return result;
}

std::string encode_hdlc_parameters(const hdlc_parameters& p) {
  auto length_size = [](std::uint32_t v) { return v < 256 ? 1 : v < 65536 ? 2 : 4; };
  std::string group;
  put_value(group, 0x05, p.max_info_transmit, length_size(p.max_info_transmit));
  put_value(group, 0x06, p.max_info_receive, length_size(p.max_info_receive));
  put_value(group, 0x07, p.window_transmit, 4);
  put_value(group, 0x08, p.window_receive, 4);
  return std::string{static_cast<char>(0x81), static_cast<char>(0x80), static_cast<char>(group.size())} + group;
}

std::optional<hdlc_parameters> decode_hdlc_parameters(std::string_view info) {
  hdlc_parameters p;
  if (info.empty())
    return p;
  if (info.size() < 3 || u8(info[0]) != 0x81 || u8(info[1]) != 0x80 || u8(info[2]) > info.size() - 3)
    return std::nullopt;
  std::string_view group = info.substr(3, u8(info[2])); // a user data group after it is ignored
  while (!group.empty()) {
    if (group.size() < 2)
      return std::nullopt;
    const auto id = u8(group[0]);
    const std::size_t size = u8(group[1]);
    if (size < 1 || size > 4 || group.size() < 2 + size)
      return std::nullopt;
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < size; ++i)
      v = v << 8 | u8(group[2 + i]);
    group.remove_prefix(2 + size);
    std::uint32_t* field = id == 0x05 ? &p.max_info_transmit
                           : id == 0x06 ? &p.max_info_receive
                           : id == 0x07 ? &p.window_transmit
                           : id == 0x08 ? &p.window_receive
                                        : nullptr;
    if (!field)
      continue; // a parameter we do not use
    if (v == 0)
      return std::nullopt;
    *field = v;
  }
  return p;
}

std::string encode_wrapper(std::uint16_t source_wport, std::uint16_t destination_wport, std::string_view apdu) {
  if (apdu.size() > 0xFFFF)
    throw std::length_error("APDU of " + std::to_string(apdu.size()) + " bytes does not fit the wrapper");
  std::string out;
  auto be16 = [&](std::size_t v) {
    out += static_cast<char>(v >> 8 & 0xFF);
    out += static_cast<char>(v & 0xFF);
  };
  be16(1);
  be16(source_wport);
  be16(destination_wport);
  be16(apdu.size());
  out += apdu;
  return out;
}

std::unique_ptr<client_link> make_hdlc_client(const hdlc_settings& settings) {
  return std::make_unique<hdlc_client>(settings);
}
std::unique_ptr<client_link> make_wrapper_client(const wrapper_settings& settings) {
  return std::make_unique<wrapper_client>(settings);
}
std::unique_ptr<server_link> make_hdlc_server(const hdlc_settings& settings) {
  return std::make_unique<hdlc_server>(settings);
}
std::unique_ptr<server_link> make_wrapper_server(const wrapper_settings& settings) {
  return std::make_unique<wrapper_server>(settings);
}

} // namespace mts::drivers::dlms
