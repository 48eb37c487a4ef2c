// xDLMS / ACSE APDUs (see dlms_apdu.hpp for the contract; byte layouts in the notes:
// meter-protocols.md §3.4-3.8, dlms-more.md §1, §2, §6).
//
// Decisions (in addition to the header's):
// - AARQ/AARE components are read as BER TLVs (one- or multi-byte tags, short or long
//   lengths); a component's inner TLV must fit inside it. Unknown components are skipped.
// - An AARQ/AARE naming a ciphered application context (08 01 03 / 08 01 04), or carrying a
//   glo-/ded- InitiateRequest/Response, is refused with apdu_error: ciphering is not supported.
// - A Data inside an APDU that fails to decode is reported as apdu_error "<PDU>: <A-XDR
//   message>", so callers catch one type; bytes left over after the last field are an error
//   (they would mean a reassembly fault below).
// - A decoder handed an ExceptionResponse or a ConfirmedServiceError where it expected its own
//   PDU throws apdu_error carrying that error's text, so a caller that did not look at the tag
//   first still reports the meter's reason.
// - The AARE carries 88/89 (requirements, mechanism) when `mechanism` is set and not none, AA
//   when responding_authentication is not empty, A4 when responding_ap_title is not empty.
#include "drivers/dlms_apdu.hpp"

#include <openssl/evp.h>

