#pragma once
// DLMS/COSEM application layer PDUs (IEC 62056-5-3 xDLMS, ACSE per IEC 62056-5-3 annex):
// AARQ/AARE, RLRQ/RLRE, GET (LN referencing: normal, next, with block, selective access),
// ACTION (for HLS pass 3/4), Read/Write (SN referencing), ExceptionResponse and
// ConfirmedServiceError, HLS response computation and the texts of every error code. Both
// directions of each PDU: the client driver encodes requests and decodes responses; the
// simulated meter does the reverse. Pure functions; no ciphering (glo-/ded- PDUs are
// recognised and refused with a clear apdu_error).
//
// Decisions:
// - Decoders are liberal where the standard or real meters allow it: AARE without
//   user-information (a rejection), InitiateResponse conformance as 5F 1F 04 00 xx xx xx or
//   5F 04 00 xx xx xx, unknown AARE/AARQ tags skipped by their BER length, lengths in long form.
// - Encoders are strict and produce exactly the published vectors (docs/dlms.md).
// - Every decoder throws apdu_error (naming what was wrong) on truncated or malformed input;
//   none reads out of bounds.
#include "drivers/dlms_axdr.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mts::drivers::dlms {

struct apdu_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// APDU tags (first byte).
namespace apdu_tag {
inline constexpr std::uint8_t read_request = 0x05, write_request = 0x06, read_response = 0x0C,
                              write_response = 0x0D, confirmed_service_error = 0x0E, aarq = 0x60,
                              aare = 0x61, rlrq = 0x62, rlre = 0x63, get_request = 0xC0,
                              set_request = 0xC1, action_request = 0xC3, get_response = 0xC4,
                              set_response = 0xC5, action_response = 0xC7, exception_response = 0xD8;
} // namespace apdu_tag

// Authentication mechanism ids (mechanism name 60 85 74 05 08 02 <id>).
enum class authentication { none = 0, low = 1, high = 2, high_md5 = 3, high_sha1 = 4, high_gmac = 5, high_sha256 = 6 };
// "none", "low", "high-md5", ...: the meter-type setting's spelling.
std::string authentication_name(authentication a);
std::optional<authentication> parse_authentication(std::string_view name);

// Conformance bits as a 24-bit value (bit 23 = the MSB of the first byte = conformance bit 0;
// Green Book bit n is 1 << (23 - n): parameterized-access is bit 18 = 0x20, as in SN 1C 03 20).
namespace conformance {
inline constexpr std::uint32_t read = 0x100000, write = 0x080000, unconfirmed_write = 0x040000,
                               attribute0_set = 0x008000, priority_mgmt = 0x004000,
                               attribute0_get = 0x002000, block_transfer_get_or_read = 0x001000,
                               block_transfer_set_or_write = 0x000800, block_transfer_action = 0x000400,
                               multiple_references = 0x000200, information_report = 0x000100,
                               data_notification = 0x000080, access = 0x000040,
                               parameterized_access = 0x000020, get = 0x000010, set = 0x000008,
                               selective_access = 0x000004, event_notification = 0x000002, action = 0x000001;
// What the client proposes: LN 00 7E 1F (notes' vector), SN 1C 03 20.
inline constexpr std::uint32_t ln_client = 0x007E1F, sn_client = 0x1C0320;
} // namespace conformance

// ---- association ----
struct aarq {
  bool logical_names = true; // application context LN (08 01 01) or SN (08 01 02), no ciphering
  authentication mechanism = authentication::none;
  std::string calling_authentication; // LLS: the password; HLS: the client's challenge CtoS
  std::string calling_ap_title;       // system title (8 bytes), sent only when not empty
  std::uint32_t proposed_conformance = conformance::ln_client;
  std::uint16_t max_receive_pdu = 0xFFFF;
  std::uint8_t dlms_version = 6;
};
// The AARQ with its user-information (xDLMS InitiateRequest): exactly the notes' vectors for
// none and LLS (8A 02 07 80, 8B 07 ..., AC .. 80 ..; absent for none).
std::string encode_aarq(const aarq& a);
aarq decode_aarq(std::string_view apdu);

struct aare {
  int result = 0;            // 0 accepted, 1 rejected-permanent, 2 rejected-transient
  int diagnostic_source = 1; // 1 acse-service-user, 2 acse-service-provider
  int diagnostic = 0;
  std::optional<authentication> mechanism;
  std::string responding_authentication; // HLS: the server's challenge StoC
  std::string responding_ap_title;
  bool logical_names = true;
  // xDLMS InitiateResponse (absent in a rejection without user-information)
  bool has_initiate_response = false;
  std::uint8_t dlms_version = 6;
  std::uint32_t negotiated_conformance = 0;
  std::uint16_t max_receive_pdu = 0; // the server's maximum receive PDU size
  std::uint16_t vaa_name = 0x0007;   // LN 0x0007; SN the Association SN base name (0xFA00)
  // An InitiateError in the user-information instead (0E 01 <type> <value>).
  std::optional<std::pair<int, int>> initiate_error;
};
std::string encode_aare(const aare& a);
aare decode_aare(std::string_view apdu);

// RLRQ reason normal (62 03 80 01 00) and RLRE (63 03 80 01 00).
std::string encode_rlrq();
std::string encode_rlre();

// ---- LN services ----
struct attribute_ref {
  std::uint16_t class_id = 0;
  obis instance{};
  std::int8_t attribute = 2;
  bool operator==(const attribute_ref& o) const {
    return class_id == o.class_id && instance == o.instance && attribute == o.attribute;
  }
};
struct selective_access {
  std::uint8_t selector = 1; // 1 range descriptor, 2 entry descriptor
  data parameter;
};
// Range descriptor on the clock column {8, 0.0.1.0.0.255, 2, 0} (notes §3.8), all columns.
selective_access range_access(const cosem_datetime& from, const cosem_datetime& to);
// Entry descriptor: entries from..to (1-based, to 0 = last), columns from..to (to 0 = last).
selective_access entry_access(std::uint32_t from_entry, std::uint32_t to_entry, std::uint16_t from_column = 1,
                              std::uint16_t to_column = 0);

inline constexpr std::uint8_t default_invoke_id = 0xC1; // high priority, confirmed, id 1

struct get_request {
  enum class kind { normal, next } type = kind::normal;
  std::uint8_t invoke_id = default_invoke_id;
  attribute_ref attribute;                 // normal
  std::optional<selective_access> access;  // normal
  std::uint32_t block_number = 0;          // next: the block just received
};
std::string encode_get_request(const get_request& r);
get_request decode_get_request(std::string_view apdu); // get-request-with-list: apdu_error

struct get_response {
  enum class kind { normal, with_block } type = kind::normal;
  std::uint8_t invoke_id = default_invoke_id;
  std::optional<data> value;       // normal, success
  std::optional<int> access_error; // normal or block: data-access-result
  bool last_block = false;         // with_block
  std::uint32_t block_number = 0;  // with_block
  std::string raw;                 // with_block: this block's raw bytes
};
std::string encode_get_response(const get_response& r);
get_response decode_get_response(std::string_view apdu);

struct action_request {
  std::uint8_t invoke_id = default_invoke_id;
  std::uint16_t class_id = 15;
  obis instance{0, 0, 40, 0, 0, 255};
  std::uint8_t method = 1;
  std::optional<data> parameter;
};
std::string encode_action_request(const action_request& r);
action_request decode_action_request(std::string_view apdu);

struct action_response {
  std::uint8_t invoke_id = default_invoke_id;
  int result = 0;                  // action-result
  std::optional<data> value;       // return data
  std::optional<int> access_error; // return data was a data-access-result
};
std::string encode_action_response(const action_response& r);
action_response decode_action_response(std::string_view apdu);

// ---- SN services ----
struct variable_access {
  enum class kind { name = 2, parameterized = 4, block_number = 5 } type = kind::name;
  std::uint16_t name = 0; // short name (name, parameterized)
  std::uint8_t selector = 0;
  data parameter;
  std::uint16_t block_number = 0; // block_number: the block just received
};
std::string encode_read_request(const std::vector<variable_access>& items);
std::vector<variable_access> decode_read_request(std::string_view apdu);

struct read_result {
  enum class kind { data = 0, access_error = 1, data_block = 2, block_number = 3 } type = kind::data;
  data value;
  int access_error = 0;
  bool last_block = false;
  std::uint16_t block_number = 0;
  std::string raw;
};
std::string encode_read_response(const std::vector<read_result>& results);
std::vector<read_result> decode_read_response(std::string_view apdu);

// WriteRequest (used for SN methods: reply_to_HLS_authentication) and WriteResponse.
std::string encode_write_request(const std::vector<variable_access>& items, const std::vector<data>& values);
std::pair<std::vector<variable_access>, std::vector<data>> decode_write_request(std::string_view apdu);
struct write_result {
  bool success = true;
  int access_error = 0;
};
std::string encode_write_response(const std::vector<write_result>& results);
std::vector<write_result> decode_write_response(std::string_view apdu);

// ---- errors ----
struct exception_response {
  int state_error = 0;   // 1 service-not-allowed, 2 service-unknown
  int service_error = 0; // 1 operation-not-possible ... 6 invocation-counter-error
};
std::string encode_exception_response(const exception_response& e);
exception_response decode_exception_response(std::string_view apdu);

struct confirmed_service_error {
  int service = 0;    // 1 initiateError, 5 read, 6 write, ...
  int error_type = 0; // 0 application-reference ... 9 task
  int value = 0;
};
std::string encode_confirmed_service_error(const confirmed_service_error& e);
confirmed_service_error decode_confirmed_service_error(std::string_view apdu);

// Texts (lower case, as they appear in results): data-access-result 4 -> "object undefined";
// action-result the same table; unknown -> "data access error <n>".
std::string data_access_result_text(int code);
// AARE: source 1 diagnostic 13 -> "authentication failure"; 14 "authentication required"...
std::string association_diagnostic_text(int source, int diagnostic);
std::string association_result_text(int result); // "rejected permanently" / "rejected transiently"
std::string exception_text(const exception_response& e); // "service not allowed: operation not possible"
std::string confirmed_service_error_text(const confirmed_service_error& e);
// An InitiateError pair (type, value): (6, 1) -> "DLMS version too low".
std::string initiate_error_text(int error_type, int value);

// ---- HLS (pass 3/4) ----
// f(challenge) for MD5, SHA-1 (hash(challenge || secret)) and SHA-256
// (SHA-256(secret || own title || peer title || challenge || own challenge)); for MD5/SHA-1
// the titles and own challenge are ignored. The client computes f(StoC) with
// own = client title/CtoS, peer = server title; the server f(CtoS) with the roles swapped.
// Throws apdu_error for a mechanism it cannot compute (none, low, high, gmac).
std::string hls_response(authentication mechanism, std::string_view secret, std::string_view challenge,
                         std::string_view own_title = {}, std::string_view peer_title = {},
                         std::string_view own_challenge = {});

} // namespace mts::drivers::dlms