namespace mts::drivers::dlms {
namespace {

std::uint8_t byte_at(std::string_view s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

void put_be(std::string& out, std::uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A cursor over one APDU that throws apdu_error "<pdu>: truncated <what>" instead of reading
// past the end.
class reader {
public:
  reader(std::string_view in, const char* pdu) : in_(in), pdu_(pdu) {}

  [[noreturn]] void fail(const std::string& what) const { throw apdu_error(std::string(pdu_) + ": " + what); }
  bool at_end() const { return pos_ >= in_.size(); }
  std::size_t left() const { return in_.size() - pos_; }
  std::size_t pos() const { return pos_; }

  std::uint64_t be(int width, const char* what) {
    if (left() < static_cast<std::size_t>(width))
      fail(std::string("truncated ") + what);
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i)
      v = (v << 8) | byte_at(in_, pos_++);
    return v;
  }
  std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(be(1, what)); }
  std::uint16_t u16(const char* what) { return static_cast<std::uint16_t>(be(2, what)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(be(4, what)); }
  std::string_view bytes(std::size_t n, const char* what) {
    if (left() < n)
      fail(std::string("truncated ") + what);
    const auto v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::size_t axdr_length(const char* what) {
    try {
      return decode_length(in_, pos_);
    } catch (const axdr_error&) {
      fail(std::string("truncated or bad length of ") + what);
    }
  }
  // A SEQUENCE OF count; every element takes at least one byte, so a count beyond the input is
  // truncation (found before anything is reserved).
  std::size_t count(const char* what) {
    const auto n = axdr_length(what);
    if (n > left())
      fail(std::string("truncated ") + what);
    return n;
  }
  data value(const char* what) {
    try {
      return decode(in_, pos_);
    } catch (const axdr_error& e) {
      fail(std::string(what) + ": " + e.what());
    }
  }
  void finish() const {
    if (!at_end())
      fail(std::to_string(left()) + " unexpected bytes at the end");
  }

private:
  std::string_view in_;
  const char* pdu_;
  std::size_t pos_ = 0;
};

bool is_ciphered_tag(std::uint8_t t) { return t >= 0xC8 && t <= 0xDF && t != apdu_tag::exception_response; }

// The first byte of `apdu` must be `expected`; anything else is reported with what it is.
void expect_tag(std::string_view apdu, std::uint8_t expected, const char* pdu) {
  if (apdu.empty())
    throw apdu_error(std::string(pdu) + ": empty APDU");
  const auto t = byte_at(apdu, 0);
  if (t == expected)
    return;
  if (is_ciphered_tag(t))
    throw apdu_error("ciphered APDUs are not supported");
  if (t == apdu_tag::exception_response && apdu.size() >= 3)
    throw apdu_error(std::string(pdu) + " expected, got exception response: " +
                     exception_text(decode_exception_response(apdu)));
  if (t == apdu_tag::confirmed_service_error && apdu.size() >= 4)
    throw apdu_error(std::string(pdu) + " expected, got confirmed service error: " +
                     confirmed_service_error_text(decode_confirmed_service_error(apdu)));
  static constexpr char digits[] = "0123456789ABCDEF";
  throw apdu_error(std::string(pdu) + ": unexpected APDU tag 0x" + digits[t >> 4] + digits[t & 0x0F]);
}

// ---- BER (ACSE) ----

void ber_length(std::string& out, std::size_t n) {
  if (n < 0x80) {
    out += static_cast<char>(n);
  } else if (n <= 0xFF) {
    out += '\x81';
    out += static_cast<char>(n);
  } else {
    out += '\x82';
    put_be(out, n, 2);
  }
}

void ber_tlv(std::string& out, std::uint8_t tag, std::string_view content) {
  out += static_cast<char>(tag);
  ber_length(out, content.size());
  out += content;
}

struct tlv {
  std::uint32_t tag = 0; // the tag bytes, big-endian (5F 1F -> 0x5F1F)
  std::string_view content;
};

// One BER TLV at the reader; the content must lie inside the input.
tlv read_tlv(reader& r, const char* what) {
  tlv t;
  const auto first = r.u8(what);
  t.tag = first;
  if ((first & 0x1F) == 0x1F) {
    for (int i = 0; i < 3; ++i) {
      const auto b = r.u8(what);
      t.tag = (t.tag << 8) | b;
      if ((b & 0x80) == 0)
        break;
      if (i == 2)
        r.fail(std::string("tag too long in ") + what);
    }
  }
  std::size_t n = r.u8(what);
  if (n == 0x80)
    r.fail(std::string("indefinite length in ") + what);
  if (n > 0x80) {
    const int width = static_cast<int>(n & 0x7F);
    if (width > 4)
      r.fail(std::string("bad length in ") + what);
    n = static_cast<std::size_t>(r.be(width, what));
  }
  t.content = r.bytes(n, what);
  return t;
}

// The only TLV of `content`, which must have `tag`.
std::string_view inner(std::string_view content, std::uint32_t tag, const char* pdu, const char* what) {
  reader r(content, pdu);
  const auto t = read_tlv(r, what);
  if (t.tag != tag)
    r.fail(std::string("unexpected tag in ") + what);
  return t.content;
}

int ber_integer(std::string_view content, const char* pdu, const char* what) {
  if (content.empty() || content.size() > 4)
    throw apdu_error(std::string(pdu) + ": bad integer in " + what);
  std::uint32_t v = 0;
  for (char c : content)
    v = (v << 8) | static_cast<std::uint8_t>(c);
  const auto bits = 8 * static_cast<unsigned>(content.size());
  if (bits < 32 && (v >> (bits - 1)) != 0) // negative: sign-extend
    return static_cast<int>(static_cast<std::int64_t>(v) - (std::int64_t{1} << bits));
  return static_cast<int>(static_cast<std::int32_t>(v));
}

constexpr std::string_view context_prefix{"\x60\x85\x74\x05\x08\x01", 6};
constexpr std::string_view mechanism_prefix{"\x60\x85\x74\x05\x08\x02", 6};

std::string context_name(bool logical_names) {
  std::string oid(context_prefix);
  oid += logical_names ? '\x01' : '\x02';
  std::string out;
  ber_tlv(out, 0x06, oid);
  return out;
}

// A1 content: 06 07 60 85 74 05 08 01 0N -> LN (1) or SN (2).
bool parse_context(std::string_view a1, const char* pdu) {
  const auto oid = inner(a1, 0x06, pdu, "application context name");
  if (oid.size() != 7 || oid.substr(0, 6) != context_prefix)
    throw apdu_error(std::string(pdu) + ": unknown application context name");
  switch (byte_at(oid, 6)) {
  case 1: return true;
  case 2: return false;
  case 3:
  case 4: throw apdu_error("ciphered APDUs are not supported");
  default: throw apdu_error(std::string(pdu) + ": unknown application context name");
  }
}

std::string mechanism_oid(authentication a) {
  std::string oid(mechanism_prefix);
  oid += static_cast<char>(static_cast<int>(a));
  return oid;
}

authentication parse_mechanism(std::string_view oid, const char* pdu) {
  if (oid.size() != 7 || oid.substr(0, 6) != mechanism_prefix)
    throw apdu_error(std::string(pdu) + ": unknown authentication mechanism name");
  const int id = byte_at(oid, 6);
  if (id > 6)
    throw apdu_error(std::string(pdu) + ": unsupported authentication mechanism " + std::to_string(id));
  return static_cast<authentication>(id);
}

// Conformance block: 5F 1F 04 00 xx xx xx, or (tolerated) 5F 04 00 xx xx xx.
std::uint32_t read_conformance(reader& r) {
  if (r.u8("conformance") != 0x5F)
    r.fail("bad conformance tag");
  auto b = r.u8("conformance");
  if (b == 0x1F)
    b = r.u8("conformance");
  if (b != 0x04)
    r.fail("bad conformance length");
  r.u8("conformance"); // unused bits
  return static_cast<std::uint32_t>(r.be(3, "conformance"));
}

void write_conformance(std::string& out, std::uint32_t c) {
  out += "\x5F\x1F\x04";
  out += '\x00';
  put_be(out, c & 0xFFFFFF, 3);
}

// The octet-string wrapper of user-information: BE <L> 04 <L'> <xDLMS APDU>.
std::string user_information(std::string_view xdlms) {
  std::string octets;
  ber_tlv(octets, 0x04, xdlms);
  std::string out;
  ber_tlv(out, 0xBE, octets);
  return out;
}

// ---- texts ----

std::string service_error_value_text(int type, int value) {
  switch (type) {
  case 0: {
    static const char* t[] = {"other application reference error", "time elapsed", "application unreachable",
                              "application reference invalid", "application context unsupported",
                              "provider communication error", "deciphering error"};
    if (value >= 0 && value <= 6)
      return t[value];
    break;
  }
  case 1: {
    static const char* t[] = {"other hardware resource error", "memory unavailable",
                              "processor resource unavailable", "mass storage unavailable",
                              "other resource unavailable"};
    if (value >= 0 && value <= 4)
      return t[value];
    break;
  }
  case 2: {
    static const char* t[] = {"other VDE state error", "no DLMS context", "loading data set", "status no change",
                              "status inoperable"};
    if (value >= 0 && value <= 4)
      return t[value];
    break;
  }
  case 3: {
    static const char* t[] = {"other service error", "PDU size", "service unsupported"};
    if (value >= 0 && value <= 2)
      return t[value];
    break;
  }
  case 4: {
    static const char* t[] = {"other definition error", "object undefined", "object class inconsistent",
                              "object attribute inconsistent"};
    if (value >= 0 && value <= 3)
      return t[value];
    break;
  }
  case 5: {
    static const char* t[] = {"other access error", "scope of access violated", "object access violated",
                              "hardware fault", "object unavailable"};
    if (value >= 0 && value <= 4)
      return t[value];
    break;
  }
  case 6: {
    static const char* t[] = {"other initiate error", "DLMS version too low", "incompatible conformance",
                              "PDU size too short", "refused by the VDE handler"};
    if (value >= 0 && value <= 4)
      return t[value];
    break;
  }
  case 7: return "load data set error " + std::to_string(value);
  case 9: return "task error " + std::to_string(value);
  default: break;
  }
  return "service error " + std::to_string(type) + "/" + std::to_string(value);
}

std::string service_name(int service) {
  switch (service) {
  case 1: return "initiate";
  case 2: return "get status";
  case 3: return "get name list";
  case 4: return "get variable attribute";
  case 5: return "read";
  case 6: return "write";
  case 7: return "get data set attribute";
  case 8: return "get TI attribute";
  case 9: return "change scope";
  case 10: return "start";
  case 11: return "stop";
  case 12: return "resume";
  case 13: return "make usable";
  case 14: return "initiate load";
  case 15: return "load segment";
  case 16: return "terminate load";
  case 17: return "initiate upload";
  case 18: return "upload segment";
  case 19: return "terminate upload";
  default: return "service " + std::to_string(service);
  }
}

// ---- HLS ----

std::string digest(const EVP_MD* md, std::string_view input) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(input.data(), input.size(), out, &n, md, nullptr) != 1)
    throw apdu_error("HLS: digest failed");
  return std::string(reinterpret_cast<const char*>(out), n);
}

} // namespace

// ---- authentication names ----

std::string authentication_name(authentication a) {
  switch (a) {
  case authentication::none: return "none";
  case authentication::low: return "low";
  case authentication::high: return "high";
  case authentication::high_md5: return "high-md5";
  case authentication::high_sha1: return "high-sha1";
  case authentication::high_gmac: return "high-gmac";
  case authentication::high_sha256: return "high-sha256";
  }
  return "unknown";
}

std::optional<authentication> parse_authentication(std::string_view name) {
  for (int i = 0; i <= 6; ++i) {
    const auto a = static_cast<authentication>(i);
    if (name == authentication_name(a))
      return a;
  }
  return std::nullopt;
}

// ---- AARQ ----

std::string encode_aarq(const aarq& a) {
  std::string body;
  ber_tlv(body, 0xA1, context_name(a.logical_names));
  if (!a.calling_ap_title.empty()) {
    std::string title;
    ber_tlv(title, 0x04, a.calling_ap_title);
    ber_tlv(body, 0xA6, title);
  }
  if (a.mechanism != authentication::none) {
    ber_tlv(body, 0x8A, std::string_view("\x07\x80", 2)); // sender requirements: authentication
    ber_tlv(body, 0x8B, mechanism_oid(a.mechanism));
    std::string value;
    ber_tlv(value, 0x80, a.calling_authentication); // GraphicString choice
    ber_tlv(body, 0xAC, value);
  }
  std::string initiate;
  initiate += '\x01';                           // InitiateRequest
  initiate += '\x00';                           // no dedicated key
  initiate += '\x00';                           // response-allowed: default (true)
  initiate += '\x00';                           // no proposed quality of service
  initiate += static_cast<char>(a.dlms_version);
  write_conformance(initiate, a.proposed_conformance);
  put_be(initiate, a.max_receive_pdu, 2);
  body += user_information(initiate);
  std::string out;
  ber_tlv(out, apdu_tag::aarq, body);
  return out;
}

aarq decode_aarq(std::string_view apdu) {
  constexpr const char* pdu = "AARQ";
  expect_tag(apdu, apdu_tag::aarq, pdu);
  reader outer(apdu, pdu);
  const auto whole = read_tlv(outer, "AARQ");
  outer.finish();
  aarq a;
  bool have_context = false, have_initiate = false;
  reader r(whole.content, pdu);
  while (!r.at_end()) {
    const auto c = read_tlv(r, "AARQ component");
    switch (c.tag) {
    case 0xA1:
      a.logical_names = parse_context(c.content, pdu);
      have_context = true;
      break;
    case 0xA6: a.calling_ap_title = std::string(inner(c.content, 0x04, pdu, "calling AP title")); break;
    case 0x8B: a.mechanism = parse_mechanism(c.content, pdu); break;
    case 0xAC: {
      reader v(c.content, pdu);
      a.calling_authentication = std::string(read_tlv(v, "calling authentication value").content);
      break;
    }
    case 0xBE: {
      const auto octets = inner(c.content, 0x04, pdu, "user information");
      reader u(octets, pdu);
      const auto kind = u.u8("InitiateRequest");
      if (kind != 0x01) {
        if (kind >= 0x21 && kind <= 0x2F)
          throw apdu_error("ciphered APDUs are not supported");
        u.fail("user information is not an InitiateRequest");
      }
      if (u.u8("dedicated key") != 0) // present: skipped (it only matters for ciphering)
        u.bytes(u.axdr_length("dedicated key"), "dedicated key");
      if (u.u8("response allowed") != 0)
        u.u8("response allowed");
      if (u.u8("quality of service") != 0)
        u.u8("quality of service");
      a.dlms_version = u.u8("DLMS version");
      a.proposed_conformance = read_conformance(u);
      a.max_receive_pdu = u.u16("max receive PDU size");
      u.finish();
      have_initiate = true;
      break;
    }
    default: break; // other ACSE fields (AP titles, requirements...) carry nothing we use
    }
  }
  if (!have_context)
    r.fail("missing application context name");
  if (!have_initiate)
    r.fail("missing user information (InitiateRequest)");
  return a;
}

// ---- AARE ----

std::string encode_aare(const aare& a) {
  std::string body;
  ber_tlv(body, 0xA1, context_name(a.logical_names));
  {
    std::string result;
    ber_tlv(result, 0x02, std::string(1, static_cast<char>(a.result)));
    ber_tlv(body, 0xA2, result);
  }
  {
    std::string integer, choice;
    ber_tlv(integer, 0x02, std::string(1, static_cast<char>(a.diagnostic)));
    ber_tlv(choice, a.diagnostic_source == 2 ? 0xA2 : 0xA1, integer);
    ber_tlv(body, 0xA3, choice);
  }
  if (!a.responding_ap_title.empty()) {
    std::string title;
    ber_tlv(title, 0x04, a.responding_ap_title);
    ber_tlv(body, 0xA4, title);
  }
  if (a.mechanism && *a.mechanism != authentication::none) {
    ber_tlv(body, 0x88, std::string_view("\x07\x80", 2));
    ber_tlv(body, 0x89, mechanism_oid(*a.mechanism));
  }
  if (!a.responding_authentication.empty()) {
    std::string value;
    ber_tlv(value, 0x80, a.responding_authentication);
    ber_tlv(body, 0xAA, value);
  }
  if (a.initiate_error) {
    body += user_information(
        encode_confirmed_service_error({1, a.initiate_error->first, a.initiate_error->second}));
  } else if (a.has_initiate_response) {
    std::string initiate;
    initiate += '\x08'; // InitiateResponse
    initiate += '\x00'; // no negotiated quality of service
    initiate += static_cast<char>(a.dlms_version);
    write_conformance(initiate, a.negotiated_conformance);
    put_be(initiate, a.max_receive_pdu, 2);
    put_be(initiate, a.vaa_name, 2);
    body += user_information(initiate);
  }
  std::string out;
  ber_tlv(out, apdu_tag::aare, body);
  return out;
}

aare decode_aare(std::string_view apdu) {
  constexpr const char* pdu = "AARE";
  expect_tag(apdu, apdu_tag::aare, pdu);
  reader outer(apdu, pdu);
  const auto whole = read_tlv(outer, "AARE");
  outer.finish();
  aare a;
  bool have_result = false;
  reader r(whole.content, pdu);
  while (!r.at_end()) {
    const auto c = read_tlv(r, "AARE component");
    switch (c.tag) {
    case 0xA1: a.logical_names = parse_context(c.content, pdu); break;
    case 0xA2:
      a.result = ber_integer(inner(c.content, 0x02, pdu, "result field"), pdu, "result field");
      have_result = true;
      break;
    case 0xA3: {
      reader d(c.content, pdu);
      const auto choice = read_tlv(d, "result source diagnostic");
      if (choice.tag != 0xA1 && choice.tag != 0xA2)
        d.fail("unknown result source diagnostic");
      a.diagnostic_source = choice.tag == 0xA1 ? 1 : 2;
      a.diagnostic = ber_integer(inner(choice.content, 0x02, pdu, "result source diagnostic"), pdu,
                                 "result source diagnostic");
      break;
    }
    case 0xA4: a.responding_ap_title = std::string(inner(c.content, 0x04, pdu, "responding AP title")); break;
    case 0x89: a.mechanism = parse_mechanism(c.content, pdu); break;
    case 0xAA: {
      reader v(c.content, pdu);
      a.responding_authentication = std::string(read_tlv(v, "responding authentication value").content);
      break;
    }
    case 0xBE: {
      const auto octets = inner(c.content, 0x04, pdu, "user information");
      reader u(octets, pdu);
      const auto kind = u.u8("user information");
      if (kind == apdu_tag::confirmed_service_error) {
        const auto e = decode_confirmed_service_error(octets);
        a.initiate_error = std::make_pair(e.error_type, e.value);
        break;
      }
      if (kind != 0x08) {
        if (kind >= 0x21 && kind <= 0x2F)
          throw apdu_error("ciphered APDUs are not supported");
        u.fail("user information is not an InitiateResponse");
      }
      if (u.u8("quality of service") != 0)
        u.u8("quality of service");
      a.dlms_version = u.u8("DLMS version");
      a.negotiated_conformance = read_conformance(u);
      a.max_receive_pdu = u.u16("max receive PDU size");
      a.vaa_name = u.u16("VAA name");
      u.finish();
      a.has_initiate_response = true;
      break;
    }
    default: break;
    }
  }
  if (!have_result)
    r.fail("missing result field");
  return a;
}

std::string encode_rlrq() { return std::string("\x62\x03\x80\x01\x00", 5); }
std::string encode_rlre() { return std::string("\x63\x03\x80\x01\x00", 5); }

// ---- selective access ----

selective_access range_access(const cosem_datetime& from, const cosem_datetime& to) {
  const obis clock{0, 0, 1, 0, 0, 255};
  selective_access s;
  s.selector = 1;
  s.parameter = data::structure({
      data::structure({data::long_unsigned16(8), data::octet_string(obis_bytes(clock)), data::integer8(2),
                       data::long_unsigned16(0)}),
      data::octet_string(encode_datetime(from)),
      data::octet_string(encode_datetime(to)),
      data::array({}),
  });
  return s;
}

selective_access entry_access(std::uint32_t from_entry, std::uint32_t to_entry, std::uint16_t from_column,
                              std::uint16_t to_column) {
  selective_access s;
  s.selector = 2;
  s.parameter = data::structure({data::double_long_unsigned32(from_entry), data::double_long_unsigned32(to_entry),
                                 data::long_unsigned16(from_column), data::long_unsigned16(to_column)});
  return s;
}

// ---- GET ----

std::string encode_get_request(const get_request& r) {
  std::string out;
  out += static_cast<char>(apdu_tag::get_request);
  if (r.type == get_request::kind::next) {
    out += '\x02';
    out += static_cast<char>(r.invoke_id);
    put_be(out, r.block_number, 4);
    return out;
  }
  out += '\x01';
  out += static_cast<char>(r.invoke_id);
  put_be(out, r.attribute.class_id, 2);
  out += obis_bytes(r.attribute.instance);
  out += static_cast<char>(r.attribute.attribute);
  if (r.access) {
    out += '\x01';
    out += static_cast<char>(r.access->selector);
    encode_to(out, r.access->parameter);
  } else {
    out += '\x00';
  }
  return out;
}

get_request decode_get_request(std::string_view apdu) {
  constexpr const char* pdu = "GET-Request";
  expect_tag(apdu, apdu_tag::get_request, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  get_request g;
  const auto choice = r.u8("request type");
  g.invoke_id = r.u8("invoke id");
  if (choice == 2) {
    g.type = get_request::kind::next;
    g.block_number = r.u32("block number");
  } else if (choice == 1) {
    g.type = get_request::kind::normal;
    g.attribute.class_id = r.u16("class id");
    const auto ln = r.bytes(6, "instance id");
    for (std::size_t i = 0; i < 6; ++i)
      g.attribute.instance[i] = byte_at(ln, i);
    g.attribute.attribute = static_cast<std::int8_t>(r.u8("attribute id"));
    if (r.u8("access selection flag") != 0) {
      selective_access s;
      s.selector = r.u8("access selector");
      s.parameter = r.value("access parameters");
      g.access = std::move(s);
    }
  } else if (choice == 3) {
    r.fail("get-request-with-list is not supported");
  } else {
    r.fail("unknown request type " + std::to_string(choice));
  }
  r.finish();
  return g;
}

std::string encode_get_response(const get_response& r) {
  std::string out;
  out += static_cast<char>(apdu_tag::get_response);
  if (r.type == get_response::kind::with_block) {
    out += '\x02';
    out += static_cast<char>(r.invoke_id);
    out += r.last_block ? '\x01' : '\x00';
    put_be(out, r.block_number, 4);
    if (r.access_error) {
      out += '\x01';
      out += static_cast<char>(*r.access_error);
    } else {
      out += '\x00';
      encode_length(out, r.raw.size());
      out += r.raw;
    }
    return out;
  }
  out += '\x01';
  out += static_cast<char>(r.invoke_id);
  if (r.access_error) {
    out += '\x01';
    out += static_cast<char>(*r.access_error);
  } else {
    out += '\x00';
    encode_to(out, r.value ? *r.value : data::null());
  }
  return out;
}

get_response decode_get_response(std::string_view apdu) {
  constexpr const char* pdu = "GET-Response";
  expect_tag(apdu, apdu_tag::get_response, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  get_response g;
  const auto choice = r.u8("response type");
  g.invoke_id = r.u8("invoke id");
  if (choice == 1) {
    g.type = get_response::kind::normal;
    const auto result = r.u8("result");
    if (result == 0)
      g.value = r.value("data");
    else if (result == 1)
      g.access_error = r.u8("data access result");
    else
      r.fail("bad result choice " + std::to_string(result));
  } else if (choice == 2) {
    g.type = get_response::kind::with_block;
    g.last_block = r.u8("last block") != 0;
    g.block_number = r.u32("block number");
    const auto result = r.u8("result");
    if (result == 0) {
      const auto n = r.axdr_length("raw data");
      g.raw = std::string(r.bytes(n, "raw data"));
    } else if (result == 1) {
      g.access_error = r.u8("data access result");
    } else {
      r.fail("bad result choice " + std::to_string(result));
    }
  } else if (choice == 3) {
    r.fail("get-response-with-list is not supported");
  } else {
    r.fail("unknown response type " + std::to_string(choice));
  }
  r.finish();
  return g;
}

// ---- ACTION ----

std::string encode_action_request(const action_request& r) {
  std::string out;
  out += static_cast<char>(apdu_tag::action_request);
  out += '\x01';
  out += static_cast<char>(r.invoke_id);
  put_be(out, r.class_id, 2);
  out += obis_bytes(r.instance);
  out += static_cast<char>(r.method);
  if (r.parameter) {
    out += '\x01';
    encode_to(out, *r.parameter);
  } else {
    out += '\x00';
  }
  return out;
}

action_request decode_action_request(std::string_view apdu) {
  constexpr const char* pdu = "ACTION-Request";
  expect_tag(apdu, apdu_tag::action_request, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  const auto choice = r.u8("request type");
  if (choice != 1)
    r.fail("request type " + std::to_string(choice) + " is not supported");
  action_request a;
  a.invoke_id = r.u8("invoke id");
  a.class_id = r.u16("class id");
  const auto ln = r.bytes(6, "instance id");
  for (std::size_t i = 0; i < 6; ++i)
    a.instance[i] = byte_at(ln, i);
  a.method = r.u8("method id");
  if (r.u8("parameter flag") != 0)
    a.parameter = r.value("method parameters");
  r.finish();
  return a;
}

std::string encode_action_response(const action_response& r) {
  std::string out;
  out += static_cast<char>(apdu_tag::action_response);
  out += '\x01';
  out += static_cast<char>(r.invoke_id);
  out += static_cast<char>(r.result);
  if (r.access_error) {
    out += "\x01\x01";
    out += static_cast<char>(*r.access_error);
  } else if (r.value) {
    out += '\x01';
    out += '\x00';
    encode_to(out, *r.value);
  } else {
    out += '\x00';
  }
  return out;
}

action_response decode_action_response(std::string_view apdu) {
  constexpr const char* pdu = "ACTION-Response";
  expect_tag(apdu, apdu_tag::action_response, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  const auto choice = r.u8("response type");
  if (choice != 1)
    r.fail("response type " + std::to_string(choice) + " is not supported");
  action_response a;
  a.invoke_id = r.u8("invoke id");
  a.result = r.u8("action result");
  if (r.u8("return parameters flag") != 0) {
    const auto kind = r.u8("return parameters");
    if (kind == 0)
      a.value = r.value("return data");
    else if (kind == 1)
      a.access_error = r.u8("data access result");
    else
      r.fail("bad return parameters choice " + std::to_string(kind));
  }
  r.finish();
  return a;
}

// ---- SN ----

namespace {

void encode_variable_access(std::string& out, const variable_access& v) {
  out += static_cast<char>(v.type);
  switch (v.type) {
  case variable_access::kind::name: put_be(out, v.name, 2); break;
  case variable_access::kind::parameterized:
    put_be(out, v.name, 2);
    out += static_cast<char>(v.selector);
    encode_to(out, v.parameter);
    break;
  case variable_access::kind::block_number: put_be(out, v.block_number, 2); break;
  }
}

variable_access decode_variable_access(reader& r) {
  variable_access v;
  const auto kind = r.u8("variable access specification");
  switch (kind) {
  case 2:
    v.type = variable_access::kind::name;
    v.name = r.u16("variable name");
    break;
  case 4:
    v.type = variable_access::kind::parameterized;
    v.name = r.u16("variable name");
    v.selector = r.u8("selector");
    v.parameter = r.value("parameter");
    break;
  case 5:
    v.type = variable_access::kind::block_number;
    v.block_number = r.u16("block number");
    break;
  default: r.fail("variable access specification " + std::to_string(kind) + " is not supported");
  }
  return v;
}

} // namespace

std::string encode_read_request(const std::vector<variable_access>& items) {
  std::string out;
  out += static_cast<char>(apdu_tag::read_request);
  encode_length(out, items.size());
  for (const auto& v : items)
    encode_variable_access(out, v);
  return out;
}

std::vector<variable_access> decode_read_request(std::string_view apdu) {
  constexpr const char* pdu = "ReadRequest";
  expect_tag(apdu, apdu_tag::read_request, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  const auto n = r.count("variable list");
  std::vector<variable_access> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(decode_variable_access(r));
  r.finish();
  return out;
}

std::string encode_read_response(const std::vector<read_result>& results) {
  std::string out;
  out += static_cast<char>(apdu_tag::read_response);
  encode_length(out, results.size());
  for (const auto& res : results) {
    out += static_cast<char>(res.type);
    switch (res.type) {
    case read_result::kind::data: encode_to(out, res.value); break;
    case read_result::kind::access_error: out += static_cast<char>(res.access_error); break;
    case read_result::kind::data_block:
      out += res.last_block ? '\x01' : '\x00';
      put_be(out, res.block_number, 2);
      encode_length(out, res.raw.size());
      out += res.raw;
      break;
    case read_result::kind::block_number: put_be(out, res.block_number, 2); break;
    }
  }
  return out;
}

std::vector<read_result> decode_read_response(std::string_view apdu) {
  constexpr const char* pdu = "ReadResponse";
  expect_tag(apdu, apdu_tag::read_response, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  const auto n = r.count("result list");
  std::vector<read_result> out;
  for (std::size_t i = 0; i < n; ++i) {
    read_result res;
    const auto kind = r.u8("result choice");
    switch (kind) {
    case 0:
      res.type = read_result::kind::data;
      res.value = r.value("data");
      break;
    case 1:
      res.type = read_result::kind::access_error;
      res.access_error = r.u8("data access error");
      break;
    case 2: {
      res.type = read_result::kind::data_block;
      res.last_block = r.u8("last block") != 0;
      res.block_number = r.u16("block number");
      const auto len = r.axdr_length("raw data");
      res.raw = std::string(r.bytes(len, "raw data"));
      break;
    }
    case 3:
      res.type = read_result::kind::block_number;
      res.block_number = r.u16("block number");
      break;
    default: r.fail("unknown result choice " + std::to_string(kind));
    }
    out.push_back(std::move(res));
  }
  r.finish();
  return out;
}

std::string encode_write_request(const std::vector<variable_access>& items, const std::vector<data>& values) {
  std::string out;
  out += static_cast<char>(apdu_tag::write_request);
  encode_length(out, items.size());
  for (const auto& v : items)
    encode_variable_access(out, v);
  encode_length(out, values.size());
  for (const auto& d : values)
    encode_to(out, d);
  return out;
}

std::pair<std::vector<variable_access>, std::vector<data>> decode_write_request(std::string_view apdu) {
  constexpr const char* pdu = "WriteRequest";
  expect_tag(apdu, apdu_tag::write_request, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  std::pair<std::vector<variable_access>, std::vector<data>> out;
  const auto n = r.count("variable list");
  for (std::size_t i = 0; i < n; ++i)
    out.first.push_back(decode_variable_access(r));
  const auto m = r.count("data list");
  for (std::size_t i = 0; i < m; ++i)
    out.second.push_back(r.value("data"));
  r.finish();
  return out;
}

std::string encode_write_response(const std::vector<write_result>& results) {
  std::string out;
  out += static_cast<char>(apdu_tag::write_response);
  encode_length(out, results.size());
  for (const auto& res : results) {
    if (res.success) {
      out += '\x00';
    } else {
      out += '\x01';
      out += static_cast<char>(res.access_error);
    }
  }
  return out;
}

std::vector<write_result> decode_write_response(std::string_view apdu) {
  constexpr const char* pdu = "WriteResponse";
  expect_tag(apdu, apdu_tag::write_response, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  const auto n = r.count("result list");
  std::vector<write_result> out;
  for (std::size_t i = 0; i < n; ++i) {
    write_result res;
    const auto kind = r.u8("result choice");
    if (kind == 0) {
      res.success = true;
    } else if (kind == 1) {
      res.success = false;
      res.access_error = r.u8("data access error");
    } else if (kind == 2) {
      r.fail("block-number result is not supported");
    } else {
      r.fail("unknown result choice " + std::to_string(kind));
    }
    out.push_back(res);
  }
  r.finish();
  return out;
}

// ---- errors ----

std::string encode_exception_response(const exception_response& e) {
  std::string out;
  out += static_cast<char>(apdu_tag::exception_response);
  out += static_cast<char>(e.state_error);
  out += static_cast<char>(e.service_error);
  return out;
}

exception_response decode_exception_response(std::string_view apdu) {
  constexpr const char* pdu = "ExceptionResponse";
  expect_tag(apdu, apdu_tag::exception_response, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  exception_response e;
  e.state_error = r.u8("state error");
  e.service_error = r.u8("service error");
  // invocation-counter-error carries the expected counter (4 bytes); anything after is ignored.
  return e;
}

std::string encode_confirmed_service_error(const confirmed_service_error& e) {
  std::string out;
  out += static_cast<char>(apdu_tag::confirmed_service_error);
  out += static_cast<char>(e.service);
  out += static_cast<char>(e.error_type);
  out += static_cast<char>(e.value);
  return out;
}

confirmed_service_error decode_confirmed_service_error(std::string_view apdu) {
  constexpr const char* pdu = "ConfirmedServiceError";
  expect_tag(apdu, apdu_tag::confirmed_service_error, pdu);
  reader r(apdu, pdu);
  r.u8("tag");
  confirmed_service_error e;
  e.service = r.u8("service");
  e.error_type = r.u8("error type");
  e.value = r.u8("error value");
  r.finish();
  return e;
}

std::string data_access_result_text(int code) {
  switch (code) {
  case 0: return "success";
  case 1: return "hardware fault";
  case 2: return "temporary failure";
  case 3: return "read-write denied";
  case 4: return "object undefined";
  case 9: return "object class inconsistent";
  case 11: return "object unavailable";
  case 12: return "type unmatched";
  case 13: return "scope of access violated";
  case 14: return "data block unavailable";
  case 15: return "long get aborted";
  case 16: return "no long get in progress";
  case 17: return "long set aborted";
  case 18: return "no long set in progress";
  case 19: return "data block number invalid";
  case 250: return "other reason";
  default: return "data access error " + std::to_string(code);
  }
}

std::string association_diagnostic_text(int source, int diagnostic) {
  if (source == 2) {
    switch (diagnostic) {
    case 0: return "null";
    case 1: return "no reason given";
    case 2: return "no common ACSE version";
    default: break;
    }
    return "ACSE service provider diagnostic " + std::to_string(diagnostic);
  }
  switch (diagnostic) {
  case 0: return "null";
  case 1: return "no reason given";
  case 2: return "application context name not supported";
  case 3: return "calling AP title not recognised";
  case 4: return "calling AP invocation id not recognised";
  case 5: return "calling AE qualifier not recognised";
  case 6: return "calling AE invocation id not recognised";
  case 7: return "called AP title not recognised";
  case 8: return "called AP invocation id not recognised";
  case 9: return "called AE qualifier not recognised";
  case 10: return "called AE invocation id not recognised";
  case 11: return "authentication mechanism name not recognised";
  case 12: return "authentication mechanism name required";
  case 13: return "authentication failure";
  case 14: return "authentication required";
  default: break;
  }
  return "ACSE service user diagnostic " + std::to_string(diagnostic);
}

std::string association_result_text(int result) {
  switch (result) {
  case 0: return "accepted";
  case 1: return "rejected permanently";
  case 2: return "rejected transiently";
  default: return "association result " + std::to_string(result);
  }
}

std::string exception_text(const exception_response& e) {
  std::string state;
  switch (e.state_error) {
  case 1: state = "service not allowed"; break;
  case 2: state = "service unknown"; break;
  default: state = "state error " + std::to_string(e.state_error); break;
  }
  std::string service;
  switch (e.service_error) {
  case 1: service = "operation not possible"; break;
  case 2: service = "service not supported"; break;
  case 3: service = "other reason"; break;
  case 4: service = "PDU too long"; break;
  case 5: service = "deciphering error"; break;
  case 6: service = "invocation counter error"; break;
  default: service = "service error " + std::to_string(e.service_error); break;
  }
  return state + ": " + service;
}

std::string confirmed_service_error_text(const confirmed_service_error& e) {
  return service_name(e.service) + " refused: " + service_error_value_text(e.error_type, e.value);
}

std::string initiate_error_text(int error_type, int value) { return service_error_value_text(error_type, value); }

// ---- HLS ----

std::string hls_response(authentication mechanism, std::string_view secret, std::string_view challenge,
                         std::string_view own_title, std::string_view peer_title, std::string_view own_challenge) {
  std::string input;
  switch (mechanism) {
  case authentication::high_md5:
    input.append(challenge).append(secret);
    return digest(EVP_md5(), input);
  case authentication::high_sha1:
    input.append(challenge).append(secret);
    return digest(EVP_sha1(), input);
  case authentication::high_sha256:
    input.append(secret).append(own_title).append(peer_title).append(challenge).append(own_challenge);
    return digest(EVP_sha256(), input);
  default:
    throw apdu_error("HLS: cannot compute the response for authentication " + authentication_name(mechanism));
  }
}

} // namespace mts::drivers::dlms
